# ruff: noqa: E501  (verbatim strace lines)
"""The leak audit's strace reader (scripts/hardening/trace.py) on hand-written trace lines:
it must catch each kind of leak, or the end-to-end audit would prove nothing."""

from __future__ import annotations

import textwrap

from ._scripts import hardening_module

trace = hardening_module("trace")

PROXY = {("127.0.0.1", 1080)}
RELAY = {("127.0.0.1", 40000)}


def audit(text: str):
    return trace.audit_trace(textwrap.dedent(text), PROXY, RELAY)


def test_connect_to_the_proxy_and_datagrams_to_the_relay_are_clean():
    summary = audit("""\
        101 connect(3, {sa_family=AF_INET, sin_port=htons(1080), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
        101 sendto(5, "\\0\\0\\0\\1", 30, 0, {sa_family=AF_INET, sin_port=htons(40000), sin_addr=inet_addr("127.0.0.1")}, 16) = 30
        101 connect(6, {sa_family=AF_UNSPEC, sa_data="\\0\\0"}, 16) = 0
        101 connect(7, {sa_family=AF_UNIX, sun_path="/run/user/0/bus"}, 110) = 0
        101 sendto(8, [{nlmsg_len=20, nlmsg_type=RTM_GETADDR}], 20, 0, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12) = 20
        101 <... connect resumed>) = 0
    """)
    assert summary.leaks == []
    assert (summary.connects, summary.datagrams) == (1, 1)


def test_direct_connect_is_a_leak_even_when_it_failed():
    summary = audit("""\
        [pid   102] connect(4, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("93.184.216.34")}, 16) = -1 ENETUNREACH (Network is unreachable)
    """)
    assert summary.leaks == ["connect to 93.184.216.34:80"]


def test_dns_datagram_is_a_leak():
    summary = audit("""\
        103 sendto(3, "\\22\\34\\1\\0", 32, MSG_NOSIGNAL, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 32
        103 sendmmsg(3, [{msg_hdr={msg_name={sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:4860:4860::8888", &sin6_addr), sin6_scope_id=0}, msg_namelen=28}, msg_len=30}], 1, 0) = 1
    """)
    assert summary.leaks == ["sendto to 127.0.0.53:53", "sendmmsg to [2001:4860:4860::8888]:53"]
    assert summary.datagrams == 2


def test_connect_to_another_loopback_port_is_a_leak():
    summary = audit("""\
        104 connect(3, {sa_family=AF_INET6, sin6_port=htons(8080), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0
        104 connect(3, {sa_family=AF_INET, sin_port=htons(40000), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
    """)
    # the second is a UDP socket connected to the relay: allowed
    assert summary.leaks == ["connect to [::1]:8080"]


def test_ipv4_mapped_address_is_its_ipv4_address():
    summary = audit("""\
        106 connect(3, {sa_family=AF_INET6, sin6_port=htons(1080), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = 0
        106 connect(4, {sa_family=AF_INET6, sin6_port=htons(8080), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = 0
    """)
    # the first is the proxy (an AF_INET6 socket reaching the IPv4 proxy); the second is not
    assert summary.leaks == ["connect to 127.0.0.1:8080"]


def test_nscd_host_lookup_is_a_leak_but_a_user_lookup_is_not():
    summary = audit("""\
        105 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT
         > /usr/lib/x86_64-linux-gnu/libc.so.6(__connect+0x10) [0x10a7c0]
         > /usr/lib/x86_64-linux-gnu/libc.so.6(getpwuid_r+0x18f) [0xd369f]
        105 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT
         > /usr/lib/x86_64-linux-gnu/libc.so.6(__connect+0x10) [0x10a7c0]
         > /usr/lib/x86_64-linux-gnu/libc.so.6(__nscd_getai+0x2f) [0x14c130]
         > /usr/lib/x86_64-linux-gnu/libc.so.6(getaddrinfo+0x11f) [0xf2000]
        105 connect(4, {sa_family=AF_UNIX, sun_path="/run/systemd/resolve/io.systemd.Resolve"}, 110) = 0
    """)
    assert summary.leaks == [
        'connect to resolver socket "/var/run/nscd/socket"',
        'connect to resolver socket "/run/systemd/resolve/io.systemd.Resolve"',  # no stack
    ]
