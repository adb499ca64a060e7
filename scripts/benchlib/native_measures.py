"""Native shim measures: whole-process time of one ``curl`` fetch, and per-connect cost
over 1,000 connects in one process (``loadgen connects``).

Subjects: direct (no proxy), curl's own ``--socks5-hostname``, the socksify shim preloaded
(``LD_PRELOAD=libsocksify.so``, the shim alone), ``socksify-run`` (the command users type:
the shim plus the C launcher that execs the program), ``proxychains4`` and
``torsocks``. Every proxied subject goes through the same client-side proxy and sends the
destination as a name the proxy resolves (remote DNS: ``socks5h``, ``--socks5-hostname``,
proxychains' ``proxy_dns``, torsocks' ``.onion`` path; torsocks refuses loopback
destinations and resolves other names with Tor's own RESOLVE command, so a ``.onion`` name
is the one way it reaches a local target through a plain SOCKS5 proxy).

The per-connect measure adds two rows: a built-in SOCKS5 client (the handshake done by the
C program itself, as a program with its own SOCKS support would) and the shim preloaded but
told to bypass the destination (``SOCKSIFY_NO_PROXY``): the hooks' own cost on a direct
connect (an idea taken from scripts/bench_native_shim.py).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

from .context import Context, clean_env, last_line, run_keyvalues
from .processes import BENCH_NAME, Server, Unavailable, find_program
from .results import DIRECT, Measure, Target, overhead_at_most

CURL_OWN = "curl --socks5-hostname"
PRELOAD = "socksify (LD_PRELOAD)"
RUN = "socksify-run"
BUILTIN = "built-in SOCKS5 (C)"
#: the shim preloaded but told to bypass the destination: the hooks' own cost
BYPASS = "socksify (LD_PRELOAD, bypassed)"
CURL_SUBJECTS = [DIRECT, CURL_OWN, PRELOAD, RUN, "proxychains4", "torsocks"]
CONNECT_SUBJECTS = [DIRECT, BYPASS, BUILTIN, PRELOAD, "proxychains4", "torsocks"]

CURL_TARGET = Target("socksify shim (LD_PRELOAD) <= curl --socks5-hostname + 0.5 ms",
                     overhead_at_most(PRELOAD, CURL_OWN, 0.5, "ms"))


def measures() -> list[Measure]:
    curl = Measure("curl", "Native shim: whole curl process", "ms", False,
                   "one `curl http://NAME:PORT/` process, start to exit")
    curl.targets = [CURL_TARGET]
    connects = Measure("connects", "Native shim: per connect, one process", "us", False,
                       "N x (socket, connect, close) in one C process, divided by N")
    return [curl, connects]


def subjects_for(measure: Measure) -> list[str]:
    return CURL_SUBJECTS if measure.key == "curl" else CONNECT_SUBJECTS


def _library() -> str:
    """The preload library; our own product, so its absence is a failure, not a missing
    peer."""
    try:
        from socksify import _preload
    except ImportError as exc:
        raise Unavailable("failed", f"socksify native shim not importable: {exc}") from None
    try:
        return _preload.library_path()
    except (FileNotFoundError, AttributeError) as exc:
        raise Unavailable("failed", f"libsocksify.so not built: {exc}") from None


def _proxychains_conf(ctx: Context, proxy: Server, remote_dns: bool) -> str:
    path = ctx.workdir / f"proxychains-{proxy.port}.conf"
    lines = ["strict_chain", "quiet_mode", "tcp_read_time_out 15000",
             "tcp_connect_time_out 8000"]
    if remote_dns:
        lines.append("proxy_dns")
    lines += ["[ProxyList]", f"socks5 {proxy.host} {proxy.port}"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _torsocks_conf(ctx: Context, proxy: Server) -> str:
    path = ctx.workdir / f"torsocks-{proxy.port}.conf"
    path.write_text(f"TorAddress {proxy.host}\nTorPort {proxy.port}\n"
                    "OnionAddrRange 127.42.42.0/24\n")
    return str(path)


def wrap(ctx: Context, subject: str, program: list[str], name_args, ip_args
         ) -> tuple[list[str], dict]:
    """argv and environment that run ``program`` (+ its destination arguments) as
    ``subject``: ``name_args(host)`` gives the destination arguments for a host string."""
    proxy: Server = ctx.client_proxy
    name = BENCH_NAME if proxy.resolves_names else ctx.target.host
    if subject == DIRECT:
        return [*program, *ip_args], clean_env()
    if subject == BYPASS:
        return [*program, *ip_args], clean_env(
            LD_PRELOAD=_library(), SOCKSIFY_PROXY=proxy.url("socks5h"),
            SOCKSIFY_NO_PROXY=ctx.target.host)
    if subject == PRELOAD:
        return [*program, *name_args(name)], clean_env(
            LD_PRELOAD=_library(), SOCKSIFY_PROXY=proxy.url("socks5h"))
    if subject == RUN:
        _library()
        # the installed command (the C launcher), as users run it; else the Python one
        command = shutil.which(RUN)
        launcher = [command] if command else [sys.executable, "-m", "socksify.run"]
        return [*launcher, "--proxy", proxy.url("socks5h"), "--", *program,
                *name_args(name)], clean_env()
    if subject == "proxychains4":
        conf = _proxychains_conf(ctx, proxy, proxy.resolves_names)
        return [find_program("proxychains4"), "-q", "-f", conf, *program,
                *name_args(name)], clean_env()
    if subject == "torsocks":
        torsocks = find_program("torsocks")
        if not proxy.resolves_names:
            raise Unavailable("failed", "torsocks needs a proxy that resolves a .onion name "
                              "(unshare -m for microsocks, or socksify-server [hosts])")
        return [torsocks, *program, *name_args(BENCH_NAME)], clean_env(
            TORSOCKS_CONF_FILE=_torsocks_conf(ctx, proxy))
    raise KeyError(subject)


def curl_round(ctx: Context, measure: Measure, subject: str) -> None:
    curl = find_program("curl")
    port = ctx.target.port
    base = [curl, "-q", "-sS", "--max-time", "20"]
    if subject == CURL_OWN:
        proxy: Server = ctx.client_proxy
        name = BENCH_NAME if proxy.resolves_names else ctx.target.host
        argv = [*base, "--socks5-hostname", f"{proxy.host}:{proxy.port}",
                f"http://{name}:{port}/"]
        env = clean_env()
    else:
        argv, env = wrap(ctx, subject, base, lambda host: [f"http://{host}:{port}/"],
                         [f"http://{ctx.target.host}:{port}/"])
    times = []
    for i in range(ctx.sizes.curl_runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0 or proc.stdout != b"ok\n":
            raise Unavailable("failed", f"exit {proc.returncode}: "
                              f"{last_line(proc.stderr.decode(errors='replace'))}")
        if i:  # the first run warms the page cache and the proxy
            times.append(elapsed * 1e3)
    measure.row(subject).rounds.append(statistics.median(times))


def connects_round(ctx: Context, measure: Measure, subject: str) -> None:
    n = ctx.sizes.native_connects
    port = str(ctx.target.port)
    program = [ctx.loadgen, "connects"]
    if subject == BUILTIN:
        proxy: Server = ctx.client_proxy
        name = BENCH_NAME if proxy.resolves_names else ctx.target.host
        argv = [*program, name, port, str(n), "socks5", proxy.host, str(proxy.port)]
        env = clean_env()
    else:
        argv, env = wrap(ctx, subject, program, lambda host: [host, port, str(n)],
                         [ctx.target.host, port, str(n)])
    out = run_keyvalues(argv, timeout=120, env=env)
    measure.row(subject).rounds.append(out["seconds"] / out["count"] * 1e6)


def run_round(ctx: Context, measure: Measure, subject: str) -> None:
    if measure.key == "curl":
        curl_round(ctx, measure, subject)
    else:
        connects_round(ctx, measure, subject)
