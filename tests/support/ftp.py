"""``ftp_server``: a small, real FTP server on loopback for active-mode (SOCKS BIND) tests.

Why our own server and not vsftpd: vsftpd needs root, a system user and a chroot directory,
and cannot tell a test where its data connections went. This one runs unprivileged in a
thread and records every transfer.

Implemented (RFC 959 plus RFC 2428 EPRT/EPSV and RFC 3659 SIZE), enough for curl, wget and
Python's ftplib: USER, PASS (any user, read-only), SYST, FEAT, PWD, CWD, CDUP, TYPE, MODE,
STRU, OPTS, NOOP, SIZE, MDTM (refused), REST 0, PASV, EPSV, PORT, EPRT, RETR, LIST, NLST,
QUIT. ``PORT``/``EPRT`` are "promiscuous": the server connects to whatever address the client
names, which under a SOCKS shim is the proxy's BIND listener, not the client.

The fixture gives an :class:`FtpServer` with ``.host``, ``.port``, ``.files`` (absolute path ->
bytes; ``/hello.txt`` and a 300000-byte pattern file ``/pattern.bin`` to start with),
``.url(path)`` and ``.transfers``: one dict per data connection, with ``"mode"``
(``"active"`` or ``"passive"``), ``"command"`` (``"RETR"``/``"LIST"``/``"NLST"``),
``"path"``, ``"target"`` (the address named by PORT/EPRT, None when passive) and ``"peer"``
(the far end of the data connection as the server saw it).

All sockets have timeouts (10 s), so a confused client can never hang a test.
"""

import contextlib
import posixpath
import socket
import threading

import pytest

from support.targets import pattern_bytes

_TIMEOUT = 10.0
HELLO = b"hello from the socksify FTP test server\n"
PATTERN_SIZE = 300_000


class FtpServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.files: dict[str, bytes] = {
            "/hello.txt": HELLO,
            "/pattern.bin": pattern_bytes(PATTERN_SIZE),
        }
        self.transfers: list[dict] = []
        self.commands: list[str] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def url(self, path: str = "/hello.txt") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ftp://{host}:{self.port}{path}"

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._session, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _session(self, conn: socket.socket):
        conn.settimeout(_TIMEOUT)
        with contextlib.suppress(OSError), conn:
            _Session(self, conn).run()

    def close(self):
        self._stop.set()
        self._accepter.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


