"""A tiny blocking SOCKS client over our own sans-IO core, for driving the server in tests."""

import socket

from socksify.protocol import (
    NEED_DATA,
    Address,
    AuthMethod,
    AuthResult,
    Command,
    Connection,
    Greeting,
    MethodSelected,
    Reply,
    Request,
    Role,
    UserPassAuth,
)


def recv_until_closed(sock: socket.socket, timeout: float = 30) -> bytes:
    """Everything ``sock`` receives until the server closes it (a reset counts as closed);
    ``timeout`` bounds each wait, so a server that never closes fails the test."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(100):
            data += chunk
    except ConnectionResetError:
        pass
    return data

class CoreClient:
    """``CoreClient(server_address, version)``: handshake, request, read replies, then raw I/O."""

    def __init__(self, server, version=5, user=None, password=None, timeout=10):
        self.sock = socket.create_connection(server, timeout=timeout)
        self.conn = Connection(Role.CLIENT, version)
        self.version = version
        self.user, self.password = user, password

    def _event(self):
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            self.conn.receive_data(self.sock.recv(65536))

    def negotiate(self) -> str | None:
        """SOCKS5 method negotiation and login: None when the request may follow, else
        "no-acceptable-method" or "auth-failed"."""
        methods = (AuthMethod.USERNAME_PASSWORD,) if self.user else (AuthMethod.NO_AUTH,)
        self.sock.sendall(self.conn.send(Greeting(methods)))
        selected = self._event()
        assert isinstance(selected, MethodSelected)
        if selected.method == AuthMethod.NO_ACCEPTABLE:
            return "no-acceptable-method"
        if selected.method == AuthMethod.USERNAME_PASSWORD:
            self.sock.sendall(self.conn.send(UserPassAuth(self.user.encode(),
                                                          self.password.encode())))
            result = self._event()
            assert isinstance(result, AuthResult)
            if not result.success:
                return "auth-failed"
        return None

    def request(self, command, host, port, user_id=b""):
        """Send the request (after SOCKS5 negotiation); return the first Reply."""
        if self.version == 5:
            failed = self.negotiate()
            assert failed is None, failed
        return self.send_request(command, host, port, user_id)

    def send_request(self, command, host, port, user_id=b""):
        """The request alone (SOCKS4, or SOCKS5 once negotiated); return the first Reply."""
        request = Request(Command(command), Address.from_host(host), port, user_id)
        self.sock.sendall(self.conn.send(request))
        return self.reply()

    def reply(self) -> Reply:
        event = self._event()
        assert isinstance(event, Reply), event
        return event

    def succeeded(self, reply) -> bool:
        return self.conn.reply_succeeded(reply)

    def recv_exactly(self, count: int) -> bytes:
        data = self.conn.trailing_data if self.conn.state.name in ("TUNNEL",) else b""
        while len(data) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
