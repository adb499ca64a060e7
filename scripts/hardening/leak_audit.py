"""scripts/leak-audit: run real programs under each shim inside ``unshare -n`` and show that
every connect() and every datagram goes to the proxy, and with the proxy down nowhere at all.

The audit re-executes itself in a new network namespace where only loopback exists (``unshare
-n``, or ``unshare -rn`` without root), brings ``lo`` up, and starts everything there: the
reference server (remote DNS: the names below are known to the proxy only), an HTTP target,
a ``git daemon`` and a DNS server. Each program runs under ``strace -f`` with a remote-DNS
scheme (socks5h); :mod:`trace` checks each attempt. A name lookup the shim let through would
be a datagram to a resolver (or a connect() to nscd) and shows as a leak even though it
cannot succeed in the namespace.

Rows: program x shim (python: ``python -m socksify``; native: ``socksify-run``) x proxy up /
down. A program the Python shim cannot run (curl, wget, git, dig, getaddrinfo_a: a small C
program resolving with glibc's getaddrinfo_a) is "n/a" for it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading

from . import trace

REPO = pathlib.Path(__file__).resolve().parents[2]
INSIDE_MARK = "SOCKSIFY_LEAK_AUDIT_NETNS"
TIMEOUT = 60
WEB_NAME = "web.only-proxy.test"
GIT_NAME = "git.only-proxy.test"
BODY_SIZE = 5000
GAI_ASYNC_SOURCE = REPO / "tests" / "native" / "progs" / "gai_async.c"
_SCRUB = ("SOCKSIFY_", "ALL_PROXY", "all_proxy", "LD_PRELOAD", "HTTP_PROXY", "HTTPS_PROXY",
          "http_proxy", "https_proxy", "NO_PROXY", "no_proxy")

PY_URLLIB = """
import sys, urllib.request
print(len(urllib.request.urlopen(sys.argv[1], timeout=20).read()))
"""
PY_REQUESTS = """
import sys, requests
print(len(requests.get(sys.argv[1], timeout=20).content))
"""
PY_ASYNCIO = """
import asyncio, sys, urllib.parse
async def main(url):
    parts = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"GET {parts.path} HTTP/1.0\\r\\nHost: {parts.hostname}\\r\\n\\r\\n".encode())
    data = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    print(len(data.split(b"\\r\\n\\r\\n", 1)[1]))
