#!/usr/bin/env python3
"""Python CPU of the sans-IO core per handshake, as its two drivers use it.

    scripts/bench_protocol_core.py [--number 20000] [--repeat 7] [--only NAME]

Each sequence replays, in memory, the calls one handshake makes on ``socksify.protocol``:

- ``server-s5-ipv4``: what socksify/server/_handler.py does for a SOCKS5 no-auth CONNECT to an
  IPv4 address (the connection-rate load of scripts/bench): ``Connection(Role.SERVER)``,
  greeting in, ``MethodSelected(0)`` out, request in, ``Reply(0, Address.from_host(bound
  host), bound port)`` out, plus the fields the handler reads (version, trailing_data, the
  request's address, port and command). Three ``next_event`` calls, as in the handler: it
  reads before it asks, and asks until NEED_DATA once the greeting is answered.
- ``server-s5-domain``: the same with a domain name (socks5h).
- ``server-s4``: a SOCKS4 CONNECT (request in, Reply 90 out).
- ``client-s5-ipv4`` / ``client-s5-domain`` / ``client-s4``: what socksify/client.py does for
  one hop (greeting out, method selection in, request out, reply in, read as the blocking
  runner does it: state checks, trailing_data, reply_succeeded).

Prints the best and the median of ``--repeat`` runs of ``--number`` handshakes, in µs per
handshake. Every sequence first checks the bytes and events it produces, so a broken fast
path cannot pass for a quick one. Run under ``flock -x /tmp/socksify-bench.lock`` on a shared
machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from socksify.protocol import (  # noqa: E402
    NEED_DATA,
    Address,
    AuthMethod,
    Command,
    Connection,
    Greeting,
    MethodSelected,
    Reply,
    Reply4,
    Reply5,
    Request,
    Role,
    State,
)

BOUND_HOST = "127.0.0.1"  # the server's side of its outbound connection
BOUND_PORT = 40001
TARGET_PORT = 8080
NAME = "www.example.test"

S5_GREETING = b"\x05\x01\x00"
S5_REQUEST_IPV4 = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + TARGET_PORT.to_bytes(2, "big")
S5_REQUEST_DOMAIN = (
    b"\x05\x01\x00\x03" + bytes((len(NAME),)) + NAME.encode() + TARGET_PORT.to_bytes(2, "big")
)
S5_METHOD = b"\x05\x00"
S5_REPLY = b"\x05\x00\x00\x01\x7f\x00\x00\x01" + BOUND_PORT.to_bytes(2, "big")
S4_REQUEST = b"\x04\x01" + TARGET_PORT.to_bytes(2, "big") + b"\x7f\x00\x00\x01\x00"
S4_REPLY = b"\x00\x5a" + BOUND_PORT.to_bytes(2, "big") + b"\x7f\x00\x00\x01"

# The drivers keep these as globals too (enum attribute access is slow).
_SERVER, _CLIENT = Role.SERVER, Role.CLIENT
_NO_AUTH = AuthMethod.NO_AUTH
_CONNECT = Command.CONNECT
_SUCCEEDED, _GRANTED = Reply5.SUCCEEDED, Reply4.GRANTED
_AFTER_HANDSHAKE = (State.TUNNEL, State.UDP_ASSOCIATED)
_MID_HANDSHAKE = (State.AWAIT_METHOD, State.AWAIT_AUTH_RESULT)
_GREETING = Greeting((_NO_AUTH,))


def server_s5(request_bytes: bytes):
    """One SOCKS5 server handshake as socksify/server/_handler.py drives it."""
    out = []
    conn = Connection(_SERVER)
    conn.receive_data(S5_GREETING)  # the handler reads before it asks
    event = conn.next_event()  # Greeting
    offered = event.methods
    method = _NO_AUTH if _NO_AUTH in offered else AuthMethod.NO_ACCEPTABLE
    out.append(conn.send(MethodSelected(method)))
    if conn.next_event() is not NEED_DATA:  # asked until NEED_DATA, then the reader waits
        raise AssertionError("pipelined request before the method selection")
    conn.receive_data(request_bytes)
    request = conn.next_event()  # Request
    if conn.version == 4:
        raise AssertionError("SOCKS4")
    reply, seen = _answer(conn, request, _SUCCEEDED)
    out.append(reply)
    return out, request, seen


def server_s4():
    """One SOCKS4 server handshake as socksify/server/_handler.py drives it."""
    conn = Connection(_SERVER)
    conn.receive_data(S4_REQUEST)  # the handler reads before it asks
    request = conn.next_event()  # Request
    if conn.version != 4:
        raise AssertionError("not SOCKS4")
    reply, seen = _answer(conn, request, _GRANTED)
    return [reply], request, seen


def _answer(conn: Connection, request, code: int):
    """What the handler reads of a request, then its success reply: (reply bytes, what
    was read)."""
    seen = (request.command, request.address.host, request.port, request.address.is_ip)
    reply = conn.send(Reply(code, Address.from_host(BOUND_HOST), BOUND_PORT))
    return reply, (*seen, conn.trailing_data)


_address_cache: dict = {}  # client.py keeps parsed destinations the same way


def _wire_address(host: str) -> Address:
    address = _address_cache.get(host)
    if address is None:
        address = _address_cache[host] = Address.from_host(host)
    return address


def _read_event(conn: Connection, incoming: list):
    """client.py's _read_event: plain reads mid-handshake, else peek and take."""
    while True:
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
        if conn.state in _MID_HANDSHAKE:
            conn.receive_data(incoming.pop(0))
            continue
        data = incoming.pop(0)
        conn.receive_data(data)
        event = conn.next_event()
        if conn.state in _AFTER_HANDSHAKE:  # bytes past the reply would stay in the kernel
            if conn.trailing_data:
                raise AssertionError("early data in a benchmark reply")
        if event is not NEED_DATA:
            return event


