"""Every age vector written by real sops decrypts to the plaintext sops printed.

The vectors (``tests/vectors/sops``) come from public repositories and from
sops 3.11.0 itself; each holds a public test key. Values are compared parsed,
not as bytes (sops re-emits YAML in its own style).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from kagura_ops.errors import UnsupportedError
from kagura_ops.keys.identities import Keyring
from kagura_ops.sops.files import decrypt_file

VECTORS = Path(__file__).parents[1] / "vectors" / "sops"
AGE = VECTORS / "age"

# (encrypted file, identity file(s), expected plaintext)
CASES = [
    (
        "humphd-sops-age/secret.enc.yaml",
        ["humphd-sops-age/key.txt"],
        "humphd-sops-age/secret.expected.yaml",
    ),
    ("humphd-sops-age/secret.enc.json", ["humphd-sops-age/key.txt"], "humphd-sops-age/secret.json"),
    ("sops-nix/secrets.yaml", ["sops-nix/age-keys.txt"], "sops-nix/secrets.expected.yaml"),
    (
        "helm-secrets/secrets.age.yaml",
        ["helm-secrets/key.txt"],
        "helm-secrets/secrets.age.expected.yaml",
    ),
    (
        "flux-kustomize-controller/algorithms-age.yaml",
        ["flux-kustomize-controller/age.txt"],
        "flux-kustomize-controller/algorithms-age.expected.yaml",
    ),
    (
        "flux-kustomize-controller/global-secret.yaml",
        ["flux-kustomize-controller/age-global.txt"],
        "flux-kustomize-controller/global-secret.expected.yaml",
    ),
    (
        "generated-sops-3.11.0/g_types_comments.enc.yaml",
        ["generated-sops-3.11.0/main.key"],
        "generated-sops-3.11.0/g_types_comments.expected.yaml",
    ),
    (
        "generated-sops-3.11.0/g_mac_only_encrypted.enc.yaml",
        ["generated-sops-3.11.0/main.key"],
        "generated-sops-3.11.0/g_mac_only_encrypted.expected.yaml",
    ),
    (
        "generated-sops-3.11.0/g_multidoc.enc.yaml",
        ["generated-sops-3.11.0/main.key"],
        "generated-sops-3.11.0/g_multidoc.expected.yaml",
    ),
    (
        "generated-sops-3.11.0/g_shamir_2of3.enc.yaml",
        ["generated-sops-3.11.0/g1.key", "generated-sops-3.11.0/g3.key"],
        "generated-sops-3.11.0/g_shamir_2of3.expected.yaml",
    ),
    (
        "generated-sops-3.11.0/g_shamir_2of3.enc.yaml",
        ["generated-sops-3.11.0/g2.key", "generated-sops-3.11.0/g3.key"],
        "generated-sops-3.11.0/g_shamir_2of3.expected.yaml",
    ),
]


def _load_all(path: Path) -> list[Any]:
    return _load_text(path.read_text(), "json" if path.suffix == ".json" else "yaml")


def _load_text(text: str, fmt: str) -> list[Any]:
    if fmt == "json":
        return [json.loads(text)]
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]


@pytest.mark.parametrize(
    ("encrypted", "keys", "expected"), CASES, ids=[f"{c[0]}+{len(c[1])}" for c in CASES]
)
def test_vector_decrypts_to_expected(
    home: Path, encrypted: str, keys: list[str], expected: str
) -> None:
    keyring = Keyring([AGE / k for k in keys], home=home, environ={})
    decrypted = decrypt_file(AGE / encrypted, keyring)  # MAC verified
    fmt = "json" if encrypted.endswith(".json") else "yaml"
    assert _load_text(decrypted.render(), fmt) == _load_all(AGE / expected)


def test_all_age_vectors_are_listed() -> None:
    """A vector added to the folder must be added here too (the PQ one is known unsupported)."""
    listed = {c[0] for c in CASES}
    found = {
        str(p.relative_to(AGE))
        for p in AGE.rglob("*")
        if p.is_file()
        and (
            p.name.endswith((".enc.yaml", ".enc.json"))
            or p.name
            in ("secrets.yaml", "secrets.age.yaml", "algorithms-age.yaml", "global-secret.yaml")
        )
    }
    assert found <= listed


def test_pgp_vectors_are_recognised(home: Path) -> None:
    for name in ("example.yaml", "comments.enc.yaml", "example.json"):
        with pytest.raises(UnsupportedError, match="pgp identities are not supported yet"):
            decrypt_file(VECTORS / "pgp" / "getsops-sops" / name, Keyring(home=home, environ={}))


def test_post_quantum_vector_is_a_clear_error(home: Path) -> None:
    keyring = Keyring([AGE / "flux-kustomize-controller" / "age-pq.txt"], home=home, environ={})
    with pytest.raises(UnsupportedError, match="post-quantum"):
        decrypt_file(AGE / "flux-kustomize-controller" / "algorithms-age-pq.yaml", keyring)