asyncio.run(main(sys.argv[1]))
"""


@dataclasses.dataclass
class Program:
    name: str
    python_script: str | None  # source of a Python program (runs under both shims)
    native_argv: list[str] | None  # a native program (native shim only)
    expect: str  # text its stdout must contain when the proxy is up


@dataclasses.dataclass
class Row:
    program: str
    shim: str
    proxy: str  # "up" or "down"
    ran: bool
    worked: bool  # up: did its job; down: failed (closed) as it must
    connects: int
    datagrams: int
    leaks: list[str]
    detail: str = ""


class Environment:
    """Everything the programs talk to, started inside the namespace."""

    def __init__(self, work: pathlib.Path):
        sys.path.insert(0, str(REPO / "tests"))
        from support.dns import DnsServer
        from support.gitd import GitDaemon, git_env
        from support.socks_server import make_config
        from support.targets import HttpTarget

        from socksify.server import ThreadedServer, _udp

        self.work = work
        self.relay_ports: set[int] = set()
        self._note_relay_ports(_udp)
        self.records: list[dict] = []
        config = make_config(hosts={WEB_NAME: "127.0.0.1", GIT_NAME: "127.0.0.1"})
        self.server = ThreadedServer(config, on_session=self.records.append).start()
        self.proxy_port = self.server.addresses[0][1]
        self.http = HttpTarget()
        threading.Thread(target=self.http.server.serve_forever, daemon=True).start()
        self.dns = DnsServer({"example.test": "10.1.2.3"})
        git = shutil.which("git")
        self.git = GitDaemon(str(work / "gitd"), git) if git else None
        self.git_env = git_env(str(work / "gitd"))

    def _note_relay_ports(self, udp_module) -> None:
        """Remember the port of every UDP relay the server opens (where datagrams may go)."""
        original = udp_module.UdpAssociation.open
        ports = self.relay_ports

        async def open_and_note(association, bind_ip):
            address = await original(association, bind_ip)
            ports.add(address[1])
            return address

        udp_module.UdpAssociation.open = open_and_note

    @property
    def proxy_url(self) -> str:
        return f"socks5h://127.0.0.1:{self.proxy_port}"

    def web_url(self) -> str:
        return f"http://{WEB_NAME}:{self.http.port}/bytes/{BODY_SIZE}"

    def stop_proxy(self) -> None:
        self.server.stop()

    def close(self) -> None:
        self.server.stop()
        self.http.server.shutdown()
        self.dns.close()
        if self.git:
            self.git.stop()


def programs(env: Environment) -> list[Program]:
    found = []
    curl, wget, dig = shutil.which("curl"), shutil.which("wget"), shutil.which("dig")
    if curl:
        found.append(Program("curl", None, [
            curl, "-sS", "--max-time", "20", "-o", os.devnull,
            "-w", "%{http_code} %{size_download}", env.web_url()], f"200 {BODY_SIZE}"))
    if wget:
        found.append(Program("wget", None, [
            wget, "-q", "--tries=1", "--timeout=20", "-O", os.devnull, env.web_url()], ""))
    if env.git:
        found.append(Program("git", None, [
            shutil.which("git"), "clone", "-q", f"git://{GIT_NAME}:{env.git.port}/repo.git",
            "{clone_dir}"], ""))
    found.append(Program("python3 urllib", PY_URLLIB, None, str(BODY_SIZE)))
    try:
        import requests  # noqa: F401

        found.append(Program("requests", PY_REQUESTS, None, str(BODY_SIZE)))
    except ImportError:
        pass
    found.append(Program("asyncio", PY_ASYNCIO, None, str(BODY_SIZE)))
    if dig:
        found.append(Program("dig", None, [
            dig, "@127.0.0.1", "-p", str(env.dns.port), "+time=5", "+tries=1", "+short",
            "example.test", "A"], "10.1.2.3"))
    gai = _build_gai_async(env.work)
    if gai:
        # glibc resolves getaddrinfo_a batches in threads of its own, out of a preload's reach
        found.append(Program("getaddrinfo_a", None, [
            gai, WEB_NAME, str(env.http.port), "wait"], "ok wait"))
    return found


def _build_gai_async(work: pathlib.Path) -> str | None:
    """tests/native/progs/gai_async.c, compiled here (None without a C compiler)."""
    cc = shutil.which("cc")
    if not cc:
        return None
    exe = work / "gai_async"
    subprocess.run([cc, "-O2", "-o", str(exe), str(GAI_ASYNC_SOURCE), "-lanl"], check=True,
                   capture_output=True, timeout=120)
    return str(exe)


def _clean_env(extra: dict | None = None) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    clean.update(extra or {})
    return clean


def command_for(program: Program, shim: str, proxy_url: str, work: pathlib.Path,
                run_id: int) -> list[str] | None:
    if program.python_script is not None:
        # not named after a module it imports (a script "asyncio.py" would shadow asyncio)
        script = work / f"prog_{program.name.replace(' ', '_')}.py"
        script.write_text(textwrap.dedent(program.python_script))
        target = [str(script)]
        if shim == "python":
            return [sys.executable, "-m", "socksify", "--proxy", proxy_url, *target]
        return [sys.executable, "-m", "socksify.run", "--proxy", proxy_url, "--",
                sys.executable, *target]
    if shim == "python":
        return None  # the Python shim runs Python programs only
    argv = [a.replace("{clone_dir}", str(work / f"clone-{run_id}")) for a in program.native_argv]
    return [sys.executable, "-m", "socksify.run", "--proxy", proxy_url, "--", *argv]


@functools.cache
def _strace_has_stacks(strace: str) -> bool:
    probe = subprocess.run([strace, "-k", "-e", "trace=none", "true"], capture_output=True,
                           timeout=30)
    return probe.returncode == 0


def run_one(env: Environment, program: Program, shim: str, proxy: str, run_id: int) -> Row:
    argv = command_for(program, shim, env.proxy_url, env.work, run_id)
    if argv is None:
        return Row(program.name, shim, proxy, False, False, 0, 0, [], "n/a")
    if program.python_script is not None:
        argv = [*argv, env.web_url()]
    trace_file = env.work / f"trace-{run_id}.txt"
    strace = shutil.which("strace")
    stacks = ["-k"] if _strace_has_stacks(strace) else []  # tells nscd user from host lookups
    full = [strace, "-f", "-qq", *stacks, "-e", "trace=connect,sendto,sendmsg,sendmmsg",
            "-o", str(trace_file), *argv]
    extra = env.git_env if program.name == "git" else None
    try:
        result = subprocess.run(full, capture_output=True, text=True, errors="replace",
                                timeout=TIMEOUT,
                                env=_clean_env(extra), cwd=env.work,
                                stdin=subprocess.DEVNULL)
        returncode, out, err = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired:
        returncode, out, err = None, "", "TIMED OUT"
    proxy_endpoint = {("127.0.0.1", env.proxy_port)}
    relays = {("127.0.0.1", port) for port in env.relay_ports} if proxy == "up" else set()
    summary = trace.audit_trace(
        trace_file.read_text() if trace_file.exists() else "", proxy_endpoint, relays
    )
    if proxy == "up":
        worked = returncode == 0 and program.expect in out
    else:
        worked = returncode not in (0, None)  # failed closed, and did not hang
    detail = "" if worked else f"exit {returncode}: {(out + err).strip()[-300:]}"
    if summary.connects == 0:
        worked = False
        detail = (detail + "; " if detail else "") + "no connect() seen: the audit proves nothing"
    return Row(program.name, shim, proxy, True, worked, summary.connects, summary.datagrams,
               summary.leaks, detail)


def audit(selected: list[str] | None = None) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="leak-audit-") as tmp:
        env = Environment(pathlib.Path(tmp))
        try:
            progs = [p for p in programs(env) if not selected or p.name in selected]
            run_id = 0
            for proxy in ("up", "down"):
                if proxy == "down":
                    env.stop_proxy()
                for program in progs:
                    for shim in ("python", "native"):
                        run_id += 1
                        rows.append(run_one(env, program, shim, proxy, run_id))
        finally:
            env.close()
    return rows


def format_table(rows: list[Row]) -> str:
    lines = [f"{'program':<16} {'shim':<7} {'proxy':<5} {'result':<8} {'connects':>8} "
             f"{'datagrams':>9}  leaks found"]
    lines.append("-" * len(lines[0]))
    for row in rows:
        if not row.ran:
            lines.append(f"{row.program:<16} {row.shim:<7} {row.proxy:<5} {'n/a':<8}")
            continue
        result = ("ok" if row.proxy == "up" else "refused") if row.worked else "FAILED"
        leaks = str(len(row.leaks)) + (": " + ", ".join(row.leaks[:3]) if row.leaks else "")
        lines.append(f"{row.program:<16} {row.shim:<7} {row.proxy:<5} {result:<8} "
                     f"{row.connects:>8} {row.datagrams:>9}  {leaks}")
        if row.detail:
            lines.append(f"{'':<16}   {row.detail}")
    return "\n".join(lines)


def _interfaces() -> list[str]:
    """This network namespace's interfaces (/proc/self/net is per namespace; /sys may not be)."""
    with open("/proc/self/net/dev") as fh:
        return sorted(line.split(":", 1)[0].strip() for line in fh if ":" in line)


