"""Proxy URLs and client settings: the ONLY place that parses them.

Rules of this module (the native shim's C parser names this file as its reference, and both
are held to ``tests/vectors/proxy_urls.json``):

- A proxy URL is ``SCHEME://[USER[:PASSWORD]@]HOST[:PORT]`` with curl's conventions:
  schemes ``socks4``, ``socks4a``, ``socks5``, ``socks5h`` (case-insensitive), default port
  1080, IPv6 literals in brackets, USER and PASSWORD percent-decoded (UTF-8). One trailing
  ``/`` is tolerated (curl prints proxies that way); any other path, query or fragment is an
  error. ``socks4``/``socks4a`` send USER as the SOCKS4 USERID; a password is accepted and
  ignored there, as curl does, because SOCKS4 has no field for it.
- A comma-separated list of URLs is a chain, first hop nearest the client.
- Every error is a :class:`ConfigError` (a ``ValueError``) whose message names the bad part
  and never contains a password.
- Precedence: explicit arguments (command-line flags) win over ``SOCKSIFY_*`` variables;
  ``SOCKSIFY_PROXY`` wins over ``all_proxy``/``ALL_PROXY`` (looked up in that order, as curl
  does), which count only when they hold a socks URL. No proxy at all is an error: we never run
  unproxied silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# ipaddress (about 1 ms to import) is loaded where an address is parsed, not here: the
# default DNS placeholder range is parsed on first use, so ``patch()`` alone never needs it.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import ipaddress

    _Network = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = [
    "DEFAULT_DNS_RANGE",
    "DEFAULT_PORT",
    "LOG_LEVELS",
    "SCHEMES",
    "ConfigError",
    "NoProxy",
    "NoProxyConfigured",
    "ProxyConfig",
    "ProxyURLError",
    "Settings",
    "load_settings",
    "parse_chain",
    "parse_dns_range",
    "parse_log_level",
    "parse_no_proxy",
    "parse_proxy_url",
]

#: scheme -> (SOCKS version, the proxy resolves destination names)
SCHEMES = {
    "socks4": (4, False),
    "socks4a": (4, True),
    "socks5": (5, False),
    "socks5h": (5, True),
}
DEFAULT_PORT = 1080
LOG_LEVELS = ("error", "warning", "info", "debug")
#: Placeholder ranges for remote DNS (RFC 3089 "fake IP" addresses): 240.0.0.0/8 is the
#: reserved class E block (never routed, not multicast); 100::/64 is RFC 6666's discard-only
#: prefix. Overridable with SOCKSIFY_DNS_RANGE.
DEFAULT_DNS_RANGE = "240.0.0.0/8,100::/64"

_SCHEME_LIST = "socks4, socks4a, socks5, socks5h"
# A host name: letters, digits, "_", "-" and ".", beginning and ending with one of the first
# three, plus one optional trailing dot (the regular expression
# [A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?\.? ; checked without ``re``, which costs
# over a millisecond to import at start-up when nothing else has loaded it).
_HOST_EDGE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_HOST_CHARS = _HOST_EDGE_CHARS | {".", "-"}


def _is_host_name(text: str) -> bool:
    if text.endswith("."):
        text = text[:-1]
    return (
        bool(text)
        and text[0] in _HOST_EDGE_CHARS
        and text[-1] in _HOST_EDGE_CHARS
        and all(char in _HOST_CHARS for char in text)
    )


_ASCII_SPACE = " \t\r\n\f\v"  # trimmed around URLs; other characters are errors


class ConfigError(ValueError):
    """Bad client configuration: a usage error (exit status 2), never a traceback."""


class ProxyURLError(ConfigError):
    """A malformed proxy URL; the message names the bad part."""


class NoProxyConfigured(ConfigError):
    """Neither a flag nor SOCKSIFY_PROXY nor a socks ALL_PROXY names a proxy."""


class _Frozen:
    """Immutable value classes without :mod:`dataclasses`, which costs about 4 ms to import
    (it loads ``inspect``) and so a third of ``import socksify; socksify.patch()``.

    They behave as the frozen dataclasses they replace: keyword or positional construction,
    ``==`` and ``hash()`` over the fields (same class only), a ``repr`` naming the fields in
    ``_repr_fields``, ``AttributeError`` on assignment, pickle/copy by re-construction, and
    ``__match_args__``. (``dataclasses.fields()``/``replace()`` do not apply to them.)
    """

    __slots__ = ()
    _repr_fields: tuple[str, ...] = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._repr_fields)
        return f"{type(self).__name__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self):
        return (self.__class__, self._values())


_init_field = object.__setattr__  # sets a slot of a _Frozen instance in its __init__


class ProxyConfig(_Frozen):
    """One proxy hop. ``str()`` is safe to log: the password shows as ``***``."""

    __slots__ = ("scheme", "host", "port", "username", "password")
    __match_args__ = __slots__
    _repr_fields = ("scheme", "host", "port", "username")  # never the password

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int = DEFAULT_PORT,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        _init_field(self, "scheme", scheme)
        _init_field(self, "host", host)
        _init_field(self, "port", port)
        _init_field(self, "username", username)
        _init_field(self, "password", password)

    @property
    def version(self) -> int:
        """4 or 5."""
        return SCHEMES[self.scheme][0]

    @property
    def remote_dns(self) -> bool:
        """True for socks4a/socks5h: destination names are sent to the proxy unresolved."""
        return SCHEMES[self.scheme][1]

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def url(self, *, redact: bool = True) -> str:
        """The URL again (percent-encoded); ``redact=False`` keeps the real password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username)
            if self.password is not None:
                userinfo += ":" + ("***" if redact else quote(self.password))
            userinfo += "@"
        return f"{self.scheme}://{userinfo}{host}:{self.port}"

    def __str__(self) -> str:
        return self.url(redact=True)


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = b"0123456789abcdefABCDEF"


