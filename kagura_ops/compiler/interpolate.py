"""Interpolation of the merged tree: ``${VAR}``, ``${config.path}`` and sandboxed Jinja2.

Only string values are interpolated (keys never are). A string without ``$`` or
``{`` is returned as is, without any other work.

``${...}`` (no Jinja2 involved, ``jinja2`` is not even imported):

* ``${VAR}`` / ``${VAR:-default}``: an environment variable (``[A-Za-z_][A-Za-z0-9_]*``);
  as in the shell, ``:-`` also applies when the variable is set but empty. The
  default runs to the first ``}``; it is not itself interpolated.
* ``${config.a.b}`` / ``${config.list[0]}`` / ``${config.a["x.y"]}``: another
  value, after its own interpolation. A string that is exactly one reference
  takes the referenced value with its type (containers are copied, a
  :class:`SecretRef` or :class:`Deferred` is the same object). Inside a longer
  string scalars are formatted (``true``/``false``/``null`` for booleans and null,
  ``str()`` otherwise) and a mapping or list is an error. A reference to a secret
  inside a longer string makes the value a :class:`Deferred` template with
  ``{{ secret('a.b') }}`` in that place.
* ``$${`` is a literal ``${``. Anything else inside ``${...}`` is an error.

Strings containing ``{{``, ``{%`` or ``{#`` are Jinja2 templates, rendered in an
immutable sandbox with ``StrictUndefined`` and these names: ``config`` (the
resolved tree, read lazily, so templates may reference each other; cycles are
reported), ``env`` (the environment) and ``secret(name)``. ``${...}`` in the
template's *text* (outside ``{{ }}``, ``{% %}``, ``{# #}`` and raw blocks) is
substituted first; substituted values are inserted as Jinja string literals when
they contain braces or newlines, so a value can never inject template code.
Inside Jinja expressions ``${...}`` is left alone: use ``env.VAR`` and
``config.a.b`` there. A template that uses a secret (calls ``secret(...)`` or reads
an encrypted value or a deferred value through ``config``) is not rendered: it
becomes ``Deferred(template, secrets)``, where ``template`` is the source after the
``${...}`` substitution.

Load-time contract for :class:`Deferred` templates: render them in the same kind
of sandbox (``ImmutableSandboxedEnvironment``, ``StrictUndefined``,
``autoescape=False``, ``keep_trailing_newline=True``) with ``secret(path)``
returning the decrypted value at that dotted path and, for templates that mention
them, ``config`` (resolved values, secrets and deferred values included) and
``env``. Templates made from ``${...}`` alone only ever call ``secret``.

Diagnostics name variables, paths and template lines, never a value read from
the environment (messages from template errors are redacted) or a secret.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from kagura_ops.compiler.model import (
    Deferred,
    Diagnostic,
    Origin,
    Path,
    SecretRef,
    copy_tree,
    dotted,
    parse_dotted,
)

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["MAX_DEPTH", "Interpolated", "interpolate", "load_time_template"]

MAX_DEPTH: Final = 64
"""How many values may be under resolution at once (reference chains plus nesting)."""

_DOLLAR = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_ENV_EXPR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_REF_EXPR = re.compile(r'config((?:\.[^.\[\]"]+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])+)')
_JINJA_REGION = re.compile(
    r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL
)
_NEEDS_QUOTING = re.compile(r"[{}\r\n]")
_PLACEHOLDER = "<secret>"
_MISSING: Final = object()


@dataclass(frozen=True)
class Interpolated:
    """The interpolated tree, every problem found, and the environment variables read."""

    tree: dict[str, Any]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    env_used: dict[str, str | None] = field(default_factory=dict)
    """Name -> value read, or ``None`` when unset (a default was used). Never log the values."""


def interpolate(
    tree: dict[str, Any],
    *,
    environ: Mapping[str, str],
    origin_of: Callable[[Path], Origin | None],
) -> Interpolated:
    """Interpolate every string in ``tree`` into a new tree; ``tree`` is not modified.

    A value with a problem keeps its original string and gets a diagnostic; values
    that depend on it are left alone without further diagnostics.
    """
    resolver = _Resolver(tree, environ, origin_of)
    out = resolver.resolve((), tree)
    return Interpolated(out, resolver.diagnostics, resolver.env_used)


class _Abort(Exception):
    """The value cannot be computed; the problem has been reported already."""


class _Unknown(Exception):
    """A reference to a path that does not exist."""


def _child_key(node: Any, part: str | int) -> Any:
    """The actual key or index for ``part`` in ``node``, or ``_MISSING``."""
    if isinstance(node, dict):
        if part in node:
            return part
        if isinstance(part, str) and part.isdigit() and int(part) in node:
            return int(part)
    elif isinstance(node, list):
        index = int(part) if isinstance(part, str) and part.isdigit() else part
        if isinstance(index, int) and 0 <= index < len(node):
            return index
    return _MISSING


def _format(value: Any) -> str:
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _literal(text: str) -> str:
    """``text`` as Jinja2 source that renders to exactly ``text``."""
    if not _NEEDS_QUOTING.search(text):
        return text
    # repr() is a valid Jinja2 string literal (same quoting and backslash escapes).
    return "{{ " + repr(text) + " }}"


# A piece of a string being interpolated: ("src", Jinja source), ("text", literal text),
# ("secret", dotted path) or ("deferred", Deferred).
_Part = tuple[str, Any]


class _Resolver:
    def __init__(
        self,
        tree: dict[str, Any],
        environ: Mapping[str, str],
        origin_of: Callable[[Path], Origin | None],
    ) -> None:
        self.tree = tree
        self.environ = environ
        self.origin_of = origin_of
        self.diagnostics: list[Diagnostic] = []
        self.env_used: dict[str, str | None] = {}
        self._done: dict[Path, Any] = {}
        self._failed: set[Path] = set()
        self._active: dict[Path, int] = {}
        self._stack: list[Path] = []
        self._cycles: set[frozenset[Path]] = set()
        self._candidates: list[str] | None = None

    # -- reporting -------------------------------------------------------------------

    def report(self, path: Path, message: str, hint: str | None = None) -> None:
        message, hint = self.redact(message), self.redact(hint) if hint else None
        self.diagnostics.append(Diagnostic(message, self.origin_of(path), path, hint))

    def did_you_mean(self, target: Path) -> str | None:
        import difflib

        if self._candidates is None:
            self._candidates = []
            todo: list[tuple[Path, Any]] = [((), self.tree)]
            while todo:
                path, node = todo.pop()
                items = node.items() if isinstance(node, dict) else enumerate(node)
                for key, child in items:
                    child_path = (*path, key)
                    self._candidates.append(dotted(child_path))
                    if isinstance(child, dict | list):
                        todo.append((child_path, child))
        close = difflib.get_close_matches(dotted(target), self._candidates, n=1, cutoff=0.6)
        return f"did you mean config.{close[0]}?" if close else None

    def redact(self, message: str) -> str:
        """``message`` without any environment value read so far (4+ characters).

        Messages are built from names, but a template can compute a key or raise an
        error that quotes a value (``config[env.X]``); shorter values are too common
        (``1``, ``dev``) to be worth hiding and would garble every message."""
        values = {v for v in self.env_used.values() if v is not None and len(v) >= 4}
        for value in sorted(values, key=len, reverse=True):
            message = message.replace(value, "***")
        return message

    # -- the walk ----------------------------------------------------------------------

    def resolve(self, path: Path, node: Any) -> Any:
        """The interpolated value of ``node`` (at ``path``); failures are recorded in ``_failed``.

        Raises :class:`_Abort` when ``path`` is already being resolved (a cycle).
        """
        if isinstance(node, str):
            if "$" not in node and "{" not in node:
                return node
            jinja = "{{" in node or "{%" in node or "{#" in node
            if not jinja and "${" not in node:
                return node
        elif not isinstance(node, dict | list):
            return node
        done = self._done.get(path, _MISSING)
        if done is not _MISSING:
            return done
        if path in self._active:
            self._report_cycle(path)
            raise _Abort
        if len(self._stack) >= MAX_DEPTH:
            chain = f"{dotted(self._stack[1])} -> ... -> {dotted(path)}"
            self.report(path, f"references nested more than {MAX_DEPTH} deep: {chain}")
            raise _Abort
        self._active[path] = len(self._stack)
        self._stack.append(path)
        try:
            if isinstance(node, str):
                value, ok = self._template(path, node) if jinja else self._dollars(path, node)
            else:
                value, ok = self._container(path, node)
        finally:
            self._stack.pop()
            del self._active[path]
        if not ok:
            self._failed.add(path)
        self._done[path] = value
        return value

    def _container(self, path: Path, node: dict[Any, Any] | list[Any]) -> tuple[Any, bool]:
        ok = True
        items = node.items() if isinstance(node, dict) else enumerate(node)
        out: list[tuple[Any, Any]] = []
        for key, child in items:
            if isinstance(child, str):
                if "$" not in child and "{" not in child:
                    out.append((key, child))
                    continue
            elif not isinstance(child, dict | list):
                out.append((key, child))
                continue
            child_path = (*path, key)
            try:
                value = self.resolve(child_path, child)
            except _Abort:
                value, ok = child, False
            if child_path in self._failed:
                ok = False
            out.append((key, value))
        if isinstance(node, dict):
            return dict(out), ok
        return [value for _, value in out], ok

    def _report_cycle(self, path: Path) -> None:
        cycle = [*self._stack[self._active[path] :], path]
        members = frozenset(cycle)
        if members in self._cycles:
            return
        self._cycles.add(members)
        related = tuple(o for p in cycle[1:-1] if (o := self.origin_of(p)) is not None)
        text = " -> ".join(dotted(p) or "(root)" for p in cycle)
        self.diagnostics.append(
            Diagnostic(f"reference cycle: {text}", self.origin_of(path), path, None, related)
        )

    def lookup(self, target: Path) -> tuple[Path, Any]:
        """(actual path, resolved value) of a reference; raises :class:`_Unknown` or :class:`_Abort`.

        Containers on the way are not resolved (``a.b`` does not depend on all of ``a``);
        a string on the way is, so references can go through an alias of a mapping.
        """
        node: Any = self.tree
        path: Path = ()
        resolved = False
        for part in target:
            if not resolved and not isinstance(node, dict | list):
                node, resolved = self.resolved(path, node), True
            key = _child_key(node, part)
            if key is _MISSING:
                raise _Unknown
            node, path = node[key], (*path, key)
        return path, node if resolved else self.resolved(path, node)

    def resolved(self, path: Path, node: Any) -> Any:
        value = self.resolve(path, node)
        if path in self._failed:
            raise _Abort
        return value

    # -- ${...} ------------------------------------------------------------------------

    def _dollars(self, path: Path, text: str) -> tuple[Any, bool]:
        whole = _DOLLAR.fullmatch(text)
        if whole is not None and whole.group(1) is not None and whole.group(2):
            ref = _REF_EXPR.fullmatch(whole.group(1))
            if ref is not None:
                found = self._reference(path, whole.group(0), ref)
                if found is None:
                    return text, False
                value = found[1]
                return (copy_tree(value) if isinstance(value, dict | list) else value), True
        parts: list[_Part] = []
        if not self._substitute(path, text, parts, "text"):
            return text, False
        if all(kind == "text" for kind, _ in parts):
            joined = "".join(value for _, value in parts)
            if whole is not None and whole.group(1) is not None and whole.group(2):
                # A whole-value ${VAR}: typed like a YAML scalar (port: ${PORT} is an int).
                from kagura_ops.sops.yamlscalars import resolve_plain

                typed = resolve_plain(joined) if joined == joined.strip() else joined
                return (joined if typed is None else typed), True
            return joined, True
        return _deferred(parts), True

    def _reference(self, path: Path, expr: str, ref: re.Match[str]) -> tuple[Path, Any] | None:
        """(path, value) that ``${config...}`` names, or None (reported, or failed upstream)."""
        target = parse_dotted(ref.group(1))
        try:
            return self.lookup(target)
        except _Unknown:
            self.report(path, f"unknown reference {expr}", self.did_you_mean(target))
        except _Abort:
            pass
        return None

    def _substitute(self, path: Path, text: str, parts: list[_Part], plain: str) -> bool:
        """Append ``text`` to ``parts`` with each ``${...}`` replaced; ``plain`` is the kind of
        the text around them (``"text"``, or ``"src"`` in a template). False on a problem."""
        ok = True
        pos = 0
        for match in _DOLLAR.finditer(text):
            if match.start() > pos:
                before = text[pos : match.start()]
                if plain == "src" and before.endswith("{"):
                    # Quote trailing braces: "{" + "{{ x }}" would read as "{{{ x }}".
                    kept = before.rstrip("{")
                    parts.extend([("src", kept), ("text", before[len(kept) :])])
                else:
                    parts.append((plain, before))
            pos = match.end()
            expr, closed = match.groups()
            if expr is None:
                parts.append((plain, "${"))
            elif not closed:
                self.report(path, "unterminated ${", "write $${ for a literal ${")
                ok = False
            elif (ref := _REF_EXPR.fullmatch(expr)) is not None:
                ok = self._insert_reference(path, match.group(0), ref, parts) and ok
            elif (env := _ENV_EXPR.fullmatch(expr)) is not None and env.group(1) != "config":
                ok = self._insert_env(path, env.group(1), env.group(2), parts) and ok
            else:
                self.report(
                    path,
                    f"invalid interpolation {match.group(0)}",
                    "use ${VAR}, ${VAR:-default} or ${config.key.path}; $${ is a literal ${",
                )
                ok = False
        if pos < len(text):
            parts.append((plain, text[pos:]))
        return ok

    def _insert_reference(
        self, path: Path, expr: str, ref: re.Match[str], parts: list[_Part]
    ) -> bool:
        found = self._reference(path, expr, ref)
        if found is None:
            return False
        actual, value = found
        if isinstance(value, SecretRef):
            parts.append(("secret", dotted(actual)))
        elif isinstance(value, Deferred):
            parts.append(("deferred", value))
        elif isinstance(value, dict | list):
            kind = "a mapping" if isinstance(value, dict) else "a list"
            self.report(
                path,
                f"{expr} is {kind}: it can only be the whole value, not part of a string",
                "use Jinja2 to format it, e.g. {{ config.x | tojson }}",
            )
            return False
        else:
            parts.append(("text", _format(value)))
        return True

    def _insert_env(self, path: Path, name: str, default: str | None, parts: list[_Part]) -> bool:
        value = self.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                self.report(
                    path,
                    f"environment variable {name} is not set",
                    f"set it, or give a default: ${{{name}:-...}}",
                )
                return False
            self.env_used[name] = value
            parts.append(("text", default))
        else:
            self.env_used[name] = value
            parts.append(("text", value))
        return True

    # -- Jinja2 ------------------------------------------------------------------------

    def _template(self, path: Path, text: str) -> tuple[Any, bool]:
        from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

        parts: list[_Part] = []
        ok = True
        pos = 0
        for region in _JINJA_REGION.finditer(text):
            ok = self._substitute(path, text[pos : region.start()], parts, "src") and ok
            parts.append(("src", region.group(0)))
            pos = region.end()
        ok = self._substitute(path, text[pos:], parts, "src") and ok
        if not ok:
            return text, False
        source = _source(parts)
        try:
            template, static_secrets = _compile(source)
        except TemplateSyntaxError as error:
            lines = text.splitlines()
            line = error.lineno
            shown = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            hint = f"line {line}: {shown[:80]}" if shown else None
            self.report(
                path,
                f"template syntax error at line {line}: {error.message or ''}",
                hint,
            )
            return text, False
        probe = _Probe(self, path)
        context = {
            "config": _view(probe, (), self.tree, False),
            "env": _EnvView(self),
            "secret": probe.secret,
        }
        failure: Exception | None = None
        try:
            rendered = template.render(context)
        except _Abort:
            return text, False
        except (SecurityError, UndefinedError) as error:
            self._template_error(path, error, probe)
            return text, False
        except Exception as error:
            failure = error
        for name in static_secrets:
            probe.check_secret(name)
        if probe.bad:
            return text, False
        secrets = {v for kind, v in parts if kind == "secret"} | probe.secrets | set(static_secrets)
        if secrets or any(kind == "deferred" for kind, _ in parts):
            return _deferred(parts, secrets, source), True
        if failure is not None:
            self._template_error(path, failure, probe)
            return text, False
        return rendered, True

    def _template_error(self, path: Path, error: Exception, probe: _Probe) -> None:
        import traceback

        from jinja2.exceptions import SecurityError, UndefinedError

        lines = [
            n
            for frame, n in traceback.walk_tb(error.__traceback__)
            if frame.f_code.co_filename == "<template>"
        ]
        at = f" at line {lines[-1]}" if lines else ""
        message = str(error)
        if isinstance(error, SecurityError):
            self.report(path, f"template not allowed{at}: {message}")
        elif isinstance(error, UndefinedError):
            missing = probe.missing
            if missing is not None and repr(missing[-1]) in message:
                self.report(
                    path,
                    f"template error{at}: config.{dotted(missing)} is undefined",
                    self.did_you_mean(missing),
                )
            else:
                self.report(path, f"template error{at}: {message}")
        else:
            self.report(path, f"template error{at}: {type(error).__name__}: {message}")


def _source(parts: list[_Part]) -> str:
    """Jinja2 source for ``parts``; adjacent literal texts are quoted together."""
    out: list[str] = []
    text: list[str] = []
    for kind, value in parts:
        if kind == "text":
            text.append(value)
            continue
        if text:
            out.append(_literal("".join(text)))
            text.clear()
        if kind == "src":
            out.append(value)
        elif kind == "secret":
            out.append("{{ secret(" + repr(value) + ") }}")
        else:
            out.append(value.template)
    if text:
        out.append(_literal("".join(text)))
    return "".join(out)


def _deferred(
    parts: list[_Part], secrets: set[str] | None = None, source: str | None = None
) -> Deferred:
    names = set(secrets or ()) | {v for kind, v in parts if kind == "secret"}
    for kind, value in parts:
        if kind == "deferred":
            names.update(value.secrets)
    return Deferred(_source(parts) if source is None else source, tuple(sorted(names)))


class _Probe:
    """What one template render reads: secrets (never revealed) and missing config paths."""

    def __init__(self, resolver: _Resolver, path: Path) -> None:
        self.resolver = resolver
        self.path = path
        self.secrets: set[str] = set()
        self.missing: Path | None = None
        self.bad = False
        self._checked: set[str] = set()

    def secret(self, name: object) -> str:
        """``secret(name)`` at compile time: records the name and returns a placeholder."""
        if not isinstance(name, str):
            raise TypeError("secret() takes a dotted key path")
        self.check_secret(name)
        self.secrets.add(name)
        return _PLACEHOLDER

    def check_secret(self, name: str) -> None:
        if name in self._checked:
            return
        self._checked.add(name)
        path = self.path
        target = parse_dotted(name)
        try:
            _, value = self.resolver.lookup(target)
        except _Abort:
            self.bad = True
            return
        except _Unknown:
            self.resolver.report(
                path, f"secret({name!r}): no such key", self.resolver.did_you_mean(target)
            )
            self.bad = True
            return
        if not isinstance(value, SecretRef):
            self.resolver.report(
                path, f"secret({name!r}): {name} is not an encrypted value", f"use config.{name}"
            )
            self.bad = True

    def wrap(self, path: Path, node: Any, resolved: bool) -> Any:
        """What a template sees at ``path``: a view, a scalar, or a placeholder for a secret."""
        if not resolved:
            if isinstance(node, dict | list):
                return _view(self, path, node, False)
            node = self.resolver.resolved(path, node)
        if isinstance(node, SecretRef):
            self.secrets.add(dotted(path))
            return _PLACEHOLDER
        if isinstance(node, Deferred):
            self.secrets.update(node.secrets)
            return _PLACEHOLDER
        if isinstance(node, dict | list):
            return _view(self, path, node, True)
        return node


def _view(probe: _Probe, path: Path, node: Any, resolved: bool) -> Any:
    if isinstance(node, dict):
        return _MappingView(probe, path, node, resolved)
    return _ListView(probe, path, node, resolved)


def _plain(value: Any) -> Any:
    """A view as plain data (secrets as placeholders), for ``repr`` and ``tojson``."""
    if isinstance(value, _MappingView):
        return {k: _plain(value[k]) for k in value}
    if isinstance(value, _ListView):
        return [_plain(v) for v in value]
    return value


class _MappingView(Mapping[Any, Any]):
    """A read-only, lazily resolved mapping of the config for templates."""

    __slots__ = ("_node", "_path", "_probe", "_resolved")

    def __init__(self, probe: _Probe, path: Path, node: dict[Any, Any], resolved: bool) -> None:
        self._probe, self._path, self._node, self._resolved = probe, path, node, resolved

    def __getitem__(self, key: Any) -> Any:
        actual: Any = _child_key(self._node, key) if isinstance(key, str | int) else _MISSING
        if actual is _MISSING:
            self._probe.missing = (*self._path, key)
            raise KeyError(key)
        return self._probe.wrap((*self._path, actual), self._node[actual], self._resolved)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._node)

    def __len__(self) -> int:
        return len(self._node)

    def __repr__(self) -> str:
        return repr(_plain(self))


class _ListView(Sequence[Any]):
    """A read-only, lazily resolved list of the config for templates."""

    __slots__ = ("_node", "_path", "_probe", "_resolved")

    def __init__(self, probe: _Probe, path: Path, node: list[Any], resolved: bool) -> None:
        self._probe, self._path, self._node, self._resolved = probe, path, node, resolved

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self._node))[index]]
        if not isinstance(index, int):
            raise TypeError("list indices must be integers")
        actual = index + len(self._node) if index < 0 else index
        if not 0 <= actual < len(self._node):
            self._probe.missing = (*self._path, index)
            raise IndexError(index)
        return self._probe.wrap((*self._path, actual), self._node[actual], self._resolved)

    def __len__(self) -> int:
        return len(self._node)

    def __repr__(self) -> str:
        return repr(_plain(self))


class _EnvView(Mapping[str, str]):
    """The environment for templates; records every name read in ``env_used``."""

    __slots__ = ("_resolver",)

    def __init__(self, resolver: _Resolver) -> None:
        self._resolver = resolver

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise KeyError(name)
        value = self._resolver.environ.get(name)
        self._resolver.env_used[name] = value
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolver.environ)

    def __len__(self) -> int:
        return len(self._resolver.environ)

    def __repr__(self) -> str:
        return "<environment>"


def _dumps(obj: Any, **kwargs: Any) -> str:
    """``tojson`` that understands config views."""
    import json

    def default(value: Any) -> Any:
        if isinstance(value, _MappingView | _ListView):
            return _plain(value)
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    return json.dumps(obj, default=default, **kwargs)


@functools.cache
def _environment() -> ImmutableSandboxedEnvironment:
    """The sandbox, created on first use (importing ``jinja2`` costs start-up time)."""
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.runtime import Context, Undefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Sandbox(ImmutableSandboxedEnvironment):
        """No ``_private`` attributes at all, and no one-line memory or CPU bombs."""

        intercepted_binops = frozenset({"*", "**"})

        def getattr(self, obj: Any, attribute: str) -> Any | Undefined:
            if attribute.startswith("_"):
                kind = type(obj).__name__
                raise SecurityError(
                    f"access to attribute {attribute!r} of {kind!r} object is unsafe"
                )
            return super().getattr(obj, attribute)

        def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int) and right > 10_000:
                raise SecurityError("exponent too large")
            if operator == "*":
                for seq, count in ((left, right), (right, left)):
                    sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                    if sized and len(seq) * count > 1_000_000:
                        raise SecurityError("repetition result too large")
            return super().call_binop(context, operator, left, right)

    env = Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.policies["json.dumps_function"] = _dumps
    return env


@functools.lru_cache(maxsize=1024)
def _compile(source: str) -> tuple[Template, tuple[str, ...]]:
    """The compiled template and the literal names it passes to ``secret(...)``."""
    from jinja2 import nodes

    env = _environment()
    ast = env.parse(source)
    names: list[str] = []
    for call in ast.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "secret" and call.args:
            arg = call.args[0]
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                names.append(arg.value)
    return env.from_string(ast), tuple(dict.fromkeys(names))


def load_time_template(source: str) -> Template:
    """A deferred template compiled in the compiler's sandbox, for rendering at load time."""
    return _compile(source)[0]
