#!/usr/bin/env python3
"""Benchmark of the native shim (not a test: numbers depend on the machine).

    scripts/bench_native_shim.py [--runs 200] [--connects 1000] [--library PATH]
                                 [--launcher PATH]

Everything runs on loopback: a local HTTP page (Python's http.server in a thread) and
microsocks as the proxy for every proxied variant, so the figures compare the CLIENT side:

0. Start-up: ``/bin/true`` plain, with the library preloaded, and through each socksify-run
   (the native launcher and ``python -m socksify.run``): median wall time, and the
   instruction count under valgrind's callgrind when valgrind is installed (exact and
   repeatable, unlike wall time on a busy machine).
1. Whole-process cost of one ``curl`` fetch (median wall time over --runs; the variants
   run in turn within each round, so drift of the machine hits all alike), side by side:
   plain curl (direct), curl --socks5-hostname, socksify-run curl (native launcher),
   python -m socksify.run curl, LD_PRELOAD=libsocksify.so curl, proxychains4 -q curl,
   torsocks curl; "vs --socks5-hostname" is the overhead the performance target counts.
   The proxied fetches name the page by a host name only the proxy resolves (remote DNS,
   as ``scripts/bench`` does: microsocks in a private mount namespace whose /etc/hosts
   maps it; root only, else by IP). A program handed a name resolves it itself under the
   shim (curl starts a resolver thread: ~0.25 ms) while ``--socks5-hostname`` skips that,
   so the shim and socksify-run also get a row fetching an IP literal, and the difference
   shows what curl's own lookup costs. Two more rows are the base for those: curl's own
   ``--socks5`` by IP (no name resolved anywhere) and the same with an empty library
   preloaded (what any LD_PRELOAD costs). torsocks always fetches by IP (it would ask the
   proxy for Tor's RESOLVE).
2. Per-connect cost over --connects sequential connect()+close() in ONE process (a small C
   program compiled here): direct, preloaded but bypassed (NO_PROXY: the hook's own cost),
   preloaded and proxied, and proxychains4 for comparison.
3. Pass-through cost: ns per write() to /dev/null and per read() from /dev/zero (hooked
   calls on fds the shim does not own), direct and preloaded.

``--library`` / ``--launcher`` measure another build (say, an older commit's) instead of the
package's own files; ``--compare-launcher PATH`` (repeatable) adds rows for other launcher
builds, run in turn with the others (say, a glibc and a musl build of the same source, each
in a directory with a ``libsocksify.so`` symlink so it finds the library as installed).
The default launcher is the one ``scripts/bench`` measures: the C launcher pip installed in
the running Python's scripts directory (it finds the library through the path the build
wrote into it), else the package's own copy next to the library.
With ``perf`` usable, the launcher's own cost is also given as ``perf stat`` task-clock and
page faults (mean of --perf-runs runs up to the exec, on a program that does not exist).

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
from pathlib import Path

# benchlib from beside this script; socksify itself as installed (the package measured, as
# scripts/bench does: in a fresh checkout the source tree has no built library)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib.native_measures import launcher as installed_launcher  # noqa: E402
from benchlib.processes import BENCH_NAME, start_microsocks  # noqa: E402

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


PASS_LOOP = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    char buf[64] = {0};
    int out = open("/dev/null", O_WRONLY), in = open("/dev/zero", O_RDONLY);
    struct timespec a, b, c;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        if (write(out, buf, sizeof buf) != sizeof buf) return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    for (long i = 0; i < n; i++)
        if (read(in, buf, sizeof buf) != sizeof buf) return 1;
    clock_gettime(CLOCK_MONOTONIC, &c);
    printf("%.1f %.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n,
           ((c.tv_sec - b.tv_sec) * 1e9 + (c.tv_nsec - b.tv_nsec)) / n);
    return 0;
}
"""


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
def microsocks(workdir: str):
    """microsocks on loopback: (port, the name it resolves to 127.0.0.1 or None)."""
    server = start_microsocks(Path(workdir), {BENCH_NAME: "127.0.0.1"})
    try:
        yield server.port, BENCH_NAME if server.resolves_names else None
    finally:
        server.stop()


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


def empty_library(directory: str) -> str:
    """A shared library with nothing in it, built here: the cost of preloading as such."""
    src = os.path.join(directory, "empty.c")
    with open(src, "w") as f:
        f.write("void socksify_bench_empty(void) {}\n")
    lib = os.path.join(directory, "libempty.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", lib, src], check=True, timeout=60)
    return lib


