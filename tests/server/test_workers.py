"""``workers = N``: forked workers sharing each port (SO_REUSEPORT), supervised by the parent."""

import os
import signal
import socket
import subprocess
import time

import pytest

from socksify.protocol import Address, Command, Connection, Request, Role
from socksify.server._config import ConfigError, ServerConfig, parse_config_text, parse_workers

from .test_cli import read_ready_lines, start, stop


def children(pid):
    """The pids whose parent is ``pid`` (from /proc)."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(name))
    return found


def wait_children(pid, count, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(pid)
        if len(kids) == count:
            return kids
        time.sleep(0.05)
    raise AssertionError(f"expected {count} workers, have {sorted(children(pid))}")


def echo_through(host, port, target, payload=b"hello workers"):
    """SOCKS4 CONNECT to the echo ``target`` through the server; returns what came back."""
    conn = Connection(Role.CLIENT, 4)
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(conn.send(Request(Command.CONNECT, Address.from_host(target[0]),
                                       target[1])))
        reply = b""
        while len(reply) < 8:
            chunk = sock.recv(8 - len(reply))
            assert chunk, "server closed before its reply"
            reply += chunk
        assert reply[1] == 90  # granted
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(4096)
            assert chunk
            got += chunk
        return got


def test_workers_share_each_port_and_exit_0_on_sigterm(tcp_echo_server):
    proc = start("--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--workers", "2")
    try:
        listeners = read_ready_lines(proc, 2)
        assert len({port for _host, port in listeners}) == 2  # one line per listener
        assert len(wait_children(proc.pid, 2)) == 2
        for host, port in listeners:
            for _ in range(6):  # spread over both workers by the kernel's hash
                assert echo_through(host, port, tcp_echo_server) == b"hello workers"
    except BaseException:
        proc.kill()
        raise
    assert stop(proc, signal.SIGTERM) == 0


def test_a_dead_worker_is_replaced_on_the_same_port(tcp_echo_server):
    proc = start("--listen", "127.0.0.1:0", "--workers", "2")
    try:
        [(host, port)] = read_ready_lines(proc, 1)
        first = wait_children(proc.pid, 2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = children(proc.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"worker {victim} was not replaced: {children(proc.pid)}")
        for _ in range(6):
            assert echo_through(host, port, tcp_echo_server) == b"hello workers"
    except BaseException:
        proc.kill()
        raise
    assert stop(proc, signal.SIGINT) == 0
    assert children(proc.pid) == set()


def test_workers_option_values():
    assert parse_workers(3) == 3
    assert parse_workers("2") == 2
    assert parse_workers("auto") >= 1
    for bad in (0, -1, "zero", "", 10_000, True):
        with pytest.raises(ConfigError, match="workers"):
            parse_workers(bad)
    assert ServerConfig().workers == 1
    assert parse_config_text('[server]\nworkers = "auto"\n').workers >= 1
    assert parse_config_text("[server]\nworkers = 2\n").workers == 2
    with pytest.raises(ConfigError, match="workers"):
        parse_config_text("[server]\nworkers = 1.5\n")


def test_bad_workers_option_exits_2():
    proc = start("--listen", "127.0.0.1:0", "--workers", "many")
    try:
        assert proc.wait(30) == 2
        assert b"workers" in proc.stderr.read()
    finally:
        proc.stdout.close()
        proc.stderr.close()


def test_workers_with_the_portable_relay(tmp_path, tcp_echo_server):
    """relay = "portable": each worker serves its sockets through asyncio transports."""
    config = tmp_path / "server.toml"
    config.write_text('[server]\nrelay = "portable"\nworkers = 2\n')
    proc = start("--listen", "127.0.0.1:0", "--config", str(config))
    try:
        [(host, port)] = read_ready_lines(proc, 1)
        wait_children(proc.pid, 2)
        for _ in range(6):
            assert echo_through(host, port, tcp_echo_server) == b"hello workers"
    except BaseException:
        proc.kill()
        raise
    assert stop(proc, signal.SIGTERM) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_workers_are_forked_stops_them_all(signum):
    """The ready line comes before the workers are forked, so a signal sent on seeing it
    often lands between two forks: the parent must not fork more workers after it (they
    would never be told to stop, and the parent would wait for them forever)."""
    for _ in range(5):
        proc = start("--listen", "127.0.0.1:0", "--workers", "4")
        try:
            read_ready_lines(proc, 1)
            proc.send_signal(signum)
            try:
                status = proc.wait(30)
            except subprocess.TimeoutExpired:
                left = children(proc.pid)
                for pid in left:
                    os.kill(pid, signal.SIGKILL)
                raise AssertionError(
                    f"server hung after the signal; workers left: {left}") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.stdout.close()
            proc.stderr.close()
        assert status == 0
