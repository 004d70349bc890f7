"""``kagura-ops compile``: layers -> merge -> interpolate -> validate -> lockfile.

Data flows one way; every stage adds diagnostics instead of stopping, so one
compile reports every problem at once. No private key is ever needed: encrypted
values travel as :class:`~kagura_ops.compiler.model.SecretRef`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from kagura_ops.compiler.loader import Layer, load_layer
from kagura_ops.compiler.lockfile import Lockfile
from kagura_ops.compiler.merge import Merged, Provenance, merge_layers
from kagura_ops.compiler.model import Deferred, Diagnostic, Origin, Path, SecretRef
from kagura_ops.compiler.project import PROJECT_FILE, Project
from kagura_ops.errors import CompileError

__all__ = ["Compiled", "build_lockfile", "compile_env", "gc_paused", "resolve_layers"]


@dataclass
class Compiled:
    """The result of compiling one environment."""

    project: Project
    env: str
    lockfile: Lockfile
    text: str
    tree: dict[str, Any]
    provenance: dict[Path, Provenance]
    layers: list[Layer]

    @property
    def path(self) -> FilePath:
        return self.project.lockfile(self.env)

    def is_fresh(self) -> bool:
        """Whether the lockfile on disk has exactly these bytes."""
        try:
            return self.path.read_text(encoding="utf-8") == self.text
        except (OSError, UnicodeDecodeError):
            return False


def _user_layer_wanted(environ: Mapping[str, str], include_user: bool | None) -> bool:
    if include_user is not None:
        return include_user
    return environ.get("CI", "").lower() not in ("true", "1", "yes")


@dataclass
class Resolved:
    """Layers merged and interpolated, before the lockfile split (used by ``config``)."""

    tree: dict[str, Any]
    provenance: dict[Path, Provenance]
    layers: list[Layer]
    schema: Any
    diagnostics: list[Diagnostic]
    env_used: dict[str, str | None]


def resolve_layers(
    project: Project,
    env: str,
    *,
    environ: Mapping[str, str] | None = None,
    include_user: bool | None = None,
    include_global: bool = True,
) -> Resolved:
    """Load, merge, interpolate and validate; diagnostics are collected, not raised."""
    from kagura_ops.compiler.interpolate import interpolate
    from kagura_ops.compiler.schema import Schema

    environ = os.environ if environ is None else environ
    files = project.layer_files(
        env,
        environ=environ,
        include_user=_user_layer_wanted(environ, include_user),
        include_global=include_global,
    )
    layers = [load_layer(f) for f in files]
    diagnostics = [d for layer in layers for d in layer.diagnostics]
    extra = _schema_files(project, layers, diagnostics)
    schema = Schema.load(project.root, extra, read=project.source.read_bytes)
    merged: Merged = merge_layers(
        layers, defaults=schema.defaults(), strategy_of=schema.merge_strategy
    )
    diagnostics.extend(merged.diagnostics)
    diagnostics.extend(_plaintext_secrets(layers, schema))

    def origin_of(path: Path) -> Origin | None:
        for size in range(len(path), 0, -1):
            entry = merged.provenance.get(path[:size])
            if entry is not None:
                return entry.origin
        return None

    result = interpolate(merged.tree, environ=environ, origin_of=origin_of)
    diagnostics.extend(result.diagnostics)
    # Plaintext at x-secret paths is checked per layer above (it catches overridden values too).
    # A value whose interpolation failed keeps its raw text: don't report it twice.
    failed = {d.path for d in result.diagnostics}
    diagnostics.extend(
        d
        for d in schema.validate(result.tree, origin_of, check_plaintext=False)
        if d.path not in failed
    )
    return Resolved(
        result.tree, merged.provenance, layers, schema, diagnostics, dict(result.env_used)
    )


def _schema_files(
    project: Project, layers: list[Layer], diagnostics: list[Diagnostic]
) -> list[FilePath]:
    extra: list[FilePath] = []
    for layer in layers:
        if layer.schema_ref and layer.source.path.name == PROJECT_FILE:
            candidate = (layer.source.path.parent / layer.schema_ref).resolve()
            if project.source.is_file(candidate):
                extra.append(candidate)
            else:
                diagnostics.append(
                    Diagnostic(
                        f"$schema file {layer.schema_ref!r} not found",
                        Origin(layer.source.layer, layer.source.display),
                    )
                )
    folder = project.root / "schemas"
    if project.source.is_dir(folder):
        extra.extend(p for p in project.source.glob(folder, "*.json") if p.resolve() not in extra)
    return extra


def _plaintext_secrets(layers: list[Layer], schema: Any) -> list[Diagnostic]:
    """A plaintext value at an ``x-secret`` path in *any* layer is an error, even if overridden."""
    problems: list[Diagnostic] = []

    def walk(value: Any, path: Path, layer: Layer) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(child, (*path, key), layer)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                walk(child, (*path, index), layer)
        elif (
            value is not None
            and not isinstance(value, SecretRef | Deferred)
            and schema.is_secret(path)
        ):
            if isinstance(value, str) and ("${" in value or "{{" in value):
                return  # a reference or template; checked after interpolation
            problems.append(
                Diagnostic(
                    "is a secret (x-secret) but holds a plaintext value",
                    layer.origins.get(path) or Origin(layer.source.layer, layer.source.display),
                    path,
                    hint="move it to an encrypted file: kagura-ops set secrets.enc.yaml "
                    f"{'.'.join(str(p) for p in path)} -",
                )
            )

    for layer in layers:
        if not layer.source.encrypted:
            walk(layer.tree, (), layer)
    return problems


def compile_env(
    project: Project,
    env: str,
    *,
    environ: Mapping[str, str] | None = None,
    include_user: bool | None = None,
    include_global: bool = True,
) -> Compiled:
    """Compile ``env``; raises :class:`CompileError` with every problem found."""
    with gc_paused():
        return _compile_env(project, env, environ, include_user, include_global)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """A compile builds many small objects and frees little until it ends: the
    cyclic collector only costs time here (about a quarter of a large compile).
    Nested uses are fine: only the outermost one turns the collector back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compile_env(
    project: Project,
    env: str,
    environ: Mapping[str, str] | None,
    include_user: bool | None,
    include_global: bool,
) -> Compiled:
    resolved = resolve_layers(
        project, env, environ=environ, include_user=include_user, include_global=include_global
    )
    lock, problems = build_lockfile(resolved, env)
    diagnostics = resolved.diagnostics + problems
    if diagnostics:
        diagnostics.sort(key=_position)
        raise CompileError(diagnostics)
    text = lock.to_text()
    return Compiled(project, env, lock, text, resolved.tree, resolved.provenance, resolved.layers)


def build_lockfile(resolved: Resolved, env: str) -> tuple[Lockfile, list[Diagnostic]]:
    """The lockfile of ``resolved`` (digest not yet computed) and the problems building it."""
    inputs: list[dict[str, Any]] = [
        {"path": layer.source.display, "layer": layer.source.layer, "sha256": layer.sha256}
        for layer in resolved.layers
    ]
    for name, value in sorted(resolved.env_used.items()):
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest() if value is not None else None
        inputs.append({"env": name, "sha256": digest})
    data_keys = {
        layer.source.display: layer.sops for layer in resolved.layers if layer.sops is not None
    }
    return Lockfile.build(
        env,
        resolved.tree,
        inputs=inputs,
        schema_digest=resolved.schema.digest,
        data_keys=data_keys,
        provenance=resolved.provenance,
        is_secret=resolved.schema.is_secret,
    )


def _position(diagnostic: Diagnostic) -> tuple[str, int, int]:
    origin = diagnostic.origin
    if origin is None:
        return ("~", 0, 0)
    return (origin.file or "~", origin.line or 0, origin.column or 0)
