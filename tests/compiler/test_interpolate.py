"""Interpolation: environment variables, config references, secrets, the Jinja2 sandbox."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path as FilePath
from typing import Any

import pytest

from kagura_ops.compiler.interpolate import MAX_DEPTH, Interpolated, interpolate
from kagura_ops.compiler.model import Deferred, Diagnostic, Origin, Path, SecretRef

ENC = "ENC[AES256_GCM,data:c2VjcmV0LWNpcGhlcnRleHQ=,iv:aXY=,tag:dGFn,type:str]"
PASSWORD = SecretRef(ENC, "secrets.enc.yaml", "db:password:")


def origin(path: Path) -> Origin:
    return Origin("project", "kagura.yaml", line=len(path) + 1, column=3)


def run(tree: dict[str, Any], **environ: str) -> Interpolated:
    return interpolate(tree, environ=environ, origin_of=origin)


def messages(result: Interpolated) -> list[str]:
    return [d.format() for d in result.diagnostics]


def only(result: Interpolated) -> Diagnostic:
    assert len(result.diagnostics) == 1, messages(result)
    return result.diagnostics[0]


def everything_shown(result: Interpolated) -> str:
    """All text a user or the lockfile could see: rendered values, templates, diagnostics."""
    shown = [repr(result.tree), *messages(result)]

    def walk(value: Any) -> None:
        if isinstance(value, Deferred):
            shown.append(value.template)
        elif isinstance(value, dict):
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(result.tree)
    return "\n".join(shown)


# -- environment variables -----------------------------------------------------------


def test_env_vars_with_and_without_default() -> None:
    result = run(
        {
            "home": "${HOME}",
            "mode": "${MODE:-dev}",
            "empty": "${EMPTY:-fallback}",
            "url": "http://${HOST}:${PORT:-80}/",
        },
        HOME="/home/kagura",
        EMPTY="",
        HOST="example.org",
    )
    assert result.diagnostics == []
    assert result.tree == {
        "home": "/home/kagura",
        "mode": "dev",
        "empty": "fallback",
        "url": "http://example.org:80/",
    }
    assert result.env_used == {
        "HOME": "/home/kagura",
        "MODE": None,
        "EMPTY": "",
        "HOST": "example.org",
        "PORT": None,
    }


def test_missing_env_vars_are_all_reported_with_name_and_path() -> None:
    result = run(
        {"llm": {"key": "${API_KEY}", "url": "${BASE}/v1"}, "ok": "${SET}"}, SET="a-long-value"
    )
    assert {(d.path, d.message) for d in result.diagnostics} == {
        (("llm", "key"), "environment variable API_KEY is not set"),
        (("llm", "url"), "environment variable BASE is not set"),
    }
    assert all(d.origin == origin(d.path) for d in result.diagnostics)
    assert result.tree["llm"]["key"] == "${API_KEY}"  # left as written
    assert result.tree["ok"] == "a-long-value"


def test_dollar_dollar_brace_is_a_literal() -> None:
    result = run({"a": "$${HOME} costs $5 and ${HOME}", "b": "$${config.x}"}, HOME="/h")
    assert result.diagnostics == []
    assert result.tree == {"a": "${HOME} costs $5 and /h", "b": "${config.x}"}
    assert result.env_used == {"HOME": "/h"}


@pytest.mark.parametrize(
    "text", ["${}", "${ HOME }", "${HOME:?no}", "${config}", "${1X}", "${HOME"]
)
def test_invalid_interpolations_are_reported(text: str) -> None:
    result = run({"a": text}, HOME="/h")
    assert only(result).path == ("a",)
    assert result.tree["a"] == text


def test_keys_and_non_strings_are_not_interpolated() -> None:
    tree = {"${HOME}": {"n": 1, "f": 1.5, "t": True, "none": None, "s": PASSWORD}}
    result = run(tree, HOME="/h")
    assert result.tree == tree
    assert result.env_used == {}


# -- references ----------------------------------------------------------------------


def test_whole_value_references_keep_their_type() -> None:
    tree: dict[str, Any] = {
        "db": {"port": 5432, "debug": True, "ratio": 0.5, "tags": ["a", "b"], "none": None},
        "port": "${config.db.port}",
        "debug": "${config.db.debug}",
        "ratio": "${config.db.ratio}",
        "tags": "${config.db.tags}",
        "none": "${config.db.none}",
        "whole": "${config.db}",
    }
    result = run(tree)
    assert result.diagnostics == []
    out = result.tree
    assert (out["port"], out["debug"], out["ratio"], out["none"]) == (5432, True, 0.5, None)
    assert type(out["port"]) is int and type(out["debug"]) is bool
    assert out["tags"] == ["a", "b"] and out["whole"] == out["db"]
    assert out["whole"] is not out["db"] and out["tags"] is not out["db"]["tags"]


def test_references_inside_strings_are_formatted() -> None:
    tree = {
        "db": {"host": "pg", "port": 5432, "ssl": False, "none": None},
        "url": "postgres://${config.db.host}:${config.db.port}/app?ssl=${config.db.ssl}&x=${config.db.none}",
    }
    result = run(tree)
    assert result.diagnostics == []
    assert result.tree["url"] == "postgres://pg:5432/app?ssl=false&x=null"


def test_references_into_and_from_lists() -> None:
    tree = {
        "models": ["gpt-4o", "claude"],
        "chain": ["${config.models[1]}", "fallback-${config.models[0]}", 3],
        "first": "${config.chain[1]}",
        "dotted": {"a.b": "q"},
        "quoted": '${config.dotted["a.b"]}',
    }
    result = run(tree)
    assert result.diagnostics == []
    assert result.tree["chain"] == ["claude", "fallback-gpt-4o", 3]
    assert result.tree["first"] == "fallback-gpt-4o"
    assert result.tree["quoted"] == "q"


def test_a_mapping_inside_a_string_is_an_error() -> None:
    result = run({"db": {"a": 1}, "x": "db=${config.db}"})
    diagnostic = only(result)
    assert diagnostic.path == ("x",) and "mapping" in diagnostic.message


def test_chains_resolve_whatever_the_order() -> None:
    tree = {
        "a": "${config.b}-a",
        "b": "${config.c}-b",
        "c": "${C}",
        "alias": "${config.group}",
        "through": "${config.alias.x}",
        "group": {"x": "${config.a}"},
    }
    result = run(tree, C="c")
    assert result.diagnostics == []
    assert result.tree["a"] == "c-b-a"
    assert result.tree["alias"] == {"x": "c-b-a"}
    assert result.tree["through"] == "c-b-a"


def test_input_is_not_mutated() -> None:
    tree: dict[str, Any] = {"a": {"b": "${X}", "c": ["${config.a.b}"]}, "d": "${config.a}"}
    before = copy.deepcopy(tree)
    result = run(tree, X="x")
    assert tree == before
    assert result.tree == {"a": {"b": "x", "c": ["x"]}, "d": {"b": "x", "c": ["x"]}}
    assert result.tree["a"] is not tree["a"] and result.tree["a"]["c"] is not tree["a"]["c"]


# -- cycles and unknown references -----------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "cycle"),
    [
        ({"a": "${config.a}"}, "a -> a"),
        ({"a": "${config.a}${config.a}"}, "a -> a"),
        ({"a": "x${config.b}", "b": "${config.a}"}, "a -> b -> a"),
        ({"a": "${config.b}", "b": "${config.c}", "c": "${config.a}"}, "a -> b -> c -> a"),
        ({"s": {"k": "${config.s}"}}, "s -> s.k -> s"),
        ({"a": "{{ config.b }}", "b": "${config.a}"}, "a -> b -> a"),
    ],
)
def test_cycles_are_reported_once_naming_the_whole_cycle(tree: dict[str, Any], cycle: str) -> None:
    result = run({**tree, "outside": "${config.a}" if "a" in tree else "${config.s}", "fine": 1})
    diagnostic = only(result)
    assert diagnostic.message == f"reference cycle: {cycle}"
    assert diagnostic.origin == origin(diagnostic.path)


def test_two_independent_cycles_are_two_diagnostics() -> None:
    result = run({"a": "${config.b}", "b": "${config.a}", "c": "${config.c}"})
    assert sorted(d.message for d in result.diagnostics) == [
        "reference cycle: a -> b -> a",
        "reference cycle: c -> c",
    ]


def test_sibling_references_in_a_mapping_are_not_cycles() -> None:
    result = run(
        {"llm": {"model": "m", "label": "${config.llm.model}", "tpl": "{{ config.llm.model }}!"}}
    )
    assert result.diagnostics == []
    assert result.tree["llm"] == {"model": "m", "label": "m", "tpl": "m!"}


def test_overlong_chains_are_refused() -> None:
    tree = {f"k{i}": f"${{config.k{i + 1}}}" for i in range(MAX_DEPTH + 5)}
    tree[f"k{MAX_DEPTH + 5}"] = "end"
    result = run(tree)
    assert "nested more than" in only(result).message


def test_unknown_reference_suggests_a_close_path() -> None:
    result = run({"llm": {"model": "gpt-4o"}, "m": "${config.llm.modle}", "far": "${config.zzz}"})
    by_path = {d.path: d for d in result.diagnostics}
    assert by_path[("m",)].message == "unknown reference ${config.llm.modle}"
    assert by_path[("m",)].hint == "did you mean config.llm.model?"
    assert by_path[("far",)].hint is None
    assert len(result.diagnostics) == 2


def test_dependents_of_a_broken_value_are_not_reported_again() -> None:
    result = run(
        {"a": "${MISSING}", "b": "${config.a}", "c": "x-${config.b}", "d": "{{ config.c }}"}
    )
    assert only(result).path == ("a",)


# -- secrets ---------------------------------------------------------------------------


def test_whole_value_secret_reference_is_an_alias() -> None:
    result = run(
        {"db": {"password": PASSWORD}, "pw": "${config.db.password}", "again": "${config.pw}"}
    )
    assert result.diagnostics == []
    assert result.tree["pw"] is PASSWORD and result.tree["again"] is PASSWORD


def test_secret_inside_a_string_is_deferred() -> None:
    tree = {
        "db": {"password": PASSWORD, "host": "pg"},
        "url": "postgres://app:${config.db.password}@${config.db.host}/{db}?u=${USER}",
        "nested": "[${config.url}]",
    }
    result = run(tree, USER="me")
    assert result.diagnostics == []
    url = result.tree["url"]
    assert url == Deferred(
        "postgres://app:{{ secret('db.password') }}{{ '@pg/{db}?u=me' }}", secrets=("db.password",)
    )
    assert result.tree["nested"] == Deferred("[" + url.template + "]", secrets=("db.password",))
    assert ENC not in everything_shown(result) and "c2VjcmV0" not in everything_shown(result)


def test_deferred_template_renders_to_the_intended_string() -> None:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # No "{{", "{%" or "{#": plain ${...}, but its text has braces that Jinja must not see.
    text = "{a} }} %} {${config.s}} {\n"
    result = run({"s": PASSWORD, "v": text})
    deferred = result.tree["v"]
    assert isinstance(deferred, Deferred)
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    rendered = env.from_string(deferred.template).render(secret=lambda name: f"<{name}>")
    assert rendered == "{a} }} %} {<s>} {\n"


def test_templates_using_secrets_are_deferred_not_rendered() -> None:
    tree: dict[str, Any] = {
        "db": {"password": PASSWORD, "user": "app"},
        "explicit": "{{ config.db.user }}:{{ secret('db.password') | urlencode }}",
        "via_config": "{{ config.db.password }}@{{ env.HOST }}",
        "via_tojson": "{{ config.db | tojson }}",
        "untaken": "{% if false %}{{ secret('db.password') }}{% endif %}plain",
        "dollar": "{{ config.db.user }}:${config.db.password}",
    }
    result = run(tree, HOST="h")
    assert result.diagnostics == []
    out = result.tree
    assert out["explicit"] == Deferred(tree["explicit"], ("db.password",))
    assert out["via_config"] == Deferred(tree["via_config"], ("db.password",))
    assert out["via_tojson"] == Deferred(tree["via_tojson"], ("db.password",))
    assert out["untaken"] == Deferred(tree["untaken"], ("db.password",))
    assert out["dollar"] == Deferred(
        "{{ config.db.user }}:{{ secret('db.password') }}", ("db.password",)
    )
    assert result.env_used == {"HOST": "h"}
    assert ENC not in everything_shown(result)


def test_secret_names_must_be_encrypted_values() -> None:
    result = run(
        {
            "db": {"password": PASSWORD, "user": "app"},
            "a": "{{ secret('db.pasword') }}",
            "b": "{{ secret('db.user') }}",
            "c": "{% if false %}{{ secret('nope') }}{% endif %}",
        }
    )
    by_path = {d.path: d for d in result.diagnostics}
    assert by_path[("a",)].message == "secret('db.pasword'): no such key"
    assert by_path[("a",)].hint == "did you mean config.db.password?"
    assert "not an encrypted value" in by_path[("b",)].message
    assert by_path[("c",)].message == "secret('nope'): no such key"
    assert len(result.diagnostics) == 3


# -- Jinja2 ----------------------------------------------------------------------------


def test_jinja_renders_with_config_and_env() -> None:
    tree = {
        "llm": {"models": ["a", "b"], "provider": "openai"},
        "joined": "{{ config.llm.models | join(',') }}|{{ config.llm.provider | upper }}|{{ env.REGION }}",
        "loop": "{% for m in config.llm.models %}[{{ loop.index }}{{ m }}]{% endfor %}",
        "optional": "{{ env.get('UNSET', 'none') }}",
        "block": "line1 ${REGION}\n{{ 1 + 1 }}\n",
    }
    result = run(tree, REGION="eu-west-1")
    assert result.diagnostics == []
    assert result.tree["joined"] == "a,b|OPENAI|eu-west-1"
    assert result.tree["loop"] == "[1a][2b]"
    assert result.tree["optional"] == "none"
    assert result.tree["block"] == "line1 eu-west-1\n2\n"
    assert result.env_used == {"REGION": "eu-west-1", "UNSET": None}


def test_substituted_values_are_never_template_code() -> None:
    result = run({"a": "{{ 'x' }} ${EVIL} {a", "b": "{${EVIL}{{ 1 }}"}, EVIL="{{ 7 * 7 }}{% if %}")
    assert result.diagnostics == []
    assert result.tree == {"a": "x {{ 7 * 7 }}{% if %} {a", "b": "{{{ 7 * 7 }}{% if %}1"}


def test_undefined_names_are_diagnostics() -> None:
    result = run(
        {
            "llm": {"model": "m"},
            "a": "{{ nothing }}",
            "b": "{{ config.llm.modle }}",
            "c": "{{ env.NOT_SET }}",
            "d": "{{ config.llm.model }}",
        }
    )
    by_path = {d.path: d for d in result.diagnostics}
    assert set(by_path) == {("a",), ("b",), ("c",)}
    assert "'nothing' is undefined" in by_path[("a",)].message
    assert by_path[("b",)].message == "template error at line 1: config.llm.modle is undefined"
    assert by_path[("b",)].hint == "did you mean config.llm.model?"
    assert "NOT_SET" in by_path[("c",)].message
    assert result.tree["d"] == "m"


def test_syntax_errors_name_the_line() -> None:
    result = run({"t": "first ${X}\n{% if %}\nthird"}, X="secret-ish-value")
    diagnostic = only(result)
    assert diagnostic.message.startswith("template syntax error at line 2:")
    assert diagnostic.hint == "line 2: {% if %}"


def test_diagnostics_never_show_environment_values() -> None:
    value = "sk-live-0123456789"
    result = run(
        {"llm": {"m": 1}, "a": "{{ config[env.TOKEN] }}", "b": "{{ env.TOKEN ~ undefined_x }}"},
        TOKEN=value,
    )
    assert len(result.diagnostics) == 2, messages(result)
    assert value not in "\n".join(messages(result) + [d.hint or "" for d in result.diagnostics])


# Each would run `touch MARK` (or leak internals) in an unsandboxed Environment.
ESCAPES = [
    "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch MARK') }}",
    "{{ cycler.__init__.__globals__.os.system('touch MARK') }}",
    "{{ lipsum.__globals__['os'].popen('touch MARK').read() }}",
    "{{ namespace.__init__.__globals__['os'].system('touch MARK') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config.__class__.__init__.__globals__['os'].system('touch MARK') }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(config) }}",
    "{{ env._resolver.environ }}",
    "{{ self._TemplateReference__context }}",
    "{{ config.llm._private }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{{ 'a' * 100000000 }}",
    "{{ (2 ** 10000000000) > 0 }}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_sandbox_escapes_are_refused(template: str, tmp_path: FilePath) -> None:
    mark = tmp_path / "pwned"
    source = template.replace("MARK", str(mark))
    result = run({"llm": {"model": "m"}, "x": source})
    diagnostic = only(result)
    assert diagnostic.path == ("x",)
    assert diagnostic.message.startswith("template not allowed at line 1: "), diagnostic.message
    assert result.tree["x"] == source
    assert not mark.exists()


def test_templates_cannot_modify_the_config() -> None:
    result = run({"llm": {"model": "m"}, "x": "{{ config.llm.update({'model': 'pwned'}) }}"})
    assert only(result).message == "template error at line 1: config.llm.update is undefined"
    assert result.tree["llm"] == {"model": "m"}


def test_plain_interpolation_does_not_import_jinja2() -> None:
    code = (
        "import sys\n"
        "from kagura_ops.compiler.interpolate import interpolate\n"
        "r = interpolate({'a': '${X:-1}', 'b': '${config.a}/{x}', 'c': 'x'}, environ={}, origin_of=lambda p: None)\n"
        "assert r.tree == {'a': 1, 'b': '1/{x}', 'c': 'x'}, r\n"
        "assert 'jinja2' not in sys.modules\n"
        "interpolate({'a': '{{ 1 }}'}, environ={}, origin_of=lambda p: None)\n"
        "assert 'jinja2' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_large_tree_is_fast_enough() -> None:
    import time

    tree: dict[str, Any] = {
        f"s{i}": {
            f"k{j}": ("${HOME:-x}/${config.s0.k1}" if j == 0 and i else f"v{j}") for j in range(10)
        }
        for i in range(1000)
    }
    start = time.perf_counter()
    result = run(tree, HOME="/h")
    elapsed = time.perf_counter() - start
    assert result.diagnostics == []
    assert result.tree["s5"]["k0"] == "/h/v1"
    assert elapsed < 1.0


def test_whole_value_env_is_typed_like_yaml() -> None:
    result = interpolate(
        {
            "port": "${PORT}",
            "flag": "${FLAG:-true}",
            "name": "${NAME}",
            "url": "http://${HOST}:${PORT}",
        },
        environ={"PORT": "8080", "NAME": "alice", "HOST": "h"},
        origin_of=lambda _p: None,
    )
    assert result.tree == {"port": 8080, "flag": True, "name": "alice", "url": "http://h:8080"}
