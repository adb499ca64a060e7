"""The destination or bound address carried in requests, replies and UDP headers.

Rules:

- An ``Address`` is an IPv4 address, an IPv6 address or a domain name (RFC 1928 §5 ATYP).
  IP hosts are kept in ``ipaddress``'s canonical text form, so equal addresses compare equal.
- A domain name goes on the wire as ASCII when it is ASCII, otherwise IDNA-encoded
  (Python's ``"idna"`` codec, IDNA 2003). Its wire form must be 1..255 bytes (RFC 1928 §5 has
  a one-octet length) and contain no NUL (SOCKS4A terminates names with NUL).
- ``packed`` is the wire form without length prefix: 4 or 16 octets, or the encoded name. It is
  computed once, on construction, so encoders never re-validate.
- Addresses are immutable, so ``from_host`` and the IPv4 decoder share the value they built for
  the same text or octets (bounded caches): the same few hosts come back on every connection.
- Nothing here resolves names: a name stays a name (see ``client.py`` for who resolves).
"""

import ipaddress
from dataclasses import dataclass, field

from ._codes import AddressType
from ._errors import LocalProtocolError

__all__ = ["UNSPECIFIED_V4", "Address", "encode_domain"]

_IPV4 = AddressType.IPV4
_IPV6 = AddressType.IPV6
_DOMAIN = AddressType.DOMAIN

_new = object.__new__
_set = object.__setattr__


def encode_domain(host: str) -> bytes:
    """Return the wire form of a domain name (RFC 1928 §5, SOCKS4A).

    Raises:
        LocalProtocolError: empty, longer than 255 bytes once encoded, holding a NUL, or not
            IDNA-encodable.
    """
    if not isinstance(host, str):
        raise LocalProtocolError(f"domain name must be str, not {type(host).__name__}")
    if host.isascii():
        name = host.encode("ascii")
    else:
        try:
            name = host.encode("idna")
        except UnicodeError as exc:
            raise LocalProtocolError(f"cannot IDNA-encode domain name {host!r}: {exc}") from None
    if not name:
        raise LocalProtocolError("empty domain name")
    if len(name) > 255:
        raise LocalProtocolError(f"domain name longer than 255 bytes ({len(name)})")
    if b"\0" in name:
        raise LocalProtocolError("NUL byte in domain name")
    return name


def _dotted_quad(host: str) -> "bytes | None":
    """The 4 octets of ``host`` if it is a dotted quad in canonical form ("192.0.2.7").

    The common case of ``ipaddress.IPv4Address`` at about half its cost. ``ipaddress``
    accepts exactly the canonical form (ASCII decimal octets 0..255, no leading zeros), and the
    round trip below admits nothing else (no signs, spaces, "_", other digits, leading
    zeros); None sends the host to ``ipaddress`` as before, for the same result or error.
    """
    parts = host.split(".")
    if len(parts) != 4:
        return None
    try:
        packed = bytes(map(int, parts))  # ValueError: not a number, or outside 0..255
    except ValueError:
        return None
    if f"{packed[0]}.{packed[1]}.{packed[2]}.{packed[3]}" != host:
        return None
    return packed


