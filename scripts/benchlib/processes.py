"""Starting and stopping what the benchmark measures: the compiled load generator, the
target, and the SOCKS servers (socksify-server, microsocks, danted), each on a free
loopback port.

A subject that cannot run raises :class:`Unavailable` with ``status`` "missing" (the peer is
not installed: the message names the Debian or PyPI package) or "failed" (it is installed
but did not start); the harness reports it in the table instead of stopping.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOADGEN_SOURCE = HERE / "loadgen.c"
BARE_SERVER_SOURCE = HERE / "bare_server.c"

#: program -> Debian package, for "missing" messages
PACKAGES = {
    "cc": "gcc", "microsocks": "microsocks", "danted": "dante-server", "curl": "curl",
    "proxychains4": "proxychains4", "torsocks": "torsocks", "unshare": "util-linux",
}

#: a name only the client-side proxy can resolve (torsocks sends .onion names to the proxy)
BENCH_NAME = "bench.onion"


class Unavailable(Exception):
    """A subject cannot be measured; ``status`` is "missing" or "failed"."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def find_program(name: str) -> str:
    """Absolute path of ``name`` (sbin included) or :class:`Unavailable` ("missing")."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if not path:
        package = PACKAGES.get(name, name)
        raise Unavailable("missing", f"{name} not installed (apt-get install {package})")
    return path


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free 127.0.0.1 port BELOW the ephemeral range. The connection measures leave tens
    of thousands of TIME_WAIT sockets on ephemeral ports, and ``bind(port 0)`` (which picks
    from that range) then fails with EADDRINUSE although ``connect()`` still works."""
    low = _ephemeral_low()
    candidates = list(range(max(1024, low - 12000), low))
    random.shuffle(candidates)
    for port in candidates[:500]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise Unavailable("failed", "no free port below the ephemeral range")


def build_program(workdir: Path, source: Path) -> str:
    """Compile one of the benchmark's C programs (``source``, next to this module) with the
    system C compiler into ``workdir``; return the executable's path."""
    cc = os.environ.get("CC") or find_program("cc")
    out = workdir / source.stem
    proc = subprocess.run(
        [cc, "-O2", "-pthread", "-o", str(out), str(source)],
        capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0:
        raise Unavailable("failed", f"cc {source.name} failed: {proc.stderr[-1000:]}")
    return str(out)


def build_loadgen(workdir: Path) -> str:
    """Compile loadgen.c into ``workdir``; return its path."""
    return build_program(workdir, LOADGEN_SOURCE)


def wait_port(proc: subprocess.Popen, port: int, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable("failed", f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise Unavailable("failed", f"{what} did not listen on 127.0.0.1:{port} in {timeout:.0f} s")


def pinned_to(cpus: list[int] | None):
    """A ``preexec_fn`` that pins the child, and so every process and thread it starts, to
    ``cpus`` (None: no pinning)."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 5 s; bounded."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class TargetServer:
    """``loadgen serve``: the sink / HTTP / idle-holding endpoint on 127.0.0.1."""

    def __init__(self, loadgen: str):
        self.proc = subprocess.Popen(
            [loadgen, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            stop(self.proc)
            raise Unavailable("failed", "loadgen serve did not report its port")
        self.port = int(line[1])
        self.host = "127.0.0.1"

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            stop(self.proc)


class Server:
    """A running SOCKS server: ``name``, ``host``, ``port``, ``proc``, ``resolves_names``."""

    def __init__(self, name: str, proc: subprocess.Popen, port: int, resolves_names: bool,
                 command: list[str]):
        self.name = name
        self.proc = proc
        self.host = "127.0.0.1"
        self.port = port
        self.resolves_names = resolves_names
        self.command = command

    def url(self, scheme: str = "socks5h") -> str:
        return f"{scheme}://{self.host}:{self.port}"

    def stop(self) -> None:
        stop(self.proc)


def socksify_server_command() -> list[str]:
    """The bench's own interpreter running the installed package (``socksify-server`` is
    the same entry point); the console script on PATH if the package is not importable."""
    try:
        import socksify.server  # noqa: F401
    except ImportError:
        return [find_program("socksify-server")]
    return [sys.executable, "-m", "socksify.server"]


#: socksify-server's client limit for the benchmark (above the memory measure's count)
MAX_CLIENTS = 20000


def start_socksify_server(workdir: Path, hosts: dict[str, str] | None = None,
                          workers: str = "auto", cpus: list[int] | None = None) -> Server:
    """``socksify-server --listen 127.0.0.1:0``, waiting for its "listening on" line. On
    ``cpus`` only, if given (``workers = "auto"`` then starts one worker per CPU there)."""
    command = socksify_server_command()
    # max_clients: the default (1024) would refuse the memory measure's 2,000 idle clients
    lines = ["[server]", f"max_clients = {MAX_CLIENTS}", f'workers = "{workers}"']
    if hosts:
        lines += ["[hosts]"] + [f'"{name}" = "{ip}"' for name, ip in hosts.items()]
    config = workdir / f"socksify-server-{time.monotonic_ns()}.toml"
    config.write_text("\n".join(lines) + "\n")
    # an explicit port below the ephemeral range (see free_port), not 127.0.0.1:0
    args = [*command, "--listen", f"127.0.0.1:{free_port()}", "--log-level", "error",
            "--config", str(config)]
    log = workdir / f"socksify-server-{time.monotonic_ns()}.log"
    with open(log, "wb") as errfile:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errfile, preexec_fn=pinned_to(cpus))
    deadline = time.monotonic() + 20
    prefix = "socksify-server listening on "
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith(prefix):
                port = int(line[len(prefix):].rsplit(":", 1)[1])
                name = "socksify-server" if workers == "auto" else f"socksify (workers={workers})"
                return Server(name, proc, port, True, args)
        if proc.poll() is not None:
            raise Unavailable("failed", f"socksify-server exited with status {proc.returncode}: "
                              f"{text.strip()[-500:]}")
        time.sleep(0.05)
    stop(proc)
    raise Unavailable("failed", "socksify-server printed no 'listening on' line in 20 s")


def start_microsocks(workdir: Path, hosts: dict[str, str] | None = None,
                     cpus: list[int] | None = None) -> Server:
    """``microsocks -i 127.0.0.1 -p PORT``. With ``hosts``, run it in a private mount
    namespace (``unshare -m``, root only) whose /etc/hosts also maps those names, so it
    can resolve a name only the benchmark knows; if that is impossible, run it plainly
    (``resolves_names`` False)."""
    program = find_program("microsocks")
    port = free_port()
    args = [program, "-i", "127.0.0.1", "-p", str(port)]
    resolves = False
    if hosts and os.geteuid() == 0 and shutil.which("unshare"):
        hosts_file = workdir / "hosts"
        original = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
        extra = "".join(f"{ip} {name}\n" for name, ip in hosts.items())
        hosts_file.write_text(original + "\n" + extra)
        args = ["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                f'mount --bind "{hosts_file}" /etc/hosts && exec "$@"', "sh", *args]
        resolves = True
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=pinned_to(cpus))
    try:
        wait_port(proc, port, "microsocks")
    except Unavailable:
        stop(proc)
        if resolves:
            return start_microsocks(workdir, None, cpus)
        raise
    return Server("microsocks", proc, port, resolves, args)


#: Dante binds its outgoing sockets to the external address (port 0) before connecting; an
#: address of its own keeps the TIME_WAIT sockets other subjects leave on 127.0.0.1 from
#: making that bind fail (EADDRINUSE), which would count against Dante
DANTED_EXTERNAL = "127.0.0.5"

DANTED_CONF = """\
logoutput: {log}
debug: 0
internal: 127.0.0.1 port = {port}
external: {external}
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
timeout.negotiate: 30
timeout.io: 0

client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error
}}

socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    log: error
}}
"""


def start_danted(workdir: Path, cpus: list[int] | None = None) -> Server:
    """danted in the foreground with a minimal no-auth config; CONNECT within loopback."""
    program = find_program("danted")
    port = free_port()
    conf = workdir / f"danted-{port}.conf"
    conf.write_text(DANTED_CONF.format(port=port, external=DANTED_EXTERNAL,
                                       log=workdir / f"danted-{port}.log"))
    args = [program, "-f", str(conf), "-N", "1", "-p", str(workdir / f"danted-{port}.pid")]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, TMPDIR=str(workdir)),
                            preexec_fn=pinned_to(cpus))
    try:
        wait_port(proc, port, "danted")
    except Unavailable:
        stop(proc)
        raise
    return Server("danted", proc, port, True, args)


SERVER_STARTERS = {
    "socksify-server": start_socksify_server,
    "microsocks": start_microsocks,
    "danted": start_danted,
}


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (danted forks its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by the process tree under ``pid``, including
    exited threads and reaped children (utime, stime, cutime, cstime of /proc/PID/stat).
    CPU per unit of work moves far less with the machine's load than wall-clock rates."""
    total = 0
    for proc_id in descendants(pid):
        try:
            with open(f"/proc/{proc_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / _TICKS


def tree_memory_kib(pid: int) -> dict[str, int]:
    """Rss, Pss and USS (Private_Clean + Private_Dirty) in KiB summed over the process
    tree, from /proc/PID/smaps_rollup."""
    total = {"rss": 0, "pss": 0, "uss": 0, "processes": 0}
    for proc_id in descendants(pid):
        try:
            with open(f"/proc/{proc_id}/smaps_rollup") as f:
                text = f.read()
        except OSError:
            continue
        total["processes"] += 1
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            fields = rest.split()
            if not fields or not fields[0].isdigit():
                continue
            value = int(fields[0])
            if key == "Rss":
                total["rss"] += value
            elif key == "Pss":
                total["pss"] += value
            elif key in ("Private_Clean", "Private_Dirty"):
                total["uss"] += value
    return total
