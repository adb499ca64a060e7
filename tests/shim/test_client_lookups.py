"""socksify.resolve and socksify.resolve_ptr (Tor's RESOLVE and RESOLVE_PTR) against the
reference server, through a chain, and against peers that do not know the commands.

Names come from the server's [hosts] map, so no lookup here asks DNS.
"""

import errno

import pytest

import socksify
from socksify.errors import ProxyError, ProxyProtocolError, ProxyRefusedError

pytestmark = pytest.mark.e2e

HOSTS = {"tor.test": ["127.0.0.5", "::1"], "v6only.test": "::2"}


@pytest.mark.parametrize("scheme", ["socks4", "socks4a", "socks5", "socks5h"])
def test_resolve_sends_the_name_whatever_the_scheme(socks_server, scheme):
    """Even socks4 and socks5, which resolve CONNECT destinations here, send the name. (The
    name is localhost, which the server maps elsewhere: sent, it gives 127.0.0.7; resolved
    here by mistake, it would give /etc/hosts' 127.0.0.1 without a DNS query.)"""
    srv = socks_server(hosts={"localhost": "127.0.0.7"})
    assert socksify.resolve("localhost", proxy=srv.url(scheme), timeout=10) == "127.0.0.7"
    [record] = srv.wait_records(1)
    assert (record["command"], record["destination"]) == ("resolve", "localhost")


def test_resolve_ptr_gives_the_name(socks_server):
    srv = socks_server(hosts=HOSTS)
    assert socksify.resolve_ptr("::2", proxy=srv.url("socks5"), timeout=10) == "v6only.test"


def test_the_last_hop_of_a_chain_resolves(socks_server):
    first, last = socks_server(), socks_server(hosts=HOSTS)
    chain = f"{first.url('socks5')},{last.url('socks5h')}"
    assert socksify.resolve("v6only.test", proxy=chain, timeout=10) == "::2"
    assert first.wait_records(1)[0]["command"] == "connect"
    assert last.wait_records(1)[0]["command"] == "resolve"


def test_failures_are_refusals_with_the_reply_code(socks_server):
    srv = socks_server(hosts=HOSTS, config='[[rules]]\naction = "deny"\ncommands = ["resolve"]\n')
    with pytest.raises(ProxyRefusedError) as denied:
        socksify.resolve("tor.test", proxy=srv.url("socks5h"), timeout=10)
    assert denied.value.reply_code == 2 and "RESOLVE tor.test" in str(denied.value)
    with pytest.raises(ProxyRefusedError) as no_ipv4:  # SOCKS4 carries IPv4 answers only
        socksify.resolve("v6only.test", proxy=srv.url("socks4a"), timeout=10)
    assert no_ipv4.value.reply_code == 91


def test_bad_arguments_are_errors_before_any_connection(socks_server):
    srv = socks_server(hosts=HOSTS)
    with pytest.raises(ValueError, match="needs an IP address"):
        socksify.resolve_ptr("tor.test", proxy=srv.url("socks5"))
    with pytest.raises(ProxyError) as socks4:
        socksify.resolve_ptr("127.0.0.5", proxy=srv.url("socks4"))
    assert socks4.value.errno == errno.EAFNOSUPPORT
    assert srv.records == []


def test_peers_without_the_commands_refuse_them(microsocks, danted):
    with pytest.raises(ProxyRefusedError) as refused:
        socksify.resolve("tor.test", proxy=microsocks().url("socks5h"), timeout=10)
    assert refused.value.reply_code == 7  # command not supported
    assert refused.value.errno == errno.EOPNOTSUPP
    with pytest.raises(ProxyProtocolError, match="connection closed while waiting for the reply"):
        socksify.resolve("tor.test", proxy=danted().url("socks5h"), timeout=10)  # it hangs up
