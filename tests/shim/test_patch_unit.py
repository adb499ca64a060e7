"""socksify.patch in this process: install/uninstall exactness, should_proxy, remote DNS
placeholders. Nothing here sends a packet, except where a proxy in ANOTHER process
(microsocks) is used."""

import asyncio
import errno
import ipaddress
import logging
import os
import socket
import subprocess
import sys
import threading

import pytest

import socksify
from socksify._resolver import PlaceholderMap
from socksify.patch import current_settings, install, is_installed, should_proxy, uninstall
from socksify.proxy import load_settings

UNUSED_PROXY = "socks5h://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _always_unpatch():
    yield
    uninstall()


def snapshot():
    loop_class = asyncio.selector_events.BaseSelectorEventLoop
    logger = logging.getLogger("socksify")
    return {
        "socket": dict(vars(socket)),
        "socket.socket": dict(vars(socket.socket)),
        "loop": dict(vars(loop_class)),
        "meta_path": list(sys.meta_path),
        "logger": (list(logger.handlers), logger.propagate, logger.level),
    }


def assert_same(before, after):
    assert before.keys() == after.keys()
    for key in before:
        if isinstance(before[key], dict):
            assert before[key].keys() == after[key].keys(), key
            for name, value in before[key].items():
                assert after[key][name] is value, f"{key}.{name} not restored"
        else:
            assert before[key] == after[key], key


def test_unpatch_restores_every_attribute_exactly():
    before = snapshot()
    socksify.patch(UNUSED_PROXY)
    during = snapshot()
    assert during["socket.socket"]["connect"] is not socket.SocketType.connect
    assert during["socket"]["getaddrinfo"] is not before["socket"]["getaddrinfo"]
    assert during["loop"]["sock_connect"] is not before["loop"]["sock_connect"]
    assert "connect" not in before["socket.socket"]  # inherited from _socket.socket
    socksify.unpatch()
    assert_same(before, snapshot())
    assert not is_installed()


def test_second_patch_only_swaps_settings():
    before = snapshot()
    socksify.patch(UNUSED_PROXY)
    hooked = socket.getaddrinfo
    socksify.patch("socks4://127.0.0.1:10")
    assert socket.getaddrinfo is hooked
    assert current_settings().chain[0].scheme == "socks4"
    socksify.unpatch()
    assert_same(before, snapshot())
    socksify.unpatch()  # harmless twice
    assert_same(before, snapshot())


def test_install_returns_what_it_replaced():
    getaddrinfo, close = socket.getaddrinfo, vars(socket.socket)["close"]
    replaced = install(load_settings(proxy=UNUSED_PROXY, environ={}))
    assert replaced["socket.getaddrinfo"] is getaddrinfo
    assert replaced["socket.connect"] is None  # socket.socket.connect was inherited
    assert replaced["socket.close"] is close


def test_patched_context_manager_nests():
    before = snapshot()
    with socksify.patched(UNUSED_PROXY) as outer:
        assert current_settings() is outer
        with socksify.patched("socks4://127.0.0.1:11", no_proxy=".lan") as inner:
            assert current_settings() is inner
            assert inner.no_proxy.matches("x.lan")
        assert current_settings() == outer
    assert_same(before, snapshot())


def test_patch_with_bad_url_patches_nothing():
    before = snapshot()
    with pytest.raises(socksify.ProxyURLError, match="unsupported scheme"):
        socksify.patch("http://127.0.0.1:3128")
    assert_same(before, snapshot())