def client(version: int, host: str, reply_bytes: bytes):
    """One hop's handshake as socksify/client.py's _negotiate drives it."""
    out = []
    conn = Connection(_CLIENT, version)
    if version == 5:
        incoming = [S5_METHOD, reply_bytes]
        out.append(conn.send(_GREETING))
        request = Request(_CONNECT, _wire_address(host), TARGET_PORT)
        selected = _read_event(conn, incoming)
        if selected.method != _NO_AUTH:
            raise AssertionError(selected)
    else:
        incoming = [reply_bytes]
        request = Request(_CONNECT, _wire_address(host), TARGET_PORT, user_id=b"")
    out.append(conn.send(request))
    reply = _read_event(conn, incoming)
    if not conn.reply_succeeded(reply):
        raise AssertionError(reply)
    return out, reply, (reply.address.host, reply.port)


SEQUENCES = {
    "server-s5-ipv4": lambda: server_s5(S5_REQUEST_IPV4),
    "server-s5-domain": lambda: server_s5(S5_REQUEST_DOMAIN),
    "server-s4": server_s4,
    "client-s5-ipv4": lambda: client(5, "127.0.0.1", S5_REPLY),
    "client-s5-domain": lambda: client(5, NAME, S5_REPLY),
    "client-s4": lambda: client(4, "127.0.0.1", S4_REPLY),
}

_EXPECTED = {
    "server-s5-ipv4": ([b"\x05\x00", S5_REPLY], ("127.0.0.1", TARGET_PORT, True)),
    "server-s5-domain": ([b"\x05\x00", S5_REPLY], (NAME, TARGET_PORT, False)),
    "server-s4": ([S4_REPLY], ("127.0.0.1", TARGET_PORT, True)),
    "client-s5-ipv4": ([S5_GREETING, S5_REQUEST_IPV4], None),
    "client-s5-domain": ([S5_GREETING, S5_REQUEST_DOMAIN], None),
    "client-s4": ([S4_REQUEST], None),
}


def check(name: str) -> None:
    """The sequence produces the right bytes and events (a fast wrong path is no win)."""
    out, event, seen = SEQUENCES[name]()
    wire, fields = _EXPECTED[name]
    if out != wire:
        raise SystemExit(f"{name}: wrote {out!r}, expected {wire!r}")
    if name.startswith("server"):
        command, destination, port, is_ip, early = seen
        if command is not _CONNECT or (destination, port, is_ip) != fields or early != b"":
            raise SystemExit(f"{name}: decoded {event!r} / {seen!r}")
    elif seen != (BOUND_HOST, BOUND_PORT):
        raise SystemExit(f"{name}: reply {event!r}")


def measure(name: str, number: int, repeat: int) -> list[float]:
    """µs per handshake for each of ``repeat`` runs of ``number`` handshakes."""
    run = SEQUENCES[name]
    loop = range(number)
    results = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in loop:
            run()
        results.append((time.perf_counter() - start) / number * 1e6)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000, help="handshakes per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs per sequence")
    parser.add_argument("--only", choices=sorted(SEQUENCES), action="append",
                        help="run only this sequence (repeatable)")
    args = parser.parse_args(argv)
    names = args.only or list(SEQUENCES)
    print(f"Python {sys.version.split()[0]}, {args.number} handshakes x {args.repeat} runs")
    print(f"{'sequence':<18} {'best µs':>8} {'median µs':>10}")
    for name in names:
        check(name)
        results = measure(name, args.number, args.repeat)
        print(f"{name:<18} {min(results):8.2f} {statistics.median(results):10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
