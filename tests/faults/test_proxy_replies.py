"""A proxy that refuses, answers garbage or closes early: each shim reports SPEC.md's errno.

A scripted fake proxy (``_fake_proxy.py``) gives every SOCKS5 reply code 1-8 and unknown
ones, SOCKS4 91-93, garbage, an early close at each handshake step, a failed login and "no
acceptable method". The Python shim must raise the ``socksify.errors`` class with the errno
of the table (also the builtin OSError subclass); the native shim must make ``connect()``
fail with that errno, blocking and non-blocking, without crashing the program. Nothing ever
reaches the destination (a port that would answer if it were contacted directly).
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap

import pytest

import socksify
from socksify import errors
from socksify.protocol import AuthMethod, MethodSelected

from ._cases import CASES, HELD_OPEN
from ._fake_proxy import CLOSE, RESET, FakeProxy, Raw, reply
from ._native import run_under_shim

pytestmark = pytest.mark.e2e

IDS = [case[0] for case in CASES]


def _url(proxy: FakeProxy, scheme: str, user: str | None) -> str:
    return proxy.url(scheme, user, "pw" if user else None)


@pytest.fixture
def direct_target():
    """A listener that must never be contacted: the destination of every case."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        yield listener
        try:
            listener.accept()
        except BlockingIOError:
            pass
        else:  # pragma: no cover - the failure this fixture exists for
            raise AssertionError("a failed proxy connection went to the destination directly")


@pytest.mark.parametrize("name, scheme, user, script, kind, errno_name", CASES, ids=IDS)
def test_python_client_error(name, scheme, user, script, kind, errno_name, direct_target):
    port = direct_target.getsockname()[1]
    with FakeProxy(script) as proxy:
        with pytest.raises(socksify.ProxyError) as info:
            socksify.create_connection(
                ("127.0.0.1", port), proxy=_url(proxy, scheme, user), timeout=10
            )
        proxy.wait_finished(1)
    error = info.value
    assert type(error).__name__ == kind
    assert isinstance(error, getattr(errors, kind))
    assert isinstance(error, OSError)
    assert error.errno == getattr(errno, errno_name), (error.errno, str(error))
    if kind == "ProxyRefusedError":
        assert error.reply_code == script["request"].code
    if name in HELD_OPEN:
        assert proxy.client_hung_up == [True], "the client waited for the proxy to close"


_CHILD = textwrap.dedent("""
    import asyncio, json, socket, sys
    import socksify

    def blocking(port):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()

    def with_asyncio(port):
        async def main():
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), 10)
            writer.close()
        asyncio.run(main())

    connect = blocking if sys.argv[2] == "blocking" else with_asyncio
    out = []
    for url, port in json.loads(sys.argv[1]):
        socksify.patch(url)
        try:
            connect(port)
            out.append(["ok", 0, False])
        except OSError as exc:
            out.append([type(exc).__name__, exc.errno, isinstance(exc, socksify.ProxyError)])
        socksify.unpatch()
    print(json.dumps(out))
""")


@pytest.mark.parametrize("api", ["blocking", "asyncio"])
def test_patched_socket_in_a_program(api, direct_target):
    """The same cases in a patched program: ``socket.create_connection`` and
    ``asyncio.open_connection`` (the shim's asyncio handshake)."""
    port = direct_target.getsockname()[1]
    proxies = [FakeProxy(script) for _n, _s, _u, script, _k, _e in CASES]
    try:
        pairs = zip(proxies, CASES, strict=True)
        urls = [[_url(proxy, case[1], case[2]), port] for proxy, case in pairs]
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(urls), api],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout)
    finally:
        for proxy in proxies:
            proxy.close()
    for (name, _s, _u, _script, kind, errno_name), (cls, code, is_proxy_error) in zip(
        CASES, seen, strict=True
    ):
        assert (cls, code, is_proxy_error) == (kind, getattr(errno, errno_name), True), name


@pytest.mark.parametrize("mode", ["block", "nonblock"])
@pytest.mark.parametrize("name, scheme, user, script, kind, errno_name", CASES, ids=IDS)
def test_native_connect_errno(
    name, scheme, user, script, kind, errno_name, mode, progs, direct_target
):
    port = direct_target.getsockname()[1]
    with FakeProxy(script) as proxy:
        result = run_under_shim(
            [progs("connect_errno"), mode, "127.0.0.1", str(port)], _url(proxy, scheme, user)
        )
        proxy.wait_finished(1)
    assert result.returncode == 0, result.stderr  # no crash, no abort
    assert result.stdout.split() == ["errno", errno_name], result.stderr
    if name in HELD_OPEN:
        assert proxy.client_hung_up == [True], "the program waited for the proxy to close"


