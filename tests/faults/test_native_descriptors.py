"""The native shim in programs that play with descriptors: no crossed state.

``progs/fd_chaos.c`` closes proxied sockets behind the shim's back (close_range, closefrom,
a raw close syscall, dup2 over them) and reuses the numbers at once, runs many threads whose
connections and socketpairs keep recycling numbers, forks (also while other threads are
inside the shim) and execs itself with a proxied connection inherited. Each step prints
``NAME: ok`` or ``NAME: FAIL ...``; the proxy's records show where each connection went.
"""

from __future__ import annotations

import pytest
from support.targets import _EchoHandler, _ThreadingTCPServer, serving

from ._native import run_under_shim

pytestmark = pytest.mark.e2e


@pytest.fixture
def two_echo_ports():
    first = _ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler)
    second = _ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler)
    with serving(first), serving(second):
        yield first.server_address[1], second.server_address[1]


def run_chaos(progs, proxy_url, *args) -> dict[str, str]:
    result = run_under_shim([progs("fd_chaos"), *map(str, args)], proxy_url, timeout=90)
    checks = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert checks, f"no output: {result.stderr}"
    return checks


def failed(checks: dict[str, str]) -> dict[str, str]:
    return {name: outcome for name, outcome in checks.items() if outcome != "ok"}


@pytest.mark.parametrize("how", ["close", "close_range", "closefrom", "sys_close", "dup2"])
def test_descriptor_closed_behind_the_back_and_reused(how, progs, socks_server, two_echo_ports):
    srv = socks_server()
    port_a, port_b = two_echo_ports
    checks = run_chaos(progs, srv.url("socks5"), "reuse", how, port_a, port_b)
    assert failed(checks) == {}
    assert "same-number" in checks and "second-echo" in checks
    records = srv.wait_records(2)
    assert sorted(r["port"] for r in records) == sorted([port_a, port_b])
    assert all(r["outcome"] == "ok" for r in records)


@pytest.mark.parametrize("how", ["close", "close_range"])
def test_many_threads_recycling_descriptors(how, progs, socks_server, two_echo_ports):
    srv = socks_server()
    threads, rounds = 12, 20
    checks = run_chaos(progs, srv.url("socks5"), "threads", how, *two_echo_ports, threads, rounds)
    assert failed(checks) == {}
    assert checks["threads"] == "ok"
    records = srv.wait_records(threads * rounds)
    assert len(records) == threads * rounds
    assert {r["port"] for r in records} == set(two_echo_ports)
    assert all(r["outcome"] == "ok" for r in records)


def test_fork(progs, socks_server, two_echo_ports):
    srv = socks_server()
    checks = run_chaos(progs, srv.url("socks5"), "fork", two_echo_ports[0])
    assert failed(checks) == {}
    assert checks["fork-under-thread-load"] == "ok"


def test_exec_keeps_the_inherited_connection_and_proxies_new_ones(
    progs, socks_server, two_echo_ports
):
    srv = socks_server()
    checks = run_chaos(progs, srv.url("socks5"), "exec", two_echo_ports[0])
    assert {name: checks.get(name) for name in (
        "before-exec-echo", "inherited-echo", "new-connect-after-exec", "new-echo-after-exec"
    )} == dict.fromkeys(
        ("before-exec-echo", "inherited-echo", "new-connect-after-exec", "new-echo-after-exec"),
        "ok",
    )
    assert len(srv.wait_records(2)) == 2


def test_exec_getpeername_of_an_inherited_proxied_socket(progs, socks_server, two_echo_ports):
    srv = socks_server()
    checks = run_chaos(progs, srv.url("socks5"), "exec", two_echo_ports[0])
    assert checks["inherited-peer"] == "ok"
