"""socksify: route any program's traffic through a SOCKS4, SOCKS4a or SOCKS5 proxy."""

__version__ = "0.1.0"