@pytest.mark.parametrize(
    "name", ["socks5-reply-5", "socks5-http-answer", "close-after-request", "socks5-auth-failed"]
)
def test_curl_under_socksify_run(name, direct_target):
    """A real program through the ``socksify-run`` command: an error exit, never a crash."""
    from support.peers import require_peer

    curl = require_peer("curl")
    _n, scheme, user, script, _kind, errno_name = next(c for c in CASES if c[0] == name)
    port = direct_target.getsockname()[1]
    with FakeProxy(script) as proxy:
        result = subprocess.run(
            [sys.executable, "-m", "socksify.run", "--proxy", _url(proxy, scheme, user),
             curl, "-sS", "--max-time", "20", f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 7, result.stderr  # CURLE_COULDNT_CONNECT, not a signal
    assert "Failed to connect" in result.stderr or "Could not connect" in result.stderr, (
        result.stderr
    )


RESET_STEPS = ["accept", "greeting", "request"]


@pytest.mark.parametrize("step", RESET_STEPS)
def test_native_proxy_reset_mid_handshake(step, progs, direct_target):
    """A reset from the proxy is the errno of the proxy connection: ECONNRESET."""
    port = direct_target.getsockname()[1]
    with FakeProxy({step: RESET}) as proxy:
        for mode in ("block", "nonblock"):
            result = run_under_shim(
                [progs("connect_errno"), mode, "127.0.0.1", str(port)], proxy.url()
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.split() == ["errno", "ECONNRESET"], (mode, result.stderr)


@pytest.mark.parametrize("step", RESET_STEPS)
def test_python_proxy_reset_mid_handshake_is_a_proxy_error(step, direct_target):
    port = direct_target.getsockname()[1]
    with FakeProxy({step: RESET}) as proxy:
        with pytest.raises(ConnectionResetError) as info:
            socksify.create_connection(("127.0.0.1", port), proxy=proxy.url(), timeout=10)
    assert info.value.errno == errno.ECONNRESET
    assert isinstance(info.value, socksify.ProxyError)


# --- a proxy that accepts and then says nothing: bounded by the program's own timeout -------

SILENT = {"greeting": Raw(b"", then_close=False)}


def test_python_silent_proxy_times_out(direct_target):
    port = direct_target.getsockname()[1]
    with FakeProxy(SILENT, hold=15) as proxy:
        with pytest.raises(TimeoutError):
            socksify.create_connection(("127.0.0.1", port), proxy=proxy.url(), timeout=0.5)
        proxy.wait_finished(1)
    assert proxy.client_hung_up == [True]


def test_native_silent_proxy_times_out_with_sndtimeo(progs, direct_target):
    port = direct_target.getsockname()[1]
    with FakeProxy(SILENT, hold=15) as proxy:
        result = run_under_shim(
            [progs("connect_errno"), "sndtimeo", "127.0.0.1", str(port)], proxy.url()
        )
        proxy.wait_finished(1)
    assert result.stdout.split() == ["errno", "ETIMEDOUT"], result.stderr
    assert proxy.client_hung_up == [True]


# --- a fault at the second hop of a chain: reported through the first hop ------------------

CHAIN_CASES = [
    ("second-hop-reply-4", {"request": reply(4)}, "ProxyRefusedError", "EHOSTUNREACH"),
    ("second-hop-auth-none", {"greeting": MethodSelected(AuthMethod.NO_ACCEPTABLE)},
     "ProxyAuthError", "EACCES"),
    ("second-hop-garbage", {"greeting": Raw(b"\x00\x5a", False)}, "ProxyProtocolError",
     "EPROTO"),
    ("second-hop-closes", {"request": CLOSE}, "ProxyProtocolError", "EPROTO"),
]


@pytest.mark.parametrize("name, script, kind, errno_name", CHAIN_CASES,
                         ids=[c[0] for c in CHAIN_CASES])
def test_chain_second_hop_faults(name, script, kind, errno_name, socks_server, progs,
                                 direct_target):
    first = socks_server()
    port = direct_target.getsockname()[1]
    with FakeProxy(script) as second:
        chain = f"{first.url('socks5')},{second.url('socks5')}"
        with pytest.raises(socksify.ProxyError) as info:
            socksify.create_connection(("127.0.0.1", port), proxy=chain, timeout=10)
        native = run_under_shim(
            [progs("connect_errno"), "block", "127.0.0.1", str(port)], chain
        )
        second.wait_finished(2)
    assert (type(info.value).__name__, info.value.errno) == (kind, getattr(errno, errno_name))
    assert native.stdout.split() == ["errno", errno_name], native.stderr
    assert all(r["port"] == second.port for r in first.wait_records(2))


def test_chain_second_hop_unreachable_is_the_first_hops_reply(socks_server, progs,
                                                              direct_target):
    """SPEC: a later hop that cannot be reached shows as the previous hop's reply (5)."""
    first = socks_server()
    port = direct_target.getsockname()[1]
    import socket

    # bound and never listening for the whole test: a connect to it is refused, and no
    # other socket can take the port in the meantime
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        chain = f"{first.url('socks5')},socks5://127.0.0.1:{dead.getsockname()[1]}"
        with pytest.raises(socksify.ProxyRefusedError) as info:
            socksify.create_connection(("127.0.0.1", port), proxy=chain, timeout=10)
        native = run_under_shim(
            [progs("connect_errno"), "block", "127.0.0.1", str(port)], chain
        )
    assert (info.value.errno, info.value.reply_code) == (errno.ECONNREFUSED, 5)
    assert native.stdout.split() == ["errno", "ECONNREFUSED"], native.stderr
