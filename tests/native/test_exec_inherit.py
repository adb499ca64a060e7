"""Proxied TCP connections inherited across exec keep their identity (native shim).

The per-fd table dies with the image at exec; the exec hooks (csrc/hook_exec.c) pass the
proxied connections that are not close-on-exec in SOCKSIFY_INHERIT and the new image
restores them (csrc/inherit.c). A C program (below, compiled here) connects through our
reference server, prints what getpeername/getsockname say, passes the fd on with each exec
form and posix_spawn, and the new image prints them again and echoes over the connection.
Checked: by IP and by a name only the proxy knows (socks5h), two execs in a row, a
close-on-exec fd is not carried (and the environment does not grow), an fd replaced on the
way (posix_spawn file actions) is not mistaken for the proxied one.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

TIMEOUT = 60
NAME = "exec.only-proxy.test"

PROGRAM = r"""
/* exec_inherit: a proxied TCP connection kept across exec / posix_spawn.
 *
 *   exec_inherit HOST PORT HOW     connect (getaddrinfo: a name gets a placeholder under
 *                                  socks5h), echo, print what getpeername/getsockname say,
 *                                  then pass the fd on with HOW: execve execv execvp execvpe
 *                                  execl execle execlp fexecve execveat posix_spawn
 *                                  posix_spawnp
 *                                  twice (execv, and the child execs once more)
 *                                  cloexec-env / plain-env (execle of sh(1) with a bare
 *                                  environment: prints the environment the new image got,
 *                                  from /proc, as the shim's start-up edits environ)
 *                                  spawn-replaced (posix_spawn with the fd dup2'ed over by
 *                                  a unix socket in the file actions)
 *   exec_inherit child FD [again]  the new image: print getpeername/getsockname of FD, echo
 *                                  (again: then exec itself once more)
 *   exec_inherit child FD names    only print getpeername/getsockname of FD
 *   exec_inherit HOST PORT several a second connection (close-on-exec) and a dup() of the
 *                                  first, then execv: the new image prints each fd's names
 *   exec_inherit multi FD...       the new image of "several"
 *   exec_inherit HOST PORT vfork-close  a vfork() child closes the fd and execs true(1);
 *                                  then the parent prints the fd's names again
 *
 * Lines: "KEY VALUE". Timeouts and alarm() bound everything.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void show(const char *key, const struct sockaddr_storage *ss, int rc)
{
    char host[64] = "?";
    int port = -1;
    if (rc != 0) {
        printf("%s error %s\n", key, strerror(errno));
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        printf("%s %s %d\n", key, host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        printf("%s %s %d\n", key, host, port);
    } else {
        printf("%s family %d\n", key, ss->ss_family);
    }
}

static void show_names(const char *who, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char key[32];
    int rc = getpeername(fd, (struct sockaddr *)&ss, &len);
    snprintf(key, sizeof key, "%s-peer", who);
    show(key, &ss, rc);
    len = sizeof ss;
    rc = getsockname(fd, (struct sockaddr *)&ss, &len);
    snprintf(key, sizeof key, "%s-local", who);
    show(key, &ss, rc);
}

static int echo(int fd, const char *text)
{
    char buf[64];
    size_t n = strlen(text), got = 0;
    if (write(fd, text, n) != (ssize_t)n)
        return -1;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return memcmp(buf, text, n) == 0 ? 0 : -1;
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints, *ai;
    int fd, rc;
    struct timeval tv = {10, 0};
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        printf("resolve error %s\n", gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM, 0); /* no CLOEXEC: inherited */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0) {
        printf("connect error %s\n", strerror(errno));
        return -1;
    }
    return fd;
}

