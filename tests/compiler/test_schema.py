"""The config schema: built-in sections, project extensions, validation diagnostics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path as FsPath
from typing import Any

import pytest

from kagura_ops.compiler.model import Deferred, Diagnostic, Origin, Path, SecretRef
from kagura_ops.compiler.schema import Schema
from kagura_ops.errors import ConfigError

ROOT = FsPath(__file__).resolve().parents[2]


def enc(kind: str) -> SecretRef:
    return SecretRef(
        f"ENC[AES256_GCM,data:QUJD,iv:SVY=,tag:VEFH,type:{kind}]", "secrets.enc.yaml", "x:"
    )


def at(lines: dict[Path, int], file: str = "kagura.yaml") -> Any:
    """An ``origin_of`` built from {path: line}."""
    return lambda path: Origin("project", file, lines[path], 3) if path in lines else None


def check(tree: dict[str, Any], schema: Schema | None = None) -> list[Diagnostic]:
    return (schema or Schema.load()).validate(tree, lambda path: None)


def write(tmp_path: FsPath, name: str, document: Any) -> FsPath:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_builtin_schema_is_valid_2020_12_and_shipped_at_top_level() -> None:
    from jsonschema import Draft202012Validator

    document = Schema.load().document
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(document)
    top = ROOT / "schemas" / "kagura.schema.json"
    assert top.is_symlink()
    assert json.loads(top.read_text()) == document


def test_defaults() -> None:
    defaults = Schema.load().defaults()
    assert defaults["llm"] == {"provider": "auto", "temperature": 0.7, "strategy": "auto"}
    assert defaults["secrets"]["backend"] == "local"
    assert defaults["secrets"]["rotation"] == {"grace_period": "24h"}
    assert defaults["observability"]["tracing"]["enabled"] is False
    assert check(defaults) == []


def test_valid_tree_has_no_diagnostics() -> None:
    tree = {
        "project": {"name": "demo"},
        "llm": {
            "provider": "openai",
            "model": "gpt-4o",
            "max_tokens": 4096,
            "fallback_chain": [
                "anthropic/claude-sonnet-4-5",
                {"provider": "ollama", "model": "llama3"},
            ],
            "api_key": enc("str"),
            "providers": {"local": {"base_url": "http://localhost:11434", "models": ["llama3"]}},
        },
        "secrets": {"backend": "postgresql://db/secrets", "rotation": {"grace_period": 3600}},
    }
    assert check(tree) == []


def test_unknown_key_did_you_mean_with_position() -> None:
    tree = {"llm": {"modle": "gpt-4o"}, "observabilty": {}}
    lines: dict[Path, int] = {("llm",): 1, ("llm", "modle"): 2, ("observabilty",): 5}
    diags = Schema.load().validate(tree, at(lines))
    assert [(d.path, d.hint) for d in diags] == [
        (("llm", "modle"), "did you mean 'model'?"),
        (("observabilty",), "did you mean 'observability'?"),
    ]
    assert diags[0].format() == (
        "kagura.yaml:2:3: project: llm.modle: unknown key 'modle' (did you mean 'model'?)"
    )


def test_origin_falls_back_to_nearest_parent_and_inside_any_of() -> None:
    tree = {"llm": {"fallback_chain": ["a", {"provider": "p", "modle": "m"}]}}
    diags = Schema.load().validate(tree, at({("llm", "fallback_chain"): 7}))
    assert len(diags) == 1
    assert diags[0].path == ("llm", "fallback_chain", 1, "modle")
    assert diags[0].hint == "did you mean 'model'?"
    assert diags[0].origin is not None and diags[0].origin.line == 7


def test_range_type_enum_all_reported_in_line_order() -> None:
    tree = {"llm": {"temperature": 3, "max_tokens": "many", "strategy": "cheap"}}
    lines: dict[Path, int] = {
        ("llm", "strategy"): 2,
        ("llm", "max_tokens"): 3,
        ("llm", "temperature"): 4,
    }
    diags = Schema.load().validate(tree, at(lines))
    assert [d.message for d in diags] == [
        'must be one of "auto", "cost", "performance", "availability" (got "cheap")',
        'expected integer, got string "many"',
        "must be <= 2 (got 3)",
    ]
    assert [d.origin.line for d in diags if d.origin] == [2, 3, 4]


def test_plaintext_at_secret_path_is_rejected() -> None:
    tree = {"llm": {"providers": {"openai": {"api_key": "sk-plain"}}}}
    origin_of = lambda p: Origin("env:prod", "envs/prod.yaml", 4, 5) if p else None  # noqa: E731
    (diag,) = Schema.load().validate(tree, origin_of)
    assert diag.path == ("llm", "providers", "openai", "api_key")
    assert "must come from an encrypted file" in diag.message
    assert diag.hint is not None
    assert "kagura-ops set envs/prod.enc.yaml llm.providers.openai.api_key -" in diag.hint


def test_secret_ref_accepted_and_type_checked_by_enc_type() -> None:
    assert check({"llm": {"api_key": enc("str"), "max_tokens": enc("int")}}) == []
    assert check({"llm": {"api_key": Deferred("{{ secret('k') }}", ("k",))}}) == []
    (wrong,) = check({"llm": {"max_tokens": enc("str")}})
    assert wrong.path == ("llm", "max_tokens")
    assert wrong.message == "expected integer, got an encrypted str"
    (wrong,) = check({"llm": {"api_key": enc("int")}})
    assert wrong.message == "expected string, got an encrypted int"


def test_no_secret_value_in_any_diagnostic() -> None:
    tree = {
        "llm": {
            "api_key": 987654321,
            "providers": {"x": {"api_key": "sk-ZEBRA-SECRET", "modles": []}},
            "temperature": SecretRef(
                "ENC[AES256_GCM,data:TUFOR08=,iv:a,tag:b,type:str]", "s.enc.yaml", "a:"
            ),
            "strategy": Deferred("{{ secret('ZEBRA') }}"),
        },
        "secrets": {"connection_string": {"nested": ["sk-ZEBRA-LIST"]}},
    }
    diags = check(tree)
    assert len(diags) >= 6
    text = "\n".join(d.format() for d in diags)
    for leaked in ("987654321", "ZEBRA", "TUFOR08", "ENC["):
        assert leaked not in text


def test_project_extension_adds_section_and_llm_property(tmp_path: FsPath) -> None:
    builtin = Schema.load()
    assert [d.path for d in check({"llm": {"deployment": "eu"}})] == [("llm", "deployment")]
    extension = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "required": ["app"],
        "properties": {
            "llm": {"properties": {"deployment": {"enum": ["eu", "us"], "default": "eu"}}},
            "app": {
                "type": "object",
                "additionalProperties": False,
                "required": ["port"],
                "properties": {
                    "port": {"type": "integer", "default": 8080},
                    "db_password": {"$ref": "#/$defs/password"},
                },
            },
        },
        "$defs": {"password": {"type": "string", "x-secret": True, "x-env": "DB_PASSWORD"}},
    }
    path = write(tmp_path, "app.json", extension)
    schema = Schema.load(tmp_path, [path, FsPath("app.json")])
    assert schema.sources[1:] == ("app.json",)
    assert schema.digest != builtin.digest
    assert schema.defaults()["llm"]["deployment"] == "eu"
    assert schema.defaults()["app"] == {"port": 8080}
    assert check({"llm": {"deployment": "eu"}, "app": {"port": 1}}, schema) == []
    assert [d.message for d in check({}, schema)] == ["missing required key 'app'"]
    diags = check({"app": {"prot": 1, "db_password": "hunter2"}}, schema)
    assert {d.message for d in diags} == {
        "missing required key 'port'",
        "unknown key 'prot'",
        "plaintext value for a secret key: it must come from an encrypted file",
    }
    assert schema.env_name(("app", "db_password")) == "DB_PASSWORD"
    assert schema.secret_paths({"app": {"db_password": enc("str"), "port": 1}}) == [
        ("app", "db_password")
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ({"properties": {"app": {"type": 12}}}, "invalid JSON Schema"),
        ({"properties": {"llm": {"properties": {"api_key": {"x-secret": False}}}}}, "x-secret"),
        ({"properties": {"a": {"type": "array", "x-merge": "zip"}}}, "x-merge"),
        ({"properties": {"a": {"x-secret": True, "default": "pw"}}}, "default"),
    ],
)
def test_bad_project_schema_names_the_file(tmp_path: FsPath, content: Any, expected: str) -> None:
    path = write(tmp_path, "bad.json", content)
    with pytest.raises(ConfigError, match=expected) as info:
        Schema.load(tmp_path, [path])
    assert info.value.file == "bad.json"


def test_merge_strategy_env_and_secret_lookup(tmp_path: FsPath) -> None:
    schema = Schema.load()
    assert schema.merge_strategy(("llm", "fallback_chain")) == "replace"
    assert schema.merge_strategy(("llm", "providers", "my-proxy", "models")) == "unique"
    assert schema.merge_strategy(("llm", "providers", "openai", "models")) == "unique"
    assert schema.merge_strategy(("llm", "model")) is None
    assert schema.merge_strategy(("nope", "deeper")) is None
    assert schema.is_secret(("llm", "providers", "my-proxy", "api_key"))
    assert not schema.is_secret(("llm", "providers", "my-proxy", "base_url"))
    assert schema.env_name(("llm", "providers", "openai", "api_key")) == "OPENAI_API_KEY"
    assert schema.env_name(("llm", "providers", "my-proxy", "api_key")) is None
    agents = {
        "properties": {
            "agents": {
                "type": "array",
                "x-merge": "by-key:name",
                "items": {"properties": {"tools": {"type": "array", "x-merge": "append"}}},
            },
            "routes": {
                "patternProperties": {"^/": {"properties": {"hops": {"x-merge": "unique"}}}}
            },
        }
    }
    schema = Schema.load(None, [write(tmp_path, "agents.json", agents)])
    assert schema.merge_strategy(("agents",)) == "by-key:name"
    assert schema.merge_strategy(("agents", 3, "tools")) == "append"
    assert schema.merge_strategy(("routes", "/api", "hops")) == "unique"
    assert schema.merge_strategy(("routes", "api", "hops")) is None


def test_jsonschema_is_imported_lazily() -> None:
    code = "import sys, kagura_ops.compiler.schema; print('jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plaintext_check_can_be_left_to_the_caller() -> None:
    tree = {"llm": {"api_key": 4242424242}}
    (diag,) = Schema.load().validate(tree, lambda p: None, check_plaintext=False)
    assert diag.message == "expected string, got integer"
