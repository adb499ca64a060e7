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

The curl measure adds one diagnostic row, ``socksify (LD_PRELOAD, IP URL)``: the shim
preloaded, curl given the target's IP address instead of the name. Handed a name, curl
resolves it itself, in a resolver thread it starts for the purpose (under any preloaded
socksifier; ``--socks5-hostname`` resolves nothing), and that thread alone costs ~0.15 ms
on the 2-core bench machine (curl by a name in /etc/hosts vs by IP, no proxy at all); by
IP, curl starts none, so this row is the shim's own cost (library load, start-up, hooks,
the handshake) over ``--socks5-hostname``. It is not judged by a target.

The per-connect measure adds two rows: a built-in SOCKS5 client (the handshake done by the
C program itself, as a program with its own SOCKS support would) and the shim preloaded but
told to bypass the destination (``SOCKSIFY_NO_PROXY``): the hooks' own cost on a direct
connect (an idea taken from scripts/bench_native_shim.py).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time

from .context import Context, clean_env, last_line, run_keyvalues
from .processes import BENCH_NAME, Server, Unavailable, find_program
from .results import DIRECT, Measure, Target, overhead_at_most

CURL_OWN = "curl --socks5-hostname"
PRELOAD = "socksify (LD_PRELOAD)"
RUN = "socksify-run"
BUILTIN = "built-in SOCKS5 (C)"
#: the shim preloaded, curl given an IP address: no resolver thread (module docstring)
PRELOAD_IP = "socksify (LD_PRELOAD, IP URL)"
#: the shim preloaded but told to bypass the destination: the hooks' own cost
BYPASS = "socksify (LD_PRELOAD, bypassed)"
CURL_SUBJECTS = [DIRECT, CURL_OWN, PRELOAD, RUN, PRELOAD_IP, "proxychains4", "torsocks"]
CONNECT_SUBJECTS = [DIRECT, BYPASS, BUILTIN, PRELOAD, "proxychains4", "torsocks"]

#: the issue's target counts the launcher too: both ways of running the shim are judged
CURL_TARGETS = [
    Target("socksify shim (LD_PRELOAD) <= curl --socks5-hostname + 0.5 ms",
           overhead_at_most(PRELOAD, CURL_OWN, 0.5, "ms")),
    Target("socksify-run (launcher + shim) <= curl --socks5-hostname + 0.5 ms",
           overhead_at_most(RUN, CURL_OWN, 0.5, "ms")),
]


def curl_method(runs: int, launcher: str = "") -> str:
    """The curl measure's description in the table: what one round does."""
    text = (f"`curl http://NAME:PORT/` processes, start to exit: per round a warm-up run, "
            f"then {runs} runs per subject interleaved (order rotated each pass); "
            "round figure = median of the runs")
    return f"{text}; socksify-run = {launcher}" if launcher else text


def measures() -> list[Measure]:
    curl = Measure("curl", "Native shim: whole curl process", "ms", False, curl_method(0))
    curl.targets = list(CURL_TARGETS)
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


def _is_elf(path: str | None) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except (OSError, TypeError):
        return False