def test_asyncio_imported_after_patch_is_patched_and_restored(tmp_path):
    script = """
import sys
assert "asyncio" not in sys.modules
import socksify
socksify.patch("socks5h://127.0.0.1:9")
import asyncio.selector_events as se
assert se.BaseSelectorEventLoop.__dict__["sock_connect"].__module__ == "socksify.patch"
socksify.unpatch()
assert se.BaseSelectorEventLoop.__dict__["sock_connect"].__module__ == "asyncio.selector_events"
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


# --- should_proxy ----------------------------------------------------------------------------

SETTINGS = load_settings(
    proxy="socks5://127.0.0.1:1080", no_proxy="intra.example, 10.0.0.0/8", environ={}
)
ENDPOINTS = frozenset({("127.0.0.1", 1080)})


@pytest.mark.parametrize(
    "family, type, address, expected",
    [
        (socket.AF_INET, socket.SOCK_STREAM, ("93.184.216.34", 80), True),
        (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 8080), True),  # loopback proxied
        (socket.AF_INET6, socket.SOCK_STREAM, ("::1", 8080, 0, 0), True),
        (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 53), True),
        (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 1080), False),  # the proxy
        (socket.AF_INET6, socket.SOCK_STREAM, ("::ffff:127.0.0.1", 1080, 0, 0), False),
        (socket.AF_UNIX, socket.SOCK_STREAM, "/run/x.sock", False),
        (socket.AF_INET, socket.SOCK_RAW, ("127.0.0.1", 0), False),
        (socket.AF_INET, socket.SOCK_STREAM, ("10.1.2.3", 80), False),  # bypass CIDR
        (socket.AF_INET, socket.SOCK_STREAM, ("intra.example", 80), False),  # bypass name
        (socket.AF_INET, socket.SOCK_STREAM, ("www.intra.example", 80), True),
    ],
)
def test_should_proxy(family, type, address, expected):
    assert should_proxy(family, type, address, SETTINGS, ENDPOINTS) is expected


# --- remote DNS placeholders -------------------------------------------------------------------


def in_range(address, network="240.0.0.0/8"):
    return ipaddress.ip_address(address) in ipaddress.ip_network(network)


def test_getaddrinfo_answers_placeholders():
    with socksify.patched(UNUSED_PROXY):
        infos = socket.getaddrinfo("some-name.example", 443)
        assert {info[1] for info in infos} == {
            socket.SOCK_STREAM,
            socket.SOCK_DGRAM,
            socket.SOCK_RAW,
        }
        address = infos[0][4][0]
        assert in_range(address)
        assert socket.getaddrinfo(
            "SOME-NAME.example.", "https", socket.AF_INET, socket.SOCK_STREAM
        )[0][4] == (address, 443)
        assert socket.gethostbyname("some-name.example") == address
        assert socket.gethostbyname_ex("some-name.example") == ("some-name.example", [], [address])
        assert socket.gethostbyaddr(address) == ("some-name.example", [], [address])
        assert socket.getnameinfo((address, 443), 0)[0] == "some-name.example"
        assert socket.getnameinfo((address, 443), socket.NI_NUMERICHOST) == (address, "https")
        six = socket.getaddrinfo("some-name.example", 80, socket.AF_INET6)[0]
        assert six[0] == socket.AF_INET6
        assert in_range(six[4][0], "100::/64") and six[4][1:] == (80, 0, 0)
        assert socket.gethostbyaddr(six[4][0])[0] == "some-name.example"
        canon = socket.getaddrinfo("other.example", None, flags=socket.AI_CANONNAME)
        assert canon[0][3] == "other.example"


def entries_or_error(getaddrinfo, host, port, type=0, proto=0, flags=0):
    """(type, proto, port) of each IPv4 entry, or the gaierror code."""
    try:
        infos = getaddrinfo(host, port, socket.AF_INET, type, proto, flags)
    except socket.gaierror as exc:
        return exc.errno
    return [(info[1], info[2], info[4][1]) for info in infos]


@pytest.mark.parametrize(
    "port, type, proto",
    [
        ("http", 0, 0),  # tcp only in /etc/services
        ("http", socket.SOCK_STREAM, 0),
        ("http", socket.SOCK_DGRAM, 0),
        ("http", 0, socket.IPPROTO_UDP),
        ("http", socket.SOCK_RAW, 0),
        ("ssh", 0, 0),
        ("domain", 0, 0),  # tcp and udp
        ("8080", 0, 0),
        ("no-such-service-socksify", 0, 0),
        ("http", socket.SOCK_DGRAM, socket.IPPROTO_TCP),
    ],
)
def test_getaddrinfo_of_a_name_gives_the_services_as_the_c_library_does(port, type, proto):
    """Entries only for the socket types that know the service (none for SOCK_RAW); a
    service no asked-for type knows is EAI_SERVICE, a type/proto mismatch EAI_SOCKTYPE."""
    # the C library without socksify, for a numeric host (no lookup)
    expected = entries_or_error(
        socket.getaddrinfo, "127.0.0.1", port, type, proto, socket.AI_NUMERICHOST
    )
    with socksify.patched(UNUSED_PROXY):
        assert entries_or_error(socket.getaddrinfo, "service.example", port, type, proto) == (
            expected
        )


def test_getaddrinfo_of_a_name_with_a_tcp_only_service():
    with socksify.patched(UNUSED_PROXY):
        infos = socket.getaddrinfo("web.example", "http")
        assert [(info[0], info[1], info[4][1]) for info in infos] == [
            (socket.AF_INET, socket.SOCK_STREAM, 80),
            (socket.AF_INET6, socket.SOCK_STREAM, 80),
        ]
        with pytest.raises(socket.gaierror) as raised:
            socket.getaddrinfo("web.example", "http", type=socket.SOCK_DGRAM)
        assert raised.value.errno == socket.EAI_SERVICE
        with pytest.raises(socket.gaierror) as raised:
            socket.getaddrinfo("web.example", "no-such-service-socksify")
        assert raised.value.errno == socket.EAI_SERVICE


def libc_service(port, flags):
    """The service part the C library gives without socksify (this machine's /etc/services)."""
    return socket.getnameinfo(("127.0.0.1", port), flags | socket.NI_NUMERICHOST)[1]


FAMILIES = pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])


