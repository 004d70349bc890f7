"""``kagura-ops plan``: what a change does to the resolved config of each environment.

The base side is compiled from a git commit's objects (:class:`~kagura_ops.git.tree.GitTree`,
no checkout), the head side from the working tree; neither needs a private key
and neither includes the user or the global layer, which belong to one machine
and not to the repository. The two lockfiles are compared key by key:

- values by value and type (``1``, ``1.0`` and ``true`` differ); a list is one
  value, and a changed list is described item by item (deepdiff, order ignored);
- secrets by their ``ENC[...]`` string only: stable ciphertext makes an
  unchanged value keep its ciphertext, so a different string is a changed value.
  Nothing is ever decrypted and no secret value is ever shown;
- deferred templates (rendered at load time, may read secrets) as sensitive too.

Each change carries where it came from: the head's provenance (layer, file,
line) for additions and changes, the base's for removals, plus the base's when
another file or layer now sets the key.

``--lockfile`` compares the committed lockfile with a fresh compile of the
working tree instead (a stale lockfile in CI).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kagura_ops.compiler.model import Path, dotted, parse_dotted
from kagura_ops.errors import KaguraOpsError, PlanError

if TYPE_CHECKING:
    from kagura_ops.compiler.lockfile import Lockfile
    from kagura_ops.compiler.project import Project
    from kagura_ops.compiler.source import FileSource

__all__ = [
    "Change",
    "EnvPlan",
    "ItemChange",
    "Plan",
    "diff_lockfiles",
    "plan_against_lockfile",
    "plan_against_ref",
]

ADD, CHANGE, REMOVE = "add", "change", "remove"
VALUE, SECRET, DEFERRED = "value", "secret", "deferred"


@dataclass(frozen=True)
class ItemChange:
    """One difference inside a changed list: ``+`` an item, ``-`` an item, ``~`` a field."""

    op: str
    where: str
    """Inside the list: ``[2]`` or ``[1].model`` (indices of the base list for ``-``/``~``)."""
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class Change:
    """One key whose resolved value differs between base and head."""

    action: str
    """``add``, ``change`` or ``remove``."""
    path: str
    """Dotted key path (``llm.model``, ``app.hosts[0]``)."""
    kind: str
    """``value``, or ``secret`` when either side is encrypted or a deferred template."""
    old: Any = None
    new: Any = None
    """The values (JSON types); always None for secrets."""
    items: tuple[ItemChange, ...] = ()
    """For a list value changed: what was added, removed or changed in it."""
    note: str | None = None
    """``reordered``, ``repetitions changed``, ``was a secret``..."""
    origin: dict[str, Any] | None = None
    """Where the head value comes from (the base value, for a removal)."""
    was: dict[str, Any] | None = None
    """Where the base value came from, when another layer or file sets it now."""

    @property
    def sensitive(self) -> bool:
        return self.kind == SECRET


@dataclass
class EnvPlan:
    """The plan of one environment."""

    env: str
    status: str = "unchanged"
    """``unchanged``, ``changed``, ``added`` (no such env at base), ``removed``, ``error``."""
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stale: bool = False
    """``--lockfile``: the committed lockfile's bytes differ from a fresh compile."""

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)


@dataclass
class Plan:
    """Every environment's plan, and what was compared."""

    base: str
    """``origin/main (1a2b3c4)``, or the lockfile compared in ``--lockfile`` mode."""
    head: str
    envs: list[EnvPlan]
    base_commit: str | None = None
    lockfile_mode: bool = False

    def count(self, action: str) -> int:
        return sum(e.count(action) for e in self.envs)

    @property
    def has_errors(self) -> bool:
        return any(e.errors for e in self.envs)

    @property
    def has_changes(self) -> bool:
        return any(e.changes or e.stale or e.status in ("added", "removed") for e in self.envs)


# -- comparing two lockfiles -------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    kind: str
    value: Any
    """The JSON value, the ENC string of a secret, or a deferred template."""
    path: Path


