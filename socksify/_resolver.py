"""Remote DNS for the Python shim: placeholder addresses that stand for names (RFC 3089).

With socks4a or socks5h the proxy resolves destination names, so the resolver functions must
not. Like RFC 3089's "DNS name resolving delegation" (§3), they answer a *placeholder*
address, remember which name it stands for, and ``connect()``/``sendto()``/``listen()``
(BIND) map it back and send the NAME to the proxy.

Rules of this module:

- Placeholders come from ``Settings.dns_range`` (SOCKSIFY_DNS_RANGE, default
  ``240.0.0.0/8,100::/64``: the reserved class E block, never routed and not multicast, and
  RFC 6666's discard-only IPv6 prefix). AF_INET lookups get an IPv4 placeholder, AF_INET6
  lookups an IPv6 one, AF_UNSPEC lookups both: IPv4 first, then IPv6 (when the range has an
  IPv6 part). gethostbyname/gethostbyname_ex are IPv4 APIs and answer IPv4.
- One name keeps one placeholder per family for the life of the process; when a range is
  used up, the oldest mappings are reused (16 million names for a /8).
- The map is guarded by one lock and lives in ordinary process memory, so a forked child
  inherits a copy (the lock is re-created in the child with ``os.register_at_fork``); an
  ``exec``'d program does not (the native shim keeps its own map).
- Names resolved locally even with remote DNS: none that would leak. IP literals (and
  anything ``inet_aton``/``inet_pton`` accepts) pass through, and so do ``localhost`` and
  ``*.localhost`` (RFC 6761 §6.3: never sent to DNS), names in the bypass list (they go
  direct, so they must resolve), and the proxies' own host names.
- Reverse lookups of a placeholder give the name back; of any other address (except
  loopback) they fail with ``herror`` instead of leaking a PTR query.
"""

from __future__ import annotations

import _thread  # the C locks threading.Lock() returns, without importing threading
import _weakref  # weakref.ref without the weakref module (start-up cost)
import os
import socket

__all__ = ["PlaceholderMap", "RemoteResolver", "is_ip_literal"]


def is_ip_literal(host: str) -> bool:
    """True for anything the C library parses as an address without DNS."""
    try:
        socket.inet_aton(host)
        return True
    except (OSError, ValueError):
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        return True
    except (OSError, ValueError):
        return False


class _Range:
    """Sequential allocation from one network, wrapping around when it is used up."""

    def __init__(self, network):
        self.network = network
        self.first = int(network.network_address) + 1
        self.size = network.num_addresses - 2  # skip the network and last addresses
        self.next = 0
        self.names: dict[str, str] = {}  # lower-cased name -> address
        self.by_address: dict[str, str] = {}  # address -> name as first asked

    def allocate(self, name: str) -> str:
        key = name.lower()
        address = self.names.get(key)
        if address is None:
            import ipaddress

            address = str(ipaddress.ip_address(self.first + self.next % self.size))
            self.next += 1
            old = self.by_address.get(address)
            if old is not None:  # wrapped around: the oldest mapping gives way
                del self.names[old.lower()]
            self.names[key] = address
            self.by_address[address] = name
        return address


#: weak references to every PlaceholderMap, for _relock_after_fork
_maps: list = []


def _relock_after_fork() -> None:
    for ref in list(_maps):
        placeholder_map = ref()
        if placeholder_map is not None:
            placeholder_map._lock = _thread.allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_relock_after_fork)