def ni_flags(*names):
    return pytest.param(sum(getattr(socket, f"NI_{n}") for n in names), id="|".join(names) or "0")


@FAMILIES
@pytest.mark.parametrize(
    "flags",
    [
        ni_flags(),
        ni_flags("NAMEREQD"),
        ni_flags("NAMEREQD", "NUMERICSERV"),
        ni_flags("DGRAM"),
        ni_flags("NAMEREQD", "DGRAM"),
        ni_flags("NUMERICSERV"),
        ni_flags("NOFQDN"),
    ],
)
def test_getnameinfo_of_a_placeholder_gives_the_name_whatever_the_flags(family, flags):
    """As csrc/hook_getnameinfo.c: the name for the host, libc's service (NI_DGRAM: udp)."""
    service = libc_service(514, flags & ~socket.NI_NAMEREQD)
    with socksify.patched(UNUSED_PROXY):
        address = socket.getaddrinfo("target.test", 514, family, socket.SOCK_STREAM)[0][4]
        assert socket.getnameinfo(address, flags) == ("target.test", service)
        assert socket.getnameinfo(address[:2], flags) == ("target.test", service)


@FAMILIES
def test_getnameinfo_of_a_placeholder_with_numerichost_is_numeric(family):
    with socksify.patched(UNUSED_PROXY):
        address = socket.getaddrinfo("target.test", 514, family, socket.SOCK_STREAM)[0][4]
        for flags in (socket.NI_NUMERICHOST, socket.NI_NUMERICHOST | socket.NI_DGRAM):
            assert socket.getnameinfo(address, flags) == (address[0], libc_service(514, flags))
        with pytest.raises(socket.gaierror) as refused:  # glibc: no name for a numeric host
            socket.getnameinfo(address, socket.NI_NUMERICHOST | socket.NI_NAMEREQD)
        assert refused.value.errno == socket.EAI_NONAME


