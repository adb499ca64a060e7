"""Receiving on a proxied datagram socket (UDP ASSOCIATE) with flags, and short buffers:
MSG_PEEK past dropped datagrams, MSG_TRUNC, truncation as the kernel does it.

Each script runs patched in a child (``python -m socksify``) through the reference server to
a UDP echo server. ``signal.alarm`` ends a child that spins (the MSG_PEEK bug looped
forever) so that it fails instead of hanging the run; nothing here asserts a duration.
"""

import socket

import pytest

pytestmark = pytest.mark.e2e

PRELUDE = """
    import _socket, signal, socket, sys
    signal.alarm(30)  # a watchdog, not a timing check: a spinning child dies and fails
    port = int(sys.argv[1])
    echo = ("127.0.0.1", port)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    s.sendto(b"open", echo)
    assert s.recvfrom(100) == (b"open", echo)  # the association exists
    local_port = _socket.socket.getsockname(s)[1]  # the real port, not the relay's

    def queued_first():
        # the datagram at the head of the real queue (still queued), unpatched
        return _socket.socket.recvfrom(s, 65535, socket.MSG_PEEK)[0]
"""


def run(runner, socks_server, udp_echo_server, body: str) -> list[str]:
    srv = socks_server()
    out = runner.run_script(srv.url("socks5"), PRELUDE + body, str(udp_echo_server[1]))
    return out.splitlines()


def test_peek_consumes_a_stray_datagram_and_returns_the_relayed_one(
    runner, socks_server, udp_echo_server
):
    lines = run(
        runner,
        socks_server,
        udp_echo_server,
        """
    stray = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stray.sendto(b"stray", ("127.0.0.1", local_port))  # straight to us, not via the relay
    assert queued_first() == b"stray"
    s.sendto(b"relayed", echo)
    print(s.recvfrom(100, socket.MSG_PEEK) == (b"relayed", echo))
    print(s.recvfrom(100) == (b"relayed", echo))

    stray.sendto(b"stray again", ("127.0.0.1", local_port))
    assert queued_first() == b"stray again"
    s.settimeout(0.5)
    try:
        print("returned", s.recvfrom(100, socket.MSG_PEEK))
    except TimeoutError:
        print("timeout")
    s.setblocking(False)
    try:
        print("still queued", queued_first())
    except BlockingIOError:
        print("consumed")
    """,
    )
    assert lines == ["True", "True", "timeout", "consumed"]


def test_the_socket_timeout_bounds_a_call_that_keeps_dropping_datagrams(
    runner, socks_server, udp_echo_server
):
    """Stray datagrams keep arriving faster than the timeout: each one dropped must not
    restart the socket timeout (the call would never end), with or without MSG_PEEK."""
    lines = run(
        runner,
        socks_server,
        udp_echo_server,
        """
    import threading, time
    done = threading.Event()
    def spray():
        stray = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        while not done.is_set():
            stray.sendto(b"stray", ("127.0.0.1", local_port))
            time.sleep(0.02)
    threading.Thread(target=spray, daemon=True).start()
    s.settimeout(0.5)
    for flags in (0, socket.MSG_PEEK):
        try:
            print("returned", s.recvfrom(100, flags))
        except TimeoutError:
            print("timeout")
    done.set()
    """,
    )
    assert lines == ["timeout", "timeout"]


def test_peek_on_a_connected_socket_consumes_a_relayed_datagram_from_another_host(
    runner, socks_server, udp_echo_server
):
    """The relay forwards a datagram from a host the socket sent to before it connected;
    a connected socket drops it (hears only its peer), which under MSG_PEEK must consume it."""
    lines = run(
        runner,
        socks_server,
        udp_echo_server,
        """
    other = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.settimeout(10)
    s.sendto(b"hello other", other.getsockname())
    data, relay_side = other.recvfrom(100)
    assert data == b"hello other"
    other.sendto(b"from other", relay_side)
    assert queued_first().endswith(b"from other")  # relayed to us, now at the head
    s.connect(echo)
    s.send(b"from peer")
    print(s.recvfrom(100, socket.MSG_PEEK) == (b"from peer", echo))
    print(s.recv(100))
    """,
    )
    assert lines == ["True", "b'from peer'"]


