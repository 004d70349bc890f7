"""The values the compiler passes between its stages.

A config *path* is a tuple of mapping keys and list indices, ``("llm", "model")``
or ``("llm", "fallback_chain", 0)``; :func:`dotted` renders it for people as
``llm.model`` / ``llm.fallback_chain[0]``. Secret values never appear here in
plaintext: an encrypted leaf is a :class:`SecretRef` (its ``ENC[...]`` string and
where it came from) and a template that needs a secret is a :class:`Deferred`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Deferred",
    "Diagnostic",
    "Origin",
    "Path",
    "SecretRef",
    "copy_tree",
    "dotted",
    "parse_dotted",
]

Path = tuple[str | int, ...]


def dotted(path: Sequence[str | int]) -> str:
    """``("llm", "chain", 0)`` -> ``llm.chain[0]``; keys with dots are bracketed."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in part or "[" in part or not part:
            out += f'["{part}"]'
        else:
            out += f".{part}" if out else part
    return out


def copy_tree(value: Any) -> Any:
    """Fresh containers around shared leaves, so one node is never in two places."""
    if isinstance(value, dict):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) for v in value]
    return value


def parse_dotted(text: str) -> Path:
    """The inverse of :func:`dotted` (``a.b[0]``, ``a["x.y"]``)."""
    import re

    parts: list[str | int] = []
    for match in re.finditer(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.\[\]]+)', text):
        quoted, index, bare = match.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(quoted if quoted is not None else bare)
    return tuple(parts)


@dataclass(frozen=True)
class Origin:
    """Where one value came from: a layer file position, an environment variable, or code."""

    layer: str
    """``defaults``, ``global``, ``user``, ``project``, ``env:<name>``, ``environment``, ``runtime``."""
    file: str | None = None
    """Path as shown to people: relative to the project root when inside it."""
    line: int | None = None
    """1-based."""
    column: int | None = None
    """1-based."""
    env_var: str | None = None

    def where(self) -> str:
        """``envs/production.yaml:2:8``, ``$KAGURA__LLM__MODEL`` or the layer name."""
        if self.env_var:
            return f"${self.env_var}"
        if self.file is None:
            return self.layer
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"layer": self.layer}
        for name in ("file", "line", "column", "env_var"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True)
class SecretRef:
    """An encrypted leaf: everything needed to decrypt it later, nothing in the clear."""

    enc: str
    """The ``ENC[AES256_GCM,...]`` string, byte for byte from the file."""
    file: str
    """The encrypted file it came from (its ``data_keys`` entry in the lockfile)."""
    aad: str
    """The additional data it was encrypted with: its key path in that file, ``a:b:``."""

    def __repr__(self) -> str:
        return f"SecretRef(file={self.file!r}, aad={self.aad!r})"


@dataclass(frozen=True)
class Deferred:
    """A Jinja2 template that uses ``secret(...)``: rendered at load time, never at compile time."""

    template: str
    secrets: tuple[str, ...] = ()
    """The secret paths (dotted) the template reads."""


@dataclass(frozen=True)
class Diagnostic:
    """One compile problem: ``file:line:col: layer: message`` plus a hint."""

    message: str
    origin: Origin | None = None
    path: Path = ()
    hint: str | None = None
    related: tuple[Origin, ...] = field(default=())

    def format(self) -> str:
        where = self.origin.where() if self.origin is not None else "<config>"
        layer = f" {self.origin.layer}:" if self.origin is not None and self.origin.file else ""
        key = f" {dotted(self.path)}:" if self.path else ""
        text = f"{where}:{layer}{key} {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text