class _Session:
    """One control connection: a line-by-line command loop (RFC 959 §4.1, §5.4)."""

    def __init__(self, server: FtpServer, conn: socket.socket):
        self.server = server
        self.conn = conn
        self.reader = conn.makefile("rb")
        self.cwd = "/"
        self.active_target: tuple[str, int] | None = None
        self.passive: socket.socket | None = None

    def reply(self, text: str):
        self.conn.sendall(text.encode() + b"\r\n")

    def run(self):
        self.reply("220 socksify test FTP server ready")
        while not self.server._stop.is_set():
            line = self.reader.readline(4096)
            if not line:
                return
            command, _, arg = line.decode("latin-1").rstrip("\r\n").partition(" ")
            command = command.upper()
            self.server.commands.append(command)
            handler = getattr(self, "cmd_" + command, None)
            if handler is None:
                self.reply(f"502 {command} not implemented")
                continue
            if handler(arg) is False:
                return

    def _path(self, arg: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, arg or "."))

    # -- login and state -------------------------------------------------------------------
    def cmd_USER(self, arg):
        self.reply("331 any password will do")

    def cmd_PASS(self, arg):
        self.reply("230 logged in, read-only")

    def cmd_SYST(self, arg):
        self.reply("215 UNIX Type: L8")

    def cmd_FEAT(self, arg):
        self.conn.sendall(b"211-Features:\r\n EPRT\r\n EPSV\r\n SIZE\r\n211 End\r\n")

    def cmd_PWD(self, arg):
        self.reply(f'257 "{self.cwd}" is the current directory')

    def cmd_CWD(self, arg):
        path = self._path(arg)
        prefix = path.rstrip("/") + "/"
        if path == "/" or any(name.startswith(prefix) for name in self.server.files):
            self.cwd = path
            self.reply("250 directory changed")
        else:
            self.reply("550 no such directory")

    def cmd_CDUP(self, arg):
        self.cwd = posixpath.dirname(self.cwd.rstrip("/")) or "/"
        self.reply("250 directory changed")

    def cmd_TYPE(self, arg):
        self.reply(f"200 type set to {arg}")

    def cmd_MODE(self, arg):
        self.reply("200 stream mode")

    def cmd_STRU(self, arg):
        self.reply("200 file structure")

    def cmd_OPTS(self, arg):
        self.reply("200 ok")

    def cmd_NOOP(self, arg):
        self.reply("200 ok")

    def cmd_REST(self, arg):
        if arg.strip() == "0":
            self.reply("350 restarting at 0")
        else:
            self.reply("504 only REST 0 is supported")

    def cmd_SIZE(self, arg):
        data = self.server.files.get(self._path(arg))
        if data is None:
            self.reply("550 no such file")
        else:
            self.reply(f"213 {len(data)}")

    def cmd_MDTM(self, arg):
        self.reply("550 no modification times here")

    def cmd_QUIT(self, arg):
        self.reply("221 bye")
        return False

    # -- data connection set-up ------------------------------------------------------------
    def _open_passive(self) -> int:
        if self.passive is not None:
            self.passive.close()
        self.active_target = None
        family = self.conn.family
        self.passive = socket.socket(family, socket.SOCK_STREAM)
        self.passive.bind((self.conn.getsockname()[0], 0))
        self.passive.listen(1)
        self.passive.settimeout(_TIMEOUT)
        return self.passive.getsockname()[1]

    def cmd_PASV(self, arg):
        if self.conn.family != socket.AF_INET:
            self.reply("522 use EPSV on IPv6")
            return
        port = self._open_passive()
        host = self.conn.getsockname()[0].replace(".", ",")
        self.reply(f"227 Entering Passive Mode ({host},{port >> 8},{port & 0xFF})")

    def cmd_EPSV(self, arg):
        if arg.upper() == "ALL":
            self.reply("200 EPSV ALL ok")
            return
        port = self._open_passive()
        self.reply(f"229 Entering Extended Passive Mode (|||{port}|)")

    def cmd_PORT(self, arg):
        try:
            parts = [int(x) for x in arg.split(",")]
            if len(parts) != 6 or not all(0 <= x <= 255 for x in parts):
                raise ValueError
        except ValueError:
            self.reply("501 bad PORT argument")
            return
        self._set_active(".".join(map(str, parts[:4])), parts[4] << 8 | parts[5])

    def cmd_EPRT(self, arg):
        # RFC 2428 §2: EPRT <d><net-prt><d><net-addr><d><tcp-port><d>
        try:
            delim = arg[0]
            _, proto, addr, port, _ = arg.split(delim)
            if proto not in ("1", "2"):
                raise ValueError
            port = int(port)
        except (ValueError, IndexError):
            self.reply("501 bad EPRT argument")
            return
        self._set_active(addr, port)

    def _set_active(self, host: str, port: int):
        if self.passive is not None:
            self.passive.close()
            self.passive = None
        self.active_target = (host, port)
        self.reply("200 active mode target accepted")

    def _data_connection(self) -> tuple[socket.socket, dict] | None:
        if self.active_target is not None:
            target, self.active_target = self.active_target, None
            try:
                data = socket.create_connection(target, timeout=_TIMEOUT)
            except OSError as exc:
                self.reply(f"425 cannot connect to {target}: {exc}")
                return None
            return data, {"mode": "active", "target": target, "peer": data.getpeername()[:2]}
        if self.passive is not None:
            listener, self.passive = self.passive, None
            with listener:
                try:
                    data, peer = listener.accept()
                except OSError as exc:
                    self.reply(f"425 no passive connection: {exc}")
                    return None
            data.settimeout(_TIMEOUT)
            return data, {"mode": "passive", "target": None, "peer": peer[:2]}
        self.reply("425 use PORT, EPRT, PASV or EPSV first")
        return None

    def _send_data(self, command: str, path: str, payload: bytes):
        self.reply("150 opening data connection")
        opened = self._data_connection()
        if opened is None:
            return
        data, record = opened
        record.update(command=command, path=path)
        try:
            with data:
                data.sendall(payload)
                data.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.reply(f"426 transfer aborted: {exc}")
            return
        self.server.transfers.append(record)
        self.reply("226 transfer complete")

    # -- transfers ---------------------------------------------------------------------------
    def cmd_RETR(self, arg):
        path = self._path(arg)
        payload = self.server.files.get(path)
        if payload is None:
            self.reply("550 no such file")
            return
        self._send_data("RETR", path, payload)

    def _names(self, arg: str) -> list[str]:
        directory = self._path(arg if arg and not arg.startswith("-") else "")
        prefix = directory.rstrip("/") + "/"
        return sorted(
            {
                name[len(prefix) :].split("/")[0]
                for name in self.server.files
                if name.startswith(prefix)
            }
        )

    def cmd_NLST(self, arg):
        names = self._names(arg)
        self._send_data("NLST", self.cwd, "".join(f"{n}\r\n" for n in names).encode())

    def cmd_LIST(self, arg):
        lines = []
        directory = self._path(arg if arg and not arg.startswith("-") else "")
        for name in self._names(arg):
            size = len(self.server.files.get(posixpath.join(directory, name), b""))
            lines.append(f"-r--r--r--   1 ftp ftp {size:>10} Jan 01 00:00 {name}\r\n")
        self._send_data("LIST", self.cwd, "".join(lines).encode())


@pytest.fixture
def ftp_server():
    server = FtpServer()
    yield server
    server.close()