def unquote_to_bytes(text: str) -> bytes:
    """Percent-decode (RFC 3986 §2.1); a ``%`` not followed by two hex digits stays as is.

    (``urllib.parse`` does the same but costs a millisecond to import at start-up.)

    A lone surrogate (how Python shows a command-line or environment byte that is not
    UTF-8) becomes bytes that are not UTF-8 either, never an exception, so the caller's
    UTF-8 check rejects it with a message naming the part.
    """
    raw = text.encode("utf-8", "surrogatepass")
    if b"%" not in raw:
        return raw
    out = bytearray()
    index = 0
    while index < len(raw):
        byte = raw[index]
        digits = raw[index + 1 : index + 3]
        if byte == 0x25 and len(digits) == 2 and all(digit in _HEX for digit in digits):
            out.append(int(digits, 16))
            index += 3
        else:
            out.append(byte)
            index += 1
    return bytes(out)


_ZONE_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._")
#: IFNAMSIZ - 1: a zone id names a network interface (RFC 6874 section 2).
_ZONE_MAX = 15


def _is_zone_id(raw: bytes) -> bool:
    """An IPv6 zone id (percent-decoded): 1..15 bytes of ``[A-Za-z0-9._-]``.

    RFC 6874 §2 lets the ZoneID be any unreserved or percent-encoded text; we accept only
    what can name an interface, so no NUL, ``%`` or non-ASCII byte reaches the host string
    (the native parser applies the same rule).
    """
    return 0 < len(raw) <= _ZONE_MAX and all(byte in _ZONE_CHARS for byte in raw)


