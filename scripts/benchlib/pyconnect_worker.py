"""One Python client's per-connect cost, run in a fresh interpreter per subject (so a
patched ``socket`` module cannot leak into the others):

    python pyconnect_worker.py SUBJECT PROXY_HOST PROXY_PORT DEST_HOST DEST_PORT COUNT

Times COUNT x (open a connection to DEST through the proxy, close it) after a warm-up and
prints "count N median_us M mean_us A cpu_us C" (C: this process's CPU time per connection,
which moves less with the machine's load than wall-clock time). DEST_HOST is sent to the
proxy unresolved wherever the client can (remote DNS), as in the native measures.
Subjects: direct, handwritten, pysocks, python-socks, socksify-client
(socksify.create_connection), socksify-patch (socksify.patch() + socket.create_connection),
socksify-patch-connect (socksify.patch() + socket.socket() + connect()).
"""

from __future__ import annotations

import socket
import statistics
import sys
import time


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("proxy closed the connection")
        data += chunk
    return data


def handwritten(proxy: tuple[str, int], host: str, port: int) -> socket.socket:
    """The least a SOCKS5 client can do (RFC 1928 §3, §4, §6): no auth, CONNECT to a name
    (ATYP 3), read the reply; no validation beyond the reply code."""
    sock = socket.create_connection(proxy)
    sock.sendall(b"\x05\x01\x00")
    recv_exact(sock, 2)
    name = host.encode()
    sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big"))
    head = recv_exact(sock, 5)
    if head[1] != 0:
        raise ConnectionError(f"SOCKS5 reply {head[1]}")
    rest = {1: 4 + 2 - 1, 4: 16 + 2 - 1, 3: head[4] + 2}[head[3]]
    recv_exact(sock, rest)
    return sock


def opener(subject: str, proxy_host: str, proxy_port: int, host: str, port: int):
    proxy = (proxy_host, proxy_port)
    url = f"socks5h://{proxy_host}:{proxy_port}"
    if subject == "direct":
        return lambda: socket.create_connection((host, port))
    if subject == "handwritten":
        return lambda: handwritten(proxy, host, port)
    if subject == "pysocks":
        import socks

        return lambda: socks.create_connection(
            (host, port), proxy_type=socks.SOCKS5, proxy_addr=proxy_host,
            proxy_port=proxy_port, proxy_rdns=True)
    if subject == "python-socks":
        from python_socks.sync import Proxy

        # python-socks has no socks5h scheme; rdns=True sends the name to the proxy
        p = Proxy.from_url(f"socks5://{proxy_host}:{proxy_port}", rdns=True)
        return lambda: p.connect(dest_host=host, dest_port=port)
    if subject == "socksify-client":
        import socksify

        return lambda: socksify.create_connection((host, port), proxy=url)
    if subject == "socksify-patch":
        import socksify

        socksify.patch(url)
        return lambda: socket.create_connection((host, port))
    if subject == "socksify-patch-connect":
        import socksify

        socksify.patch(url)

        def connect_plain_socket():
            sock = socket.socket()
            try:
                sock.connect((host, port))
            except BaseException:
                sock.close()
                raise
            return sock

        return connect_plain_socket
    raise SystemExit(f"unknown subject {subject!r}")


def main(argv: list[str]) -> int:
    subject, proxy_host, proxy_port, host, port, count = argv
    open_one = opener(subject, proxy_host, int(proxy_port), host, int(port))
    for _ in range(min(50, int(count))):  # warm-up: imports, caches, the proxy's pools
        open_one().close()
    times = []
    clock = time.perf_counter
    cpu_start = time.process_time()
    for _ in range(int(count)):
        start = clock()
        open_one().close()
        times.append(clock() - start)
    cpu = time.process_time() - cpu_start
    print(f"count {len(times)} median_us {statistics.median(times) * 1e6:.2f} "
          f"mean_us {statistics.fmean(times) * 1e6:.2f} cpu_us {cpu / len(times) * 1e6:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
