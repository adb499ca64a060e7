"""``socksify-server``: command line of the reference SOCKS4/4a/5 server.

Exit status: 0 after SIGINT/SIGTERM, 2 for a bad option or config file (a message that
names the problem, never a traceback), 1 when a listener cannot be opened.
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
from ._server import Server
from ._workers import run_workers

PROG = "socksify-server"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Reference SOCKS4/4a/5 server (CONNECT, BIND, UDP ASSOCIATE).",
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


async def _serve(config: ServerConfig, sockets=None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Server(config, sockets=sockets) as server:
        # What start-up allocated (modules, config) never becomes garbage: keep it out of
        # the collector's full passes, which would otherwise scan it during traffic.
        gc.freeze()
        if sockets is None:  # workers: the parent announced the listeners
            for host, port in server.addresses:
                _announce(host, port)
        await stop.wait()
        logging.getLogger("socksify.server").info("stopping")


def _serve_worker(config: ServerConfig, sockets) -> int:
    """One worker process of ``run_workers``: serve ``sockets`` until SIGTERM."""
    asyncio.run(_serve(config, sockets))
    return 0


def main(argv: list[str] | None = None) -> int:
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
    logging.getLogger("socksify").setLevel(config.log_level.upper())
    try:
        if config.workers > 1:
            return run_workers(
                config, lambda sockets: _serve_worker(config, sockets), _announce
            )
        asyncio.run(_serve(config))
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: cannot listen: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
