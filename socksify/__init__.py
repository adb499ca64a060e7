"""socksify: route any program's traffic through a SOCKS4, SOCKS4a or SOCKS5 proxy.

Python API (SPEC.md)::

    import socksify
    socksify.patch("socks5h://127.0.0.1:1080")   # or no argument: read the environment
    socksify.unpatch()
    with socksify.patched("socks5h://..."): ...
    sock = socksify.create_connection(("example.org", 80), proxy="socks5h://...", timeout=5)
    socksify.resolve("example.org", proxy="socks5h://...")    # Tor's RESOLVE: "93.184.215.14"
    socksify.resolve_ptr("192.0.2.1", proxy="socks5h://...")  # Tor's RESOLVE_PTR
"""

from .errors import (
    ProxyAuthError,
    ProxyError,
    ProxyProtocolError,
    ProxyRefusedError,
    ProxyUnreachableError,
    UdpNotRelayableError,
)
from .patch import patch, patched, unpatch
from .proxy import (
    ConfigError,
    NoProxyConfigured,
    ProxyConfig,
    ProxyURLError,
    Settings,
    load_settings,
    parse_chain,
    parse_proxy_url,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    # The client (and with it the protocol core) loads on first use, which keeps
    # ``import socksify; socksify.patch()`` cheap at start-up.
    if name in ("create_connection", "resolve", "resolve_ptr"):
        from . import client

        # Kept as a module global from now on: later lookups skip this function (the
        # import statement alone costs a microsecond or two on every call otherwise).
        value = globals()[name] = getattr(client, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "NoProxyConfigured",
    "ProxyAuthError",
    "ProxyConfig",
    "ProxyError",
    "ProxyProtocolError",
    "ProxyRefusedError",
    "ProxyURLError",
    "ProxyUnreachableError",
    "Settings",
    "UdpNotRelayableError",
    "__version__",
    "create_connection",
    "load_settings",
    "parse_chain",
    "parse_proxy_url",
    "patch",
    "patched",
    "resolve",
    "resolve_ptr",
    "unpatch",
]
