"""The resolved lockfile: canonical JSON, secrets still encrypted, a digest over all.

``kagura.lock`` (default environment) or ``kagura.<env>.lock``::

    {
      "format": 1,
      "env": "production",
      "inputs": [{"path": "kagura.yaml", "layer": "project", "sha256": "..."},
                 {"env": "DB_HOST", "sha256": "..."}],
      "schema": "<sha256 of the combined schema>",
      "values": { the resolved tree without secrets and deferred templates },
      "secrets": {"llm.api_key": {"enc": "ENC[...]", "file": "secrets.enc.yaml", "aad": "llm:api_key:"}},
      "data_keys": {"secrets.enc.yaml": { the file's sops block: wrapped data keys }},
      "deferred": {"db.url": {"template": "postgres://app:{{ secret('db.password') }}@db/app",
                              "secrets": ["db.password"]}},
      "provenance": {"llm.model": {"layer": "env:production", "file": "envs/production.yaml",
                                   "line": 2, "column": 3, "overrides": [...]}},
      "digest": "sha256:<of this file's text without the digest line>"
    }

Canonical: sorted keys, two-space indentation, UTF-8, a final newline, no
timestamps, so the same inputs give the same bytes and diffs stay small.
Compiling needs no private key; reading checks the format version and digest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from kagura_ops.compiler.model import Deferred, Diagnostic, Origin, Path, SecretRef, dotted
from kagura_ops.errors import FormatError, IntegrityError

__all__ = ["FORMAT_VERSION", "Lockfile", "canonical_json", "read_lockfile"]

FORMAT_VERSION = 1


def canonical_json(data: Any) -> str:
    """Sorted keys, 2-space indent, UTF-8 kept, final newline; NaN/Infinity refused."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


_DIGEST_LINE = re.compile(r'^  "digest": "([^"\n]*)",\n', re.MULTILINE)


def _digest_of_text(body_text: str) -> str:
    return "sha256:" + hashlib.sha256(body_text.encode("utf-8")).hexdigest()


def _with_digest(body_text: str, digest: str) -> str:
    """Insert the ``digest`` line where sorted keys put it: just before ``env``."""
    at = body_text.index('\n  "env": ') + 1
    return f'{body_text[:at]}  "digest": "{digest}",\n{body_text[at:]}'


