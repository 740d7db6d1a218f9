"""Resource-group passwords: stored as salted scrypt hashes, verified in constant time.

Upstream stores and compares the raw password (docs/upstream.md#storage-flaws-fixed, item 9).
The stored form is self-describing, so the cost can be raised later without invalidating
existing hashes::

    scrypt-sha256$<log2 n>$<r>$<p>$<salt, base64>$<key, base64>

scrypt is keyed through HMAC, which pads a key shorter than its block with zero bytes, so fed
the raw password it verifies ``pw`` for ``pw\x00`` as well (found by the hostile suite). The
password therefore goes through SHA-256 first: every input becomes 32 bytes and no two
passwords are equivalent. Hashes of the first form, ``scrypt$...`` (the raw password), still
verify as they did.

Hashing costs tens of milliseconds of CPU on purpose; callers run it in a worker thread.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

import attrs

_SCHEME = b"scrypt-sha256"
_LEGACY_SCHEME = b"scrypt"
"""Hashes of the raw password, written before ``_SCHEME``: verified, never written."""
_SALT_BYTES = 16
_KEY_BYTES = 32
_MAX_MEMORY = 64 << 20


@attrs.frozen
class ScryptCost:
    """scrypt's work factors: ``n = 2**log2_n`` (memory is about ``128 * r * n`` bytes)."""

    log2_n: int = 14
    r: int = 8
    p: int = 1


DEFAULT_COST = ScryptCost()


def _derive(password: bytes, salt: bytes, cost: ScryptCost, *, prehash: bool = True) -> bytes:
    return hashlib.scrypt(
        hashlib.sha256(password).digest() if prehash else password,
        salt=salt,
        n=1 << cost.log2_n,
        r=cost.r,
        p=cost.p,
        maxmem=_MAX_MEMORY,
        dklen=_KEY_BYTES,
    )


def hash_password(password: bytes, cost: ScryptCost = DEFAULT_COST) -> bytes:
    """A new salted hash of ``password`` in the stored form."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password, salt, cost)
    fields = [
        _SCHEME,
        str(cost.log2_n).encode(),
        str(cost.r).encode(),
        str(cost.p).encode(),
        base64.b64encode(salt),
        base64.b64encode(key),
    ]
    return b"$".join(fields)


def verify_password(password: bytes, stored: bytes) -> bool:
    """True if ``password`` matches ``stored``; a malformed ``stored`` never matches."""
    parts = stored.split(b"$")
    if len(parts) != 6 or parts[0] not in (_SCHEME, _LEGACY_SCHEME):
        return False
    try:
        cost = ScryptCost(int(parts[1]), int(parts[2]), int(parts[3]))
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
        if not 1 <= cost.log2_n <= 20 or not 1 <= cost.r <= 32 or not 1 <= cost.p <= 16:
            return False
        key = _derive(password, salt, cost, prehash=parts[0] == _SCHEME)
    except ValueError:
        return False
    return hmac.compare_digest(key, expected)


@functools.cache
def _dummy_hash() -> bytes:
    return hash_password(b"spider: no such resource group")


def burn_verification_time(password: bytes) -> None:
    """Spend what a verification costs, so that an unknown group answers as slowly as a known one."""
    verify_password(password, _dummy_hash())
