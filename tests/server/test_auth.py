"""Password storage and checking (RFC 1929 credentials)."""

import pytest

from socksify.server._auth import (
    Authenticator,
    PlainPassword,
    hash_password,
    is_hashed,
    parse_hash,
)

FAST = {"n": 2**4, "r": 1, "p": 1}  # cheap scrypt parameters for the unit tests


def test_hash_format_and_round_trip():
    stored = hash_password("s3cret", **FAST)
    assert stored.startswith("scrypt$16$1$1$") and stored.count("$") == 5
    assert is_hashed(stored)
    auth = Authenticator({"alice": stored})
    assert auth.verify(b"alice", b"s3cret")
    assert not auth.verify(b"alice", b"S3cret")
    assert not auth.verify(b"mallory", b"s3cret")


def test_salt_is_fresh_each_time():
    assert hash_password("x", **FAST) != hash_password("x", **FAST)


def test_default_parameters_are_strong():
    spec = parse_hash(hash_password("pw"))
    assert (spec.n, spec.r, spec.p) == (2**14, 8, 1)
    assert len(spec.salt) == 16 and len(spec.digest) == 32


def test_plain_passwords():
    auth = Authenticator({"bob": "pa:ss word"})
    assert auth.verify(b"bob", b"pa:ss word")
    assert not auth.verify(b"bob", b"pa:ss")
    assert not auth.verify(b"", b"")
    assert bool(auth) and not bool(Authenticator({}))


def test_unknown_user_with_the_dummy_password_is_refused():
    # The dummy entry unknown users are checked against must never grant access.
    stored = hash_password("pw", **FAST)
    auth = Authenticator({"alice": stored})
    assert not auth.verify(b"nobody", b"")
    assert not auth.verify(b"nobody", b"\0" * 32)
    assert not Authenticator({"bob": "x"}).verify(b"nobody", b"\0" * 32)


def test_unknown_user_does_the_same_scrypt_work(monkeypatch):
    calls = []
    import hashlib
    real = hashlib.scrypt

    def counting(*args, **kwargs):
        calls.append(kwargs["n"])
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    auth = Authenticator({"alice": hash_password("pw", **FAST)})
    calls.clear()
    auth.verify(b"alice", b"wrong")
    auth.verify(b"nobody", b"wrong")
    assert calls == [16, 16]


@pytest.mark.parametrize(
    "stored",
    [
        "scrypt$16$1$1$c2FsdA==",
        "scrypt$x$1$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==",
        "scrypt$15$1$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==",
        "scrypt$16$1$1$!!!$aGFzaGhhc2hoYXNoaGFzaA==",
        "scrypt$16$1$1$c2FsdA==$c2hvcnQ=",
    ],
)
def test_malformed_hashes_are_rejected(stored):
    with pytest.raises(ValueError):
        parse_hash(stored)


def test_empty_plain_password_is_a_real_password():
    auth = Authenticator({"alice": ""})
    assert auth.verify(b"alice", b"")
    assert not auth.verify(b"alice", b"\0" * 32)
    assert not auth.verify(b"alice", b"x")


@pytest.mark.parametrize("text", ["scrypt$abc", "scrypt$16$1$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA=="])
def test_plain_password_marker_is_never_a_hash(text):
    # --user passwords are PlainPassword: taken literally even when they look like a hash.
    assert is_hashed(text) and not is_hashed(PlainPassword(text))
    auth = Authenticator({"alice": PlainPassword(text)})
    assert auth.verify(b"alice", text.encode())
    assert not auth.verify(b"alice", b"hashhashhashhash")
    assert not auth.verify(b"alice", text.encode() + b"x")