static int spawn_wait(int p, const char *self, char *const argv[], int replace_fd)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status, rc, sv[2] = {-1, -1};
    posix_spawn_file_actions_init(&fa);
    if (replace_fd >= 0) {
        signal(SIGPIPE, SIG_IGN);
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
        posix_spawn_file_actions_adddup2(&fa, sv[0], replace_fd);
    }
    rc = p ? posix_spawnp(&pid, self, &fa, NULL, argv, environ)
           : posix_spawn(&pid, self, &fa, NULL, argv, environ);
    if (rc != 0) {
        printf("spawn error %s\n", strerror(rc));
        return 1;
    }
    if (sv[1] >= 0)
        close(sv[1]); /* the child's echo on its end fails at once (EPIPE, ignored) */
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 1;
    return WEXITSTATUS(status);
}

static int child(int fd, const char *what, const char *self)
{
    int again = strcmp(what, "again") == 0;
    printf("child-var %s\n", getenv("SOCKSIFY_INHERIT") ? "present" : "absent");
    show_names("child", fd);
    if (strcmp(what, "names") == 0)
        return 0;
    printf("child-echo %s\n", echo(fd, "after exec\n") == 0 ? "ok" : "FAIL");
    if (again) {
        char fdtext[16];
        char *argv[] = {(char *)self, "child", fdtext, NULL};
        snprintf(fdtext, sizeof fdtext, "%d", fd);
        fflush(stdout);
        execv(self, argv);
        printf("exec error %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *self = argv[0], *how;
    char fdtext[16];
    int fd;
    alarm(30);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && strcmp(argv[1], "multi") == 0) {
        for (int i = 2; i < argc; i++) {
            char who[32];
            snprintf(who, sizeof who, "fd%s", argv[i]);
            show_names(who, atoi(argv[i]));
        }
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "child") == 0)
        return child(atoi(argv[2]), argc > 3 ? argv[3] : "", self);
    if (argc != 4)
        return 2;
    how = argv[3];
    fd = connect_to(argv[1], argv[2]);
    if (fd < 0)
        return 1;
    printf("parent-echo %s\n", echo(fd, "before exec\n") == 0 ? "ok" : "FAIL");
    show_names("parent", fd);
    snprintf(fdtext, sizeof fdtext, "%d", fd);
    char *cargv[] = {(char *)self, "child", fdtext, NULL};
    char *twice[] = {(char *)self, "child", fdtext, "again", NULL};
    fflush(stdout);
    if (strcmp(how, "execve") == 0)
        execve(self, cargv, environ);
    else if (strcmp(how, "execveat") == 0)
        execveat(AT_FDCWD, self, cargv, environ, 0);
    else if (strcmp(how, "execv") == 0)
        execv(self, cargv);
    else if (strcmp(how, "twice") == 0)
        execv(self, twice);
    else if (strcmp(how, "execvp") == 0)
        execvp(self, cargv);
    else if (strcmp(how, "execvpe") == 0)
        execvpe(self, cargv, environ);
    else if (strcmp(how, "execl") == 0)
        execl(self, self, "child", fdtext, (char *)NULL);
    else if (strcmp(how, "execle") == 0)
        execle(self, self, "child", fdtext, (char *)NULL, environ);
    else if (strcmp(how, "execlp") == 0)
        execlp(self, self, "child", fdtext, (char *)NULL);
    else if (strcmp(how, "fexecve") == 0) {
        int exe = open(self, O_RDONLY | O_CLOEXEC);
        fexecve(exe, cargv, environ);
    } else if (strcmp(how, "posix_spawn") == 0 || strcmp(how, "posix_spawnp") == 0)
        return spawn_wait(how[11] == 'p', self, cargv, -1);
    else if (strcmp(how, "several") == 0) {
        int second = connect_to(argv[1], argv[2]), copy = dup(fd);
        char t2[16], t3[16];
        char *margv[] = {(char *)self, "multi", fdtext, t2, t3, NULL};
        fcntl(second, F_SETFD, FD_CLOEXEC);
        snprintf(t2, sizeof t2, "%d", second);
        snprintf(t3, sizeof t3, "%d", copy);
        printf("fds %s %s %s\n", fdtext, t2, t3);
        fflush(stdout);
        execv(self, margv);
    } else if (strcmp(how, "vfork-close") == 0) {
        int status;
        pid_t pid = vfork();
        if (pid == 0) {
            close(fd); /* in the PARENT's memory: must not drop the parent's entry */
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid)
            return 1;
        show_names("after-vfork", fd);
        printf("after-vfork-echo %s\n", echo(fd, "after vfork\n") == 0 ? "ok" : "FAIL");
        return 0;
    } else if (strcmp(how, "spawn-replaced") == 0)
        return spawn_wait(0, self, cargv, fd);
    else if (strcmp(how, "cloexec-env") == 0 || strcmp(how, "plain-env") == 0) {
        /* the environment the exec hook built, as the new image got it */
        char *bare[] = {"SOCKSIFY_TEST=1", NULL};
        if (how[0] == 'c')
            fcntl(fd, F_SETFD, FD_CLOEXEC);
        execle("/bin/sh", "sh", "-c", "tr '\\0' '\\n' < /proc/$$/environ", (char *)NULL, bare);
    } else
        return 2;
    printf("exec error %s\n", strerror(errno));
    return 1;
}
"""


@pytest.fixture(scope="module")
def exec_inherit(build_c):
    return build_c.from_text("exec_inherit", PROGRAM, "-O1", "-Wall", "-Wextra", "-Werror")


def run(shim, srv, exe, host, port, how, scheme="socks5h", **extra):
    result = shim.run([exe, host, str(port), how], srv.url(scheme), timeout=TIMEOUT, **extra)
    lines = result.stdout.decode().splitlines()
    out: dict[str, list[str]] = {}
    for line in lines:
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value)
    return result, out


def single(out, key):
    assert key in out, out
    return out[key][0]


HOWS = ["execve", "execv", "execvp", "execvpe", "execl", "execle", "execlp", "fexecve",
        "execveat", "posix_spawn", "posix_spawnp"]


@pytest.mark.parametrize("how", HOWS)
def test_inherited_connection_keeps_peer_and_local(how, shim, socks_server, tcp_echo_server,
                                                   exec_inherit):
    srv = socks_server()
    port = tcp_echo_server[1]
    result, out = run(shim, srv, exec_inherit, "127.0.0.1", port, how)
    assert result.returncode == 0, (out, result.stderr.decode())
    assert single(out, "parent-echo") == "ok"
    assert single(out, "parent-peer") == f"127.0.0.1 {port}"
    assert single(out, "child-peer") == f"127.0.0.1 {port}"  # not the proxy's port
    # the BND address of the proxy's reply, not the kernel's local address
    assert single(out, "child-local") == single(out, "parent-local")
    assert single(out, "child-echo") == "ok"
    assert single(out, "child-var") == "absent"  # removed before main
    records = srv.wait_records(1)
    assert [(r["destination"], r["port"], r["outcome"]) for r in records] == [
        ("127.0.0.1", port, "ok")
    ]


@pytest.mark.parametrize("how", ["execv", "posix_spawn"])
def test_a_name_only_the_proxy_knows(how, shim, socks_server, tcp_echo_server, exec_inherit):
    srv = socks_server(hosts={NAME: "127.0.0.1"})
    port = tcp_echo_server[1]
    result, out = run(shim, srv, exec_inherit, NAME, port, how)
    assert result.returncode == 0, (out, result.stderr.decode())
    parent_peer = single(out, "parent-peer")
    assert parent_peer.endswith(f" {port}") and not parent_peer.startswith("127.0.0.1 ")
    assert single(out, "child-peer") == parent_peer  # the same placeholder
    assert single(out, "child-local") == single(out, "parent-local")
    assert single(out, "child-echo") == "ok"
    records = srv.wait_records(1)
    assert [(r["destination"], r["port"], r["outcome"]) for r in records] == [(NAME, port, "ok")]


def test_two_execs_in_a_row(shim, socks_server, tcp_echo_server, exec_inherit):
    srv = socks_server()
    port = tcp_echo_server[1]
    result, out = run(shim, srv, exec_inherit, "127.0.0.1", port, "twice")
    assert result.returncode == 0, (out, result.stderr.decode())
    assert out["child-peer"] == [f"127.0.0.1 {port}"] * 2
    assert out["child-local"] == [single(out, "parent-local")] * 2
    assert out["child-echo"] == ["ok", "ok"]
    assert out["child-var"] == ["absent", "absent"]


def env_of_exec(shim, srv, exe, port, how):
    result, out = run(shim, srv, exe, "127.0.0.1", port, how)
    assert result.returncode == 0, (out, result.stderr.decode())
    assert single(out, "parent-echo") == "ok"
    return [line for line in result.stdout.decode().splitlines() if "=" in line]


def test_the_variable_carries_only_inheritable_connections(shim, socks_server, tcp_echo_server,
                                                           exec_inherit):
    srv = socks_server()
    port = tcp_echo_server[1]
    plain = env_of_exec(shim, srv, exec_inherit, port, "plain-env")
    carried = [line for line in plain if line.startswith("SOCKSIFY_INHERIT=")]
    assert len(carried) == 1 and carried[0].startswith("SOCKSIFY_INHERIT=3:"), plain
    assert "SOCKSIFY_TEST=1" in plain
    # close-on-exec: nothing to carry, so the environment is the caller's plus the shim's
    # own variables, which the caller left out (csrc/env_follow.c)
    started = shim.env(srv.url("socks5h"))
    shim_vars = [f"{name}={started[name]}" for name in (
        "LD_PRELOAD", "SOCKSIFY_PROXY", "ASAN_OPTIONS", "UBSAN_OPTIONS") if name in started]
    assert sorted(env_of_exec(shim, srv, exec_inherit, port, "cloexec-env")) == sorted(
        ["SOCKSIFY_TEST=1", *shim_vars])
    assert sorted(line for line in plain if not line.startswith("SOCKSIFY_INHERIT=")) == sorted(
        ["SOCKSIFY_TEST=1", *shim_vars])


def test_a_descriptor_replaced_on_the_way_is_not_mistaken(shim, socks_server, tcp_echo_server,
                                                         exec_inherit):
    srv = socks_server()
    port = tcp_echo_server[1]
    result, out = run(shim, srv, exec_inherit, "127.0.0.1", port, "spawn-replaced")
    # the spawned image's FD is a unix socket (dup2 in the file actions), so the carried
    # entry does not apply: the kernel's answer (AF_UNIX = 1) stands
    assert single(out, "child-peer") == "family 1", out
    assert single(out, "child-local") == "family 1", out
    assert single(out, "child-echo") == "FAIL"  # the socketpair's other end is closed
    assert srv.wait_records(1)[0]["outcome"] == "ok"


def _sockaddr_in_hex(ip: str, port: int) -> str:
    raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(ip)
    return (raw + bytes(8)).hex()


FORGED = [
    "garbage", "", ";;;", "0:", "x" * 5000,
    "0:WRONG_INODE:PEER::1.80.7f000001",  # another socket's inode
    "0:INODE:PEER::9.80.7f000001",  # unknown address type
    "0:INODE:PEER::1.80.7f",  # short address
    "0:INODE:0200::1.80.7f000001",  # short sockaddr
    "0:INODE:PEER::3.80.",  # empty name
]


@pytest.mark.parametrize("forged", FORGED)
def test_a_forged_or_stale_variable_is_ignored_and_removed(forged, shim, exec_inherit):
    """fd 0 is a unix socketpair: only an entry naming its inode may apply."""
    mine, theirs = socket.socketpair()
    with mine, theirs:
        inode = os.fstat(theirs.fileno()).st_ino
        value = (forged.replace("WRONG_INODE", str(inode + 1)).replace("INODE", str(inode))
                 .replace("PEER", _sockaddr_in_hex("127.0.0.1", 80)))
        result = subprocess.run(
            [exec_inherit, "child", "0", "names"], stdin=theirs, capture_output=True,
            env=shim.env(None, SOCKSIFY_INHERIT=value), timeout=TIMEOUT,
        )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode().splitlines()
    assert out == ["child-var absent", "child-peer family 1", "child-local family 1"]


def test_a_valid_variable_for_the_same_socket_is_restored(shim, exec_inherit):
    """The positive control of the test above: the same entry with the right inode."""
    mine, theirs = socket.socketpair()
    with mine, theirs:
        inode = os.fstat(theirs.fileno()).st_ino
        value = f"0:{inode}:{_sockaddr_in_hex('127.0.0.1', 80)}::1.80.7f000001"
        result = subprocess.run(
            [exec_inherit, "child", "0", "names"], stdin=theirs, capture_output=True,
            env=shim.env(None, SOCKSIFY_INHERIT=value), timeout=TIMEOUT,
        )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode().splitlines()
    assert out == ["child-var absent", "child-peer 127.0.0.1 80", "child-local family 1"]


PARENT_KEEPS = """
import socket, subprocess, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
before = s.getpeername()
subprocess.run(["true"], check=True)  # close_fds: the child closes s, then execs (vfork)
subprocess.run(["true"], check=True, pass_fds=[s.fileno()])  # carried, still open here
s.sendall(b"ping\\n")
print(before == s.getpeername(), s.getpeername()[1], s.recv(5) == b"ping\\n")
"""


def test_the_parent_keeps_its_entries_when_a_child_execs(shim, socks_server, tcp_echo_server):
    """CPython's subprocess execs in a vfork() child, whose writes land in the parent's
    memory: the exec hook must not drop the entry of an fd the CHILD closed."""
    srv = socks_server()
    port = tcp_echo_server[1]
    result = shim.run([sys.executable, "-c", PARENT_KEEPS, str(port)], srv.url("socks5"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == ["True", str(port), "True"]


@pytest.mark.parametrize("host", ["127.0.0.1", NAME])
def test_several_connections_a_dup_and_a_close_on_exec_one(host, shim, socks_server,
                                                           tcp_echo_server, exec_inherit):
    srv = socks_server(hosts={NAME: "127.0.0.1"})
    port = tcp_echo_server[1]
    result, out = run(shim, srv, exec_inherit, host, port, "several")
    assert result.returncode == 0, (out, result.stderr.decode())
    first, second, copy = single(out, "fds").split()
    peer = single(out, "parent-peer")
    assert single(out, f"fd{first}-peer") == peer
    assert single(out, f"fd{copy}-peer") == peer  # the dup() travels too
    assert single(out, f"fd{first}-local") == single(out, "parent-local")
    assert single(out, f"fd{second}-peer").startswith("error ")  # closed by the exec
    assert [r["destination"] for r in srv.wait_records(2)] == [host, host]


def test_the_debug_log_counts_the_inherited_connections(shim, socks_server, tcp_echo_server,
                                                        exec_inherit):
    srv = socks_server()
    result, out = run(shim, srv, exec_inherit, "127.0.0.1", tcp_echo_server[1], "execv",
                      SOCKSIFY_LOG="debug")
    assert result.returncode == 0, (out, result.stderr.decode())
    counts = [line.split("remote DNS ")[1] for line in result.stderr.decode().splitlines()
              if "initialised:" in line]
    # the first image inherited nothing; the exec'd one got the connection
    assert counts == ["on, 0 proxied connection(s) inherited across exec",
                      "on, 1 proxied connection(s) inherited across exec"]


def test_a_vfork_child_closing_the_fd_leaves_the_parent_entry(shim, socks_server,
                                                              tcp_echo_server, exec_inherit):
    """The C twin of the test above, whatever the Python: close() in a vfork() child."""
    srv = socks_server()
    port = tcp_echo_server[1]
    result, out = run(shim, srv, exec_inherit, "127.0.0.1", port, "vfork-close")
    assert result.returncode == 0, (out, result.stderr.decode())
    assert single(out, "after-vfork-peer") == f"127.0.0.1 {port}"
    assert single(out, "after-vfork-local") == single(out, "parent-local")
    assert single(out, "after-vfork-echo") == "ok"
