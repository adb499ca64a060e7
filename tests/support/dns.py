"""A tiny UDP DNS server on loopback, for ``dig @127.0.0.1 -p PORT name`` through the shim.

``dns_server`` starts a server on 127.0.0.1 port 0 and gives a :class:`DnsServer` with
``.host``, ``.port``, ``.records`` (name -> IPv4 address string, initially
``{"example.test": "10.1.2.3"}``; a test may add names; the answers are data only, nothing
ever contacts them) and ``.queries``, a list of ``(name, qtype, (source_host, source_port))``
tuples, one per datagram it answered. Under a SOCKS shim the source is the proxy's UDP relay,
which is how a test proves the query was relayed and not sent directly.

Only what ``dig`` needs is implemented (RFC 1035 §4.1): one question, class IN; A queries for
a known name get one A record, other types of a known name get an empty NOERROR answer, and
unknown names get NXDOMAIN. Malformed datagrams are ignored.
"""

import contextlib
import socket
import struct
import threading

import pytest

DEFAULT_RECORDS = {"example.test": "10.1.2.3"}

QTYPE_A = 1
CLASS_IN = 1
_FLAG_QR_AA = 0x8400  # response, authoritative answer
_FLAG_RD = 0x0100
_RCODE_NXDOMAIN = 3


def parse_question(packet: bytes) -> tuple[int, int, str, int, int]:
    """Return ``(id, flags, name, qtype, end_of_question)``; ``ValueError`` when malformed."""
    if len(packet) < 12:
        raise ValueError("short header")
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise ValueError("expected exactly one question")
    labels = []
    offset = 12
    while True:
        if offset >= len(packet):
            raise ValueError("truncated name")
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length > 63:
            raise ValueError("compressed or oversized label in a question")
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(packet):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack("!HH", packet[offset : offset + 4])
    if qclass != CLASS_IN:
        raise ValueError("only class IN")
    return ident, flags, ".".join(labels).lower(), qtype, offset + 4


def build_answer(packet: bytes, records: dict[str, str]) -> bytes:
    """The response datagram for query ``packet`` (RFC 1035 §4.1.1 header, §4.1.3 RR)."""
    ident, flags, name, qtype, end = parse_question(packet)
    question = packet[12:end]
    address = records.get(name)
    rcode = 0 if address is not None else _RCODE_NXDOMAIN
    answers = b""
    if address is not None and qtype == QTYPE_A:
        # name as a pointer to the question (offset 12), TTL 60, RDLENGTH 4
        answers = struct.pack("!HHHIH", 0xC00C, QTYPE_A, CLASS_IN, 60, 4)
        answers += socket.inet_aton(address)
    header = struct.pack(
        "!HHHHHH",
        ident,
        _FLAG_QR_AA | (flags & _FLAG_RD) | rcode,
        1,
        1 if answers else 0,
        0,
        0,
    )
    return header + question + answers


class DnsServer:
    """The running server: ``.host``, ``.port``, ``.records``, ``.queries``."""

    def __init__(self, records: dict[str, str], host: str = "127.0.0.1"):
        self.records = {name.lower().rstrip("."): addr for name, addr in records.items()}
        self.queries: list[tuple[str, int, tuple]] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.settimeout(0.05)
        self.host = host
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                packet, source = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = build_answer(packet, self.records)
                _, _, name, qtype, _ = parse_question(packet)
            except ValueError:
                continue
            self.queries.append((name, qtype, source[:2]))
            with contextlib.suppress(OSError):
                self._sock.sendto(reply, source)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def dns_server():
    server = DnsServer(DEFAULT_RECORDS)
    yield server
    server.close()
