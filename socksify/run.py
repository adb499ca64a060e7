"""socksify-run: run any dynamically linked program with the native shim preloaded.

    socksify-run [options] [--] command [args...]
    socksify-run --print-library

This is the Python implementation (``python -m socksify.run``, and ``python -m socksify --
program`` uses the same ``_preload`` module). The installed ``socksify-run`` command is the
native launcher csrc/launcher/socksify-run.c, which behaves the same without starting Python
(tests/native/test_run.py runs both) and falls back to this module when it cannot find the
library.

Exit status: the program's own (os.execvpe replaces this process); 2 for a usage or
configuration error; 126 when the program cannot be covered (statically linked, set-uid or
set-gid: the loader would ignore LD_PRELOAD and traffic would leak); 127 when it is not found.
"""

from __future__ import annotations

import argparse
import sys

from . import _preload
from ._cli import add_client_arguments, exec_native, settings_from_args, usage_error

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="socksify-run",
        description="Run a program with its network traffic sent through SOCKS proxies "
        "(native LD_PRELOAD shim; children and exec'd programs included).",
    )
    parser.add_argument(
        "--print-library",
        action="store_true",
        help="print the absolute path of the preload library and exit",
    )
    add_client_arguments(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="program and its arguments")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if args.print_library:
        try:
            print(_preload.library_path())
        except FileNotFoundError as exc:
            raise usage_error(str(exc), 1) from None
        return 0
    if not command:
        raise usage_error("no command given: socksify-run [options] [--] command [args...]")
    exec_native(command, settings_from_args(args))
    return 0  # not reached: exec replaced the process


if __name__ == "__main__":
    sys.exit(main())
