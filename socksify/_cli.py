"""Command-line flags shared by ``python -m socksify`` and ``socksify-run``.

Both commands take the same client flags (SPEC.md "Client configuration") and turn every
configuration error into exit status 2 with one line ``socksify: error: ...`` on stderr,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from .proxy import LOG_LEVELS, ConfigError, Settings, load_settings

__all__ = ["add_client_arguments", "exec_native", "settings_from_args", "usage_error"]


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--proxy``, ``--no-proxy`` and ``--log-level`` to ``parser``."""
    group = parser.add_argument_group("proxy settings (flags win over the environment)")
    group.add_argument(
        "--proxy",
        metavar="URL[,URL...]",
        help="proxy or chain, like socks5h://user:pass@127.0.0.1:1080 "
        "(default: $SOCKSIFY_PROXY, else a socks URL in $ALL_PROXY)",
    )
    group.add_argument(
        "--no-proxy",
        metavar="LIST",
        help="hosts, .domain suffixes, IPs and CIDRs reached directly "
        "(default: $SOCKSIFY_NO_PROXY; empty: everything is proxied, loopback included)",
    )
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        help=f"one of {', '.join(LOG_LEVELS)} (default: $SOCKSIFY_LOG, else error)",
    )


def usage_error(message: str, status: int = 2) -> SystemExit:
    """Print ``socksify: error: message`` to stderr; return the SystemExit to raise."""
    print(f"socksify: error: {message}", file=sys.stderr, flush=True)
    return SystemExit(status)


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from parsed flags plus the environment.

    Raises:
        SystemExit(2): after printing a one-line message, for any configuration error
            (bad URL naming the bad part, no proxy configured, bad bypass list or level).
    """
    try:
        return load_settings(
            proxy=args.proxy,
            no_proxy=args.no_proxy,
            log_level=args.log_level,
            environ=environ,
        )
    except ConfigError as exc:
        raise usage_error(str(exc)) from None


def exec_native(command: Sequence[str], settings: Settings) -> None:
    """Replace this process with ``command`` under the native shim (never returns).

    Raises:
        SystemExit: after printing a one-line message, with socksify-run's statuses: 126 for
            a program the shim cannot cover or that cannot be executed, 127 when it is not
            found, 1 when the preload library is missing.
    """
    from . import _preload  # here, not at the top: only native runs need it

    try:
        _preload.exec_with_preload(command, settings)
    except _preload.NotCoverable as exc:
        raise usage_error(str(exc), exc.status) from None
    except FileNotFoundError as exc:
        raise usage_error(str(exc), 1) from None
    except OSError as exc:
        raise usage_error(f"{command[0]}: {exc.strerror}", 126) from None
