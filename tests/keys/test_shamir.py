"""Shamir secret sharing: field arithmetic, properties, and real sops key-group shares."""

from __future__ import annotations

import base64
import itertools
import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kagura_ops.keys.shamir import _inv, _mul, combine, split
from kagura_ops.testing import interop_opt_out

# ---------------------------------------------------------------- field arithmetic


def _reference_mul(a: int, b: int) -> int:
    """Bitwise GF(2^8) product mod 0x11B, the way sops' ``mult`` computes it."""
    acc = 0
    for i in range(7, -1, -1):
        acc = ((acc << 1) ^ (0x11B if acc & 0x80 else 0)) & 0xFF
        if (b >> i) & 1:
            acc ^= a
    return acc


def test_mul_matches_bitwise_reference_for_all_pairs() -> None:
    for a in range(256):
        for b in range(256):
            assert _mul(a, b) == _reference_mul(a, b), (a, b)


def test_mul_fips197_examples() -> None:
    # FIPS-197 section 4.2: {57} * {83} = {c1}, {57} * {13} = {fe}.
    assert _mul(0x57, 0x83) == 0xC1
    assert _mul(0x57, 0x13) == 0xFE


def test_inverse() -> None:
    for a in range(1, 256):
        assert _mul(a, _inv(a)) == 1


# ---------------------------------------------------------------- split / combine


@settings(max_examples=60, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=48),
    shape=st.integers(min_value=2, max_value=6).flatmap(
        lambda parts: st.tuples(st.just(parts), st.integers(min_value=2, max_value=parts))
    ),
)
def test_every_subset_of_at_least_threshold_recombines(
    secret: bytes, shape: tuple[int, int]
) -> None:
    parts, threshold = shape
    shares = split(secret, parts, threshold)
    assert len(shares) == parts
    for i, share in enumerate(shares):
        assert len(share) == len(secret) + 1
        assert share[-1] == i + 1  # sops: x = 1..n, in key-group order
    for size in range(threshold, parts + 1):
        for subset in itertools.combinations(shares, size):
            assert combine(subset) == secret
            assert combine(list(reversed(subset))) == secret


def test_32_byte_data_key_many_groups() -> None:
    key = os.urandom(32)
    shares = split(key, 255, 3)
    assert combine([shares[0], shares[100], shares[254]]) == key
    assert combine(shares) == key


def test_shares_are_random() -> None:
    key = os.urandom(32)
    assert split(key, 3, 2) != split(key, 3, 2)