def _inside_namespace() -> bool:
    return _interfaces() == ["lo"]


def _package_root() -> str:
    """The directory holding the ``socksify`` package this interpreter imports."""
    import socksify

    return str(pathlib.Path(socksify.__file__).resolve().parents[1])


def reexec_in_namespace(argv: list[str]) -> int:
    """Run this audit again inside a fresh network namespace; return its exit status."""
    unshare = shutil.which("unshare")
    if not unshare:
        print("leak-audit: unshare (util-linux) is not installed", file=sys.stderr)
        return 2
    inner = [sys.executable, str(REPO / "scripts" / "leak-audit"), *argv]
    script = 'ip link set lo up && exec "$@"'
    for flags in (["-n"], ["-r", "-n"]):  # root, else an unprivileged user namespace
        probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            env = dict(os.environ, **{INSIDE_MARK: "1"})
            # The audit inside must import the same socksify as this process: the installed
            # package (with its native library) under tox, the checkout in development.
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [_package_root(), os.environ.get("PYTHONPATH")]))
            return subprocess.run([unshare, *flags, "sh", "-c", script, "sh", *inner],
                                  env=env, timeout=900).returncode
    print(f"leak-audit: cannot create a network namespace: {probe.stderr.decode()!r}",
          file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="leak-audit",
        description="Run curl, wget, git, python3 urllib, requests, asyncio and dig under each "
        "shim in a network namespace with only loopback, under strace -f, and report every "
        "connect() or datagram that did not go to the proxy.")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--program", action="append", help="only this program (repeatable)")
    args = parser.parse_args(argv)
    if os.environ.get(INSIDE_MARK) != "1":
        return reexec_in_namespace(argv)
    if not _inside_namespace():
        print("leak-audit: refusing to run: this network namespace has more than loopback",
              file=sys.stderr)
        return 2
    if not shutil.which("strace"):
        print("leak-audit: strace is not installed", file=sys.stderr)
        return 2
    rows = audit(args.program)
    if args.json:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=1))
    else:
        print(format_table(rows))
        leaks = sum(len(row.leaks) for row in rows)
        bad = sum(1 for row in rows if row.ran and not row.worked)
        print(f"\n{len(rows)} runs, {leaks} leaks, {bad} runs that did not behave")
    return 0 if all(not row.leaks and (row.worked or not row.ran) for row in rows) else 1
