"""Passwords for RFC 1929 username/password authentication.

Rules of this module:

- A stored password is either plain text or an scrypt hash in the form
  ``scrypt$N$r$p$SALT$HASH`` (SALT and HASH in standard base64), made by
  :func:`hash_password` (``socksify-server --hash-password``). A :class:`PlainPassword`
  (what ``--user NAME:PASSWORD`` gives) is plain text even when it starts with ``scrypt$``.
- Every comparison is constant-time (:func:`hmac.compare_digest`), and a login for an
  unknown user does the same work as one for a known user (it is checked against a dummy
  entry of the same kind), so neither timing nor the reply tells which user names exist.
- :meth:`Authenticator.verify` is pure CPU work; the server runs it in a thread because an
  scrypt check takes tens of milliseconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

__all__ = ["Authenticator", "PlainPassword", "hash_password", "is_hashed", "parse_hash"]

#: Default scrypt cost: N=2**14, r=8, p=1 (about 16 MiB and a few tens of ms per check).
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**14, 8, 1
_PREFIX = "scrypt$"
_MAXMEM = 256 * 1024 * 1024


@dataclass(frozen=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes = b""

    def compute(self, password: bytes) -> bytes:
        return hashlib.scrypt(
            password,
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            maxmem=_MAXMEM,
            dklen=len(self.digest) or 32,
        )

    def format(self) -> str:
        salt = base64.b64encode(self.salt).decode()
        digest = base64.b64encode(self.digest).decode()
        return f"scrypt${self.n}${self.r}${self.p}${salt}${digest}"


class PlainPassword(str):
    """A password taken literally, never read as a hash: ``--user`` passwords (SPEC)."""

    __slots__ = ()


def is_hashed(stored: str) -> bool:
    """True when ``stored`` is in the ``scrypt$...`` form (rather than a plain password)."""
    return not isinstance(stored, PlainPassword) and stored.startswith(_PREFIX)


def parse_hash(stored: str) -> ScryptHash:
    """Parse ``scrypt$N$r$p$SALT$HASH``.

    Raises:
        ValueError: with a message naming the bad part.
    """
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("a password hash must look like scrypt$N$r$p$SALT$HASH")
    try:
        n, r, p = (int(x) for x in parts[1:4])
    except ValueError:
        raise ValueError("scrypt N, r and p must be integers") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or n * r * 128 > _MAXMEM // 2:
        raise ValueError("scrypt N must be a power of two > 1 and r, p positive (and not huge)")
    try:
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except binascii.Error:
        raise ValueError("scrypt salt and hash must be base64") from None
    if not salt or len(digest) < 16:
        raise ValueError("scrypt salt is empty or hash is shorter than 16 bytes")
    return ScryptHash(n, r, p, salt, digest)


def hash_password(
    password: str | bytes, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """Return ``scrypt$N$r$p$SALT$HASH`` for ``password`` with a fresh 16-byte salt."""
    if isinstance(password, str):
        password = password.encode()
    spec = ScryptHash(n, r, p, os.urandom(16))
    return ScryptHash(n, r, p, spec.salt, spec.compute(password)).format()


class Authenticator:
    """Checks RFC 1929 user names and passwords against a ``{name: stored}`` mapping."""

    def __init__(self, users: dict[str, str]):
        self._plain: dict[bytes, bytes] = {}
        self._hashed: dict[bytes, ScryptHash] = {}
        for name, stored in users.items():
            if is_hashed(stored):
                self._hashed[name.encode()] = parse_hash(stored)
            else:
                self._plain[name.encode()] = stored.encode()
        # Unknown users are checked against a dummy of the costliest kind in use, so the
        # time taken does not reveal whether the name exists.
        if self._hashed:
            model = max(self._hashed.values(), key=lambda h: h.n * h.r * h.p)
            self._dummy: ScryptHash | bytes = ScryptHash(
                model.n, model.r, model.p, b"\0" * len(model.salt), b"\0" * len(model.digest)
            )
        else:
            self._dummy = b"\0" * 32

    def __bool__(self) -> bool:
        return bool(self._plain or self._hashed)

    def verify(self, username: bytes, password: bytes) -> bool:
        """True when ``username``/``password`` match a configured user (constant time)."""
        # Explicit membership tests: an empty plain password is falsy but real.
        if username in self._hashed:
            known, stored = True, self._hashed[username]
        elif username in self._plain:
            known, stored = True, self._plain[username]
        else:
            known, stored = False, self._dummy
        if isinstance(stored, ScryptHash):
            ok = hmac.compare_digest(stored.compute(password), stored.digest)
        else:
            ok = hmac.compare_digest(password, stored)
        return ok and known
