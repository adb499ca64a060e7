"""Access rules: ordered, first match wins.

Rules of this module:

- A :class:`Rule` has an action (``allow`` / ``deny``) and criteria; every criterion that is
  set must match (AND), a list criterion matches when any of its items does (OR), and an
  unset criterion matches everything.
- :func:`evaluate` walks the rules in order and returns the first one that matches. When
  none matches, the default is *allow* if there are no rules at all and *deny* otherwise
  (a config that lists rules is a policy; an unlisted case is outside it).
- A request for a host name is evaluated once per address the name resolves to, with both
  the name and the address in the :class:`Query`: host-name patterns match the name, IP
  networks match the address. So a name can never be used to reach an address that an IP
  rule denies.
- Pure: no I/O, no clock (the caller passes ``now``), no logging.
"""

from __future__ import annotations

import datetime
import fnmatch
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Query", "Rule", "RuleError", "TimeWindow", "evaluate", "rule_from_dict"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: "resolve" and "resolve_ptr": Tor's RESOLVE and RESOLVE_PTR extensions
COMMANDS = ("connect", "bind", "udp", "resolve", "resolve_ptr")
PROTOCOLS = ("socks4", "socks5")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class RuleError(ValueError):
    """A rule in the config is malformed; the message names the bad key."""


@dataclass(frozen=True)
class Query:
    """What a rule is matched against: one request (or one UDP datagram)."""

    client: IPAddress
    command: str  #: one of COMMANDS
    #: destination port; None asks "could any destination be allowed?" (a UDP association,
    #: before its datagrams name destinations): rules with destination or port criteria
    #: then match only if they allow.
    port: int | None
    host: str | None = None  #: the host name as requested (None for an IP literal)
    address: IPAddress | None = None  #: the destination address (resolved for a name)
    user: str | None = None  #: RFC 1929 user name, or the SOCKS4 USERID ("" = none)
    protocol: str = "socks5"  #: "socks4" (4 and 4a) or "socks5"


@dataclass(frozen=True)
class TimeWindow:
    """Days of the week and a time-of-day span; ``start > end`` wraps past midnight."""

    days: frozenset[int] = frozenset(range(7))  #: 0 = Monday, as datetime.weekday()
    start: datetime.time | None = None
    end: datetime.time | None = None

    def contains(self, now: datetime.datetime) -> bool:
        if self.start is None or self.end is None:
            return now.weekday() in self.days
        t = now.time().replace(tzinfo=None)
        if self.start <= self.end:
            return now.weekday() in self.days and self.start <= t < self.end
        # Wrapping span (22:00-06:00): the early-morning part belongs to the previous day.
        if t >= self.start:
            return now.weekday() in self.days
        if t < self.end:
            return (now.weekday() - 1) % 7 in self.days
        return False


@dataclass(frozen=True)
class Rule:
    action: str  #: "allow" or "deny"
    clients: tuple[IPNetwork, ...] = ()
    users: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()  #: lower-case name patterns ("*.example.org", "example.org")
    networks: tuple[IPNetwork, ...] = ()
    ports: tuple[tuple[int, int], ...] = ()
    commands: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    times: tuple[TimeWindow, ...] = ()
    source: str = field(default="", compare=False)  #: "rule 3", for log lines

    @property
    def allows(self) -> bool:
        return self.action == "allow"

    def matches(self, query: Query, now: datetime.datetime) -> bool:
        if self.clients and not _in_networks(query.client, self.clients):
            return False
        if self.users and (query.user or "") not in self.users:
            return False
        if self.commands and query.command not in self.commands:
            return False
        if self.protocols and query.protocol not in self.protocols:
            return False
        if self.times and not any(w.contains(now) for w in self.times):
            return False
        has_destination = bool(self.ports or self.hosts or self.networks)
        if query.port is None:
            return self.allows or not has_destination
        if self.ports and not any(lo <= query.port <= hi for lo, hi in self.ports):
            return False
        return not (self.hosts or self.networks) or self._destination_matches(query)

    def _destination_matches(self, query: Query) -> bool:
        if query.host is not None:
            name = query.host.lower().rstrip(".")
            if any(_host_matches(name, pattern) for pattern in self.hosts):
                return True
        address = query.address
        return address is not None and _in_networks(address, self.networks)


_LOOPBACK = {4: ipaddress.ip_address("127.0.0.1"), 6: ipaddress.ip_address("::1")}


