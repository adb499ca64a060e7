"""Server configuration: the :class:`ServerConfig` dataclass and the TOML file that fills it.

Rules of this module:

- Every bad value raises :class:`ConfigError` with a message that names the key (and the
  file), never a traceback; the CLI turns it into exit status 2.
- :func:`load_config` reads TOML with :mod:`tomllib` when present and with the subset
  reader in ``_toml.py`` otherwise (Python 3.10).
- The safety check (no open proxy on a non-loopback address unless asked for) lives in
  :meth:`ServerConfig.check`, so the Python API and the CLI enforce the same thing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from . import _auth
from ._rules import Rule, RuleError, rule_from_dict

try:
    import tomllib as _tomllib
except ImportError:  # Python 3.10
    from . import _toml as _tomllib  # type: ignore[no-redef]

__all__ = ["ConfigError", "ServerConfig", "load_config", "parse_listen", "parse_user",
           "parse_workers"]

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = ("127.0.0.1", 1080)
_ASCII_DIGITS = re.compile(r"[0-9]{1,5}")
LOG_LEVELS = ("debug", "info", "warning", "error")
#: ``relay``: "threads" = the Linux relay (bulk copied by worker threads; elsewhere the
#: portable one stands in), "portable" = the asyncio relay on every platform.
RELAYS = ("threads", "portable")
MAX_WORKERS = 256


def parse_workers(value: int | str) -> int:
    """``workers``: a count, or ``"auto"`` for the CPUs this process may run on."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            try:
                return max(1, len(os.sched_getaffinity(0)))
            except (AttributeError, OSError):
                return max(1, os.cpu_count() or 1)
        if not _ASCII_DIGITS.fullmatch(text):
            raise ConfigError(f"workers: {value!r} is not a number or \"auto\"")
        value = int(text)
    if isinstance(value, bool) or not 1 <= value <= MAX_WORKERS:
        raise ConfigError(f"workers must be an integer 1..{MAX_WORKERS} or \"auto\"")
    return value


class ConfigError(ValueError):
    """A bad option or config file; the message names the problem."""


@dataclass
class ServerConfig:
    """Everything the server needs. Build it directly, or with :func:`load_config`."""

    #: (host, port) pairs to listen on; port 0 picks a free port.
    listen: list[tuple[str, int]] = field(default_factory=lambda: [DEFAULT_LISTEN])
    #: user name -> plain password or ``scrypt$...`` hash (an ``_auth.PlainPassword`` is
    #: always plain); non-empty makes auth required.
    users: dict[str, str] = field(default_factory=dict)
    #: ordered access rules (first match wins; see ``_rules.py`` for the default).
    rules: list[Rule] = field(default_factory=list)
    #: names only this server resolves (name -> list of IP addresses); checked before DNS.
    hosts: dict[str, list[str]] = field(default_factory=dict)
    handshake_timeout: float = 10.0
    connect_timeout: float = 10.0
    #: seconds a relay may see no data in either direction; 0 disables.
    idle_timeout: float = 600.0
    bind_timeout: float = 120.0
    max_clients: int = 1024
    #: sessions one client address may hold at once (per worker); 0 = no such limit.
    #: IPv4-mapped IPv6 counts as the IPv4 address; IPv6 counts per exact address.
    max_clients_per_address: int = 0
    allow_open_proxy: bool = False
    log_level: str = "info"
    #: "threads": the Linux relay (bare sockets, bulk copied by worker threads, see
    #: _threaded_relay.py; the portable one where it cannot run); "portable": the asyncio
    #: relay everywhere.
    relay: str = "threads"
    #: worker processes sharing each listening port (SO_REUSEPORT); the CLI only. 1 serves
    #: in the main process; ``parse_workers("auto")`` is the number of usable CPUs.
    workers: int = 1

    def check(self) -> None:
        """Validate the values; raise :class:`ConfigError` naming the first bad one.

        Refuses to listen on a non-loopback address without users unless
        ``allow_open_proxy`` is set: an open proxy on a reachable address is abused quickly.
        """
        if not self.listen:
            raise ConfigError("listen: at least one address is needed")
        for host, port in self.listen:
            if not (0 <= port <= 65535):
                raise ConfigError(f"listen: port {port} is outside 0-65535")
            if not self.users and not self.allow_open_proxy and not _is_loopback(host):
                raise ConfigError(
                    f"listen: refusing to run an open proxy on non-loopback address {host!r} "
                    "without authentication; configure users or pass --allow-open-proxy"
                )
        for name in ("handshake_timeout", "connect_timeout", "idle_timeout", "bind_timeout"):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)  # NaN compares false with everything
                or value < 0
            ):
                raise ConfigError(
                    f"timeouts: {name.removesuffix('_timeout')} must be a number >= 0 "
                    "(0 disables it)"
                )
        if not isinstance(self.max_clients, int) or self.max_clients < 1:
            raise ConfigError("max_clients must be a positive integer")
        if (not isinstance(self.max_clients_per_address, int)
                or isinstance(self.max_clients_per_address, bool)
                or self.max_clients_per_address < 0):
            raise ConfigError("max_clients_per_address must be an integer >= 0 "
                              "(0: no per-address limit)")
        if (not isinstance(self.workers, int) or isinstance(self.workers, bool)
                or not 1 <= self.workers <= MAX_WORKERS):
            raise ConfigError(f"workers must be an integer 1..{MAX_WORKERS} or \"auto\"")
        if self.relay not in RELAYS:
            raise ConfigError(_bad_relay("relay", self.relay))
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        for name, stored in self.users.items():
            if not name or len(_utf8(name, f"users: the user name {name!r}")) > 255:
                raise ConfigError(f"users: {name!r}: a user name must be 1..255 bytes")
            if (not _auth.is_hashed(stored)
                    and len(_utf8(stored, f"users: {name!r}: the password")) > 255):
                raise ConfigError(f"users: {name!r}: a password is at most 255 bytes")
            if _auth.is_hashed(stored):
                try:
                    _auth.parse_hash(stored)
                except ValueError as exc:
                    raise ConfigError(f"users: {name!r}: {exc}") from None

    def replace(self, **changes: Any) -> ServerConfig:
        return dataclasses.replace(self, **changes)


