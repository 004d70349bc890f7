"""Shamir secret sharing over GF(2^8), byte-compatible with sops key groups.

A file with several key groups splits its 32-byte data key into one share per
group; any ``shamir_threshold`` of them rebuild it. sops uses HashiCorp's
scheme (Vault's ``shamir`` package), and so do we:

* arithmetic in GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1
  (``0x11B``);
* one random polynomial of degree ``threshold - 1`` per secret byte, whose
  constant term is that byte;
* a share is the polynomial values for every byte (the y-coordinates) followed
  by ONE trailing byte holding the share's x-coordinate; sops evaluates at
  x = 1..parts, in key-group order.

Multiplication uses log/exp tables (generator 3). Table look-ups are not
constant time; for a data key split once per file on the machine that owns it
that is an acceptable trade, and it is the same field, so the shares are the
bytes sops would compute for the same coefficients.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

__all__ = ["SHARE_OVERHEAD", "combine", "split"]

#: Bytes a share has beyond the secret: the trailing x-coordinate.
SHARE_OVERHEAD = 1


def _build_tables() -> tuple[bytes, bytes]:
    """Exp and log tables of GF(2^8) mod 0x11B with generator 3.

    ``exp`` has 510 entries so that ``exp[log[a] + log[b]]`` needs no modulo.
    """
    exp = bytearray(510)
    log = bytearray(256)
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        # value * 3 == value * x + value; multiplying by x is a shift and a
        # conditional reduction by 0x11B.
        doubled = value << 1
        if doubled & 0x100:
            doubled ^= 0x11B
        value = doubled ^ value
    exp[255:510] = exp[0:255]
    return bytes(exp), bytes(log)


_EXP, _LOG = _build_tables()


def _mul(a: int, b: int) -> int:
    """Product of two field elements."""
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _inv(a: int) -> int:
    """Multiplicative inverse of a non-zero field element."""
    return _EXP[255 - _LOG[a]]


def split(secret: bytes, parts: int, threshold: int) -> list[bytes]:
    """Split ``secret`` into ``parts`` shares, any ``threshold`` of which rebuild it.

    Share ``i`` (0-based) has x-coordinate ``i + 1`` in its last byte, as in sops,
    so share ``i`` belongs to key group ``i``. Raises :class:`ValueError` with
    sops' messages for the same invalid arguments.
    """
    if parts < threshold:
        raise ValueError("parts cannot be less than threshold")
    if parts > 255:
        raise ValueError("parts cannot exceed 255")
    if threshold < 2:
        raise ValueError("threshold must be at least 2")
    if threshold > 255:
        raise ValueError("threshold cannot exceed 255")
    if len(secret) == 0:
        raise ValueError("cannot split an empty secret")

    xs = range(1, parts + 1)
    out = [bytearray(len(secret) + SHARE_OVERHEAD) for _ in xs]
    for share, x in zip(out, xs, strict=True):
        share[-1] = x
    for idx, intercept in enumerate(secret):
        # Coefficients 1..threshold-1 are random, the constant term is the byte.
        coefficients = secrets.token_bytes(threshold - 1)
        for share, x in zip(out, xs, strict=True):
            # Horner's method, highest degree first.
            y = 0
            for coefficient in reversed(coefficients):
                y = _mul(y ^ coefficient, x)
            share[idx] = y ^ intercept
    return [bytes(share) for share in out]


def combine(shares: Sequence[bytes]) -> bytes:
    """Rebuild the secret from at least ``threshold`` shares (order does not matter).

    Like sops, this cannot tell whether enough shares were given: with fewer
    than the threshold it returns a wrong value, not an error. Raises
    :class:`ValueError` for fewer than two shares, shares of different or too
    short lengths, and two shares with the same x-coordinate.
    """
    if len(shares) < 2:
        raise ValueError("less than two parts cannot be used to reconstruct the secret")
    length = len(shares[0])
    if length < 2:
        raise ValueError("parts must be at least two bytes")
    if any(len(share) != length for share in shares):
        raise ValueError("all parts must be the same length")
    xs = [share[-1] for share in shares]
    if len(set(xs)) != len(xs):
        raise ValueError("duplicate part detected")

    # Lagrange basis polynomials evaluated at x = 0 depend only on the
    # x-coordinates: l_i(0) = prod_{j != i} x_j / (x_i - x_j), where - is XOR.
    basis: list[int] = []
    for i, xi in enumerate(xs):
        value = 1
        for j, xj in enumerate(xs):
            if i != j:
                value = _mul(value, _mul(xj, _inv(xi ^ xj)))
        basis.append(value)

    secret = bytearray(length - SHARE_OVERHEAD)
    for idx in range(len(secret)):
        byte = 0
        for share, weight in zip(shares, basis, strict=True):
            byte ^= _mul(share[idx], weight)
        secret[idx] = byte
    return bytes(secret)
