"""``socksify-server``: command line of the reference SOCKS4/4a/5 server.

Exit status: 0 after SIGINT/SIGTERM, 2 for a bad option or config file (a message that
names the problem, never a traceback), 1 when a listener cannot be opened.

SIGHUP reloads: the config file is read again and the same command-line options applied
over it (``_build_config(args)``, so the result is what a fresh start would use). An invalid
one is logged as one error line and the old configuration keeps serving; a valid one
serves new sessions (``Server.reload``), except for the keys fixed at start
(``FIXED_AT_START``: listen, workers, relay), which keep their running values with a warning
that they need a restart. Without ``--config`` the same options are applied again.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import signal
import sys

from ._auth import hash_password
from ._config import (
    LOG_LEVELS,
    ConfigError,
    ServerConfig,
    load_config,
    parse_listen,
    parse_user,
    parse_workers,
)
from ._eventloop import run as run_loop
from ._server import FIXED_AT_START, Server
from ._workers import run_workers

PROG = "socksify-server"

logger = logging.getLogger("socksify.server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Reference SOCKS4/4a/5 server (CONNECT, BIND, UDP ASSOCIATE).",
        epilog="Signals: SIGINT/SIGTERM stop the server (exit status 0); SIGHUP reloads the "
        "configuration (the --config file and these options again; listen, workers and "
        "relay need a restart).",
    )
    parser.add_argument(
        "--listen", action="append", metavar="HOST:PORT",
        help="address to listen on (repeatable; default 127.0.0.1:1080; port 0 picks a free "
        "port; IPv6 as [::1]:1080)",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    parser.add_argument(
        "--user", action="append", metavar="NAME:PASSWORD",
        help="allowed user (repeatable; split at the first colon); makes RFC 1929 "
        "username/password authentication required",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, type=str.lower, help="default info")
    parser.add_argument(
        "--workers", metavar="N|auto",
        help="worker processes sharing each listening port (SO_REUSEPORT); auto = one per "
        "CPU; default 1 (the main process serves)",
    )
    parser.add_argument(
        "--allow-open-proxy", action="store_true",
        help="allow listening on a non-loopback address without authentication",
    )
    parser.add_argument(
        "--hash-password", action="store_true",
        help="read a password (stdin, or a prompt on a terminal), print its scrypt hash "
        "for the [users] table of a config file, and exit",
    )
    return parser


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise ConfigError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def _build_config(args: argparse.Namespace) -> ServerConfig:
    config = load_config(args.config) if args.config else ServerConfig()
    if args.listen:
        config.listen = [parse_listen(item) for item in args.listen]
    if args.user:
        config.users = dict(config.users)
        for item in args.user:
            name, password = parse_user(item)
            config.users[name] = password
    if args.log_level:
        config.log_level = args.log_level
    if args.workers is not None:
        config.workers = parse_workers(args.workers)
    if args.allow_open_proxy:
        config.allow_open_proxy = True
    config.check()
    return config


def _announce(host: str, port: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(f"{PROG} listening on {shown}:{port}\n")
    sys.stderr.flush()


def _config_source(args: argparse.Namespace) -> str:
    return args.config or "the command line (no --config file)"


def _reread_config(
    args: argparse.Namespace, current: ServerConfig, *, warn_fixed: bool = True
) -> ServerConfig | None:
    """The configuration a reload applies: ``_build_config(args)`` with the keys fixed at
    start kept from ``current``; None (one error line logged) when it is not valid.

    ``warn_fixed``: log a warning naming the fixed keys that differ (the workers leave it
    to the parent, which warns once).
    """
    try:
        new = _build_config(args)
        applied = new.replace(**{key: getattr(current, key) for key in FIXED_AT_START})
        applied.check()  # e.g. the users removed while the old listen address stays open
    except ConfigError as exc:
        logger.error("configuration not reloaded, the old one stays in use: %s", exc)
        return None
    changed = [key for key in FIXED_AT_START if getattr(new, key) != getattr(current, key)]
    if changed and warn_fixed:
        logger.warning(
            "%s changed in %s: a restart is needed to apply that (the rest is reloaded)",
            " and ".join(changed), _config_source(args),
        )
    return applied


def _set_log_level(config: ServerConfig) -> None:
    logging.getLogger("socksify").setLevel(config.log_level.upper())


def _reload(args: argparse.Namespace, server: Server, *, warn_fixed: bool = True) -> None:
    """SIGHUP in a serving process: reload, or keep everything as it is."""
    config = _reread_config(args, server.config, warn_fixed=warn_fixed)
    if config is None:
        return
    try:
        server.reload(config)
    except ConfigError as exc:  # not expected: _reread_config checked the same
        logger.error("configuration not reloaded, the old one stays in use: %s", exc)
        return
    _set_log_level(config)
    logger.info("configuration reloaded from %s", _config_source(args))


async def _serve(config: ServerConfig, args: argparse.Namespace, sockets=None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Server(config, sockets=sockets) as server:
        worker = sockets is not None
        loop.add_signal_handler(signal.SIGHUP, lambda: _reload(args, server, warn_fixed=not worker))
        # main() (and run_workers, for a worker) blocked SIGHUP: a reload sent before the
        # handler above existed was kept pending, and arrives now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        # What start-up allocated (modules, config) never becomes garbage: keep it out of
        # the collector's full passes, which would otherwise scan it during traffic.
        gc.freeze()
        if not worker:  # workers: the parent announced the listeners
            for host, port in server.addresses:
                _announce(host, port)
        await stop.wait()
        logger.info("stopping")


def _serve_worker(config: ServerConfig, args: argparse.Namespace, sockets) -> int:
    """One worker process of ``run_workers``: serve ``sockets`` until SIGTERM."""
    run_loop(_serve(config, args, sockets))
    return 0


def _run_workers(config: ServerConfig, args: argparse.Namespace) -> int:
    """``workers > 1``: the parent checks a reload once and keeps the new configuration for
    the workers it starts later; each worker reloads itself on the SIGHUP passed on."""
    current = config

    def reload() -> bool:
        nonlocal current
        new = _reread_config(args, current)
        if new is None:
            return False
        current = new
        _set_log_level(new)
        logger.info("configuration in %s is valid: reloading the workers", _config_source(args))
        return True

    return run_workers(
        config, lambda sockets: _serve_worker(current, args, sockets), _announce, reload
    )


def main(argv: list[str] | None = None) -> int:
    # SIGHUP's default action ends the process: one sent before the reload handler exists
    # (a `systemctl reload` right after the start) is held pending until then.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        return _main(argv)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format=f"{PROG}: %(message)s", level=logging.WARNING, stream=sys.stderr)
    try:
        if args.hash_password:
            print(hash_password(_read_password()))
            return 0
        config = _build_config(args)
    except ConfigError as exc:
        parser.exit(2, f"{PROG}: error: {exc}\n")
    except (EOFError, KeyboardInterrupt):
        parser.exit(2, f"{PROG}: error: no password given\n")
    _set_log_level(config)
    try:
        if config.workers > 1:
            return _run_workers(config, args)
        run_loop(_serve(config, args))
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: cannot listen: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
