"""Hostile clients for the server tests: adversarial byte streams and how to send them.

Every stream is checked with the sans-IO core first (``safe_for_loopback``): a stream that
holds a complete request is replaced (only the streams meant for the echo server carry
one), so random bytes never make the server resolve a name or connect anywhere.
"""

from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass

from socksify.protocol import (
    NEED_DATA,
    AuthMethod,
    AuthResult,
    Connection,
    Greeting,
    MethodSelected,
    ProtocolError,
    Request,
    Role,
    UserPassAuth,
)


@dataclass
class Hostile:
    kind: str
    payload: bytes
    #: "eof": send, shut down our side, read to EOF; "wait": send and read until the server
    #: closes (it must: garbage or a handshake timeout); "rst": send and reset at once;
    #: "echo": a valid CONNECT to the echo server followed by garbage
    ending: str


def safe_for_loopback(payload: bytes) -> bool:
    """True unless the payload holds a complete request (a name to resolve, an address to
    connect to or bind for); only the streams meant to reach the echo server may."""
    conn = Connection(Role.SERVER)
    conn.receive_data(payload)
    try:
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return True
            if isinstance(event, Greeting):
                method = AuthMethod.NO_AUTH if AuthMethod.NO_AUTH in event.methods else 0xFF
                conn.send(MethodSelected(method))
                if method == 0xFF:
                    return True
            elif isinstance(event, UserPassAuth):
                conn.send(AuthResult(False))
                return True
            elif isinstance(event, Request):
                return False
    except ProtocolError:
        return True


def _socks4(cmd: int, port: int, ip: bytes, rest: bytes) -> bytes:
    return struct.pack("!BBH", 4, cmd, port) + ip + rest


def _streams(rng: random.Random, echo_port: int, seeds: list[bytes]):
    """Yield hostile streams, one of each kind in turn, forever."""
    lo = bytes([127, 0, 0, 1])
    kinds = [
        lambda: Hostile("random", rng.randbytes(rng.randrange(0, 2000)), "eof"),
        lambda: Hostile("random-5", b"\x05" + rng.randbytes(rng.randrange(0, 600)), "eof"),
        lambda: Hostile("random-4", b"\x04" + rng.randbytes(rng.randrange(0, 600)), "eof"),
        lambda: Hostile("garbage-open", b"\x05\x01\x00\x05\x07" + rng.randbytes(40), "wait"),
        lambda: Hostile("http-to-socks", b"GET http://127.0.0.1/ HTTP/1.1\r\n\r\n", "wait"),
        lambda: Hostile("truncated-greeting", b"\x05\x03\x00", rng.choice(["eof", "rst"])),
        lambda: Hostile("truncated-request",
                        b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00", rng.choice(["eof", "rst"])),
        lambda: Hostile("s4-userid-no-nul",
                        _socks4(1, 80, lo, b"U" * rng.choice([300, 70_000])), "eof"),
        lambda: Hostile("s4a-name-no-nul",
                        _socks4(1, 80, b"\x00\x00\x00\x01", b"id\x00" + b"n" * 70_000), "eof"),
        lambda: Hostile("s5-name-255-non-ascii",
                        b"\x05\x01\x00\x05\x01\x00\x03\xff" + bytes(range(1, 256)) + b"\x00\x50",
                        "wait"),
        lambda: Hostile("s5-255-methods", b"\x05\xff" + bytes(range(1, 256)) + b"\x05" * 50,
                        "wait"),
        lambda: Hostile("s5-userpass-huge", b"\x05\x01\x02\x01\xff" + b"u" * 255 + b"\xff"
                        + b"p" * 255, "eof"),
        lambda: Hostile("pipelined-garbage", b"\x05\x01\x00\x05\x01\x00\x01" + lo
                        + struct.pack("!H", echo_port) + rng.randbytes(3000), "echo"),
        lambda: Hostile("s4-pipelined-garbage", _socks4(1, echo_port, lo, b"\x00")
                        + rng.randbytes(500), "echo"),
        lambda: Hostile("mutated-seed", _mutate(rng, rng.choice(seeds)), "eof"),
        lambda: Hostile("connect-and-close", b"", rng.choice(["eof", "rst"])),
    ]
    while True:
        for make in kinds:
            for _ in range(20):
                stream = make()
                if stream.ending == "echo" or safe_for_loopback(stream.payload):
                    yield stream
                    break


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randrange(1, 5)):
        if data and rng.random() < 0.5:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif data and rng.random() < 0.5:
            del data[rng.randrange(len(data)):]
        else:
            pos = rng.randrange(len(data) + 1)
            data[pos:pos] = rng.randbytes(rng.randrange(1, 16))
    return bytes(data)


def make_streams(count: int, seed: int, echo_port: int, seeds: list[bytes]) -> list[Hostile]:
    rng = random.Random(seed)
    gen = _streams(rng, echo_port, seeds)
    return [next(gen) for _ in range(count)]


def send_hostile(address: tuple[str, int], stream: Hostile, timeout: float = 10) -> bytes:
    """Play one hostile client; returns what the server sent back (bounded)."""
    received = b""
    with socket.create_connection(address, timeout=timeout) as sock:
        try:
            if stream.payload:
                sock.sendall(stream.payload)
            if stream.ending == "rst":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return b""
            if stream.ending in ("eof", "echo"):
                sock.shutdown(socket.SHUT_WR)
            while len(received) < 1 << 20:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except OSError:
            pass  # the server may reset a connection it gave up on: that is allowed
    return received
