"""``python -m socksify [options] (script.py | -m module | -- program) [args...]``.

After cProfile's and gevent's runners: argparse with ``REMAINDER`` so the target's own flags
pass through untouched, the patch installed through ``socksify.patch`` (the patch state
lives there, never in this module, so it is not loaded twice under two names), then
``runpy`` runs the target as ``__main__`` with ``sys.argv`` and ``sys.path[0]`` set as plain
``python`` sets them. The target's exit status and tracebacks are its own: nothing here
catches them. Configuration errors exit with status 2 and one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import runpy
import sys
import zipfile

from ._cli import add_client_arguments, exec_native, settings_from_args, usage_error
from .patch import install as _install


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m socksify",
        description="Run a Python script or module (or, with --, a native program) with "
        "every connection routed through a SOCKS proxy.",
        epilog="Environment: SOCKSIFY_PROXY, SOCKSIFY_NO_PROXY, SOCKSIFY_LOG, "
        "SOCKSIFY_DNS_RANGE; ALL_PROXY/all_proxy when they hold a socks URL.",
    )
    add_client_arguments(parser)
    parser.add_argument(
        "-m",
        dest="module",
        metavar="MODULE",
        help="run library module MODULE as a script (the rest of the line is its arguments)",
    )
    parser.add_argument(
        "target",
        nargs=argparse.REMAINDER,
        metavar="script.py | -- program",
        help="the script and its arguments, or -- and a native program and its arguments",
    )
    return parser


_VALUE_OPTIONS = ("--proxy", "--no-proxy", "--log-level")


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(our options, the target's arguments)``: everything after ``-m MODULE`` belongs to
    the module (even ``-h``), like ``python -m``; argparse alone would take its flags."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "-m":
            return argv[: index + 2], argv[index + 2 :]
        if arg.startswith("-m") and not arg.startswith("--"):
            return argv[: index + 1], argv[index + 1 :]
        if arg in _VALUE_OPTIONS:
            index += 2
        elif arg.startswith("-") and arg != "--":
            index += 1
        else:
            break
    return argv, []


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    own, module_args = split_argv(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(own)
    rest = list(args.target) + module_args
    if args.module is None and not rest:
        parser.print_usage(sys.stderr)
        raise usage_error("give a script, -m MODULE, or -- PROGRAM to run")
    settings = settings_from_args(args)

    if args.module is None and rest[0] == "--":
        _exec_native(rest[1:], settings)
        return  # not reached: exec replaced the process

    if args.module is not None:
        if not _module_exists(args.module):  # what `python -m nosuch` says, and its status
            raise usage_error(f"No module named {args.module!r}", 1)
        sys.argv[:] = [args.module, *rest]  # run_module sets argv[0] to the file path
        # sys.path[0] is already the working directory, as `python -m` leaves it.
        _install(settings)
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        script = rest[0]
        if not os.path.exists(script):
            raise usage_error(f"can't open file {script!r}: no such file")
        sys.argv[:] = rest
        # The script may chdir: make sys.path[0] absolute now. Like `python`: the script's
        # directory, or the directory or zip file itself when that is what we run.
        path = os.path.abspath(script)
        runs_itself = os.path.isdir(script) or zipfile.is_zipfile(script)
        sys.path[0] = path if runs_itself else os.path.dirname(path)
        _install(settings)
        runpy.run_path(script, run_name="__main__")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a bad name
        return False


def _exec_native(argv: list[str], settings) -> None:
    if not argv:
        raise usage_error("-- needs a program to run")
    exec_native(argv, settings)  # exits with socksify-run's statuses when it cannot exec


if __name__ == "__main__":
    main()
