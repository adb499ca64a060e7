"""Reading ``strace -f -k -e trace=connect,sendto,sendmsg,sendmmsg`` output: where did it go?

Pure functions (no I/O), so tests/leaks can check them on hand-written lines.

A line may carry several socket addresses (``sendmmsg``); every one counts. Only the call's
own arguments matter: ``<... connect resumed>`` lines carry none, and an attempt counts
whatever its result (inside ``unshare -n`` a leak fails with ENETUNREACH, but it was tried).
"""

from __future__ import annotations

import dataclasses
import re

_CALL = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(connect|sendto|sendmsg|sendmmsg)\(")
_INET4 = re.compile(
    r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)'
)
_INET6 = re.compile(
    r'sa_family=AF_INET6, sin6_port=htons\((\d+)\),(?: sin6_flowinfo=htonl\(\d+\),)? '
    r'inet_pton\(AF_INET6, "([^"]+)"'
)
_UNIX = re.compile(r'sa_family=AF_UNIX, sun_path=(@?"[^"]*")')
#: local services that resolve names for a program (a DNS leak by another route) ...
_RESOLVER_SOCKETS = ("nscd", "resolve", "dnsmasq")
#: ... but glibc also asks nscd for users and groups (curl's getpwuid): with ``strace -k``
#: the call stack under the line says which; a host lookup has one of these in it
_HOST_LOOKUP = re.compile(
    r"getaddrinfo|gethostbyname|gethostbyaddr|getnameinfo|__nscd_get(?:ai|h)"
    r"|res_n?(?:query|search|send)"
)


@dataclasses.dataclass
class TraceSummary:
    """What a trace shows: counts of attempts, and the ones that went somewhere forbidden."""

    connects: int = 0
    datagrams: int = 0
    leaks: list[str] = dataclasses.field(default_factory=list)


def _endpoints(line: str) -> list[tuple[str, int]]:
    found = [(host, int(port)) for port, host in _INET4.findall(line)]
    found += [(_unmapped(host), int(port)) for port, host in _INET6.findall(line)]
    return found


def _unmapped(host: str) -> str:
    """``::ffff:a.b.c.d`` (RFC 4291 §2.5.5.2) is the IPv4 address a.b.c.d: an AF_INET6
    socket reaches an IPv4 proxy that way (the shims' IPv6 remote-DNS placeholders)."""
    if host.lower().startswith("::ffff:") and "." in host:
        return host[7:]
    return host


def audit_trace(
    text: str,
    allowed_connect: set[tuple[str, int]],
    allowed_datagram: set[tuple[str, int]],
) -> TraceSummary:
    """Check every connect() and datagram of a trace against the allowed endpoints.

    ``allowed_connect``: where a connect() may go (the proxy; a UDP socket may also be
    connected to a relay address in ``allowed_datagram``). ``allowed_datagram``: where a
    datagram with an explicit address may go (the proxy's UDP relays). Anything else on
    AF_INET/AF_INET6, and any connect() to a local resolver socket, is a leak.
    """
    summary = TraceSummary()
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _CALL.match(line)
        if not match or "resumed>" in line.split("(", 1)[0]:
            continue
        call = match.group(1)
        endpoints = _endpoints(line)
        if call == "connect":
            unix = _UNIX.search(line)
            if unix and any(word in unix.group(1) for word in _RESOLVER_SOCKETS):
                stack = _stack_after(lines, index)
                if not stack or _HOST_LOOKUP.search(stack):  # no stack: assume the worst
                    summary.leaks.append(f"connect to resolver socket {unix.group(1)}")
            if not endpoints:
                continue  # AF_UNIX, AF_UNSPEC (a UDP "disconnect"), netlink...
            summary.connects += 1
            for endpoint in endpoints:
                if endpoint not in allowed_connect and endpoint not in allowed_datagram:
                    summary.leaks.append(f"connect to {_show(endpoint)}")
        else:
            if not endpoints:
                continue  # on a connected socket: its connect() was checked
            summary.datagrams += len(endpoints)
            for endpoint in endpoints:
                if endpoint not in allowed_datagram:
                    summary.leaks.append(f"{call} to {_show(endpoint)}")
    return summary


def _stack_after(lines: list[str], index: int) -> str:
    """The ``strace -k`` stack lines (`` > ...``) that follow line ``index``."""
    stack = []
    for line in lines[index + 1:]:
        if not line.startswith(" > "):
            break
        stack.append(line)
    return "\n".join(stack)


def _show(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