def test_getnameinfo_reads_a_placeholder_as_the_c_library_does():
    """Any spelling libc accepts is the placeholder; a bad sockaddr fails as without socksify."""
    with socksify.patched(UNUSED_PROXY):
        v4 = socket.getaddrinfo("target.test", 80, socket.AF_INET)[0][4][0]
        v6 = socket.getaddrinfo("target.test", 80, socket.AF_INET6)[0][4][0]
        long_v6 = ipaddress.ip_address(v6).exploded
        zeros = ".".join(part.zfill(3) for part in v4.split("."))
        for spelling in (zeros, long_v6, f"{v6}%1", f"::ffff:{v4}"):
            assert socket.getnameinfo((spelling, 80), 0)[0] == "target.test"
        assert socket.getnameinfo((long_v6, 80), socket.NI_NUMERICHOST)[0] == v6
        assert socket.getnameinfo((zeros, 80), socket.NI_NUMERICHOST)[0] == v4
        with pytest.raises(OSError, match="IPv4 sockaddr must be 2 tuple"):
            socket.getnameinfo((v4, 80, 0, 0), 0)
        with pytest.raises(TypeError):
            socket.getnameinfo((v4,), 0)
        scoped = socket.getnameinfo((v6, 80, 0, 1), socket.NI_NUMERICHOST)
    assert scoped == socket.getnameinfo((v6, 80, 0, 1), socket.NI_NUMERICHOST)  # unpatched


def test_literals_localhost_and_bypass_resolve_locally():
    with socksify.patched(UNUSED_PROXY, no_proxy="vm"):
        assert socket.getaddrinfo("127.0.0.1", 80, socket.AF_INET)[0][4] == ("127.0.0.1", 80)
        assert socket.getaddrinfo("::1", 80, socket.AF_INET6)[0][4][0] == "::1"
        assert socket.gethostbyname("localhost") == "127.0.0.1"
        assert socket.gethostbyname("vm") == "127.0.0.1"  # /etc/hosts via the original
        assert socket.getaddrinfo(None, 80, socket.AF_INET, flags=socket.AI_PASSIVE)[0][4] == (
            "0.0.0.0",
            80,
        )


def test_reverse_lookup_of_a_real_address_does_not_leak():
    with socksify.patched(UNUSED_PROXY):
        with pytest.raises(socket.herror):
            socket.gethostbyaddr("192.0.2.7")
        assert socket.getnameinfo(("192.0.2.7", 80), 0) == ("192.0.2.7", "http")
        with pytest.raises(socket.gaierror):
            socket.getnameinfo(("192.0.2.7", 80), socket.NI_NAMEREQD)


def test_local_dns_schemes_do_not_use_placeholders(monkeypatch):
    def system_resolver(host, port, family=0, type=0, proto=0, flags=0):
        """Stands in for the system resolver (no DNS traffic in tests)."""
        if host != "only-local.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.10", port))]

    monkeypatch.setattr(socket, "getaddrinfo", system_resolver)
    with socksify.patched("socks5://127.0.0.1:9"):
        assert socket.gethostbyname("localhost") == "127.0.0.1"
        # socks5h would answer with a placeholder here; socks5 asks the system resolver
        answers = socket.getaddrinfo("only-local.test", 80, socket.AF_INET, socket.SOCK_STREAM)
        assert [info[4] for info in answers] == [("192.0.2.10", 80)]
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("name.invalid", 80, flags=socket.AI_NUMERICHOST)


