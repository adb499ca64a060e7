"""A child given an environment without the shim gets it back (csrc/env_follow.c).

SPEC: the native shim covers "children and exec'd programs included", and nothing may go
out directly. A program that starts a child with an environment of its own making
(``subprocess.run(env={...})``, ``env -i``, a scrubbed daemon environment) would otherwise
drop LD_PRELOAD and SOCKSIFY_PROXY, and the child would connect directly. Each test runs
Python under the shim; it starts a child Python with a replaced environment, which connects
to an echo server on loopback; the reference server's records show whether the connection
went through the proxy.
"""

from __future__ import annotations

import shlex
import sys

import pytest

pytestmark = pytest.mark.e2e

TIMEOUT = 60

#: the child: connect to 127.0.0.1:ARGV[1], echo one word, print it
CHILD = ("import socket, sys\n"
         "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)\n"
         "s.sendall(b'ping')\n"
         "print(s.recv(4).decode())\n")


def spawning(env: str) -> str:
    """Python code that runs CHILD with the environment ``env`` (a Python expression)."""
    return ("import subprocess, sys\n"
            f"r = subprocess.run([sys.executable, '-c', {CHILD!r}, sys.argv[1]], env={env},\n"
            "                   capture_output=True, timeout=30)\n"
            "sys.stdout.write(r.stdout.decode()); sys.stderr.write(r.stderr.decode())\n"
            "sys.exit(r.returncode)\n")


def proxied_ports(srv) -> list[int]:
    return [r["port"] for r in srv.wait_records(1) if r["outcome"] == "ok"]


@pytest.mark.parametrize("env", [
    "{}",
    "{'PATH': '/usr/bin:/bin', 'HOME': '/'}",
    # another preload in place of ours: ours goes back in front of it
    "{'LD_PRELOAD': 'libm.so.6'}",
], ids=["empty", "scrubbed", "other-preload"])
def test_a_child_with_a_replaced_environment_is_still_proxied(shim, socks_server,
                                                              tcp_echo_server, env):
    srv = socks_server()
    port = tcp_echo_server[1]
    result = shim.run([sys.executable, "-c", spawning(env), str(port)], srv.url("socks5"),
                      timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == ["ping"]
    assert proxied_ports(srv) == [port]


def test_env_i_in_a_shell_keeps_the_shim(shim, socks_server, tcp_echo_server):
    srv = socks_server()
    port = tcp_echo_server[1]
    command = f"env -i {shlex.quote(sys.executable)} -c {shlex.quote(CHILD)} {port}"
    result = shim.run(["sh", "-c", command], srv.url("socks5"), timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == ["ping"]
    assert proxied_ports(srv) == [port]


def test_a_child_given_its_own_proxy_uses_it(shim, socks_server, tcp_echo_server):
    ours, theirs = socks_server(), socks_server()
    port = tcp_echo_server[1]
    env = f"{{'SOCKSIFY_PROXY': {theirs.url('socks5')!r}}}"
    result = shim.run([sys.executable, "-c", spawning(env), str(port)], ours.url("socks5"),
                      timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode()
    assert proxied_ports(theirs) == [port]
    assert ours.records == []
