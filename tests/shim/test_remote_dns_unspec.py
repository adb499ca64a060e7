"""Remote DNS in the Python shim: an AF_UNSPEC lookup answers an IPv4 placeholder, then an
IPv6 one (when SOCKSIFY_DNS_RANGE has an IPv6 part), so a program that keeps only the IPv6
entries (``curl -6`` style) still finds an address. Either placeholder connects to the name."""

import ipaddress
import socket

import pytest

import socksify
from socksify.patch import uninstall

UNUSED_PROXY = "socks5h://127.0.0.1:9"
NAME = "only-proxy.test"


@pytest.fixture(autouse=True)
def _always_unpatch():
    yield
    uninstall()


def families_and_kinds(infos):
    return [(info[0], info[1]) for info in infos]


def test_af_unspec_answers_ipv4_then_ipv6_and_both_map_back():
    with socksify.patched(UNUSED_PROXY):
        infos = socket.getaddrinfo("both.example", 443, 0, socket.SOCK_STREAM)
        assert families_and_kinds(infos) == [
            (socket.AF_INET, socket.SOCK_STREAM),
            (socket.AF_INET6, socket.SOCK_STREAM),
        ]
        four, six = infos[0][4], infos[1][4]
        assert ipaddress.ip_address(four[0]) in ipaddress.ip_network("240.0.0.0/8")
        assert ipaddress.ip_address(six[0]) in ipaddress.ip_network("100::/64")
        assert (four[1], six[1:]) == (443, (443, 0, 0))
        for address in (four, six):
            assert socket.gethostbyaddr(address[0])[0] == "both.example"
            assert socket.getnameinfo(address, 0)[0] == "both.example"
        # the same placeholders for AF_INET and AF_INET6 lookups of the name
        assert socket.getaddrinfo("both.example", 443, socket.AF_INET)[0][4] == four
        assert socket.getaddrinfo("both.example", 443, socket.AF_INET6)[0][4] == six
        # gethostbyname* are IPv4 APIs: they stay IPv4
        assert socket.gethostbyname("both.example") == four[0]
        assert socket.gethostbyname_ex("both.example") == ("both.example", [], [four[0]])


def test_af_unspec_repeats_the_socktype_rules_per_family():
    kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW]
    with socksify.patched(UNUSED_PROXY):
        infos = socket.getaddrinfo("kinds.example", 80, flags=socket.AI_CANONNAME)
        assert families_and_kinds(infos) == [
            (family, kind) for family in (socket.AF_INET, socket.AF_INET6) for kind in kinds
        ]
        assert [info[3] for info in infos] == ["kinds.example"] + [""] * 5  # first entry only
        udp = socket.getaddrinfo("kinds.example", 53, proto=socket.IPPROTO_UDP)
        assert families_and_kinds(udp) == [
            (socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET, socket.SOCK_RAW),
            (socket.AF_INET6, socket.SOCK_DGRAM), (socket.AF_INET6, socket.SOCK_RAW),
        ]
        # AI_ADDRCONFIG is ignored for placeholders: the proxy, not this host, reaches the name
        addrconfig = socket.getaddrinfo(
            "kinds.example", 80, 0, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG
        )
        assert [info[0] for info in addrconfig] == [socket.AF_INET, socket.AF_INET6]


def test_af_unspec_with_an_ipv4_only_range_answers_ipv4_only(monkeypatch):
    monkeypatch.setenv("SOCKSIFY_DNS_RANGE", "10.99.0.0/16")
    with socksify.patched(UNUSED_PROXY):
        infos = socket.getaddrinfo("four.example", 80, 0, socket.SOCK_STREAM)
        assert [(info[0], info[4]) for info in infos] == [(socket.AF_INET, ("10.99.0.1", 80))]
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("four.example", 80, socket.AF_INET6)


@pytest.mark.e2e
def test_connecting_to_either_placeholder_sends_the_name(runner, socks_server, tcp_echo_server):
    srv = socks_server(hosts={NAME: "127.0.0.1"})
    script = """
        import socket, sys
        name, port = sys.argv[1], int(sys.argv[2])
        infos = socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM)
        print([info[0].name for info in infos])
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(10)
                s.connect(address)
                s.sendall(family.name.encode())
                print(s.recv(100).decode(), s.getpeername()[0] == address[0])
    """
    out = runner.run_script(srv.url("socks5h"), script, NAME, str(tcp_echo_server[1]))
    assert out.split("\n")[:3] == ["['AF_INET', 'AF_INET6']", "AF_INET True", "AF_INET6 True"]
    records = srv.wait_records(2)
    assert [(r["destination"], r["port"]) for r in records] == [(NAME, tcp_echo_server[1])] * 2