def test_placeholder_map_is_thread_safe():
    placeholders = PlaceholderMap((ipaddress.ip_network("240.0.0.0/8"),))
    results = [dict() for _ in range(8)]

    def worker(out):
        for index in range(500):
            out[index] = placeholders.address_for(f"name{index}.test")

    threads = [threading.Thread(target=worker, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(out == results[0] for out in results)
    assert len(set(results[0].values())) == 500
    assert all(placeholders.name_for(a) == f"name{i}.test" for i, a in results[0].items())


def test_placeholder_range_wraps_around():
    placeholders = PlaceholderMap((ipaddress.ip_network("240.1.2.0/24"),))
    first = placeholders.address_for("first.test")
    for index in range(254):
        placeholders.address_for(f"filler{index}.test")
    assert placeholders.name_for(first) != "first.test"  # reused for the 255th name
    assert in_range(placeholders.address_for("first.test"), "240.1.2.0/24")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_placeholder_map_survives_fork():
    with socksify.patched(UNUSED_PROXY):
        address = socket.gethostbyname("before-fork.test")
        pid = os.fork()
        if pid == 0:  # child: same map, and a working lock
            ok = socket.gethostbyaddr(address)[0] == "before-fork.test"
            ok = ok and socket.gethostbyname("before-fork.test") == address
            ok = ok and in_range(socket.gethostbyname("after-fork.test"))
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


# --- in-process connections, proxy in another process ------------------------------------------


@pytest.mark.e2e
def test_in_process_connect_with_nonblocking_and_timeouts(microsocks, tcp_echo_server):
    proxy = microsocks()
    early = socket.socket()
    with socksify.patched(proxy.url("socks5")):
        early.settimeout(5)
        early.connect(tcp_echo_server)
        early.sendall(b"ping")
        assert early.recv(10) == b"ping"
        assert early.getpeername() == tcp_echo_server
        nonblocking = socket.socket()
        nonblocking.setblocking(False)
        assert nonblocking.connect_ex(tcp_echo_server) == 0  # handshake done in connect
        assert nonblocking.gettimeout() == 0.0
        nonblocking.setblocking(True)
        nonblocking.sendall(b"pong")
        assert nonblocking.recv(10) == b"pong"
        nonblocking.close()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
            with pytest.raises(OSError) as info:
                unix.connect("/nonexistent/socksify-test.sock")
            assert info.value.errno == errno.ENOENT  # AF_UNIX is never touched
    early.close()


@pytest.mark.e2e
def test_dup_and_ssl_style_detach_keep_the_state(microsocks, tcp_echo_server):
    proxy = microsocks()
    with socksify.patched(proxy.url("socks5")):
        sock = socket.create_connection(tcp_echo_server, timeout=5)
        copy = sock.dup()
        assert copy.getpeername() == tcp_echo_server
        fd = sock.detach()
        adopted = socket.socket(fileno=fd)
        adopted.settimeout(5)
        assert adopted.getpeername() == tcp_echo_server
        adopted.sendall(b"x")
        assert adopted.recv(1) == b"x"
        adopted.close()
        copy.close()


@pytest.mark.e2e
def test_socket_timeout_is_the_handshake_deadline():
    """A proxy that accepts and never answers: connect() gives up after the socket's
    timeout, with the stdlib TimeoutError, and nothing is sent anywhere else."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: a direct connect is refused
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    held = []

    def accept_and_hold():
        try:
            held.append(listener.accept()[0])
        except OSError:
            pass

    thread = threading.Thread(target=accept_and_hold, daemon=True)
    thread.start()
    with closed, listener, socksify.patched(f"socks5://127.0.0.1:{listener.getsockname()[1]}"):
        sock = socket.socket()
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.connect(closed.getsockname())
        assert sock.gettimeout() == 0.3
        sock.close()
    thread.join(5)
    assert len(held) == 1  # the connect went to the proxy
    for conn in held:
        conn.close()


@pytest.mark.e2e
def test_state_of_a_collected_socket_does_not_leak_to_its_fd_number(microsocks, tcp_echo_server):
    import gc
    import warnings

    from socksify._sockets import states

    proxy = microsocks()
    with socksify.patched(proxy.url("socks5")):
        sock = socket.create_connection(tcp_echo_server, timeout=5)
        fd = sock.fileno()
        assert fd in states
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del sock
            gc.collect()
        assert fd not in states
        fresh = socket.socket()
        try:
            with pytest.raises(OSError) as info:
                fresh.getpeername()  # not connected: nothing inherited from the old socket
            assert info.value.errno == errno.ENOTCONN
        finally:
            fresh.close()
