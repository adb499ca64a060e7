"""asyncio concurrency through a slow proxy, and proof that nothing but the proxy is
contacted (strace) and that no name is resolved locally (a network namespace without DNS)."""

import asyncio
import pathlib
import re
import subprocess
import sys
import textwrap
import threading

import pytest
from support.peers import require_peer

from socksify.protocol import (
    NEED_DATA,
    Address,
    AuthMethod,
    Connection,
    Greeting,
    MethodSelected,
    Reply,
    Request,
    Role,
)

from .conftest import clean_env

pytestmark = pytest.mark.e2e

DELAY = 0.2
TESTS_DIR = pathlib.Path(__file__).resolve().parent.parent


class DelayingProxy:
    """A SOCKS5 server (driving the sans-IO core) that waits DELAY before each reply."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.sessions = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(60), "the delaying proxy did not start"

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0, backlog=256)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        # close() stopped the loop: end the sessions still relaying (each closes its
        # streams) and close the loop here, or the abandoned coroutines are finalised
        # later, in another test, and their writer.close() meets a closed loop.
        sessions = asyncio.all_tasks(self.loop)
        for task in sessions:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*sessions, return_exceptions=True))
        self.loop.run_until_complete(asyncio.sleep(0))  # the transports' close callbacks
        self.loop.close()

    async def _event(self, conn, reader):
        while (event := conn.next_event()) is NEED_DATA:
            conn.receive_data(await reader.read(4096))
        return event

    async def _session(self, reader, writer):
        conn = Connection(Role.SERVER)
        up_writer = None
        try:
            greeting = await self._event(conn, reader)
            assert isinstance(greeting, Greeting)
            await asyncio.sleep(DELAY)
            writer.write(conn.send(MethodSelected(AuthMethod.NO_AUTH)))
            request = await self._event(conn, reader)
            assert isinstance(request, Request)
            up_reader, up_writer = await asyncio.open_connection(request.address.host, request.port)
            await asyncio.sleep(DELAY)
            writer.write(conn.send(Reply(0, Address.from_host("127.0.0.1"), 1)))
            self.sessions += 1

            async def pump(src, dst):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                dst.write_eof()

            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        except (OSError, AssertionError):
            pass
        finally:
            writer.close()
            if up_writer is not None:
                up_writer.close()

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def test_asyncio_connections_run_concurrently(runner, tcp_echo_server):
    """100 connections, each handshake delayed 2 x 200 ms by the proxy: one after the other
    they would take 40 s; on the loop they overlap. (A functional check with a wide margin,
    not a benchmark.)"""
    proxy = DelayingProxy()
    script = """
        import asyncio, sys, time
        async def one(port, index):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            message = f"hello {index}".encode()
            writer.write(message)
            await writer.drain()
            data = await reader.readexactly(len(message))
            writer.close()
            await writer.wait_closed()
            return data == message
        async def main(port):
            start = time.monotonic()
            results = await asyncio.wait_for(
                asyncio.gather(*(one(port, i) for i in range(100))), 60)
            print(sum(results), round(time.monotonic() - start, 2))
        asyncio.run(main(int(sys.argv[1])))
    """
    try:
        out = runner.run_script(
            f"socks5://127.0.0.1:{proxy.port}", script, str(tcp_echo_server[1]), timeout=90
        )
    finally:
        proxy.close()
    count, elapsed = out.split()
    assert count == "100"
    assert proxy.sessions == 100
    # serialised they would take 40 s; half that is a margin for a loaded CI machine
    assert float(elapsed) < 20, f"100 handshakes took {elapsed} s: the loop was blocked"


LEAK_SCRIPT = """
    import asyncio, socket, sys, urllib.request
    url, echo_port = sys.argv[1], int(sys.argv[2])
    body = urllib.request.urlopen(url, timeout=10).read()
    socket.getaddrinfo("leak-check-1.example", 80)
    socket.gethostbyname("leak-check-2.example")
    socket.gethostbyname_ex("leak-check-3.example")
    try:
        socket.gethostbyaddr("192.0.2.1")
    except socket.herror:
        pass
    socket.getnameinfo(("192.0.2.1", 80), 0)
    s = socket.create_connection(("only-proxy.test", echo_port), timeout=10)
    s.sendall(b"x"); assert s.recv(1) == b"x"; s.close()
    async def main():
        r, w = await asyncio.open_connection("only-proxy.test", echo_port)
        w.write(b"y"); await w.drain(); assert await r.readexactly(1) == b"y"; w.close()
    asyncio.run(main())
    print(len(body))
"""


def test_strace_shows_only_the_proxy_is_contacted(
    runner, socks_server, http_server, tcp_echo_server
):
    strace = require_peer("strace")
    srv = socks_server(hosts={"only-proxy.test": "127.0.0.1"})
    path = runner.script(LEAK_SCRIPT)
    trace = runner.tmp_path / "trace.txt"
    result = subprocess.run(
        [
            strace,
            "-f",
            "-qq",
            "-e",
            "trace=connect,sendto,sendmsg",
            "-o",
            str(trace),
            sys.executable,
            "-m",
            "socksify",
            "--proxy",
            srv.url("socks5h"),
            path,
            http_server.url("/bytes/3000", host="only-proxy.test"),
            str(tcp_echo_server[1]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3000"
    lines = trace.read_text().splitlines()
    inet = [line for line in lines if "AF_INET" in line]
    ports = {int(m) for line in inet for m in re.findall(r"sin6?_port=htons\((\d+)\)", line)}
    assert inet, "strace saw no connect() at all: the check would prove nothing"
    assert ports == {srv.port}, f"contacted ports {ports}, expected only the proxy {srv.port}"
    assert not any("htons(53)" in line for line in lines)
    assert len(srv.wait_records(3)) >= 3


def test_no_local_dns_inside_a_network_namespace(tmp_path):
    """In a fresh network namespace there is no DNS server at all: the names only the proxy
    knows still work, so they were never resolved here."""
    unshare = require_peer("unshare")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"MISSING PRIVILEGE: unshare -n does not work here: {probe.stderr!r}")
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(f"""
        import subprocess, sys, os
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from support.socks_server import make_config
        from support.targets import HttpTarget, serving
        from socksify.server import ThreadedServer
        import threading
        records = []
        cfg = make_config(hosts={{"only-proxy.test": "127.0.0.1"}})
        server = ThreadedServer(cfg, on_session=records.append).start()
        target = HttpTarget()
        threading.Thread(target=target.server.serve_forever, daemon=True).start()
        script = os.path.join(os.path.dirname(__file__), "child.py")
        child = subprocess.run(
            [sys.executable, "-m", "socksify", "--proxy",
             f"socks5h://127.0.0.1:{{server.addresses[0][1]}}", script,
             target.url("/bytes/999", host="only-proxy.test")],
            capture_output=True, text=True, timeout=60)
        print(child.returncode, child.stdout.strip(), [r["destination"] for r in records])
        sys.stderr.write(child.stderr)
        server.stop()
    """)
    )
    (tmp_path / "child.py").write_text(
        textwrap.dedent("""
        import socket, sys, urllib.request
        print(len(urllib.request.urlopen(sys.argv[1], timeout=10).read()))
    """)
    )
    # bring loopback up inside the namespace, then run everything there
    result = subprocess.run(
        [unshare, "-n", "sh", "-c", f"ip link set lo up && exec {sys.executable} {driver}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 999 ['only-proxy.test']", result.stderr