@dataclass
class Lockfile:
    """A compiled environment."""

    env: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    schema: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    data_keys: dict[str, Any] = field(default_factory=dict)
    deferred: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    digest: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "env": self.env,
            "inputs": self.inputs,
            "schema": self.schema,
            "values": self.values,
            "secrets": self.secrets,
            "data_keys": self.data_keys,
            "deferred": self.deferred,
            "provenance": self.provenance,
        }

    def to_text(self) -> str:
        """The lockfile text; its ``digest`` is the sha256 of this text without that line."""
        body_text = canonical_json(self.body())
        self.digest = _digest_of_text(body_text)
        return _with_digest(body_text, self.digest)

    @classmethod
    def build(
        cls,
        env: str,
        tree: dict[str, Any],
        *,
        inputs: list[dict[str, Any]],
        schema_digest: str,
        data_keys: dict[str, Any],
        provenance: dict[Path, Any],
        is_secret: Callable[[Path], bool] = lambda _path: False,
    ) -> tuple[Lockfile, list[Diagnostic]]:
        """Split the resolved ``tree`` into values, secrets and deferred templates."""
        lock = cls(env, inputs=inputs, schema=schema_digest)
        problems: list[Diagnostic] = []
        used_files: set[str] = set()

        def origin_of(path: Path) -> Origin | None:
            entry = provenance.get(path)
            return entry.origin if entry is not None else None

        def split(value: Any, path: Path) -> tuple[bool, Any]:
            """(keep in values, value for values)."""
            if isinstance(value, SecretRef):
                lock.secrets[dotted(path)] = {
                    "enc": value.enc,
                    "file": value.file,
                    "aad": value.aad,
                }
                used_files.add(value.file)
                return False, None
            if isinstance(value, Deferred):
                lock.deferred[dotted(path)] = {
                    "template": value.template,
                    "secrets": list(value.secrets),
                }
                return False, None
            if isinstance(value, dict):
                out = {}
                for key, child in value.items():
                    keep, new = split(child, (*path, key))
                    if keep:
                        out[key] = new
                return True, out
            if isinstance(value, list):
                items = []
                for index, child in enumerate(value):
                    keep, new = split(child, (*path, index))
                    items.append(new if keep else None)
                return True, items
            return True, _json_scalar(value, path, origin_of, problems)

        _, lock.values = split(tree, ())
        lock.data_keys = {name: data_keys[name] for name in sorted(used_files) if name in data_keys}
        lock.provenance = {}
        for path, entry in provenance.items():
            if not path:
                continue
            name = dotted(path)
            sensitive = name in lock.secrets or name in lock.deferred or is_secret(path)
            lock.provenance[name] = _provenance_json(entry, sensitive=sensitive)
        return lock, problems

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def from_text(cls, text: str, *, source: str = "<lockfile>") -> Lockfile:
        """Parse and verify: format version, structure, digest."""
        text = text.replace("\r\n", "\n")  # a checkout with CRLF line endings is the same file
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(
                f"not a valid lockfile: JSON error at line {exc.lineno}", file=source
            ) from None
        if not isinstance(data, dict):
            raise FormatError("not a valid lockfile: the top level is not an object", file=source)
        version = data.get("format")
        if version != FORMAT_VERSION:
            raise FormatError(
                f"lockfile format {version!r} is not supported (this kagura-ops reads format {FORMAT_VERSION})",
                file=source,
                hint="recompile it with this version: kagura-ops compile",
            )
        # The digest covers the exact canonical text: hashing the file without its
        # digest line checks every byte without serialising the data again.
        match = _DIGEST_LINE.search(text)
        digest = data.get("digest")
        if (
            match is None
            or not isinstance(digest, str)
            or match.group(1) != digest
            or digest != _digest_of_text(text[: match.start()] + text[match.end() :])
        ):
            raise IntegrityError(
                "lockfile digest mismatch: the file was modified after it was compiled",
                file=source,
                hint="recompile it: kagura-ops compile",
            )
        try:
            return cls(
                env=str(data["env"]),
                inputs=list(data["inputs"]),
                schema=str(data["schema"]),
                values=dict(data["values"]),
                secrets=dict(data["secrets"]),
                data_keys=dict(data["data_keys"]),
                deferred=dict(data["deferred"]),
                provenance=dict(data["provenance"]),
                digest=digest,
            )
        except (KeyError, TypeError, ValueError):
            raise FormatError(
                "not a valid lockfile: a section is missing or malformed", file=source
            ) from None


def read_lockfile(path: str | FilePath) -> Lockfile:
    from kagura_ops.sops.files import read_text

    return Lockfile.from_text(read_text(path), source=str(path))


def _json_scalar(value: Any, path: Path, origin_of: Any, problems: list[Diagnostic]) -> Any:
    from kagura_ops.sops.codec import Timestamp

    if isinstance(value, Timestamp):
        return value.text
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        problems.append(
            Diagnostic("NaN and infinity cannot be written to the lockfile", origin_of(path), path)
        )
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _provenance_json(entry: Any, *, sensitive: bool) -> dict[str, Any]:
    """Origin, strategy and overridden values; never a value where the key is secret."""
    out: dict[str, Any] = entry.origin.to_json()
    if entry.strategy:
        out["strategy"] = entry.strategy
    if entry.overrides:
        overrides = []
        for override in entry.overrides:
            item: dict[str, Any] = override.origin.to_json()
            if sensitive or isinstance(override.value, SecretRef | Deferred):
                item["sensitive"] = True
            elif not isinstance(override.value, dict | list):
                item["value"] = _json_scalar(override.value, (), lambda _p: None, [])
            overrides.append(item)
        out["overrides"] = overrides
    return out
