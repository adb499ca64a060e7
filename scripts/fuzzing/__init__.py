"""Fuzzing of socksify's parsers: targets, seed corpora and two engines.

- ``targets.py``: one check per target (``check(data: bytes)``); a check raises only when it
  finds a bug (an exception other than the documented error, a broken property).
- ``seeds.py``: seed inputs built from the shared vectors in ``tests/vectors/``.
- ``engines.py``: hypothesis (property-based, always there) and atheris (coverage-guided,
  when installed), each with a time budget; ``scripts/fuzz`` is the command line.

The CI pass (``tests/hardening/test_fuzz_ci.py``) runs every target through the hypothesis
engine with a fixed seed and a small fixed number of inputs.
"""
