"""End-to-end: remote DNS in the native shim (socks4a, socks5h). Names only the proxy knows
(the reference server's ``hosts`` map) must work; no DNS query may leave the client; the
placeholder map must hold across threads and fork (design note: csrc/dnsmap.c)."""

import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import gitd
from support.localdns import local_resolver_only
from support.peers import require_peer

pytestmark = pytest.mark.e2e

git_daemon = gitd.git_daemon
NAME = "only-proxy.test"
PROGS = Path(__file__).parent / "progs"
BODY = b"<html><body>hello from the target</body></html>\n"


@pytest.fixture
def named_proxy(socks_server):
    """The reference server knowing NAME (nobody else does) as 127.0.0.1."""
    return socks_server(hosts={NAME: "127.0.0.1", "v6.only-proxy.test": "::1"})


def curl(shim, url, proxy, *args, **extra):
    return shim.run([require_peer("curl"), "-sS", "--max-time", "20", *args, url], proxy, **extra)


@pytest.mark.parametrize("scheme", ["socks5h", "socks4a"])
def test_curl_by_a_name_only_the_proxy_resolves(shim, named_proxy, http_server, scheme):
    result = curl(shim, http_server.url("/", host=NAME), named_proxy.url(scheme))
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY
    [record] = named_proxy.wait_records(1)
    assert (record["destination"], record["port"]) == (NAME, http_server.port)