def quote(text: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters (UTF-8 first)."""
    return "".join(
        chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in text.encode("utf-8")
    )


def _redact(text: str) -> str:
    """``text`` with any password in a URL replaced by ``***`` (for error messages)."""
    if "@" not in text:  # no user info, so no password (and no need to import re)
        return text
    import re

    return ",".join(re.sub(r"(://[^/@:]*:)[^/]*@", r"\1***@", part) for part in text.split(","))


def _decode_userinfo(part: str, what: str, url: str) -> str:
    raw = unquote_to_bytes(part)
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProxyURLError(
            f"{what} is not UTF-8 after percent-decoding in {_redact(url)!r}"
        ) from None
    # RFC 1929 §2: ULEN and PLEN are one octet each.
    if len(raw) > 255:
        raise ProxyURLError(f"{what} longer than 255 bytes in {_redact(url)!r}")
    return value


def _parse_host_port(hostport: str, url: str) -> tuple[str, int]:
    shown = _redact(url)
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ProxyURLError(f"unclosed '[' in IPv6 address in {shown!r}")
        literal = hostport[1:end]
        rest = hostport[end + 1 :]
        zone = ""
        zone_text = None  # the zone id as written (after "%25"), for errors
        if "%" in literal:  # RFC 6874: the zone id's '%' is written "%25"
            literal, _, zone_text = literal.partition("%")
            if zone_text.startswith("25"):
                zone_text = zone_text[2:]
        import ipaddress

        try:
            ip = ipaddress.IPv6Address(literal)
        except ValueError:
            raise ProxyURLError(f"bad IPv6 address [{literal}] in {shown!r}") from None
        if zone_text is not None:
            raw_zone = unquote_to_bytes(zone_text)
            if not _is_zone_id(raw_zone):
                raise ProxyURLError(f"bad IPv6 zone id {zone_text!r} in {shown!r}")
            zone = raw_zone.decode("ascii")
        # RFC 5952 §5: IPv4-mapped addresses in mixed notation (Python < 3.13 would give
        # "::ffff:7f00:1"; the vectors and the C parser use this one form)
        host = f"::ffff:{ip.ipv4_mapped}" if ip.ipv4_mapped else str(ip)
        if zone:
            host += "%" + zone
        if rest and not rest.startswith(":"):
            raise ProxyURLError(f"unexpected {rest!r} after IPv6 address in {shown!r}")
        port_text = rest[1:] if rest else None
    else:
        if "]" in hostport:
            raise ProxyURLError(f"unmatched ']' in {shown!r}")
        if hostport.count(":") > 1:
            raise ProxyURLError(
                f"IPv6 address must be in brackets, like socks5://[::1]:1080, in {shown!r}"
            )
        host, colon, port_text = hostport.partition(":")
        if not colon:
            port_text = None
        if not host:
            raise ProxyURLError(f"empty host in {shown!r}")
        if not _is_host_name(host):
            raise ProxyURLError(f"bad host {host!r} in {shown!r}")
        if len(host) > 255:  # RFC 1928 §5: the name's length is one octet
            raise ProxyURLError(f"bad host (longer than 255 bytes) in {shown!r}")
    if port_text is None:
        return host, DEFAULT_PORT
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ProxyURLError(f"bad port {port_text!r} (1-65535) in {shown!r}")
    return host, int(port_text)


def parse_proxy_url(text: str) -> ProxyConfig:
    """Parse one proxy URL.

    Args:
        text: ``SCHEME://[USER[:PASSWORD]@]HOST[:PORT]``; surrounding spaces are ignored.

    Returns:
        The :class:`ProxyConfig` (scheme lower-cased, IPv6 host without brackets).

    Raises:
        ProxyURLError: naming the bad part (scheme, host, port, brackets, user or password).
    """
    url = text.strip(_ASCII_SPACE)
    shown = _redact(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ProxyURLError(
            f"missing scheme in {shown!r}: use one of {_SCHEME_LIST} (like socks5h://HOST:PORT)"
        )
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ProxyURLError(
            f"unsupported scheme {scheme + '://'!r} in {shown!r}: use one of {_SCHEME_LIST}"
        )
    if rest.endswith("/"):
        rest = rest[:-1]
    for char in "/?#":
        if char in rest:
            raise ProxyURLError(f"unexpected path, query or fragment {char!r} in {shown!r}")
    username = password = None
    userinfo, at, hostport = rest.rpartition("@")
    if at:
        user_part, colon, pass_part = userinfo.partition(":")
        username = _decode_userinfo(user_part, "user name", url)
        if colon:
            password = _decode_userinfo(pass_part, "password", url)
        if "\x00" in username and scheme.startswith("socks4"):
            raise ProxyURLError(f"NUL in SOCKS4 user id in {shown!r}")
    host, port = _parse_host_port(hostport, url)
    return ProxyConfig(scheme, host, port, username, password)


def parse_chain(text: str) -> tuple[ProxyConfig, ...]:
    """Parse a comma-separated chain of proxy URLs, first hop nearest the client.

    Raises:
        ProxyURLError: for an empty list or entry, or any bad URL (the message says which hop).
    """
    parts = [part.strip(_ASCII_SPACE) for part in text.split(",")]
    if parts == [""]:
        raise ProxyURLError("empty proxy URL")
    chain = []
    for index, part in enumerate(parts, 1):
        if not part:
            raise ProxyURLError(f"empty entry (hop {index}) in proxy chain {_redact(text)!r}")
        try:
            chain.append(parse_proxy_url(part))
        except ProxyURLError as exc:
            if len(parts) == 1:
                raise
            raise ProxyURLError(f"hop {index} of the chain: {exc}") from None
    return tuple(chain)


class NoProxy(_Frozen):
    """The bypass list: destinations reached directly, not through the proxy.

    Entries: ``*`` (everything), a host name (that exact name), ``.domain`` (the domain and
    every name under it), an IPv4/IPv6 address (brackets optional) or a CIDR network.
    Name matching is case-insensitive and ignores one trailing dot.
    """

    __slots__ = ("names", "suffixes", "networks", "everything", "source")
    __match_args__ = _repr_fields = __slots__

    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[_Network, ...]
    everything: bool
    source: str

    def __init__(
        self,
        names: frozenset[str] = frozenset(),
        suffixes: tuple[str, ...] = (),
        networks: tuple[_Network, ...] = (),
        everything: bool = False,
        source: str = "",
    ) -> None:
        _init_field(self, "names", names)
        _init_field(self, "suffixes", suffixes)
        _init_field(self, "networks", networks)
        _init_field(self, "everything", everything)
        _init_field(self, "source", source)

    def __bool__(self) -> bool:
        return bool(self.everything or self.names or self.suffixes or self.networks)

    def matches(self, host: str) -> bool:
        """True when ``host`` (a name or an IP literal) must go direct."""
        if self.everything:
            return True
        if not (self.names or self.suffixes or self.networks):
            return False
        address = _ip_or_none(host)
        if address is not None:
            if address.version == 6 and address.ipv4_mapped:
                address = address.ipv4_mapped
            return any(address in network for network in self.networks)
        name = host.lower().rstrip(".")
        if name in self.names:
            return True
        return any(name == suffix or name.endswith("." + suffix) for suffix in self.suffixes)


def _ip_or_none(host: str):
    import ipaddress

    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


def parse_no_proxy(text: str | None) -> NoProxy:
    """Parse a comma- (or space-) separated bypass list; ``None``/empty gives an empty list.

    Raises:
        ConfigError: naming the bad entry.
    """
    if not text or not text.strip():
        return NoProxy()
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[_Network] = []
    everything = False
    import ipaddress
    import re  # only for a non-empty list (start-up cost)

    for entry in re.split(r"[,\s]+", text.strip(_ASCII_SPACE), flags=re.ASCII):
        if not entry:
            continue
        if entry == "*":
            everything = True
            continue
        bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
        if "/" in bare:
            try:
                networks.append(ipaddress.ip_network(bare, strict=False))
            except ValueError:
                raise ConfigError(f"bad CIDR {entry!r} in no-proxy list") from None
            continue
        address = _ip_or_none(bare)
        if address is not None:
            networks.append(ipaddress.ip_network(address))
            continue
        name = entry.lower().rstrip(".")
        if name.startswith("*."):  # curl and wget users write "*.example.org"
            name = name[1:]
        if name.startswith("."):
            if not _is_host_name(name[1:]):
                raise ConfigError(f"bad domain {entry!r} in no-proxy list")
            suffixes.append(name[1:])
        elif _is_host_name(name):
            names.add(name)
        else:
            raise ConfigError(
                f"bad entry {entry!r} in no-proxy list (hosts, .domains, IPs or CIDRs)"
            )
    return NoProxy(
        frozenset(names), tuple(suffixes), tuple(networks), everything, text.strip(_ASCII_SPACE)
    )


def parse_log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"bad log level {text!r}: use one of {', '.join(LOG_LEVELS)}")
    return level


def parse_dns_range(text: str) -> tuple[_Network, ...]:
    """Parse SOCKSIFY_DNS_RANGE: one IPv4 CIDR and optionally one IPv6 CIDR, comma-separated.

    The IPv4 range is required (AF_INET and AF_UNSPEC lookups answer from it); the IPv6 range
    serves AF_INET6-only lookups. Multicast, loopback and ranges smaller than 256 addresses
    are refused: a placeholder must never be a real destination.
    """
    import ipaddress

    networks: list[_Network] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"bad CIDR {entry!r} in DNS placeholder range") from None
        if network.is_multicast or network.is_loopback or network.is_unspecified:
            raise ConfigError(f"DNS placeholder range {entry!r} is multicast or loopback")
        if network.num_addresses < 256:
            raise ConfigError(f"DNS placeholder range {entry!r} is too small (/24 or /120 min)")
        if any(other.version == network.version for other in networks):
            raise ConfigError(f"more than one IPv{network.version} DNS placeholder range")
        networks.append(network)
    if not any(network.version == 4 for network in networks):
        raise ConfigError(f"DNS placeholder range {text!r} has no IPv4 CIDR")
    return tuple(sorted(networks, key=lambda network: network.version))


_NO_BYPASS = NoProxy()
_default_dns_networks: tuple[_Network, ...] | None = None


def default_dns_networks() -> tuple[_Network, ...]:
    """``parse_dns_range(DEFAULT_DNS_RANGE)``, parsed once, on first use."""
    global _default_dns_networks
    if _default_dns_networks is None:
        _default_dns_networks = parse_dns_range(DEFAULT_DNS_RANGE)
    return _default_dns_networks


class Settings(_Frozen):
    """Everything the shims need: read once, immutable afterwards.

    ``dns_range`` left out (or None) is the default range, which is parsed (and
    :mod:`ipaddress` imported) only when something reads it: the first remote-DNS name.
    """

    __slots__ = ("chain", "no_proxy", "log_level", "_dns_range")
    __match_args__ = _repr_fields = ("chain", "no_proxy", "log_level", "dns_range")

    chain: tuple[ProxyConfig, ...]
    no_proxy: NoProxy
    log_level: str

    def __init__(
        self,
        chain: tuple[ProxyConfig, ...],
        no_proxy: NoProxy = _NO_BYPASS,
        log_level: str = "error",
        dns_range: tuple[_Network, ...] | None = None,
    ) -> None:
        _init_field(self, "chain", chain)
        _init_field(self, "no_proxy", no_proxy)
        _init_field(self, "log_level", log_level)
        _init_field(self, "_dns_range", dns_range)

    @property
    def dns_range(self) -> tuple[_Network, ...]:
        networks = self._dns_range
        return default_dns_networks() if networks is None else networks

    def _values(self) -> tuple:
        return (self.chain, self.no_proxy, self.log_level, self.dns_range)

    @property
    def last_hop(self) -> ProxyConfig:
        return self.chain[-1]

    @property
    def remote_dns(self) -> bool:
        """The last hop's scheme decides who resolves destination names (SPEC)."""
        return self.chain[-1].remote_dns

    def to_environ(self) -> dict[str, str]:
        """The SOCKSIFY_* variables that give a child process these same settings."""
        return {
            "SOCKSIFY_PROXY": ",".join(hop.url(redact=False) for hop in self.chain),
            "SOCKSIFY_NO_PROXY": self.no_proxy.source,
            "SOCKSIFY_LOG": self.log_level,
            "SOCKSIFY_DNS_RANGE": ",".join(str(network) for network in self.dns_range),
        }


def _socks_url_in(value: str | None) -> bool:
    return bool(value) and value.strip().lower().startswith("socks")


def load_settings(
    proxy: str | Iterable[ProxyConfig] | None = None,
    no_proxy: str | None = None,
    log_level: str | None = None,
    environ: Mapping[str, str] | None = None,
    dns_range: str | None = None,
) -> Settings:
    """Build :class:`Settings` from explicit values (flags) and the environment.

    Args:
        proxy: a URL or chain (or already parsed hops); None or "" reads the environment.
        no_proxy, log_level, dns_range: None reads SOCKSIFY_NO_PROXY, SOCKSIFY_LOG,
            SOCKSIFY_DNS_RANGE.
        environ: the environment to read (default ``os.environ``).

    Raises:
        NoProxyConfigured: no proxy anywhere.
        ConfigError / ProxyURLError: a bad value; the message names the variable or flag.
    """
    env = os.environ if environ is None else environ
    if proxy is not None and not isinstance(proxy, str):
        chain = tuple(proxy)
        if not chain:
            raise NoProxyConfigured("empty proxy chain")
    else:
        source, text = "--proxy", proxy
        if not text:
            source, text = "SOCKSIFY_PROXY", env.get("SOCKSIFY_PROXY")
        if not text:
            for name in ("all_proxy", "ALL_PROXY"):
                if _socks_url_in(env.get(name)):
                    source, text = name, env[name]
                    break
        if not text:
            raise NoProxyConfigured(
                "no proxy configured: use --proxy URL or set SOCKSIFY_PROXY "
                "(like socks5h://127.0.0.1:1080); socksify never runs unproxied"
            )
        chain = _with_source(source, parse_chain, text)
    if no_proxy is None:
        no_proxy = env.get("SOCKSIFY_NO_PROXY")
    if log_level is None:
        log_level = env.get("SOCKSIFY_LOG") or "error"
    if dns_range is None:
        dns_range = env.get("SOCKSIFY_DNS_RANGE")
    return Settings(
        chain=chain,
        no_proxy=_with_source("no-proxy list", parse_no_proxy, no_proxy),
        log_level=_with_source("log level", parse_log_level, log_level),
        # unset: the default range, parsed when first needed (no ipaddress at start-up)
        dns_range=_with_source("SOCKSIFY_DNS_RANGE", parse_dns_range, dns_range)
        if dns_range
        else None,
    )


def _with_source(source: str, parse, text):
    try:
        return parse(text)
    except ConfigError as exc:
        if str(exc).startswith(source):
            raise
        raise type(exc)(f"{source}: {exc}") from None