def test_short_buffers_truncate_the_datagram_and_discard_the_rest(
    runner, socks_server, udp_echo_server
):
    lines = run(
        runner,
        socks_server,
        udp_echo_server,
        """
    from socksify import _udp
    from socksify._sockets import state_of
    s.sendto(b"0123456789", echo)
    print(s.recvfrom(4))
    s.sendto(b"0123456789", echo)
    print(s.recv(4))
    s.sendto(b"0123456789", echo)
    buf = bytearray(b"." * 10)
    print(s.recvfrom_into(buf, 4), bytes(buf))
    s.sendto(b"0123456789", echo)
    buf = bytearray(b"." * 10)
    print(s.recv_into(buf, 4), bytes(buf))
    s.sendto(b"next", echo)  # the tails above were discarded, as the kernel does
    print(s.recv(100))
    s.sendto(b"0123456789", echo)
    print(_udp.receive_msg(s, state_of(s), None, 4, 0))
    s.sendto(b"0123456789", echo)
    print(_udp.receive_msg(s, state_of(s), None, 10, 0))
    """,
    )
    echo = ("127.0.0.1", udp_echo_server[1])
    trunc = int(socket.MSG_TRUNC)  # a plain int, as the kernel path returns
    assert lines == [
        str((b"0123", echo)),
        "b'0123'",
        f"{(4, echo)} b'0123......'",
        "4 b'0123......'",
        "b'next'",
        str((b"0123", [], trunc, echo)),
        str((b"0123456789", [], 0, echo)),
    ]


def test_recvmsg_reports_msg_trunc(runner, socks_server, udp_echo_server):
    lines = run(
        runner,
        socks_server,
        udp_echo_server,
        """
    s.sendto(b"0123456789", echo)
    print(s.recvmsg(4))
    s.sendto(b"0123456789", echo)
    print(s.recvmsg(10))
    s.sendto(b"0123456789", echo)
    a, b = bytearray(3), bytearray(3)
    print(s.recvmsg_into([a, b]), bytes(a + b))
    """,
    )
    echo = ("127.0.0.1", udp_echo_server[1])
    assert lines == [
        str((b"0123", [], int(socket.MSG_TRUNC), echo)),
        str((b"0123456789", [], 0, echo)),
        f"{(6, [], int(socket.MSG_TRUNC), echo)} b'012345'",
    ]


def test_a_connected_socket_hears_only_its_peer(runner, socks_server, udp_echo_server):
    """Connected through the relay, a datagram socket takes only what the relay says came
    from its peer (address and port, as the kernel and the native shim do), and nothing
    sent straight to it, even from an address the bypass list names."""
    srv = socks_server()
    out = runner.run_script(srv.url("socks5"), PRELUDE + """
    # another host with the echo's port: 127.0.0.2, answering through the relay too
    other = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.2", port))
    s.sendto(b"to other", ("127.0.0.2", port))
    got, sender = other.recvfrom(100)
    s.connect(echo)
    other.sendto(b"from other", sender)  # via the relay, from 127.0.0.2:port
    stray = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stray.bind(("127.0.0.3", 0))  # a source the bypass list names
    stray.sendto(b"stray", ("127.0.0.1", local_port))  # straight to us
    s.send(b"mine")
    print(s.recv(100))
    s.setblocking(False)
    try:
        print("left", s.recv(100))
    except BlockingIOError:
        print("nothing else")
    """, str(udp_echo_server[1]), env={"SOCKSIFY_NO_PROXY": "127.0.0.3"})
    assert out.splitlines() == ["b'mine'", "nothing else"]