def test_wget_by_name(shim, named_proxy, http_server):
    wget = require_peer("wget")
    result = shim.run([wget, "-q", "-O", "-", "--tries=1", "--timeout=20",
                       http_server.url("/bytes/777", host=NAME)], named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == 777
    assert named_proxy.wait_records(1)[0]["destination"] == NAME


def test_resolver_answers_with_placeholders(shim, named_proxy):
    code = textwrap.dedent("""
        import socket
        v4 = socket.getaddrinfo("a.example", 80, type=socket.SOCK_STREAM)
        v6 = socket.getaddrinfo("b.example", "http", socket.AF_INET6, socket.SOCK_STREAM)
        again = socket.getaddrinfo("a.example", 443, proto=socket.IPPROTO_TCP)
        both = socket.getaddrinfo("c.example", 53)
        print(v4[0][4], v6[0][4][:2], again[0][4], [(a[0].name, a[1].name) for a in both])
        print(socket.gethostbyname("a.example"), socket.gethostbyaddr(v4[0][4][0])[0])
        print(socket.getnameinfo(v4[0][4], 0), socket.getnameinfo(v6[0][4], 0))
        print(socket.getnameinfo(v4[0][4], socket.NI_NUMERICHOST))
        print(socket.getaddrinfo("10.1.2.3", 80)[0][4], socket.gethostbyname("localhost"))
        for bad in ("bad name", ("x" * 50 + ".") * 6):
            try:
                socket.getaddrinfo(bad, 80)
            except socket.gaierror as exc:
                print("gaierror", exc.errno)
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == ("('240.0.0.1', 80) ('100::2', 80) ('240.0.0.1', 443) "
                        "[('AF_INET', 'SOCK_STREAM'), ('AF_INET', 'SOCK_DGRAM'), "
                        "('AF_INET6', 'SOCK_STREAM'), ('AF_INET6', 'SOCK_DGRAM')]")
    assert lines[1] == "240.0.0.1 a.example"
    assert lines[2] == "('a.example', 'http') ('b.example', 'http')"
    assert lines[3] == "('240.0.0.1', 'http')"
    assert lines[4] == "('10.1.2.3', 80) 127.0.0.1"
    assert lines[5:] == [f"gaierror {socket.EAI_NONAME}"] * 2
    assert named_proxy.records == []


def test_reverse_lookup_of_a_real_address_does_not_query(shim, named_proxy):
    code = textwrap.dedent("""
        import socket
        print(socket.getnameinfo(("192.0.2.7", 80), 0))
        try:
            socket.gethostbyaddr("192.0.2.7")
        except socket.herror as exc:
            print("herror", exc.errno)
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["('192.0.2.7', 'http')", "herror 1"]


def test_local_dns_schemes_use_the_real_resolver(shim, named_proxy):
    code = "import socket; print(socket.getaddrinfo('localhost', 80)[0][4][0])"
    result = shim.python(code, named_proxy.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in (b"127.0.0.1", b"::1")


def test_raw_dns_is_refused(shim, named_proxy):
    code = textwrap.dedent("""
        import ctypes, errno, socket
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(512)
        print(libc.res_query(b"example.org", 1, 1, buf, 512),
              libc.__res_query(b"a.b", 1, 1, buf, 512))
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            print(s.connect_ex(("127.0.0.1", 53)) == errno.EPERM)
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["-1", "-1", "True", "True"]
    assert b"refusing a raw DNS query for example.org" in result.stderr
    assert named_proxy.records == []


def test_fork_child_connects_to_a_name_its_parent_resolved(shim, named_proxy, http_server):
    code = textwrap.dedent(f"""
        import os, socket
        addr = socket.getaddrinfo({NAME!r}, {http_server.port}, socket.AF_INET,
                                  socket.SOCK_STREAM)[0][4]
        pid = os.fork()
        if pid == 0:
            s = socket.create_connection(addr, timeout=20)
            s.sendall(b"GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
            ok = b"hello from the target" in s.makefile("rb").read()
            late = socket.getaddrinfo("late.example", 1)[0][4][0]
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), addr[0])
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"0", b"240.0.0.1"]
    assert named_proxy.wait_records(1)[0]["destination"] == NAME


#: A forked child resolves NAME and sends the placeholder back: ``ip`` in the parent.
CHILD_RESOLVES_NAME = textwrap.dedent(f"""
    import os, socket
    r, w = os.pipe()
    if os.fork() == 0:
        ip = socket.getaddrinfo({NAME!r}, 1, socket.AF_INET)[0][4][0]
        os.write(w, ip.encode()); os._exit(0)
    os.wait()
    ip = os.read(r, 100).decode()
""")


def test_parent_connects_to_a_name_its_child_resolved(shim, named_proxy, http_server):
    code = CHILD_RESOLVES_NAME + textwrap.dedent(f"""
        s = socket.create_connection((ip, {http_server.port}), timeout=20)
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print(ip, b"hello" in s.makefile("rb").read())
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"240.0.0.1", b"True"]
    assert named_proxy.wait_records(1)[0]["destination"] == NAME


def test_placeholder_unknown_after_exec_fails_closed(shim, named_proxy):
    """exec starts a new map: an address learned before exec is refused, never used."""
    code = textwrap.dedent("""
        import socket
        try:
            socket.create_connection(("240.0.0.9", 80), timeout=20)
        except OSError as exc:
            print(exc.errno)
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.stdout.strip() == b"113"  # EHOSTUNREACH
    assert b"placeholder this process tree never handed out" in result.stderr
    assert named_proxy.records == []


SHARED_MAP_PROBE = textwrap.dedent("""
    def shared_maps():
        # the remote-DNS map: the one shared anonymous mapping (rw-s, /dev/zero)
        with open("/proc/self/maps") as f:
            return sum(1 for line in f if " rw-s " in line and "/dev/zero" in line)
""")


def test_dns_map_is_made_by_the_first_name(shim, named_proxy, http_server):
    """The map's shared mapping costs every process ~25 us (csrc/init.c create_map): it
    is made by the first name that needs a placeholder, not at start-up; an address
    connect before it goes through the proxy as usual, and placeholders stay refused."""
    code = SHARED_MAP_PROBE + textwrap.dedent(f"""
        import socket
        s = socket.create_connection(("127.0.0.1", {http_server.port}), timeout=20)
        s.close()
        try:
            socket.create_connection(("240.0.0.1", 80), timeout=20)
        except OSError as exc:
            refused = exc.errno
        before = shared_maps()
        ip = socket.getaddrinfo({NAME!r}, 80, socket.AF_INET)[0][4][0]
        print(before, refused, ip, shared_maps())
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"0", b"113", b"240.0.0.1", b"1"]
    [record] = named_proxy.wait_records(1)
    assert record["destination"] == "127.0.0.1"


def test_dns_map_is_made_before_the_first_fork(shim, named_proxy):
    """A process that forks before resolving anything still gives parent and child one
    map: a name the child resolves after the fork maps back in the parent."""
    code = (SHARED_MAP_PROBE + "before = shared_maps()\n" + CHILD_RESOLVES_NAME
            + "print(before, shared_maps(), ip, socket.getnameinfo((ip, 80), 0)[0])\n")
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"0", b"1", b"240.0.0.1", NAME.encode()]


def test_first_names_from_many_threads_at_once(shim, named_proxy, http_server):
    """Threads racing to make the map (the first lookups of a fresh process) all get the
    same map: one placeholder per name, and it connects."""
    code = textwrap.dedent(f"""
        import socket, threading
        start = threading.Barrier(8)
        got = []
        def look(i):
            start.wait()
            got.append((i % 2, socket.getaddrinfo(("a.example", {NAME!r})[i % 2], 80,
                                                  socket.AF_INET)[0][4][0]))
        threads = [threading.Thread(target=look, args=(i,)) for i in range(8)]
        for t in threads: t.start()
        for t in threads: t.join(20)
        by_name = {{k: {{ip for j, ip in got if j == k}} for k in (0, 1)}}
        [ip] = by_name[1]
        s = socket.create_connection((ip, {http_server.port}), timeout=20)
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print(len(got), len(by_name[0]), len(by_name[1]), ip != next(iter(by_name[0])),
              b"hello" in s.makefile("rb").read())
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"8", b"1", b"1", b"True", b"True"]
    assert named_proxy.wait_records(1)[0]["destination"] == NAME


def test_ipv6_only_lookup_gets_an_ipv6_placeholder(shim, named_proxy, http_server6):
    """AF_INET6 lookups answer from the IPv6 range; the name still reaches the proxy. (An
    AF_UNSPEC lookup answers both families, IPv4 first: see the tests below.)"""
    code = textwrap.dedent(f"""
        import socket
        family, kind, proto, _, addr = socket.getaddrinfo(
            "v6.only-proxy.test", {http_server6.port}, socket.AF_INET6, socket.SOCK_STREAM)[0]
        s = socket.socket(family, kind, proto)
        s.settimeout(20)
        s.connect(addr)
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print(addr[0], s.getpeername()[0], b"hello from the target" in s.makefile("rb").read())
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"100::1", b"100::1", b"True"]
    assert named_proxy.wait_records(1)[0]["destination"] == "v6.only-proxy.test"


V6NAME = "v6.only-proxy.test"


def curl_remote_ip(result) -> tuple[bytes, str]:
    """(body, address curl connected to) from the output of ``curl -w '\\n%{remote_ip}'``."""
    body, _, remote_ip = result.stdout.rpartition(b"\n")
    return body, remote_ip.decode()


def test_curl_6_by_name_reaches_an_ipv6_target(socksify_run, named_proxy, http_server6):
    """``curl -6 NAME`` asks AF_UNSPEC and keeps the IPv6 entries: the answer has both."""
    result = socksify_run(["--proxy", named_proxy.url("socks5h"), "--", require_peer("curl"),
                           "-6", "-sS", "--max-time", "20", "-w", "\\n%{remote_ip}",
                           http_server6.url("/", host=V6NAME)])
    assert result.returncode == 0, result.stderr
    assert curl_remote_ip(result) == (BODY, "100::1")
    [record] = named_proxy.wait_records(1)
    assert (record["destination"], record["port"]) == (V6NAME, http_server6.port)
    assert http_server6.requests == ["/"]


def test_curl_by_name_still_uses_the_ipv4_placeholder(socksify_run, named_proxy, http_server):
    """AF_UNSPEC answers IPv4 first, so a program taking the first address is unchanged."""
    result = socksify_run(["--proxy", named_proxy.url("socks5h"), "--", require_peer("curl"),
                           "-sS", "--max-time", "20", "-w", "\\n%{remote_ip}",
                           http_server.url("/", host=NAME)])
    assert result.returncode == 0, result.stderr
    assert curl_remote_ip(result) == (BODY, "240.0.0.1")
    [record] = named_proxy.wait_records(1)
    assert (record["destination"], record["port"]) == (NAME, http_server.port)


UNSPEC_LOOKUP = """
    import socket, sys
    name, port = sys.argv[1], int(sys.argv[2])
    infos = socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM)
    print([(i[0].name, i[4][0]) for i in infos])
    for family, kind, proto, _, addr in infos:
        s = socket.socket(family, kind, proto)
        s.settimeout(20)
        s.connect(addr)
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print(socket.getnameinfo(addr, 0)[0], socket.gethostbyaddr(addr[0])[0],
              s.getpeername()[0] == addr[0], b"hello from the target" in s.makefile("rb").read())
        s.close()
    flags = socket.AI_ADDRCONFIG | socket.AI_CANONNAME
    print([(i[0].name, i[3]) for i in socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM, 0,
                                                         flags)])
    print(socket.gethostbyname(name), socket.gethostbyname_ex(name)[2])
"""


def test_af_unspec_lookup_answers_ipv4_then_ipv6_for_one_name(shim, named_proxy, http_server):
    """Both placeholders come from the name's one map slot, map back to it, and connect to it
    through the proxy; AI_ADDRCONFIG is ignored (the proxy reaches the name); the
    gethostbyname* functions stay IPv4."""
    result = shim.run([sys.executable, "-c", textwrap.dedent(UNSPEC_LOOKUP), NAME,
                       str(http_server.port)],
                      named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "[('AF_INET', '240.0.0.1'), ('AF_INET6', '100::1')]",
        f"{NAME} {NAME} True True",
        f"{NAME} {NAME} True True",
        f"[('AF_INET', '{NAME}'), ('AF_INET6', '')]",
        "240.0.0.1 ['240.0.0.1']",
    ]
    records = named_proxy.wait_records(2)
    assert [(r["destination"], r["port"]) for r in records] == [(NAME, http_server.port)] * 2


def test_af_unspec_with_an_ipv4_only_range_answers_ipv4_only(shim, named_proxy):
    code = textwrap.dedent("""
        import socket
        print([i[4][0] for i in socket.getaddrinfo("a.example", 80, 0, socket.SOCK_STREAM)])
        try:
            socket.getaddrinfo("a.example", 80, socket.AF_INET6)
        except socket.gaierror as exc:
            print("gaierror", exc.errno)
        print(socket.getaddrinfo("a.example", 80, socket.AF_INET6, socket.SOCK_STREAM, 0,
                                 socket.AI_V4MAPPED)[0][4][0])
    """)
    result = shim.python(code, named_proxy.url("socks5h"), SOCKSIFY_DNS_RANGE="10.99.0.0/16")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "['10.99.0.1']", f"gaierror {socket.EAI_NONAME}", "::ffff:10.99.0.1"]
    assert named_proxy.records == []


def test_no_proxy_names_resolve_locally_and_go_direct(shim, named_proxy, http_server):
    result = curl(shim, http_server.url("/", host="localhost"), named_proxy.url("socks5h"),
                  SOCKSIFY_NO_PROXY="localhost,127.0.0.1,::1")
    assert result.returncode == 0, result.stderr
    assert named_proxy.records == []
    assert http_server.requests == ["/"]


STRACE_CALLS = "trace=connect,sendto,sendmsg,sendmmsg"
_INET = re.compile(r"sa_family=AF_INET6?, (?:sin6?_port=htons\((\d+)\))")


def inet_destinations(trace: str):
    """(syscall, port) of every connect/send* to an IPv4/IPv6 address in an strace log."""
    out = []
    for line in trace.splitlines():
        call = re.search(r"\b(connect|sendto|sendmsg|sendmmsg)\(", line)
        if not call:
            continue
        for port in _INET.findall(line):
            out.append((call.group(1), int(port)))
    return out


@pytest.mark.parametrize("scheme", ["socks5h", "socks4a"])
def test_no_dns_leaves_the_client(shim, named_proxy, http_server, tmp_path, scheme):
    strace = require_peer("strace")
    log = tmp_path / "trace"
    url = http_server.url("/", host=NAME)
    curl_path, wget = require_peer("curl"), require_peer("wget")
    script = (f"{curl_path} -sS --max-time 20 {url} && "
              f"{wget} -q -O - --tries=1 --timeout=20 {url}")
    result = shim.run([strace, "-f", "-qq", "-e", STRACE_CALLS, "-o", str(log),
                       "sh", "-c", script], named_proxy.url(scheme))
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY * 2
    destinations = inet_destinations(log.read_text())
    assert destinations, "strace saw no connect at all"
    assert {port for _, port in destinations} == {named_proxy.port}, destinations
    assert [d for d in destinations if d[0] != "connect"] == []  # no datagram to anyone


@pytest.mark.parametrize("mode", ["wait", "thread", "signal"])
def test_getaddrinfo_a_sends_no_dns(shim, named_proxy, http_server, build_c, tmp_path, mode):
    """glibc's getaddrinfo_a resolves in its own threads through a getaddrinfo the shim
    cannot hook: the shim answers the batch itself. The program runs where its own DNS
    queries would go to loopback (support/localdns.py), under strace: none may be sent."""
    program = build_c(PROGS / "gai_async.c", "-O2", "-Wall", "-lanl")
    log = tmp_path / "trace"
    argv = local_resolver_only([require_peer("strace"), "-f", "-qq", "-e", STRACE_CALLS,
                                "-o", str(log), program, NAME, str(http_server.port), mode],
                               tmp_path)
    result = shim.run(argv, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [f"ok {mode}", "HTTP/1.1 200 OK"]
    destinations = inet_destinations(log.read_text())
    assert {port for _, port in destinations} == {named_proxy.port}, destinations
    assert named_proxy.wait_records(1)[0]["destination"] == NAME


def test_getaddrinfo_a_with_local_dns_is_glibc_s(shim, socks_server, http_server, build_c):
    """With remote DNS off the batch goes to the real getaddrinfo_a (asynchronous as ever):
    localhost resolves locally, and the proxy is asked for its address."""
    program = build_c(PROGS / "gai_async.c", "-O2", "-Wall", "-lanl")
    srv = socks_server()
    result = shim.run([program, "localhost", str(http_server.port), "thread"],
                      srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["ok thread", "HTTP/1.1 200 OK"]
    assert srv.wait_records(1)[0]["destination"] == "127.0.0.1"


def test_git_clone_over_git_protocol(shim, named_proxy, git_daemon, tmp_path):
    """git runs helper processes (git-upload-pack over git://): all under the shim."""
    git = require_peer("git")
    url = git_daemon.url.replace("127.0.0.1", NAME)
    target = tmp_path / "clone"
    result = shim.run([git, "clone", "-q", url, str(target)], named_proxy.url("socks5h"),
                      **gitd.git_env(str(tmp_path)))
    assert result.returncode == 0, result.stderr
    head = subprocess.run([git, "-C", str(target), "rev-parse", "HEAD"], capture_output=True,
                          text=True, timeout=30, env=gitd.git_env(str(tmp_path)))
    assert head.stdout.strip() == git_daemon.head
    assert (target / "README").read_bytes() == gitd.FILES["README"]
    records = named_proxy.wait_records(1)
    assert {(r["destination"], r["port"]) for r in records} == {(NAME, git_daemon.port)}


def test_gethostbyname_r_buffer_rules(shim, named_proxy):
    """The reentrant form fills the caller's buffer, or says ERANGE when it is too small."""
    code = textwrap.dedent("""
        import ctypes, socket
        libc = ctypes.CDLL(None)
        class Hostent(ctypes.Structure):
            _fields_ = [("h_name", ctypes.c_char_p), ("h_aliases", ctypes.c_void_p),
                        ("h_addrtype", ctypes.c_int), ("h_length", ctypes.c_int),
                        ("h_addr_list", ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)))]
        he, result, herr = Hostent(), ctypes.c_void_p(), ctypes.c_int()
        small = ctypes.create_string_buffer(8)
        print(libc.gethostbyname_r(b"r.example", ctypes.byref(he), small, 8,
                                   ctypes.byref(result), ctypes.byref(herr)), bool(result))
        big = ctypes.create_string_buffer(1024)
        rc = libc.gethostbyname2_r(b"r.example", socket.AF_INET6, ctypes.byref(he), big, 1024,
                                   ctypes.byref(result), ctypes.byref(herr))
        addr = bytes(he.h_addr_list[0][:he.h_length])
        print(rc, he.h_name.decode(), he.h_addrtype == socket.AF_INET6,
              socket.inet_ntop(socket.AF_INET6, addr))
    """)
    result = shim.python(code, named_proxy.url("socks5h"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["34 False", "0 r.example True 100::1"]