@dataclass(frozen=True, slots=True)
class Address:
    """An address as SOCKS carries it: ``type`` is the ATYP, ``host`` its text form.

    Construct with ``Address.from_host(text)`` (IP literal or name), or ``Address.ipv4()``,
    ``Address.ipv6()``, ``Address.domain()``. Invalid values raise ``LocalProtocolError``.
    """

    type: AddressType
    host: str
    #: wire form without length prefix (4 or 16 octets, or the encoded name)
    packed: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind = self.type
        if kind.__class__ is not AddressType:
            try:
                kind = AddressType(kind)
            except ValueError:
                raise LocalProtocolError(f"unknown address type {kind!r}") from None
            _set(self, "type", kind)
        host = self.host
        if not isinstance(host, str):
            raise LocalProtocolError(f"host must be str, not {type(host).__name__}")
        if kind is _DOMAIN:
            _set(self, "packed", encode_domain(host))
            return
        if kind is _IPV4:
            packed = _dotted_quad(host)
            if packed is not None:  # already canonical (see _dotted_quad)
                _set(self, "packed", packed)
                return
        try:
            ip = ipaddress.IPv4Address(host) if kind is _IPV4 else ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise LocalProtocolError(f"bad {kind.name} address {host!r}: {exc}") from None
        if kind is _IPV6 and ip.scope_id is not None:
            raise LocalProtocolError(f"scoped IPv6 address {host!r} cannot be sent over SOCKS")
        _set(self, "host", ip.compressed)
        _set(self, "packed", ip.packed)

    @classmethod
    def ipv4(cls, host: str) -> "Address":
        """An IPv4 address in dotted-quad form."""
        return cls(_IPV4, host)

    @classmethod
    def ipv6(cls, host: str) -> "Address":
        """An IPv6 address in any RFC 4291 text form (stored compressed)."""
        return cls(_IPV6, host)

    @classmethod
    def domain(cls, host: str) -> "Address":
        """A domain name, sent as is to the proxy, which resolves it."""
        return cls(_DOMAIN, host)

    @classmethod
    def from_host(cls, host: str) -> "Address":
        """IPv4/IPv6 literal -> IPV4/IPV6; anything else -> DOMAIN.

        A bracketed IPv6 literal (``"[::1]"``) is accepted too.
        """
        if host.__class__ is str and cls is Address:
            # A server answers with its own few addresses over and over: parse each once.
            address = _host_cache.get(host)
            if address is None:
                address = _parse_host(host)
                if len(_host_cache) >= _CACHE_SIZE:
                    _host_cache.clear()
                _host_cache[host] = address
            return address
        if not isinstance(host, str):
            raise LocalProtocolError(f"host must be str, not {type(host).__name__}")
        return _parse_host(host, cls)

    @property
    def is_ip(self) -> bool:
        """True for IPV4 and IPV6 addresses."""
        return self.type is not _DOMAIN

    def __str__(self) -> str:
        return self.host


def _parse_host(host: str, cls: type = Address) -> Address:
    """``Address.from_host`` for a str, without the cache."""
    if host.startswith("[") and host.endswith("]"):
        return cls(_IPV6, host[1:-1])
    if ":" in host:
        return cls(_IPV6, host)
    if host[-1:].isdigit():
        packed = _dotted_quad(host)
        if packed is not None:
            return _trusted(_IPV4, host, packed)
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            pass
        else:
            return _trusted(_IPV4, ip.compressed, ip.packed)
    return cls(_DOMAIN, host)


# The slots' own setters: filling a frozen instance through them skips the attribute lookup
# of ``object.__setattr__(addr, name, value)``.
_set_type, _set_host, _set_packed = (
    Address.__dict__[name].__set__ for name in ("type", "host", "packed")
)


def _trusted(kind: AddressType, host: str, packed: bytes) -> Address:
    """Build an Address from values the codecs already validated (no re-parsing)."""
    addr = _new(Address)
    _set_type(addr, kind)
    _set_host(addr, host)
    _set_packed(addr, packed)
    return addr


# An Address is immutable, so equal ones can be shared: the two caches below hand out the same
# value for the same input instead of parsing it again. Each is cleared when full (bounded
# memory, whatever a peer sends); only valid addresses are kept, errors are raised every time.
_CACHE_SIZE = 256
#: host text -> Address (``from_host``): a server replies with its own few addresses
_host_cache: "dict[str, Address]" = {}
#: 4 wire octets -> Address. Replies carry the same few BND.ADDRs over and over (0.0.0.0, the
#: proxy's own address); this saves formatting the dotted quad and building the value.
_ipv4_cache: "dict[bytes, Address]" = {}


def ipv4_from_packed(packed: bytes) -> Address:
    """Address for 4 wire octets (RFC 1928 §5 X'01', SOCKS4 DSTIP)."""
    address = _ipv4_cache.get(packed)
    if address is None:
        address = _trusted(_IPV4, f"{packed[0]}.{packed[1]}.{packed[2]}.{packed[3]}", packed)
        if len(_ipv4_cache) >= _CACHE_SIZE:
            _ipv4_cache.clear()
        _ipv4_cache[packed] = address
    return address


def ipv6_from_packed(packed: bytes) -> Address:
    """Address for 16 wire octets (RFC 1928 §5 X'04'), host in compressed form."""
    return _trusted(_IPV6, ipaddress.IPv6Address(packed).compressed, packed)


def domain_from_wire(name: bytes, host: str) -> Address:
    """Address for a name the codec already checked (ASCII, 1..255 bytes, no NUL)."""
    return _trusted(_DOMAIN, host, name)


#: 0.0.0.0, the BND.ADDR of replies that have no meaningful address
UNSPECIFIED_V4 = Address.ipv4("0.0.0.0")