class PlaceholderMap:
    """Thread-safe name <-> placeholder address map over the configured ranges.

    ``networks``: the ranges (``ipaddress`` networks), or a function returning them, called
    when a placeholder is first needed (``patch()`` itself then parses no address range).
    """

    def __init__(self, networks):
        self._networks = networks
        self._built: dict | None = None  # IP version -> _Range, once needed
        self._lock = _thread.allocate_lock()
        #: how many times a placeholder has been handed out to a new name (first issued,
        #: or reused after wrap-around): what was learnt about an address in the ranges (a
        #: placeholder, or an address not issued yet) is good only while this is unchanged
        self.generation = 0
        _maps[:] = [ref for ref in _maps if ref() is not None]
        _maps.append(_weakref.ref(self))

    @property
    def _ranges(self) -> dict:
        ranges = self._built
        if ranges is None:
            networks = self._networks() if callable(self._networks) else self._networks
            ranges = self._built = {network.version: _Range(network) for network in networks}
        return ranges

    def has_family(self, version: int) -> bool:
        return version in self._ranges

    def address_for(self, name: str, version: int = 4) -> str:
        """The placeholder (IPv4 if ``version`` is 4, else IPv6) standing for ``name``."""
        with self._lock:
            placeholder_range = self._ranges[version]
            before = placeholder_range.next
            address = placeholder_range.allocate(name.rstrip(".") or name)
            if placeholder_range.next != before:
                self.generation += 1
            return address

    def name_for(self, address: str) -> str | None:
        """The name a placeholder stands for; None for any other address."""
        if not isinstance(address, str) or self._built is None:  # nothing handed out yet
            return None
        if address.startswith("::ffff:"):  # IPv4-mapped form on an AF_INET6 socket
            address = address[7:]
        for placeholder_range in self._ranges.values():
            name = placeholder_range.by_address.get(address)
            if name is not None:
                return name
        if ":" in address:  # not in compressed form?
            import ipaddress

            try:
                text = str(ipaddress.ip_address(address.partition("%")[0]))
            except ValueError:
                return None
            if text != address:
                return self.name_for(text)
        return None

    def in_range(self, address: str) -> bool:
        import ipaddress

        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return False
        return any(ip in r.network for r in self._ranges.values())


def _service_port(port, socktype: int) -> int | None:
    """The port number of ``port`` (a number, numeric string or service name) for
    ``socktype``; None when that type has no such service, as in glibc: a name known only
    for tcp (``http``) has no datagram entry, and raw sockets know no names."""
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode("ascii")
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    if socktype == socket.SOCK_RAW:
        return None
    protocol = "udp" if socktype == socket.SOCK_DGRAM else "tcp"
    try:
        return socket.getservbyname(port, protocol)
    except OSError:
        return None


_TYPES = (
    (socket.SOCK_STREAM, socket.IPPROTO_TCP),
    (socket.SOCK_DGRAM, socket.IPPROTO_UDP),
    (socket.SOCK_RAW, 0),
)


