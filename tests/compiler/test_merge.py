"""Merging layers: deep merge, list strategies, markers, provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from kagura_ops.compiler.loader import Layer, load_layer
from kagura_ops.compiler.merge import merge_layers
from kagura_ops.compiler.project import LayerFile


def layer(tmp_path: Path, name: str, text: str, layer_name: str | None = None) -> Layer:
    path = tmp_path / name
    path.write_text(text)
    loaded = load_layer(LayerFile(layer_name or name, path, name, False))
    assert not loaded.diagnostics, [d.format() for d in loaded.diagnostics]
    return loaded


def test_mappings_merge_deeply_and_scalars_replace(tmp_path: Path) -> None:
    low = layer(tmp_path, "low.yaml", "llm:\n  model: a\n  temperature: 0.2\nother: 1\n")
    high = layer(tmp_path, "high.yaml", "llm:\n  model: b\n")
    merged = merge_layers([low, high])
    assert merged.tree == {"llm": {"model": "b", "temperature": 0.2}, "other": 1}
    prov = merged.provenance[("llm", "model")]
    assert (prov.origin.file, prov.origin.line) == ("high.yaml", 2)
    assert [(o.origin.file, o.value) for o in prov.overrides] == [("low.yaml", "a")]
    assert merged.provenance[("llm", "temperature")].origin.file == "low.yaml"


def test_lists_replace_by_default(tmp_path: Path) -> None:
    low = layer(tmp_path, "low.yaml", "chain: [a, b]\n")
    high = layer(tmp_path, "high.yaml", "chain: [c]\n")
    assert merge_layers([low, high]).tree == {"chain": ["c"]}


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("replace", ["b", "c"]),
        ("append", ["a", "b", "b", "c"]),
        ("unique", ["a", "b", "c"]),
    ],
)
def test_list_strategies(tmp_path: Path, strategy: str, expected: list[str]) -> None:
    low = layer(tmp_path, "low.yaml", "chain: [a, b]\n")
    high = layer(tmp_path, "high.yaml", "chain: [b, c]\n")
    merged = merge_layers([low, high], strategy_of=lambda p: strategy if p == ("chain",) else None)
    assert merged.tree["chain"] == expected
    if strategy != "replace":
        assert merged.provenance[("chain",)].strategy == strategy


def test_by_key_strategy_merges_items(tmp_path: Path) -> None:
    low = layer(
        tmp_path,
        "low.yaml",
        "tools:\n  - {name: search, timeout: 5}\n  - {name: code, timeout: 9}\n",
    )
    high = layer(tmp_path, "high.yaml", "tools:\n  - {name: code, timeout: 30}\n  - {name: web}\n")
    merged = merge_layers(
        [low, high], strategy_of=lambda p: "by-key:name" if p == ("tools",) else None
    )
    assert merged.tree["tools"] == [
        {"name": "search", "timeout": 5},
        {"name": "code", "timeout": 30},
        {"name": "web"},
    ]


def test_by_key_item_without_the_field_is_reported(tmp_path: Path) -> None:
    low = layer(tmp_path, "low.yaml", "tools:\n  - {name: a}\n")
    high = layer(tmp_path, "high.yaml", "tools:\n  - {other: b}\n")
    merged = merge_layers(
        [low, high], strategy_of=lambda p: "by-key:name" if p == ("tools",) else None
    )
    assert any("'name'" in d.message for d in merged.diagnostics)


def test_reset_replaces_the_subtree(tmp_path: Path) -> None:
    low = layer(tmp_path, "low.yaml", "llm:\n  model: a\n  providers: {x: 1}\n")
    high = layer(tmp_path, "high.yaml", "llm: !reset\n  model: b\n")
    merged = merge_layers([low, high])
    assert merged.tree == {"llm": {"model": "b"}}
    assert ("llm", "providers") not in merged.provenance
    assert merged.provenance[("llm",)].strategy == "reset"


def test_delete_removes_a_key(tmp_path: Path) -> None:
    low = layer(tmp_path, "low.yaml", "llm:\n  model: a\n  temperature: 1\n")
    high = layer(tmp_path, "high.yaml", "llm:\n  temperature: !delete\n")
    merged = merge_layers([low, high])
    assert merged.tree == {"llm": {"model": "a"}}
    assert ("llm", "temperature") not in merged.provenance


def test_defaults_are_the_lowest_layer(tmp_path: Path) -> None:
    high = layer(tmp_path, "high.yaml", "llm:\n  model: b\n")
    merged = merge_layers([high], defaults={"llm": {"model": "a", "temperature": 0.7}})
    assert merged.tree == {"llm": {"model": "b", "temperature": 0.7}}
    assert merged.provenance[("llm", "temperature")].origin.layer == "defaults"
    assert merged.provenance[("llm", "model")].overrides[0].origin.layer == "defaults"


def test_type_change_replaces(tmp_path: Path) -> None:
    low = layer(tmp_path, "low.yaml", "a: {b: 1}\n")
    high = layer(tmp_path, "high.yaml", "a: 5\n")
    merged = merge_layers([low, high])
    assert merged.tree == {"a": 5}
    assert ("a", "b") not in merged.provenance


def test_inputs_are_not_mutated(tmp_path: Path) -> None:
    low = layer(tmp_path, "low.yaml", "a: {b: [1]}\n")
    high = layer(tmp_path, "high.yaml", "a: {c: 2}\n")
    merge_layers([low, high])
    assert low.tree == {"a": {"b": [1]}}
    assert high.tree == {"a": {"c": 2}}