def effective_address(address: IPAddress) -> IPAddress:
    """The address a connection really reaches, for matching networks.

    An IPv4-mapped IPv6 address (``::ffff:1.2.3.4``) is the IPv4 address it carries, and
    the unspecified address (``0.0.0.0``, ``::``) reaches this host, so it is judged as
    loopback: otherwise it would slip past a rule that denies ``127.0.0.0/8``.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        address = _LOOPBACK[address.version]
    return address


def _in_networks(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    address = effective_address(address)
    return any(address.version == net.version and address in net for net in networks)


def _host_matches(name: str, pattern: str) -> bool:
    """``*.example.org`` matches any name below example.org (not example.org itself);
    ``.example.org`` matches example.org and any name below it; other patterns are
    shell-style (``fnmatch``) and usually just a name."""
    if pattern.startswith("."):
        return name == pattern[1:] or name.endswith(pattern)
    return fnmatch.fnmatchcase(name, pattern)


def evaluate(rules: tuple[Rule, ...] | list[Rule], query: Query, now: datetime.datetime):
    """Return ``(allowed, rule)`` for ``query``: the first matching rule, or the default.

    The default (``rule`` is None) is allow when ``rules`` is empty, deny otherwise.
    """
    for rule in rules:
        if rule.matches(query, now):
            return rule.allows, rule
    return not rules, None


# -- building rules from a config table -----------------------------------------------------

# ASCII digits only: int() would also take other scripts' digits.
_PORT_RANGE = re.compile(r"([0-9]{1,5})(?:\s*-\s*([0-9]{1,5}))?")
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")

_KEYS = {"action", "from", "users", "to", "ports", "commands", "protocols", "days", "hours"}


def _as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list):
        return value
    raise RuleError(f"{key!r} must be a string or a list")


def _network(text: Any, key: str) -> IPNetwork:
    if not isinstance(text, str):
        raise RuleError(f"{key!r}: {text!r} is not a network")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise RuleError(f"{key!r}: {text!r} is not an IP address or network") from None


def _looks_like_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _port_range(item: Any) -> tuple[int, int]:
    if isinstance(item, int) and not isinstance(item, bool):
        lo = hi = item
    elif isinstance(item, str):
        match = _PORT_RANGE.fullmatch(item.strip())
        if not match:
            raise RuleError(f"'ports': {item!r} is not a port or range like 8000-8999")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) else lo
    else:
        raise RuleError(f"'ports': {item!r} is not a port or range")
    if not (0 <= lo <= hi <= 65535):
        raise RuleError(f"'ports': {item!r} is outside 0-65535 or reversed")
    return lo, hi


def _clock(text: str) -> datetime.time:
    match = _CLOCK.fullmatch(text)
    if not match:
        raise RuleError(f"'hours': {text!r} is not a time like 08:30")
    hour, minute = int(match.group(1)), int(match.group(2))
    if (hour, minute) == (24, 0):
        return datetime.time.max
    try:
        return datetime.time(hour, minute)
    except ValueError:
        raise RuleError(f"'hours': {text!r} is not a time like 08:30") from None


def _times(days_value: Any, hours_value: Any) -> tuple[TimeWindow, ...]:
    days = frozenset(range(7))
    if days_value is not None:
        picked = set()
        for item in _as_list(days_value, "days"):
            if not isinstance(item, str):
                raise RuleError(f"'days': {item!r} is not a day name")
            first, _, last = item.lower().partition("-")
            if first not in WEEKDAYS or (last and last not in WEEKDAYS):
                raise RuleError(f"'days': {item!r} is not a day (mon..sun) or range (mon-fri)")
            lo = WEEKDAYS.index(first)
            hi = WEEKDAYS.index(last) if last else lo
            day = lo
            picked.add(day)
            while day != hi:
                day = (day + 1) % 7
                picked.add(day)
        days = frozenset(picked)
    if hours_value is None:
        return (TimeWindow(days),)
    windows = []
    for item in _as_list(hours_value, "hours"):
        if not isinstance(item, str) or item.count("-") != 1:
            raise RuleError(f"'hours': {item!r} is not a span like 08:00-18:00")
        start, end = (_clock(part.strip()) for part in item.split("-"))
        windows.append(TimeWindow(days, start, end))
    return tuple(windows)


def _choice(value: Any, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = tuple(str(x).lower() for x in _as_list(value, key))
    for item in items:
        if item not in allowed:
            raise RuleError(f"{key!r}: {item!r} is not one of {', '.join(allowed)}")
    return items


def rule_from_dict(table: dict[str, Any], source: str = "rule") -> Rule:
    """Build a :class:`Rule` from one ``[[rules]]`` table of the config.

    Keys: ``action`` ("allow"/"deny", required), ``from`` (client networks), ``users``,
    ``to`` (host-name patterns and IP networks), ``ports`` (numbers or "lo-hi" ranges),
    ``commands`` (connect/bind/udp/resolve/resolve_ptr), ``protocols`` (socks4/socks5),
    ``days`` ("mon".."sun" or ranges like "mon-fri") and ``hours`` ("08:00-18:00", may wrap
    midnight).

    Raises:
        RuleError: naming the rule and the bad key.
    """
    try:
        unknown = set(table) - _KEYS
        if unknown:
            raise RuleError(f"unknown key(s) {', '.join(sorted(unknown))}")
        action = table.get("action")
        if action not in ("allow", "deny"):
            raise RuleError("'action' must be \"allow\" or \"deny\"")
        hosts, networks = [], []
        for item in _as_list(table.get("to", []), "to"):
            if not isinstance(item, str) or not item:
                raise RuleError(f"'to': {item!r} is not a host pattern or network")
            if _looks_like_network(item):
                networks.append(_network(item, "to"))
            else:
                hosts.append(item.lower().rstrip("."))
        users = tuple(_as_list(table.get("users", []), "users"))
        if not all(isinstance(u, str) for u in users):
            raise RuleError("'users' must be strings")
        times = ()
        if "days" in table or "hours" in table:
            times = _times(table.get("days"), table.get("hours"))
        return Rule(
            action=action,
            clients=tuple(_network(x, "from") for x in _as_list(table.get("from", []), "from")),
            users=users,
            hosts=tuple(hosts),
            networks=tuple(networks),
            ports=tuple(_port_range(x) for x in _as_list(table.get("ports", []), "ports")),
            commands=_choice(table.get("commands", []), "commands", COMMANDS),
            protocols=_choice(table.get("protocols", []), "protocols", PROTOCOLS),
            times=times,
            source=source,
        )
    except RuleError as exc:
        raise RuleError(f"{source}: {exc}") from None