class RemoteResolver:
    """Drop-in resolver functions answering placeholders (installed by ``socksify.patch``).

    ``originals`` maps function names to the unpatched ``socket`` functions.
    """

    def __init__(self, placeholders: PlaceholderMap, local_names, no_proxy, originals):
        self.placeholders = placeholders
        self.local_names = frozenset(name.lower() for name in local_names)
        self.no_proxy = no_proxy
        self.originals = originals

    def resolves_locally(self, host) -> bool:
        if not isinstance(host, str):
            if isinstance(host, (bytes, bytearray)):
                host = bytes(host).decode("idna")
            else:
                return True
        name = host.lower().rstrip(".")
        return (
            not name
            or is_ip_literal(host)
            or name == "localhost"
            or name.endswith(".localhost")
            or name in self.local_names
            or self.no_proxy.matches(name)
        )

    def _as_text(self, host) -> str:
        return host.decode("idna") if isinstance(host, (bytes, bytearray)) else host

    # --- forward lookups --------------------------------------------------------------

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        """Placeholder entries: IPv4 for AF_INET, IPv6 for AF_INET6, and for AF_UNSPEC the
        IPv4 entries first (a program taking the first address behaves as with IPv4 only),
        then the IPv6 ones when the range has an IPv6 part (``curl -6`` asks AF_UNSPEC and
        keeps the IPv6 entries). AI_ADDRCONFIG is ignored: the proxy reaches the name."""
        if host is None or flags & socket.AI_NUMERICHOST or self.resolves_locally(host):
            return self.originals["getaddrinfo"](host, port, family, type, proto, flags)
        name = self._as_text(host)
        if family == socket.AF_UNSPEC:
            versions = (4, 6) if self.placeholders.has_family(6) else (4,)
        elif family == socket.AF_INET:
            versions = (4,)
        elif family == socket.AF_INET6 and self.placeholders.has_family(6):
            versions = (6,)
        else:
            raise socket.gaierror(
                socket.EAI_ADDRFAMILY, "Address family for hostname not supported"
            )
        types = [
            (socktype, protocol)
            for socktype, protocol in _TYPES
            if (not type or type == socktype)
            and (not proto or proto == protocol or socktype == socket.SOCK_RAW)  # raw: any
        ]
        if not types:
            raise socket.gaierror(socket.EAI_SOCKTYPE, "ai_socktype not supported")
        # glibc: entries only for the types that know the service; none is EAI_SERVICE
        ports = []
        for socktype, protocol in types:
            number = _service_port(port, socktype)
            if number is not None:
                ports.append((socktype, protocol, number))
        if not ports:
            raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
        canonname = name if flags & socket.AI_CANONNAME else ""
        results = []
        for version in versions:
            address = self.placeholders.address_for(name, version)
            af = socket.AF_INET if version == 4 else socket.AF_INET6
            for socktype, protocol, number in ports:
                sockaddr = (address, number) if version == 4 else (address, number, 0, 0)
                results.append(
                    (af, socket.SocketKind(socktype), proto or protocol, canonname, sockaddr)
                )
                canonname = ""
        return results

    def gethostbyname(self, hostname):
        if self.resolves_locally(hostname):
            return self.originals["gethostbyname"](hostname)
        return self.placeholders.address_for(self._as_text(hostname), 4)

    def gethostbyname_ex(self, hostname):
        if self.resolves_locally(hostname):
            return self.originals["gethostbyname_ex"](hostname)
        name = self._as_text(hostname)
        return (name, [], [self.placeholders.address_for(name, 4)])

    # --- reverse lookups --------------------------------------------------------------

    def _loopback(self, address: str) -> bool:
        import ipaddress

        try:
            return ipaddress.ip_address(address.partition("%")[0]).is_loopback
        except ValueError:
            return False

    def gethostbyaddr(self, ip_address):
        name = self.placeholders.name_for(ip_address)
        if name is not None:
            return (name, [], [ip_address])
        if not is_ip_literal(ip_address):  # a name: "resolve" it to its placeholder first
            if self.resolves_locally(ip_address):
                return self.originals["gethostbyaddr"](ip_address)
            return (ip_address, [], [self.placeholders.address_for(ip_address, 4)])
        if self._loopback(ip_address) or self.no_proxy.matches(ip_address):
            return self.originals["gethostbyaddr"](ip_address)
        raise socket.herror(1, "Unknown host (socksify: reverse DNS would leak past the proxy)")

    def getnameinfo(self, sockaddr, flags):
        """Like csrc/hook_getnameinfo.c: the host part of a placeholder is its name (whatever
        NI_NAMEREQD, NI_NOFQDN or NI_DGRAM say); NI_NUMERICHOST, and any address that is not
        a placeholder, go to the C library as they would without socksify, except that a PTR
        query for a proxied address would leak past the proxy."""
        original = self.originals["getnameinfo"]
        # the address as the C library reads it (no lookup): "240.0.0.001" is 240.0.0.1, and a
        # malformed sockaddr raises what it raises without socksify
        host = original(sockaddr, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)[0]
        name = self.placeholders.name_for(host)
        if name is None:
            if not (self._loopback(host) or self.no_proxy.matches(host)):
                if flags & socket.NI_NAMEREQD:
                    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
                flags |= socket.NI_NUMERICHOST  # a PTR query would leak past the proxy
            return original(sockaddr, flags)
        if flags & socket.NI_NUMERICHOST:
            return original(sockaddr, flags)
        # the service part from libc (/etc/services, NI_DGRAM, NI_NUMERICSERV); NI_NAMEREQD is
        # met by the name and glibc refuses it together with NI_NUMERICHOST
        return (name, original(sockaddr, (flags & ~socket.NI_NAMEREQD) | socket.NI_NUMERICHOST)[1])