@pytest.mark.parametrize(
    ("parts", "threshold", "secret", "message"),
    [
        (2, 3, b"k", "parts cannot be less than threshold"),
        (256, 2, b"k", "parts cannot exceed 255"),
        (3, 1, b"k", "threshold must be at least 2"),
        (3, 0, b"k", "threshold must be at least 2"),
        (3, 2, b"", "cannot split an empty secret"),
    ],
)
def test_split_rejects_what_sops_rejects(
    parts: int, threshold: int, secret: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        split(secret, parts, threshold)


def test_combine_validation() -> None:
    a, b, _ = split(b"secret", 3, 2)
    with pytest.raises(ValueError, match="less than two parts"):
        combine([a])
    with pytest.raises(ValueError, match="at least two bytes"):
        combine([b"\x01", b"\x02"])
    with pytest.raises(ValueError, match="same length"):
        combine([a, b + b"\x00"])
    with pytest.raises(ValueError, match="duplicate part"):
        combine([a, a])


# ---------------------------------------------------------------- real sops vector

_VECTOR_DIRS = [
    Path(__file__).resolve().parents[1] / "vectors" / "sops",
]
_GENERATED = next(
    (d / "age" / "generated-sops-3.11.0" for d in _VECTOR_DIRS if (d / "age").is_dir()),
    None,
)
_ENC_RE = re.compile(
    r"^ENC\[AES256_GCM,data:(?P<data>[^,]*),iv:(?P<iv>[^,]+),tag:(?P<tag>[^,]+),type:str\]$"
)

needs_vectors = pytest.mark.interop  # the vectors are in tests/vectors: never skipped


def _identity_line(key_file: Path) -> str:
    return next(
        line for line in key_file.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")
    )


def _load_shamir_vector() -> tuple[dict[str, object], list[bytes]]:
    pyrage = pytest.importorskip("pyrage")
    from ruamel.yaml import YAML

    assert _GENERATED is not None
    doc = YAML(typ="safe").load((_GENERATED / "g_shamir_2of3.enc.yaml").read_text())
    sops = doc["sops"]
    shares = []
    for i, group in enumerate(sops["key_groups"], start=1):
        identity = pyrage.x25519.Identity.from_str(_identity_line(_GENERATED / f"g{i}.key"))
        shares.append(pyrage.decrypt(group["age"][0]["enc"].encode(), [identity]))
    return sops, shares


def _decrypt_mac(sops: dict[str, object], data_key: bytes) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    match = _ENC_RE.match(str(sops["mac"]))
    assert match is not None
    ciphertext = base64.b64decode(match["data"]) + base64.b64decode(match["tag"])
    plain = AESGCM(data_key).decrypt(
        base64.b64decode(match["iv"]), ciphertext, str(sops["lastmodified"]).encode()
    )
    return plain.decode()


@needs_vectors
def test_sops_shares_combine_to_the_data_key_that_decrypts_the_mac() -> None:
    sops, shares = _load_shamir_vector()
    assert sops["shamir_threshold"] == 2
    assert [len(s) for s in shares] == [33, 33, 33]
    assert [s[-1] for s in shares] == [1, 2, 3]

    keys = {combine(pair) for pair in itertools.combinations(shares, 2)}
    keys.add(combine(shares))
    assert len(keys) == 1
    (data_key,) = keys
    assert len(data_key) == 32

    mac = _decrypt_mac(sops, data_key)
    assert re.fullmatch(r"[0-9A-F]{128}", mac)


def _armor(binary: bytes) -> str:
    body = base64.b64encode(binary).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(
        ["-----BEGIN AGE ENCRYPTED FILE-----", *lines, "-----END AGE ENCRYPTED FILE-----", ""]
    )


@pytest.mark.interop
@needs_vectors
@pytest.mark.skipif(interop_opt_out("sops"), reason="KAGURA_OPS_SKIP_INTEROP=1 opt-out")
def test_sops_decrypts_with_shares_we_split(tmp_path: Path) -> None:
    """Re-split the vector's data key with our split(); real sops must still decrypt."""
    import pyrage
    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import LiteralScalarString

    assert _GENERATED is not None
    _, shares = _load_shamir_vector()
    data_key = combine(shares[:2])

    yaml = YAML()  # round trip: everything but the wrapped shares stays byte-identical
    source = _GENERATED / "g_shamir_2of3.enc.yaml"
    doc = yaml.load(source.read_text())
    new_shares = split(data_key, 3, 2)
    for group, share in zip(doc["sops"]["key_groups"], new_shares, strict=True):
        recipient = pyrage.x25519.Recipient.from_str(group["age"][0]["recipient"])
        group["age"][0]["enc"] = LiteralScalarString(_armor(pyrage.encrypt(share, [recipient])))
    target = tmp_path / "resplit.enc.yaml"
    with target.open("w") as fh:
        yaml.dump(doc, fh)

    # Groups 1 and 3 only: group 2's identity is not given to sops.
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("\n".join(_identity_line(_GENERATED / f"g{i}.key") for i in (1, 3)) + "\n")
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(keys_file)}
    env.pop("SOPS_AGE_KEY", None)
    result = subprocess.run(
        ["sops", "decrypt", str(target)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    expected = (_GENERATED / "g_shamir_2of3.expected.yaml").read_text()
    loader = YAML(typ="safe")
    assert loader.load(result.stdout) == loader.load(expected)