def _bad_relay(key: str, value: Any) -> str:
    accepted = " or ".join(f'"{name}"' for name in RELAYS)
    return f"{key} must be {accepted}, not {value!r}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` / ``[V6]:PORT`` / ``HOST`` (port 1080) -> ``(host, port)``."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"listen: {text!r} is not [IPV6]:PORT")
        port_text = rest[1:] if rest else str(DEFAULT_LISTEN[1])
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"listen: {host!r} is not an IPv6 address") from None
    elif text.count(":") > 1:
        raise ConfigError(f"listen: put an IPv6 address in brackets: [{text}]:PORT")
    else:
        host, _, port_text = text.partition(":")
        port_text = port_text or str(DEFAULT_LISTEN[1])
    if not host:
        raise ConfigError(f"listen: {text!r} has no host")
    if not _ASCII_DIGITS.fullmatch(port_text) or not (0 <= int(port_text) <= 65535):
        raise ConfigError(f"listen: {text!r} has a bad port (0-65535)")
    return host, int(port_text)


def _utf8(text: str, what: str) -> bytes:
    """``text`` in UTF-8; a ConfigError "``what`` is not UTF-8" when it holds a lone
    surrogate (how Python shows a command-line byte that is not UTF-8). ``what`` names the
    part and never shows a password."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{what} is not UTF-8") from None


def parse_user(text: str) -> tuple[str, _auth.PlainPassword]:
    """``NAME:PASSWORD`` split at the first colon, both taken literally: the password is a
    :class:`~._auth.PlainPassword`, so one starting with ``scrypt$`` is not read as a hash."""
    name, sep, password = text.partition(":")
    if not sep or not name:
        raise ConfigError(f"--user {text!r}: expected NAME:PASSWORD")
    name_bytes = _utf8(name, f"--user: the user name {name!r}")
    password_bytes = _utf8(password, f"--user {name!r}: the password")
    if len(name_bytes) > 255 or len(password_bytes) > 255:
        raise ConfigError("--user: name and password are at most 255 bytes (RFC 1929)")
    return name, _auth.PlainPassword(password)


# -- the TOML file -------------------------------------------------------------------------

_TOP_KEYS = {"server", "timeouts", "users", "hosts", "rules"}
_SERVER_KEYS = {"listen", "max_clients", "max_clients_per_address", "allow_open_proxy",
                "log_level", "relay", "splice", "workers"}
_TIMEOUT_KEYS = {"handshake", "connect", "idle", "bind"}


#: how error messages name the TOML value types
_KIND_NAMES = {int: "an integer", str: "a string", bool: "true or false", float: "a number",
               list: "a list", dict: "a table"}


def _expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = (kind,) if isinstance(kind, type) else kind
        names = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        raise ConfigError(f"{key} must be {names}, not {value!r}")
    return value


def _unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    extra = set(table) - known
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")


def config_from_dict(data: dict[str, Any], base: ServerConfig | None = None) -> ServerConfig:
    """Apply a parsed TOML document to ``base`` (or the defaults) and validate it."""
    config = dataclasses.replace(base) if base else ServerConfig()
    _unknown(data, _TOP_KEYS, "config")
    server = _expect(data.get("server", {}), dict, "[server]")
    _unknown(server, _SERVER_KEYS, "[server]")
    if "listen" in server:
        listen = server["listen"]
        listen = [listen] if isinstance(listen, str) else _expect(listen, list, "server.listen")
        config.listen = [parse_listen(_expect(x, str, "server.listen")) for x in listen]
    if "max_clients" in server:
        config.max_clients = _expect(server["max_clients"], int, "server.max_clients")
    if "max_clients_per_address" in server:
        config.max_clients_per_address = _expect(
            server["max_clients_per_address"], int, "server.max_clients_per_address")
    if "allow_open_proxy" in server:
        config.allow_open_proxy = _expect(server["allow_open_proxy"], bool,
                                          "server.allow_open_proxy")
    if "relay" in server or "splice" in server:
        config.relay = _relay_key(server)
    if "workers" in server:
        config.workers = parse_workers(_expect(server["workers"], (int, str), "server.workers"))
    if "log_level" in server:
        config.log_level = _expect(server["log_level"], str, "server.log_level").lower()
    timeouts = _expect(data.get("timeouts", {}), dict, "[timeouts]")
    _unknown(timeouts, _TIMEOUT_KEYS, "[timeouts]")
    for key, value in timeouts.items():
        value = _expect(value, (int, float), f"timeouts.{key}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"timeouts.{key} is too large") from None
        setattr(config, f"{key}_timeout", value)
    users = _expect(data.get("users", {}), dict, "[users]")
    config.users = dict(config.users)
    for name, stored in users.items():
        config.users[name] = _expect(stored, str, f"users.{name}")
    hosts = _expect(data.get("hosts", {}), dict, "[hosts]")
    config.hosts = dict(config.hosts)
    for name, value in hosts.items():
        config.hosts[name] = parse_hosts_entry(name, value)
    rules = _expect(data.get("rules", []), list, "[[rules]]")
    config.rules = list(config.rules)
    for index, table in enumerate(rules, 1):
        try:
            config.rules.append(rule_from_dict(_expect(table, dict, "rules"), f"rule {index}"))
        except RuleError as exc:
            raise ConfigError(f"[[rules]] {exc}") from None
    config.check()
    return config


def _relay_key(server: dict[str, Any]) -> str:
    """``server.relay``, or the deprecated ``server.splice`` (a bool, named after a design
    the threaded relay replaced: true -> "threads", false -> "portable")."""
    if "splice" in server:
        if "relay" in server:
            raise ConfigError("server.splice and server.relay both set: keep server.relay "
                              "(server.splice is its deprecated old name)")
        threads = _expect(server["splice"], bool, "server.splice")
        relay = "threads" if threads else "portable"
        logger.warning('server.splice is deprecated: write relay = "%s" in [server] instead',
                       relay)
        return relay
    relay = server["relay"]
    if relay not in RELAYS:
        raise ConfigError(_bad_relay("server.relay", relay))
    return relay


def parse_hosts_entry(name: str, value: Any) -> list[str]:
    """A ``[hosts]`` value: one IP address or a list of them (kept in order)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(f"hosts.{name}: expected an IP address or a list of them")
    out = []
    for item in items:
        try:
            out.append(str(ipaddress.ip_address(item)))
        except (ValueError, TypeError):
            raise ConfigError(f"hosts.{name}: {item!r} is not an IP address") from None
    return out


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return _tomllib.loads(text)
    except _tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None


def _from_dict(data: dict[str, Any], base: ServerConfig | None, where: str) -> ServerConfig:
    try:
        return config_from_dict(data, base)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_config_text(
    text: str, base: ServerConfig | None = None, where: str = "config"
) -> ServerConfig:
    """Like :func:`load_config`, for TOML text already in memory."""
    return _from_dict(_parse_toml(text, where), base, where)


def load_config(path: str, base: ServerConfig | None = None) -> ServerConfig:
    """Read the TOML file at ``path`` over ``base`` and return the checked config.

    Logs a warning when the file holds plain-text passwords and group or others can read it.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
            mode = os.fstat(f.fileno()).st_mode
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8") from None
    data = _parse_toml(text, path)
    config = _from_dict(data, base, path)
    users = data.get("users", {})
    plain = [n for n, p in users.items() if not _auth.is_hashed(p)]
    if plain and mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning(
            "%s holds plain-text passwords and is readable by group/others; "
            "chmod 600 it or store hashes (socksify-server --hash-password)",
            path,
        )
    return config
