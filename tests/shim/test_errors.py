"""socksify.errors: errno tables (shared vectors) and the dual-class exceptions."""

import errno
import json
import pathlib
import pickle

import pytest

from socksify import errors
from socksify.errors import (
    ProxyAuthError,
    ProxyError,
    ProxyProtocolError,
    ProxyRefusedError,
    ProxyUnreachableError,
    UdpNotRelayableError,
)

ERRNO_MAP = json.loads(
    (pathlib.Path(__file__).parent.parent / "vectors" / "errno_map.json").read_text("utf-8")
)


def _named(table):
    """errno values by NAME (numbers differ by platform; Linux EOPNOTSUPP == ENOTSUP)."""
    return {str(code): value for code, value in table.items()}


def test_tables_match_the_shared_vectors():
    assert _named(errors.REPLY5_ERRNO) == {
        code: getattr(errno, name) for code, name in ERRNO_MAP["socks5"].items()
    }
    assert _named(errors.REPLY4_ERRNO) == {
        code: getattr(errno, name) for code, name in ERRNO_MAP["socks4"].items()
    }
    for key, value in [
        ("auth_failed", errors.ERRNO_AUTH_FAILED),
        ("no_acceptable_method", errors.ERRNO_NO_ACCEPTABLE_METHOD),
        ("protocol_violation", errors.ERRNO_PROTOCOL_VIOLATION),
        ("udp_not_relayable", errors.ERRNO_UDP_NOT_RELAYABLE),
        ("unknown_reply", errors.ERRNO_UNKNOWN_REPLY),
    ]:
        assert getattr(errno, ERRNO_MAP[key]) == value, key


@pytest.mark.parametrize(
    "version, code, builtin",
    [
        (5, 1, ConnectionRefusedError),
        (5, 2, PermissionError),
        (5, 5, ConnectionRefusedError),
        (5, 6, TimeoutError),
        (5, 0xF3, ConnectionRefusedError),
        (4, 91, ConnectionRefusedError),
        (4, 92, PermissionError),
    ],
)
def test_refused_is_also_the_builtin_subclass(version, code, builtin):
    error = errors.refused(version, code, "socks5://p:1", "CONNECT t:1")
    assert isinstance(error, ProxyRefusedError)
    assert isinstance(error, ProxyError)
    assert isinstance(error, builtin)
    assert error.reply_code == code
    assert error.errno == errors.reply_errno(version, code)
    assert error.args == (error.errno, error.strerror)
    assert "CONNECT t:1" in str(error)


@pytest.mark.parametrize("code", [3, 4, 7, 8])
def test_errnos_without_a_builtin_subclass_are_plain_oserror(code):
    error = errors.refused(5, code, "p", "CONNECT")
    assert type(error) is ProxyRefusedError
    assert not isinstance(error, ConnectionError)
    assert error.errno == errors.REPLY5_ERRNO[code]


def test_each_kind_gets_its_builtin():
    assert isinstance(ProxyUnreachableError(errno.ECONNREFUSED, "x"), ConnectionRefusedError)
    assert isinstance(ProxyUnreachableError(errno.ETIMEDOUT, "x"), TimeoutError)
    assert isinstance(ProxyAuthError(errno.EACCES, "x"), PermissionError)
    assert isinstance(UdpNotRelayableError(errno.EPERM, "x"), PermissionError)
    protocol = ProxyProtocolError(errno.EPROTO, "x")
    assert type(protocol) is ProxyProtocolError and protocol.errno == errno.EPROTO
    # the combined classes are cached: one class per (kind, builtin)
    assert type(ProxyAuthError(errno.EACCES, "a")) is type(ProxyAuthError(errno.EACCES, "b"))
    assert not isinstance(ProxyAuthError(errno.EACCES, "a"), ProxyRefusedError)


def test_pickle_keeps_class_and_reply_code():
    error = errors.refused(5, 5, "p", "CONNECT")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert clone.reply_code == 5 and clone.args == error.args