def _flatten(lock: Lockfile | None) -> dict[str, _Entry]:
    """Every leaf of a lockfile by dotted path; lists and empty mappings are leaves."""
    out: dict[str, _Entry] = {}
    if lock is None:
        return out

    def walk(value: Any, path: Path) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(child, (*path, key))
        elif path:
            out[dotted(path)] = _Entry(VALUE, value, path)

    walk(lock.values, ())
    for name, secret in lock.secrets.items():
        out[name] = _Entry(SECRET, secret.get("enc", ""), parse_dotted(name))
    for name, deferred in lock.deferred.items():
        out[name] = _Entry(DEFERRED, deferred.get("template", ""), parse_dotted(name))
    return out


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal JSON types (``1 != 1.0 != true``)."""
    if a != b:
        return False
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return _canonical(a) == _canonical(b)
    return type(a) is type(b)


def _origin(lock: Lockfile | None, path: Path) -> dict[str, Any] | None:
    if lock is None:
        return None
    for size in range(len(path), 0, -1):
        entry = lock.provenance.get(dotted(path[:size]))
        if entry is not None:
            return {k: entry[k] for k in ("layer", "file", "line", "env_var") if k in entry}
    return None


def _list_items(old: list[Any], new: list[Any]) -> tuple[tuple[ItemChange, ...], str | None]:
    """What changed inside a list, order ignored (deepdiff)."""
    from deepdiff import DeepDiff

    diff = DeepDiff(old, new, ignore_order=True, view="tree")
    items: list[ItemChange] = []
    for report, levels in diff.items():
        for level in levels:
            where = dotted(tuple(level.path(output_format="list")))
            where = where if where.startswith("[") else "." + where if where else ""
            if report in ("iterable_item_added", "dictionary_item_added"):
                items.append(ItemChange("+", where, new=level.t2))
            elif report in ("iterable_item_removed", "dictionary_item_removed"):
                items.append(ItemChange("-", where, old=level.t1))
            elif where.startswith("[") and "." not in where and "][" not in where:
                # A whole item replaced by another: clearer as one removed, one added.
                items.append(ItemChange("-", where, old=level.t1))
                items.append(ItemChange("+", where, new=level.t2))
            else:
                items.append(ItemChange("~", where, old=level.t1, new=level.t2))
    order = {"-": 0, "~": 1, "+": 2}
    items.sort(key=lambda i: (order[i.op], i.where))
    before, after = [_canonical(v) for v in old], [_canonical(v) for v in new]
    if items:
        in_before, in_after = set(before), set(after)
        kept_before = [v for v in before if v in in_after]
        kept_after = [v for v in after if v in in_before]
        return tuple(items), "order changed too" if kept_before != kept_after else None
    return (), "reordered" if Counter(before) == Counter(after) else "repetitions changed"


def diff_lockfiles(base: Lockfile | None, head: Lockfile | None) -> list[Change]:
    """The changes from ``base`` to ``head`` (None: the environment does not exist there)."""
    before, after = _flatten(base), _flatten(head)
    changes: list[Change] = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None:
            if old.kind == new.kind and (
                old.value == new.value if old.kind != VALUE else _same(old.value, new.value)
            ):
                continue
            changes.append(_changed(name, old, new, base, head))
        elif new is not None:
            secret = new.kind != VALUE
            changes.append(
                Change(
                    ADD,
                    name,
                    SECRET if secret else VALUE,
                    new=None if secret else new.value,
                    origin=_origin(head, new.path),
                )
            )
        elif old is not None:
            secret = old.kind != VALUE
            changes.append(
                Change(
                    REMOVE,
                    name,
                    SECRET if secret else VALUE,
                    old=None if secret else old.value,
                    origin=_origin(base, old.path),
                )
            )
    return changes


def _changed(
    name: str, old: _Entry, new: _Entry, base: Lockfile | None, head: Lockfile | None
) -> Change:
    origin, was = _origin(head, new.path), _origin(base, old.path)
    if origin is not None and was is not None:
        moved = (origin.get("layer"), origin.get("file")) != (was.get("layer"), was.get("file"))
        was = was if moved else None
    if old.kind != VALUE or new.kind != VALUE:
        note = None
        if old.kind != new.kind:
            note = {VALUE: "was a plain value", SECRET: "was a secret", DEFERRED: "was a template"}[
                old.kind
            ]
        # A value that is sensitive on either side is never shown, not even the plain one.
        return Change(CHANGE, name, SECRET, note=note, origin=origin, was=was)
    items: tuple[ItemChange, ...] = ()
    note = None
    if isinstance(old.value, list) and isinstance(new.value, list):
        items, note = _list_items(old.value, new.value)
    return Change(
        CHANGE,
        name,
        VALUE,
        old=old.value,
        new=new.value,
        items=items,
        note=note,
        origin=origin,
        was=was,
    )


# -- compiling both sides ----------------------------------------------------------------------


def _compile(project: Project, env: str, environ: Mapping[str, str]) -> tuple[Lockfile, list[str]]:
    """Compile ``env`` without the user and global layers: the lockfile and its problems."""
    from kagura_ops.compiler.build import build_lockfile, resolve_layers

    resolved = resolve_layers(
        project, env, environ=environ, include_user=False, include_global=False
    )
    lock, problems = build_lockfile(resolved, env)
    diagnostics = resolved.diagnostics + problems
    return lock, [d.format() for d in diagnostics]


def _side(
    project: Project | None, env: str, environ: Mapping[str, str]
) -> tuple[Lockfile | None, list[str]]:
    """One side's lockfile (None when the env does not exist there) and its problems."""
    from kagura_ops.compiler.project import DEFAULT_ENV

    if project is None or (env != DEFAULT_ENV and env not in project.envs()):
        return None, []
    try:
        return _compile(project, env, environ)
    except KaguraOpsError as exc:
        where = f"{exc.file}: " if exc.file else ""
        return None, [f"{where}{exc.message}" + (f" ({exc.hint})" if exc.hint else "")]


