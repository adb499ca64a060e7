"""The socksify benchmark suite behind ``scripts/bench`` (see cli.py for the command line).

Modules: machine (what it ran on), processes (servers, target, load generator build),
context (sizes and subprocess helpers), results (rows, medians, targets), one module per
group of measures (server_measures, native_measures, python_measures), report (the table)
and chart (the PNG). loadgen.c is the compiled load generator and target.
"""
