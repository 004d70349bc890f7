"""Loading one layer file: positions, types, markers, errors, encrypted layers."""

from __future__ import annotations

from pathlib import Path

from kagura_ops.compiler.loader import MARKER_DELETE, MARKER_RESET, load_layer
from kagura_ops.compiler.model import SecretRef
from kagura_ops.compiler.project import LayerFile
from kagura_ops.keys.age import AgeKey
from kagura_ops.sops.files import EncryptionSettings, encrypt_text
from kagura_ops.sops.selection import Selection
from kagura_ops.testing import Identity


def load(tmp_path: Path, text: str, name: str = "kagura.yaml", encrypted: bool = False):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text)
    return load_layer(LayerFile("project", path, name, encrypted))


def test_positions_and_types(tmp_path: Path) -> None:
    loaded = load(
        tmp_path, "# c\nllm:\n  model: gpt-4o\n  temperature: 0.5\n  on: yes\n  port: '8080'\n"
    )
    assert loaded.tree == {
        "llm": {"model": "gpt-4o", "temperature": 0.5, "on": "yes", "port": "8080"}
    }
    origin = loaded.origins[("llm", "model")]
    assert (origin.file, origin.line, origin.column) == ("kagura.yaml", 3, 3)
    assert len(loaded.sha256) == 64


def test_markers(tmp_path: Path) -> None:
    loaded = load(tmp_path, "llm: !reset\n  model: x\nold: !delete\n")
    assert loaded.markers == {("llm",): MARKER_RESET, ("old",): MARKER_DELETE}
    assert loaded.tree == {"llm": {"model": "x"}, "old": None}


def test_merge_keys(tmp_path: Path) -> None:
    loaded = load(tmp_path, "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n")
    assert loaded.tree["use"] == {"x": 1, "y": 3}


def test_errors_have_positions(tmp_path: Path) -> None:
    loaded = load(tmp_path, "a: 1\na: 2\n1: x\n")
    messages = [d.format() for d in loaded.diagnostics]
    assert any("kagura.yaml:2:1" in m and "duplicate key 'a'" in m for m in messages)
    assert any("kagura.yaml:3:1" in m and "not a string" in m for m in messages)


def test_syntax_error(tmp_path: Path) -> None:
    loaded = load(tmp_path, "a: [1, 2\nb: 3\n")
    assert len(loaded.diagnostics) == 1
    assert "invalid YAML" in loaded.diagnostics[0].message
    assert loaded.diagnostics[0].origin is not None and loaded.diagnostics[0].origin.line


def test_schema_reference_is_taken_out(tmp_path: Path) -> None:
    loaded = load(tmp_path, "$schema: schemas/app.json\na: 1\n")
    assert loaded.schema_ref == "schemas/app.json"
    assert loaded.tree == {"a": 1}


def test_encrypted_layer_keeps_ciphertext(tmp_path: Path, identity: Identity) -> None:
    plain = "llm:\n  api_key: sk-PLAIN-VALUE-123\n  note_unencrypted: public\n"
    settings = EncryptionSettings([[AgeKey(identity.public)]], Selection.default())
    loaded = load(
        tmp_path, encrypt_text(plain, "yaml", settings), "secrets.enc.yaml", encrypted=True
    )
    assert not loaded.diagnostics
    ref = loaded.tree["llm"]["api_key"]
    assert isinstance(ref, SecretRef)
    assert ref.aad == "llm:api_key:" and ref.file == "secrets.enc.yaml"
    assert ref.enc.startswith("ENC[AES256_GCM,")
    assert loaded.tree["llm"]["note_unencrypted"] == "public"
    assert loaded.origins[("llm", "api_key")].line == 2
    assert loaded.sops is not None and loaded.sops["age"][0]["recipient"] == identity.public
    assert "sk-PLAIN-VALUE-123" not in repr(loaded.tree)


def test_plaintext_file_named_encrypted_is_an_error(tmp_path: Path) -> None:
    loaded = load(tmp_path, "llm:\n  api_key: sk-123\n", "secrets.enc.yaml", encrypted=True)
    assert "not encrypted" in loaded.diagnostics[0].message
    assert "sk-123" not in loaded.diagnostics[0].format()