def _env_plan(
    env: str,
    base: Project | None,
    head: Project | None,
    environ: Mapping[str, str],
    base_label: str,
) -> EnvPlan:
    plan = EnvPlan(env)
    head_lock, head_problems = _side(head, env, environ)
    if head_problems:
        plan.status = "error"
        plan.errors = head_problems
        return plan
    base_lock, base_problems = _side(base, env, environ)
    if base_problems:
        if base_lock is None:
            plan.status = "error"
            plan.errors = [f"base {base_label}: {p}" for p in base_problems]
            return plan
        count = len(base_problems)
        plan.warnings.append(
            f"the base ({base_label}) has {count} compile problem{'s' if count != 1 else ''}; "
            "compared with what it resolves to"
        )
    plan.changes = diff_lockfiles(base_lock, head_lock)
    if base_lock is None and head_lock is not None:
        plan.status = "added"
    elif head_lock is None and base_lock is not None:
        plan.status = "removed"
    else:
        plan.status = "changed" if plan.changes else "unchanged"
    return plan


def _envs(wanted: Sequence[str] | None, base: Project | None, head: Project) -> list[str]:
    from kagura_ops.compiler.project import DEFAULT_ENV

    head_envs = head.envs()
    if wanted is not None:
        base_envs = base.envs() if base is not None else []
        for env in wanted:
            if env != DEFAULT_ENV and env not in head_envs and env not in base_envs:
                known = ", ".join(sorted({*head_envs, *base_envs})) or "none"
                raise PlanError(
                    f"unknown environment {env!r} (environments: {known})",
                    hint=f"create envs/{env}.yaml",
                )
        return list(wanted)
    names = {*head_envs, *(base.envs() if base is not None else [])} - {DEFAULT_ENV}
    return [DEFAULT_ENV, *sorted(names)]


def plan_against_ref(
    head: Project,
    *,
    base_ref: str | None = None,
    envs: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Compare the working tree with ``base_ref`` (default: see :func:`resolve_base`).

    ``envs`` None means every environment of either side (the default one first).
    """
    from kagura_ops.compiler.build import gc_paused
    from kagura_ops.compiler.project import Project
    from kagura_ops.git.tree import GitTree, open_repository, resolve_base

    environ = os.environ if environ is None else environ
    repo = open_repository(head.root)
    base = resolve_base(repo, base_ref)
    label = base.describe()
    tree = GitTree(repo, base.commit, head.root, label=label)
    base_project = Project(head.root, tree) if tree.has_project() else None
    names = _envs(envs, base_project, head)
    with gc_paused():
        plans = [_env_plan(env, base_project, head, environ, label) for env in names]
    if base_project is None:
        for plan in plans:
            plan.warnings.append(f"the base ({label}) has no kagura.yaml here: everything is new")
    return Plan(label, _describe(head.source), plans, base_commit=base.commit)


def plan_against_lockfile(
    project: Project,
    *,
    envs: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Compare each committed lockfile with a fresh compile of the working tree."""
    from kagura_ops.compiler.build import gc_paused

    environ = os.environ if environ is None else environ
    with gc_paused():
        plans = _lockfile_plans(project, _envs(envs, None, project), environ)
    return Plan("committed lockfiles", "working tree", plans, lockfile_mode=True)


def _lockfile_plans(project: Project, envs: list[str], environ: Mapping[str, str]) -> list[EnvPlan]:
    from kagura_ops.compiler.lockfile import Lockfile

    plans: list[EnvPlan] = []
    for env in envs:
        plan = EnvPlan(env)
        plans.append(plan)
        path = project.lockfile(env)
        shown = path.name
        head_lock, problems = _side(project, env, environ)
        if problems:
            plan.status, plan.errors = "error", problems
            continue
        try:
            committed_text: str | None = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            committed_text = None
        except (OSError, UnicodeDecodeError) as exc:
            plan.status, plan.errors = "error", [f"{shown}: cannot read: {exc}"]
            continue
        committed = None
        if committed_text is not None:
            try:
                committed = Lockfile.from_text(committed_text, source=shown)
            except KaguraOpsError as exc:
                plan.status, plan.errors = "error", [exc.format()]
                continue
        else:
            plan.warnings.append(f"{shown} does not exist: run kagura-ops compile")
        plan.changes = diff_lockfiles(committed, head_lock)
        fresh = head_lock.to_text() if head_lock is not None else None
        plan.stale = committed_text != fresh
        if committed is None:
            plan.status = "added"
        else:
            plan.status = "changed" if plan.changes or plan.stale else "unchanged"
        if plan.stale and not plan.changes and committed is not None:
            plan.warnings.append(
                f"{shown} is stale: same values, but its inputs or provenance differ"
            )
    return plans


def _describe(source: FileSource) -> str:
    return str(source.display)
