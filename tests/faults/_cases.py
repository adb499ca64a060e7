"""The faulty-proxy cases: what a fake proxy answers, and what each shim must report.

Each case is ``(name, scheme, user, script, kind, errno_name)``: the proxy URL's scheme and
user, the :class:`~._fake_proxy.FakeProxy` script, the ``socksify.errors`` class the Python
shim raises and the errno both shims give (SPEC.md's reply table).
"""

from __future__ import annotations

from socksify.protocol import AuthMethod, AuthResult, MethodSelected

from ._fake_proxy import CLOSE, Raw, reply

REFUSED, AUTH, PROTOCOL = "ProxyRefusedError", "ProxyAuthError", "ProxyProtocolError"

#: RFC 1928 §6 REP -> errno name (SPEC.md)
SOCKS5_REPLIES = {
    1: "ECONNREFUSED",
    2: "EACCES",
    3: "ENETUNREACH",
    4: "EHOSTUNREACH",
    5: "ECONNREFUSED",
    6: "ETIMEDOUT",
    7: "EOPNOTSUPP",
    8: "EAFNOSUPPORT",
    9: "ECONNREFUSED",  # unassigned: an unknown failure is still a refusal
    0xF3: "ECONNREFUSED",  # Tor's extended "host unreachable" family: also unknown here
}
SOCKS4_REPLIES = {91: "ECONNREFUSED", 92: "EACCES", 93: "EACCES"}

_HTTP_ERROR = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"

CASES = [
    *[(f"socks5-reply-{code}", "socks5", None, {"request": reply(code)}, REFUSED, name)
      for code, name in SOCKS5_REPLIES.items()],
    *[(f"socks4-reply-{code}", "socks4", None, {"request": reply(code)}, REFUSED, name)
      for code, name in SOCKS4_REPLIES.items()],
    ("socks5-auth-failed", "socks5", "alice",
     {"greeting": MethodSelected(AuthMethod.USERNAME_PASSWORD), "auth": AuthResult(False)},
     AUTH, "EACCES"),
    ("socks5-no-acceptable-method", "socks5", None,
     {"greeting": MethodSelected(AuthMethod.NO_ACCEPTABLE)}, AUTH, "EACCES"),
    ("socks5-no-acceptable-method-with-user", "socks5", "alice",
     {"greeting": MethodSelected(AuthMethod.NO_ACCEPTABLE)}, AUTH, "EACCES"),
    # garbage, held open: the client must reject it without waiting for more
    ("socks5-http-answer", "socks5", None, {"greeting": Raw(_HTTP_ERROR, False)},
     PROTOCOL, "EPROTO"),
    ("socks5-method-reply-version-4", "socks5", None, {"greeting": Raw(b"\x04\x00", False)},
     PROTOCOL, "EPROTO"),
    ("socks5-method-not-offered", "socks5", None, {"greeting": Raw(b"\x05\x02", False)},
     PROTOCOL, "EPROTO"),
    ("socks5-reply-version-4", "socks5", None,
     {"request": Raw(b"\x04\x00\x00\x01\x7f\x00\x00\x01\x10\x92", False)}, PROTOCOL, "EPROTO"),
    ("socks5-reply-bad-address-type", "socks5", None,
     {"request": Raw(b"\x05\x00\x00\x09\x7f\x00\x00\x01\x10\x92", False)}, PROTOCOL, "EPROTO"),
    ("socks5-auth-reply-garbage", "socks5", "alice",
     {"greeting": MethodSelected(AuthMethod.USERNAME_PASSWORD), "auth": Raw(b"\x05", False)},
     PROTOCOL, "EPROTO"),
    ("socks4-reply-garbage", "socks4", None,
     {"request": Raw(b"HTTP/1.1", False)}, PROTOCOL, "EPROTO"),
    # early close at each step of the handshake
    ("close-before-greeting", "socks5", None, {"accept": CLOSE}, PROTOCOL, "EPROTO"),
    ("close-after-greeting", "socks5", None, {"greeting": CLOSE}, PROTOCOL, "EPROTO"),
    ("close-mid-method-reply", "socks5", None, {"greeting": Raw(b"\x05")}, PROTOCOL, "EPROTO"),
    ("close-after-auth", "socks5", "alice",
     {"greeting": MethodSelected(AuthMethod.USERNAME_PASSWORD), "auth": CLOSE},
     PROTOCOL, "EPROTO"),
    ("close-after-request", "socks5", None, {"request": CLOSE}, PROTOCOL, "EPROTO"),
    ("close-mid-reply", "socks5", None, {"request": Raw(b"\x05\x00\x00\x01\x7f")},
     PROTOCOL, "EPROTO"),
    ("socks4-close-after-request", "socks4", None, {"request": CLOSE}, PROTOCOL, "EPROTO"),
    ("socks4-close-mid-reply", "socks4", None, {"request": Raw(b"\x00\x5a\x00")},
     PROTOCOL, "EPROTO"),
]

#: cases whose script ends with the connection held open by the proxy
HELD_OPEN = {
    name for name, _s, _u, script, _k, _e in CASES
    if not any(value is CLOSE or (isinstance(value, Raw) and value.then_close)
               for value in script.values())
}