def launcher() -> list[str]:
    """``socksify-run`` as users type it: the C launcher pip installed into the scripts
    directory of the Python running the benchmark (the package measured), else the first
    C launcher on PATH, else ``python -m socksify.run``. A version manager's shell shim
    on PATH (pyenv's ``shims/socksify-run`` costs ~50 ms of bash and ``pyenv exec``) is
    skipped: its cost is not socksify's."""
    candidates = [os.path.join(sysconfig.get_path("scripts"), RUN), shutil.which(RUN)]
    for path in candidates:
        if _is_elf(path) and os.access(path, os.X_OK):
            return [path]
    return [sys.executable, "-m", "socksify.run"]


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
        return [*launcher(), "--proxy", proxy.url("socks5h"), "--", *program,
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


def _curl_command(ctx: Context, subject: str) -> tuple[list[str], dict]:
    """argv and environment of one ``curl http://NAME:PORT/`` fetch as ``subject``."""
    curl = find_program("curl")
    port = ctx.target.port
    base = [curl, "-q", "-sS", "--max-time", "20"]
    if subject == CURL_OWN:
        proxy: Server = ctx.client_proxy
        name = BENCH_NAME if proxy.resolves_names else ctx.target.host
        return [*base, "--socks5-hostname", f"{proxy.host}:{proxy.port}",
                f"http://{name}:{port}/"], clean_env()
    if subject == PRELOAD_IP:
        argv, env = wrap(ctx, PRELOAD, base, lambda host: [f"http://{host}:{port}/"], [])
        return [*base, f"http://{ctx.target.host}:{port}/"], env
    return wrap(ctx, subject, base, lambda host: [f"http://{host}:{port}/"],
                [f"http://{ctx.target.host}:{port}/"])


def _time_fetch(argv: list[str], env: dict) -> float:
    """Wall time of one fetch process in ms, start to exit; a failed fetch is Unavailable
    (a subject whose page does not arrive is not measured)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Unavailable("failed", "curl timed out after 60 s") from None
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or proc.stdout != b"ok\n":
        raise Unavailable("failed", f"exit {proc.returncode}: "
                          f"{last_line(proc.stderr.decode(errors='replace'))}")
    return elapsed * 1e3


def pass_order(subjects: list[str], pass_no: int) -> list[str]:
    """The subjects of one pass, rotated by the pass number so no subject always runs
    right after the same other one (a heavy one such as torsocks warms or evicts caches
    for whoever comes next)."""
    if not subjects:
        return []
    k = pass_no % len(subjects)
    return subjects[k:] + subjects[:k]


def round_value(times: list[float]) -> float:
    """A round's figure from its per-process times: their median. One process's wall time
    has a long right tail (a context switch, a page-cache miss, a timer tick of another
    program on the 2 cores), which the median ignores and a mean does not."""
    if not times:
        raise ValueError("a round needs at least one timed process")
    return statistics.median(times)


def curl_round(ctx: Context, measure: Measure, subjects: list[str]) -> dict[str, Unavailable]:
    """One round of the curl measure: a warm-up fetch per subject (page cache, the proxy,
    the dynamic loader's caches), then ``curl_runs`` passes in which every subject fetches
    once, in rotated order, so drift of the machine hits all subjects alike. Each subject's
    round figure is :func:`round_value` of its ``curl_runs`` times. Returns the subjects that
    failed (they are left out of the rest of the round)."""
    measure.method = curl_method(ctx.sizes.curl_runs, " ".join(launcher()))
    failed: dict[str, Unavailable] = {}
    commands = {}
    for subject in subjects:
        try:
            commands[subject] = _curl_command(ctx, subject)
            _time_fetch(*commands[subject])  # warm-up, not counted
        except Unavailable as exc:
            failed[subject] = exc
    times: dict[str, list[float]] = {s: [] for s in subjects if s not in failed}
    for pass_no in range(ctx.sizes.curl_runs):
        for subject in pass_order(list(times), pass_no):
            if subject in failed:
                continue
            try:
                times[subject].append(_time_fetch(*commands[subject]))
            except Unavailable as exc:
                failed[subject] = exc
    for subject, values in times.items():
        if subject not in failed:
            measure.row(subject).rounds.append(round_value(values))
    return failed


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


def interleaves(measure: Measure) -> bool:
    """True when one call of :func:`run_interleaved_round` runs the whole round (every
    subject, interleaved within it) instead of one :func:`run_round` call per subject."""
    return measure.key == "curl"


def run_interleaved_round(ctx: Context, measure: Measure, subjects: list[str]
                          ) -> dict[str, Unavailable]:
    return curl_round(ctx, measure, subjects)


def run_round(ctx: Context, measure: Measure, subject: str) -> None:
    connects_round(ctx, measure, subject)
