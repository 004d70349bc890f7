"""The configuration schema: JSON Schema 2020-12 plus three kagura keywords.

The built-in schema (``kagura_ops/schemas/kagura.schema.json``) covers the
sections kagura-ops itself reads (``llm``, ``secrets``, ``observability``,
``project``, ``agent``). A project extends it with its own schema files (the
``$schema:`` named in kagura.yaml and every ``schemas/*.json``), applied in the
order given:

- each file's top-level ``properties`` are deep-merged into the built-in's, so a
  project may add sections and add properties inside built-in sections
  (``llm.properties.deployment``); nested mappings merge, ``required`` lists are
  unioned, any other keyword the project sets replaces the built-in one;
- top-level ``required`` is unioned and ``$defs`` are deep-merged (``$ref``
  must be local, ``#/$defs/...``; a file's own ``$id`` is ignored);
- other top-level keywords of a project file are ignored, so the built-in's
  ``additionalProperties: false`` stays;
- a project may not remove ``x-secret`` from a built-in key.

Kagura keywords, all ignored by the validator itself:

- ``x-secret: true``: the value must come from an encrypted file (a
  :class:`SecretRef`, or a :class:`Deferred` template); plaintext is an error;
- ``x-merge: replace|append|unique|by-key:<field>``: how a list merges across layers;
- ``x-env: NAME``: the environment variable ``kagura-ops exec`` exports the value as.

Secrets are type-checked without decrypting: a ``SecretRef`` is validated as a
placeholder of the type its ``ENC[...,type:...]`` field names, a ``Deferred`` as a
string; constraints on the value itself (range, pattern, enum...) need the
plaintext and are skipped for both. Diagnostics never
contain a value from an ``x-secret`` path or an encrypted value. ``format`` is
an annotation only (as 2020-12 says), so results do not depend on which
optional format checkers happen to be installed.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import pathlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

from kagura_ops.compiler.model import Deferred, Diagnostic, Origin, Path, SecretRef, dotted
from kagura_ops.errors import ConfigError

__all__ = ["Schema"]

_BUILTIN = "kagura_ops/schemas/kagura.schema.json"
_ENC_TYPE = re.compile(r",type:(\w+)\]$")
_PLACEHOLDERS: dict[str, Any] = {
    "str": "********",
    "int": 0,
    "float": 0.0,
    "bool": False,
    "time": "1970-01-01T00:00:00Z",
}
_DEFERRED = "<deferred>"
_MERGE = re.compile(r"^(replace|append|unique|by-key:.+)$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
_SIZES = {
    "minLength": "at least {} characters",
    "maxLength": "at most {} characters",
    "minItems": "at least {} items",
    "maxItems": "at most {} items",
    "minProperties": "at least {} keys",
    "maxProperties": "at most {} keys",
}


class Schema:
    """A combined (built-in + project) schema and the questions the compiler asks it."""

    def __init__(self, document: Mapping[str, Any], sources: Sequence[str] = (_BUILTIN,)) -> None:
        self.document: dict[str, Any] = dict(document)
        """The combined schema; treat as read-only."""
        self.sources: tuple[str, ...] = tuple(sources)
        """The files it was built from, built-in first, as shown to people."""
        # Schema nodes per config path, built from the parent's: the compiler asks
        # about every path of a 10,000-key tree, so each lookup must be O(1).
        self._raw_cache: dict[Path, list[Any]] = {(): [self.document]}
        self._node_cache: dict[Path, list[dict[str, Any]]] = {}

    @classmethod
    def load(
        cls,
        project_root: pathlib.Path | None = None,
        extra: Sequence[pathlib.Path] = (),
        *,
        read: Callable[[pathlib.Path], bytes] | None = None,
    ) -> Schema:
        """The built-in schema extended by ``extra`` (relative paths resolve against ``project_root``).

        ``read`` reads one file (default: from the file system); the compiler passes
        its project's source so a git commit's schemas are read from its tree.

        Raises :class:`ConfigError` naming the file for unreadable or invalid JSON,
        an invalid schema, or a bad ``x-secret``/``x-merge``/``x-env``.
        """
        from importlib.resources import files

        text = files("kagura_ops").joinpath("schemas", "kagura.schema.json").read_text("utf-8")
        document = _checked(json.loads(text), _BUILTIN)
        sources, seen = [_BUILTIN], set()
        for given in extra:
            path = given if project_root is None else pathlib.Path(project_root, given)
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            shown = _display(path, project_root)
            try:
                raw = read(path) if read is not None else path.read_bytes()
                project = json.loads(raw.decode("utf-8"))
            except OSError as exc:
                raise ConfigError(f"cannot read schema: {exc.strerror}", file=shown) from None
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ConfigError(f"schema is not valid JSON: {exc}", file=shown) from None
            project = _checked(project, shown)
            _merge(document.setdefault("properties", {}), project.get("properties", {}), shown, ())
            _merge(document.setdefault("$defs", {}), project.get("$defs", {}), shown, ("$defs",))
            required = document.get("required", [])
            required += [name for name in project.get("required", []) if name not in required]
            if required:
                document["required"] = required
            sources.append(shown)
        return cls(_checked(document, " + ".join(sources)), sources)

    @cached_property
    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON of the combined schema."""
        canonical = json.dumps(self.document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def defaults(self) -> dict[str, Any]:
        """The tree of ``default``s, nested through ``properties`` (and ``$ref``/``allOf``)."""
        return self._defaults_of(self.document)

    def merge_strategy(self, path: Path) -> str | None:
        """The ``x-merge`` declared at ``path``, or None (the default: replace)."""
        value = self._keyword(path, "x-merge")
        return value if isinstance(value, str) else None

    def is_secret(self, path: Path) -> bool:
        """Whether ``path`` itself is marked ``x-secret: true``."""
        return any(node.get("x-secret") is True for node in self._nodes(path))

    def env_name(self, path: Path) -> str | None:
        """The ``x-env`` variable name declared at ``path``, or None."""
        value = self._keyword(path, "x-env")
        return value if isinstance(value, str) else None

    def secret_paths(self, tree: Mapping[str, Any]) -> list[Path]:
        """Paths present in ``tree`` that are marked ``x-secret`` (not descending below them)."""
        out: list[Path] = []
        self._find_secrets(tree, [self.document], (), out)
        return out

    def validate(
        self,
        tree: Mapping[str, Any],
        origin_of: Callable[[Path], Origin | None],
        *,
        check_plaintext: bool = True,
    ) -> list[Diagnostic]:
        """Every schema error in ``tree`` at once, ordered by file and line.

        ``origin_of`` gives where a path's value came from; a path without one is
        reported at its nearest ancestor that has one. ``check_plaintext=False``
        skips the plaintext-at-``x-secret`` check (for a caller that checks each
        layer itself); values at secret paths are still never shown.
        """

        def origin(path: Path) -> Origin | None:
            for end in range(len(path), -1, -1):
                found = origin_of(path[:end])
                if found is not None:
                    return found
            return None

        found: dict[tuple[Path, str], Diagnostic] = {}

        def add(path: Path, message: str, hint: str | None = None) -> None:
            found.setdefault((path, message), Diagnostic(message, origin(path), path, hint))

        secrets = self.secret_paths(tree)
        for secret in secrets if check_plaintext else ():
            for path, value in _leaves(_get(tree, secret), secret):
                if value is not None and not isinstance(value, SecretRef | Deferred):
                    where = origin(path)
                    layer = where.layer if where is not None else ""
                    target = (
                        f"envs/{layer[4:]}.enc.yaml"
                        if layer.startswith("env:")
                        else "secrets.enc.yaml"
                    )
                    add(
                        path,
                        "plaintext value for a secret key: it must come from an encrypted file",
                        f"remove it here and use `kagura-ops set {target} {dotted(path)} -`",
                    )
        hidden = set(secrets)
        for error in self._validator.iter_errors(_placeholders(tree)):
            for path, message, hint in _explain(error, tree, hidden):
                add(path, message, hint)

        def order(diag: Diagnostic) -> tuple[Any, ...]:
            o = diag.origin
            if o is None:
                return (2, "", 0, 0, dotted(diag.path), diag.message)
            return (
                o.file is None,
                o.file or "",
                o.line or 0,
                o.column or 0,
                dotted(diag.path),
                diag.message,
            )

        return sorted(found.values(), key=order)

    # -- internals -------------------------------------------------------------

    @cached_property
    def _validator(self) -> Any:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

        return Draft202012Validator(self.document)

    def _expand(self, node: Any, branches: bool = True) -> Iterator[dict[str, Any]]:
        """``node``, the schemas its ``$ref`` points to, its ``allOf`` (and ``anyOf``/``oneOf``)."""
        stack, seen = [node], set()
        while stack:
            current = stack.pop(0)
            if not isinstance(current, dict) or id(current) in seen:
                continue
            seen.add(id(current))
            yield current
            ref = current.get("$ref")
            if isinstance(ref, str):
                stack.append(self._resolve(ref))
            for key in ("allOf", "anyOf", "oneOf") if branches else ("allOf",):
                stack.extend(current.get(key, []))

    def _resolve(self, ref: str) -> Any:
        base = self.document.get("$id", "")
        if base and ref.startswith(base):
            ref = ref[len(base) :]
        if not ref.startswith("#"):
            return None
        node: Any = self.document
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def _children(self, nodes: Sequence[Any], key: str | int) -> list[Any]:
        out: list[Any] = []
        for node in (n for parent in nodes for n in self._expand(parent)):
            if isinstance(key, int):
                prefix = node.get("prefixItems", [])
                out.append(prefix[key] if key < len(prefix) else node.get("items"))
                continue
            matched = [node["properties"][key]] if key in node.get("properties", {}) else []
            matched += [
                s for p, s in node.get("patternProperties", {}).items() if re.search(p, key)
            ]
            out += matched or [node.get("additionalProperties")]
        return [n for n in out if isinstance(n, dict)]

    def _raw(self, path: Path) -> list[Any]:
        nodes = self._raw_cache.get(path)
        if nodes is None:
            nodes = self._children(self._raw(path[:-1]), path[-1])
            self._raw_cache[path] = nodes
        return nodes

    def _nodes(self, path: Path) -> list[dict[str, Any]]:
        nodes = self._node_cache.get(path)
        if nodes is None:
            nodes = [n for parent in self._raw(path) for n in self._expand(parent)]
            self._node_cache[path] = nodes
        return nodes

    def _keyword(self, path: Path, keyword: str) -> Any:
        return next((n[keyword] for n in self._nodes(path) if keyword in n), None)

    def _find_secrets(self, value: Any, nodes: list[Any], path: Path, out: list[Path]) -> None:
        if path and any(n.get("x-secret") is True for p in nodes for n in self._expand(p)):
            out.append(path)
        elif isinstance(value, Mapping | list):
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            for key, child in items:
                children = self._children(nodes, key)
                if children:
                    self._find_secrets(child, children, (*path, key), out)

    def _defaults_of(self, node: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in self._expand(node, branches=False):
            for name, sub in part.get("properties", {}).items():
                if name in out:
                    continue
                for candidate in self._expand(sub, branches=False):
                    if "default" in candidate:
                        out[name] = copy.deepcopy(candidate["default"])
                        break
                else:
                    nested = self._defaults_of(sub)
                    if nested:
                        out[name] = nested
        return out


def _checked(document: Any, shown: str) -> dict[str, Any]:
    """``document`` if it is a valid 2020-12 schema object with valid kagura keywords."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

    if not isinstance(document, dict):
        raise ConfigError("schema must be a JSON object", file=shown)
    try:
        Draft202012Validator.check_schema(document)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ConfigError(f"invalid JSON Schema at {at}: {exc.message}", file=shown) from None
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        if not isinstance(node, dict):
            continue
        stack.extend(node.values())
        problem = None
        if "x-secret" in node and not isinstance(node["x-secret"], bool):
            problem = "x-secret must be true or false"
        elif node.get("x-secret") is True and "default" in node:
            problem = "an x-secret key cannot have a default (it would be plaintext)"
        elif "x-merge" in node and not _MERGE.match(str(node["x-merge"])):
            problem = f"x-merge must be replace, append, unique or by-key:<field>, not {node['x-merge']!r}"
        elif "x-env" in node and not _ENV.match(str(node["x-env"])):
            problem = f"x-env must be an environment variable name, not {node['x-env']!r}"
        if problem:
            raise ConfigError(problem, file=shown)
    return document


def _merge(base: dict[str, Any], extra: Mapping[str, Any], shown: str, at: tuple[str, ...]) -> None:
    for key, value in extra.items():
        old = base.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            _merge(old, value, shown, (*at, key))
        elif key == "required" and isinstance(old, list) and isinstance(value, list):
            old += [name for name in value if name not in old]
        elif key == "x-secret" and old is True and value is not True:
            where = ".".join(p for p in at if p != "properties")
            raise ConfigError(f"cannot remove x-secret from built-in key {where}", file=shown)
        else:
            base[key] = copy.deepcopy(value)


def _display(path: pathlib.Path, root: pathlib.Path | None) -> str:
    if root is not None:
        try:
            return path.resolve().relative_to(pathlib.Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def _placeholders(value: Any) -> Any:
    """A plain JSON-like copy of ``value`` with secrets replaced by typed placeholders."""
    if isinstance(value, SecretRef):
        match = _ENC_TYPE.search(value.enc)
        return _PLACEHOLDERS.get(match.group(1) if match else "str", "********")
    if isinstance(value, Deferred):
        return _DEFERRED
    if isinstance(value, Mapping):
        return {str(k): _placeholders(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_placeholders(v) for v in value]
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if value is None or isinstance(value, int | float | str):
        return value
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def _get(tree: Any, path: Path) -> Any:
    for key in path:
        try:
            tree = tree[key]
        except (KeyError, IndexError, TypeError):
            return None
    return tree


def _leaves(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))
    else:
        yield path, value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, kind):
            return name
    return "array" if isinstance(value, list) else "object"


def _describe(error: Any, tree: Any, hidden: set[Path]) -> tuple[str, str]:
    """(what the value is, the value as JSON or ``""``), never showing a secret."""
    path = tuple(error.absolute_path)
    original = _get(tree, path)
    if isinstance(original, SecretRef):
        match = _ENC_TYPE.search(original.enc)
        return f"an encrypted {match.group(1) if match else 'value'}", ""
    if isinstance(original, Deferred):
        return "a deferred template", ""
    kind = _json_type(error.instance)
    if any(path[: len(p)] == p for p in hidden) or isinstance(error.instance, dict | list):
        return kind, ""
    shown = json.dumps(error.instance, ensure_ascii=False)
    return kind, shown[:57] + "..." if len(shown) > 60 else shown


def _explain(error: Any, tree: Any, hidden: set[Path]) -> Iterator[tuple[Path, str, str | None]]:
    """(path, message, hint) for one jsonschema error, in our words."""
    path: Path = tuple(error.absolute_path)
    keyword, expected, schema = error.validator, error.validator_value, error.schema
    if keyword not in ("type", "anyOf", "oneOf") and isinstance(
        _get(tree, path), SecretRef | Deferred
    ):
        return  # only the type of an encrypted value is known before decryption
    kind, shown = _describe(error, tree, hidden)
    got, value = (f" (got {shown})", f" {shown}") if shown else ("", "")
    if keyword in ("anyOf", "oneOf") and error.context:
        # Report the errors of the one branch whose type fits, when there is one.
        branches: dict[int, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        fitting = [
            errs
            for errs in branches.values()
            if not any(e.validator == "type" and not e.relative_path for e in errs)
        ]
        if len(fitting) == 1:
            for sub in fitting[0]:
                yield from _explain(sub, tree, hidden)
            return
        types = [
            b["type"] for b in expected if isinstance(b, dict) and isinstance(b.get("type"), str)
        ]
        if types:
            yield path, f"expected {' or '.join(dict.fromkeys(types))}, got {kind}{value}", None
        else:
            yield path, f"{kind} does not match any allowed form{got}", None
    elif keyword == "oneOf":
        yield path, "matches more than one allowed form", None
    elif keyword in ("additionalProperties", "unevaluatedProperties") and expected is False:
        allowed = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for key in error.instance:
            if key in allowed or any(re.search(p, key) for p in patterns):
                continue
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else None
            if hint is None and allowed:
                hint = "known keys: " + ", ".join(sorted(allowed))
            yield (*path, key), f"unknown key '{key}'", hint
    elif keyword == "required":
        for key in expected:
            if key not in error.instance:
                yield path, f"missing required key '{key}'", None
    elif keyword == "type":
        want = " or ".join(expected) if isinstance(expected, list) else expected
        yield path, f"expected {want}, got {kind}{value}", None
    elif keyword == "enum":
        choices = ", ".join(json.dumps(v) for v in expected)
        yield path, f"must be one of {choices}{got}", None
    elif keyword == "const":
        yield path, f"must be {json.dumps(expected)}{got}", None
    elif keyword in _BOUNDS:
        yield path, f"must be {_BOUNDS[keyword]} {expected}{got}", None
    elif keyword in _SIZES:
        yield path, "must have " + _SIZES[keyword].format(expected), None
    elif keyword == "pattern":
        yield path, f"must match the pattern {expected}{got}", None
    elif keyword == "multipleOf":
        yield path, f"must be a multiple of {expected}{got}", None
    elif keyword == "uniqueItems":
        yield path, "items must be unique", None
    elif keyword is None or keyword == "not":
        yield path, "is not allowed here", None
    else:
        rule = json.dumps(expected, ensure_ascii=False)
        yield path, f"does not satisfy {keyword} {rule[:80]}", None
