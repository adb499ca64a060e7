"""Protocol numbers, named as in the RFCs.

Every value here is copied from the document cited next to it; nothing else in the
package spells these numbers.
"""

import enum

__all__ = ["AddressType", "AuthMethod", "Command", "Reply4", "Reply5", "Version"]


class Version(enum.IntEnum):
    """The first byte of a client's message (SOCKS4 VN, RFC 1928 §3 VER)."""

    #: SOCKS4 and its 4a extension
    SOCKS4 = 4
    #: RFC 1928
    SOCKS5 = 5


class Command(enum.IntEnum):
    """Request command (SOCKS4 CD, RFC 1928 §4 CMD)."""

    #: open a TCP connection to the destination
    CONNECT = 1
    #: listen on the proxy for one inbound connection (two replies)
    BIND = 2
    #: SOCKS5 only: relay UDP datagrams (RFC 1928 §7)
    UDP_ASSOCIATE = 3
    #: Tor's extension (tor-socks-extensions.txt §2), SOCKS4A and SOCKS5: resolve the
    #: destination name on the proxy; the reply carries the address, then the connection ends
    RESOLVE = 0xF0
    #: Tor's extension, SOCKS5 only: the name of the destination address (reverse lookup),
    #: in the reply's BND.ADDR as a domain name
    RESOLVE_PTR = 0xF1


class AuthMethod(enum.IntEnum):
    """RFC 1928 §3 METHOD values."""

    #: X'00' NO AUTHENTICATION REQUIRED
    NO_AUTH = 0x00
    #: X'01' GSSAPI (RFC 1961; not implemented by this core)
    GSSAPI = 0x01
    #: X'02' USERNAME/PASSWORD (RFC 1929)
    USERNAME_PASSWORD = 0x02
    #: X'FF' NO ACCEPTABLE METHODS: the client must close the connection
    NO_ACCEPTABLE = 0xFF


class AddressType(enum.IntEnum):
    """RFC 1928 §5 ATYP values (also used for SOCKS4/4a addresses)."""

    #: X'01' 4-octet IPv4 address
    IPV4 = 0x01
    #: X'03' length-prefixed fully qualified domain name
    DOMAIN = 0x03
    #: X'04' 16-octet IPv6 address
    IPV6 = 0x04


class Reply5(enum.IntEnum):
    """RFC 1928 §6 REP values. X'09' to X'FF' are unassigned (Tor uses X'F0'-X'F7')."""

    #: X'00' succeeded
    SUCCEEDED = 0
    #: X'01' general SOCKS server failure
    GENERAL_FAILURE = 1
    #: X'02' connection not allowed by ruleset
    NOT_ALLOWED = 2
    #: X'03' Network unreachable
    NETWORK_UNREACHABLE = 3
    #: X'04' Host unreachable
    HOST_UNREACHABLE = 4
    #: X'05' Connection refused
    CONNECTION_REFUSED = 5
    #: X'06' TTL expired
    TTL_EXPIRED = 6
    #: X'07' Command not supported
    COMMAND_NOT_SUPPORTED = 7
    #: X'08' Address type not supported
    ADDRESS_TYPE_NOT_SUPPORTED = 8


class Reply4(enum.IntEnum):
    """SOCKS4 reply CD values (SOCKS4.protocol, "CONNECT")."""

    #: 90: request granted
    GRANTED = 90
    #: 91: request rejected or failed
    REJECTED = 91
    #: 92: rejected because the SOCKS server cannot connect to identd on the client
    NO_IDENTD = 92
    #: 93: rejected because the client program and identd report different user-ids
    IDENTD_MISMATCH = 93