def run_ms(argv, env) -> float | None:
    """Wall time of one run in ms (fork+exec+wait), None when it fails."""
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, timeout=60)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        print(f"  ! {argv[0]} failed: {result.stderr.decode(errors='replace')[:200]}")
        return None
    return elapsed


def medians_ms(variants, runs: int) -> dict[str, float]:
    """Median ms per variant name; the variants take turns within each round."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    failed: set[str] = set()
    for _ in range(runs):
        for name, argv, env in variants:
            if name in failed:
                continue
            ms = run_ms(argv, env)
            if ms is None:
                failed.add(name)
            else:
                times[name].append(ms)
    return {name: statistics.median(t) for name, t in times.items()
            if t and name not in failed}


def instructions(argv, env) -> int | None:
    """Instructions a run executes (valgrind --tool=callgrind), or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if not valgrind:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
             "--trace-children=yes", *argv],
            env=env, capture_output=True, text=True, timeout=120)
    counts = [int(line.rsplit(":", 1)[1].replace(",", "").strip())
              for line in result.stderr.splitlines() if "Collected :" in line]
    return sum(counts) if counts else None


def perf_stat(argv, env, runs: int) -> tuple[float, float] | None:
    """(task-clock ms, page faults), means of ``perf stat -r runs``; None without perf or
    when it cannot count (no permission, no PMU in a VM is fine: both are software events)."""
    perf = shutil.which("perf")
    if not perf:
        return None
    result = subprocess.run([perf, "stat", "-x,", "-r", str(runs), "-e", "task-clock,page-faults",
                             *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, timeout=600)
    values = {}
    for line in result.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in ("task-clock", "page-faults"):
            with contextlib.suppress(ValueError):
                values[fields[2]] = float(fields[0])
    if len(values) != 2:
        return None
    return values["task-clock"], values["page-faults"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--connects", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=1_000_000)
    parser.add_argument("--library", help="preload library to measure (default: the package's)")
    parser.add_argument("--launcher", help="native socksify-run to measure (default: the "
                        "package's)")
    parser.add_argument("--compare-launcher", action="append", default=[], metavar="PATH",
                        help="another socksify-run build measured alongside (repeatable)")
    parser.add_argument("--perf-runs", type=int, default=300)
    args = parser.parse_args()
    for tool in ("curl", "microsocks", "cc"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is required")
    library = os.path.abspath(args.library) if args.library else _preload.library_path()
    if args.launcher:
        launcher = args.launcher
    else:
        installed = installed_launcher()
        launcher = installed[0] if len(installed) == 1 else _preload.launcher_path()
    print(f"socksify-run (native): {launcher}")
    if not os.access(launcher, os.X_OK):
        print(f"(no native launcher at {launcher}: its rows are left out)")
        launcher = None
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SOCKSIFY_", "LD_PRELOAD", "ALL_PROXY", "all_proxy"))}
    if args.library:
        base["SOCKSIFY_LIBRARY"] = library  # the launcher then preloads this build too
    curl = shutil.which("curl")
    true = shutil.which("true")
    with tempfile.TemporaryDirectory() as tmp, http_page(tmp) as http_port, \
            microsocks(tmp) as (proxy_port, name), accept_and_close() as sink_port:
        url = f"http://127.0.0.1:{http_port}/index.html"
        # the proxied fetches name the page the way users do; by IP if the proxy cannot
        named_url = f"http://{name}:{http_port}/index.html" if name else url
        by = "by name (remote DNS)" if name else "by IP (the proxy resolves no name here)"
        proxy = f"socks5h://127.0.0.1:{proxy_port}"
        pc_conf = os.path.join(tmp, "proxychains.conf")
        with open(pc_conf, "w") as f:
            f.write(f"strict_chain\nproxy_dns\n[ProxyList]\nsocks5 127.0.0.1 {proxy_port}\n")
        ts_conf = os.path.join(tmp, "torsocks.conf")
        with open(ts_conf, "w") as f:
            f.write(f"TorAddress 127.0.0.1\nTorPort {proxy_port}\nAllowOutboundLocalhost 1\n")
        shim_env = dict(base, LD_PRELOAD=library, SOCKSIFY_PROXY=proxy)
        python_run = [sys.executable, "-m", "socksify.run", "--proxy", proxy, "--"]

        startup = [("true", [true], base),
                   ("LD_PRELOAD=libsocksify.so true", [true], shim_env)]
        launchers = [("native", launcher)] if launcher else []
        launchers += [(path, os.path.abspath(path)) for path in args.compare_launcher]
        for label, path in launchers:
            startup.append((f"socksify-run true ({label})", [path, "--proxy", proxy, true],
                            base))
        startup.append(("python -m socksify.run true", [*python_run, true], base))
        print(f"0. start-up, median of {args.runs} runs (ms) and instructions (callgrind)")
        medians = medians_ms(startup, args.runs)
        for name, argv, env in startup:
            if name in medians:
                count = instructions(argv, env) if "python" not in name else None
                shown = f"{count:>12,}" if count else ""
                print(f"   {name:34s} {medians[name]:7.2f}  {shown}")
        for label, path in launchers:
            # callgrind counts the image that exits, so the launcher's own work is measured
            # on a command that does not exist (every step but the exec: exit 127)
            itself = [path, "--proxy", proxy, "/nonexistent/program"]
            count = instructions(itself, base)
            if count:
                print(f"   {'socksify-run itself (' + label + ', no exec)':34s} {'':7s}  "
                      f"{count:>12,}")
            perf = perf_stat(itself, base, args.perf_runs)
            if perf:
                print(f"   {'':34s} perf stat -r {args.perf_runs}: {perf[0]:.3f} ms task-clock, "
                      f"{perf[1]:.0f} page faults")

        fetch = [curl, "-s", "-o", "/dev/null", url]
        named = [curl, "-s", "-o", "/dev/null", named_url]
        variants = [
            ("plain curl (direct)", fetch, base),
            ("curl --socks5-hostname", [curl, "-s", "-o", "/dev/null", "--socks5-hostname",
                                        f"127.0.0.1:{proxy_port}", named_url], base),
        ]
        for label, path in launchers:
            variants.append((f"socksify-run curl ({label})",
                             [path, "--proxy", proxy, "--", *named], base))
        variants += [
            ("python -m socksify.run curl", [*python_run, *named], base),
            ("LD_PRELOAD=libsocksify.so curl", named, shim_env),
        ]
        if named_url != url:  # (`name` itself is reused by the loops above)
            if launcher:
                variants.append(("socksify-run curl (native), IP literal",
                                 [launcher, "--proxy", proxy, "--", *fetch], base))
            variants.append(("LD_PRELOAD=libsocksify.so curl, IP literal", fetch, shim_env))
            # the base for the IP-literal rows: curl's own SOCKS5 with no name anywhere, and
            # the same with an empty library preloaded (what any LD_PRELOAD costs)
            own_by_ip = [curl, "-s", "-o", "/dev/null", "--socks5", f"127.0.0.1:{proxy_port}",
                         url]
            variants.append(("curl --socks5, IP literal", own_by_ip, base))
            variants.append(("empty LD_PRELOAD, curl --socks5, IP",
                             own_by_ip, dict(base, LD_PRELOAD=empty_library(tmp))))
        if shutil.which("proxychains4"):
            variants.append(("proxychains4 -q curl",
                             [shutil.which("proxychains4"), "-q", "-f", pc_conf, *named], base))
        if shutil.which("torsocks"):
            variants.append(("torsocks curl (by IP)", [shutil.which("torsocks"), *fetch],
                             dict(base, TORSOCKS_CONF_FILE=ts_conf)))
        print(f"\n1. one curl fetch of a local page {by}, median of {args.runs} runs (ms)")
        medians = medians_ms(variants, args.runs)
        plain = medians.get("plain curl (direct)")
        reference = medians.get("curl --socks5-hostname")
        width = max(len(name) for name, _, _ in variants)
        print(f"   {'':{width}s} {'ms':>7s}   {'vs direct':>9s}   {'vs --socks5-hostname':>20s}")
        for name, _, _ in variants:
            if name in medians and plain is not None and reference is not None:
                ms = medians[name]
                print(f"   {name:{width}s} {ms:7.2f}   {ms - plain:+9.2f}   "
                      f"{ms - reference:+20.2f}")

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

        src = os.path.join(tmp, "pass_loop.c")
        with open(src, "w") as f:
            f.write(PASS_LOOP)
        prog = os.path.join(tmp, "pass_loop")
        subprocess.run(["cc", "-O2", "-o", prog, src], check=True, timeout=60)
        print(f"\n3. pass-through: ns per write(/dev/null) and read(/dev/zero), "
              f"best of 5 x {args.passes:,}")
        for name, env in (("direct", base), ("preloaded", shim_env)):
            best = None
            for _ in range(5):
                out = subprocess.run([prog, str(args.passes)], env=env, capture_output=True,
                                     text=True, timeout=300)
                if out.returncode != 0:
                    break
                w, r = map(float, out.stdout.split())
                best = (w, r) if best is None else (min(best[0], w), min(best[1], r))
            shown = f"write {best[0]:6.1f}   read {best[1]:6.1f}" if best else "failed"
            print(f"   {name:34s} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
