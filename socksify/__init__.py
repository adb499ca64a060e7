"""socksify: route any program's traffic through a SOCKS4, SOCKS4a or SOCKS5 proxy.

Python API (SPEC.md)::

    import socksify
    socksify.patch("socks5h://127.0.0.1:1080")   # or no argument: read the environment
    socksify.unpatch()
    with socksify.patched("socks5h://..."): ...
    sock = socksify.create_connection(("example.org", 80), proxy="socks5h://...", timeout=5)
"""

from .client import create_connection
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
    "unpatch",
]
