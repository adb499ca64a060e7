#!/usr/bin/env python3
"""Benchmark of the native shim (not a test: numbers depend on the machine).

    scripts/bench_native_shim.py [--runs 30] [--connects 1000]

Everything runs on loopback: a local HTTP page (Python's http.server in a thread) and
microsocks as the proxy for every proxied variant, so the figures compare the CLIENT side:

1. Whole-process cost of one ``curl`` fetch (median wall time over --runs), side by side:
   plain curl (direct), curl --socks5-hostname, socksify-run curl, LD_PRELOAD=libsocksify.so
   curl, proxychains4 -q curl, torsocks curl.
2. Per-connect cost over --connects sequential connect()+close() in ONE process (a small C
   program compiled here): direct, preloaded but bypassed (NO_PROXY: the hook's own cost),
   preloaded and proxied, and proxychains4 for comparison.

Requires curl, microsocks and cc; proxychains4 and torsocks are measured when installed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from socksify import _preload  # noqa: E402

CONNECT_LOOP = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = atoi(argv[2]);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("connect");
            return 1;
        }
        close(s);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n);
    return 0;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_page(directory: str):
    with open(os.path.join(directory, "index.html"), "wb") as f:
        f.write(b"<html>benchmark page</html>\n" * 40)
    handler = functools.partial(_QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def microsocks():
    port = free_port()
    proc = subprocess.Popen([shutil.which("microsocks"), "-i", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            break
        time.sleep(0.05)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def accept_and_close():
    """A listener with a deep backlog that accepts and closes at once (the connect target)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    stop = threading.Event()

    def run():
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        with contextlib.suppress(OSError), socket.create_connection(listener.getsockname(), 1):
            pass
        thread.join(timeout=5)
        listener.close()


def median_ms(argv, env, runs: int) -> float | None:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, timeout=60)
        times.append((time.perf_counter() - start) * 1000)
        if result.returncode != 0:
            print(f"  ! {argv[0]} failed: {result.stderr.decode(errors='replace')[:200]}")
            return None
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--connects", type=int, default=1000)
    args = parser.parse_args()
    for tool in ("curl", "microsocks", "cc"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is required")
    library = _preload.library_path()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SOCKSIFY_", "LD_PRELOAD", "ALL_PROXY", "all_proxy"))}
    curl = shutil.which("curl")
    with tempfile.TemporaryDirectory() as tmp, http_page(tmp) as http_port, \
            microsocks() as proxy_port, accept_and_close() as sink_port:
        url = f"http://127.0.0.1:{http_port}/index.html"
        proxy = f"socks5://127.0.0.1:{proxy_port}"
        pc_conf = os.path.join(tmp, "proxychains.conf")
        with open(pc_conf, "w") as f:
            f.write(f"strict_chain\nproxy_dns\n[ProxyList]\nsocks5 127.0.0.1 {proxy_port}\n")
        ts_conf = os.path.join(tmp, "torsocks.conf")
        with open(ts_conf, "w") as f:
            f.write(f"TorAddress 127.0.0.1\nTorPort {proxy_port}\nAllowOutboundLocalhost 1\n")
        fetch = [curl, "-s", "-o", "/dev/null", url]
        shim_env = dict(base, LD_PRELOAD=library, SOCKSIFY_PROXY=proxy)
        variants = [
            ("plain curl (direct)", fetch, base),
            ("curl --socks5-hostname", [curl, "-s", "-o", "/dev/null", "--socks5-hostname",
                                        f"127.0.0.1:{proxy_port}", url], base),
            ("socksify-run curl", [sys.executable, "-m", "socksify.run", "--proxy", proxy,
                                   "--", *fetch], dict(base, PYTHONPATH=ROOT)),
            ("LD_PRELOAD=libsocksify.so curl", fetch, shim_env),
        ]
        if shutil.which("proxychains4"):
            variants.append(("proxychains4 -q curl",
                             [shutil.which("proxychains4"), "-q", "-f", pc_conf, *fetch], base))
        if shutil.which("torsocks"):
            variants.append(("torsocks curl", [shutil.which("torsocks"), *fetch],
                             dict(base, TORSOCKS_CONF_FILE=ts_conf)))
        print(f"1. one curl fetch of a local page, median of {args.runs} runs (ms)")
        plain = None
        for name, argv, env in variants:
            ms = median_ms(argv, env, args.runs)
            if ms is None:
                continue
            plain = plain if plain is not None else ms
            print(f"   {name:34s} {ms:7.2f}   (+{ms - plain:6.2f})")

        src = os.path.join(tmp, "connect_loop.c")
        with open(src, "w") as f:
            f.write(CONNECT_LOOP)
        prog = os.path.join(tmp, "connect_loop")
        subprocess.run(["cc", "-O2", "-o", prog, src], check=True, timeout=60)
        loop = [prog, str(sink_port), str(args.connects)]
        print(f"\n2. {args.connects} sequential connect()+close() in one process (us/connect)")
        per_connect = [
            ("direct", loop, base),
            ("preloaded, bypassed (NO_PROXY)", loop,
             dict(shim_env, SOCKSIFY_NO_PROXY="127.0.0.1")),
            ("preloaded, proxied (microsocks)", loop, shim_env),
        ]
        if shutil.which("proxychains4"):
            per_connect.append(("proxychains4 (microsocks)",
                                [shutil.which("proxychains4"), "-q", "-f", pc_conf, *loop], base))
        for name, argv, env in per_connect:
            out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
            shown = out.stdout.strip() if out.returncode == 0 else f"failed: {out.stderr[:100]}"
            print(f"   {name:34s} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
