"""``kagura-ops git-setup``: register the merge driver and diff textconv in a repository.

Two places change, both idempotently:

- ``.git/config`` (this clone only; git never shares it)::

      [merge "kagura-ops"]
          name = kagura-ops: three-way merge of SOPS-encrypted files
          driver = <kagura-ops> merge-driver %O %A %B %P
      [diff "kagura-ops"]
          textconv = <kagura-ops> diff-textconv

  ``<kagura-ops>`` is the absolute path of this installation's console script
  (or ``<python> -m kagura_ops.cli``), so git finds it whatever the ``PATH`` of
  the process that runs git. ``cachetextconv`` is never set: it would store
  decrypted text in git's notes.

- ``.gitattributes`` at the top of the work tree (committed, shared with the
  team), a block between two marker lines with one line per encrypted-file
  pattern: ``<pattern> merge=kagura-ops diff=kagura-ops``.

Patterns come from the ``path_regex`` of each creation rule in the ``.sops.yaml``
files of the repository (tracked ones, and the one found above the current
directory). A regex is translated when it is made of literal text, ``.*``/``.+``
(become ``*``, which does not cross ``/``), ``.`` (``?``), ``[^/]*`` and groups
of literal alternatives like ``\\.(yaml|json)`` (one pattern each); ``^``
anchors it at the ``.sops.yaml`` directory, otherwise it may match at any depth;
without ``$`` a trailing ``*`` is added. A rule without ``path_regex``, or one
that cannot be translated, falls back to ``*.enc.yaml``, ``*.enc.json`` and
``*.enc.env``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from kagura_ops.errors import InputError
from kagura_ops.git.tree import open_repository

if TYPE_CHECKING:
    import pygit2

__all__ = [
    "DRIVER",
    "FALLBACK_PATTERNS",
    "default_command",
    "install",
    "patterns_for_regex",
    "uninstall",
]

DRIVER = "kagura-ops"
FALLBACK_PATTERNS = ("*.enc.yaml", "*.enc.json", "*.enc.env")
BEGIN = "# >>> kagura-ops git-setup: encrypted files (merge driver, diff textconv) >>>"
END = "# <<< kagura-ops git-setup <<<"
_CONFIG = {
    "merge.kagura-ops.name": "kagura-ops: three-way merge of SOPS-encrypted files",
    "merge.kagura-ops.driver": "{cmd} merge-driver %O %A %B %P",
    "diff.kagura-ops.textconv": "{cmd} diff-textconv",
}
_SECTIONS = ("merge.kagura-ops", "diff.kagura-ops")


def default_command() -> str:
    """How git should run this installation: the console script beside the interpreter."""
    script = Path(sys.executable).parent / "kagura-ops"
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m kagura_ops.cli"


# -- path_regex -> gitattributes patterns --------------------------------------------------------

_LITERAL = re.compile(r"[A-Za-z0-9_\-/,@=%~]")
_GLOB_SPECIAL = set("*?[]\\!# \t")


def _split_top(regex: str) -> list[str] | None:
    """``regex`` split at top-level ``|``; None when parentheses are unbalanced."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            i += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        elif char == "|" and depth == 0:
            parts.append(regex[start:i])
            start = i + 1
        i += 1
    if depth:
        return None
    parts.append(regex[start:])
    return parts


def _literal_alternatives(body: str) -> list[str] | None:
    out = []
    for part in body.split("|"):
        globs = _globs(part)
        if globs is None or len(globs) != 1 or "*" in globs[0] or "?" in globs[0]:
            return None
        out.append(globs[0])
    return out


def _globs(regex: str) -> list[str] | None:
    """The glob strings a regex fragment (no anchors) stands for, or None if it cannot."""
    results = [""]
    i = 0
    while i < len(regex):
        char = regex[i]
        piece: list[str]
        if char == "\\" and i + 1 < len(regex):
            escaped = regex[i + 1]
            if escaped.isalnum() or escaped in _GLOB_SPECIAL:
                return None  # \d, \w, \s...; or a character special to globs
            piece, i = [escaped], i + 2
        elif regex.startswith(("[^/]*", "[^/]+"), i):
            piece, i = ["*"], i + 5
        elif char == "." and i + 1 < len(regex) and regex[i + 1] in "*+":
            piece, i = ["*"], i + 2
        elif char == ".":
            piece, i = ["?"], i + 1
        elif char == "(":
            close = regex.find(")", i)
            if close < 0 or "(" in regex[i + 1 : close]:
                return None
            body = regex[i + 1 : close]
            body = body[2:] if body.startswith("?:") else body
            alternatives = _literal_alternatives(body)
            if alternatives is None:
                return None
            i = close + 1
            if i < len(regex) and regex[i] == "?":
                alternatives.append("")
                i += 1
            piece = alternatives
        elif _LITERAL.match(char):
            piece, i = [char], i + 1
        else:
            return None  # quantifiers, classes, anything we cannot say as a glob
        if i < len(regex) and regex[i] in "*+?{":
            return None  # a quantifier on a single character
        results = [r + p for r in results for p in piece]
    return results


def patterns_for_regex(regex: str | None, directory: str = "") -> list[str] | None:
    """gitattributes patterns for a creation rule's ``path_regex``, or None to fall back.

    ``directory`` is where the ``.sops.yaml`` lives, relative to the work tree
    (``""`` at the top); its regex applies to paths relative to it.
    """
    if not regex:
        return None
    alternatives = _split_top(regex)
    if alternatives is None:
        return None
    prefix = f"/{directory}/" if directory else "/"
    out: list[str] = []
    for alternative in alternatives:
        anchored = alternative.startswith("^")
        ends = alternative.endswith("$") and not alternative.endswith("\\$")
        body = alternative[1 if anchored else 0 : -1 if ends else None]
        globs = _globs(body)
        if globs is None:
            return None
        for glob in globs:
            if not glob.strip("*/?"):
                return None  # matches (nearly) everything: a catch-all rule
            if not ends:
                glob += "*"
            if anchored:
                out.append(prefix + glob.lstrip("/"))
                continue
            if not glob.startswith("*"):
                glob = "*" + glob  # a search may start inside a name
            if directory:
                glob = f"/{directory}/**/{glob}"
            elif "/" in glob:
                glob = f"**/{glob}"
            out.append(glob)
    return list(dict.fromkeys(out))


def _sops_configs(repo: pygit2.Repository, workdir: Path, start: Path) -> list[Path]:
    from kagura_ops.sops.rules import find_config

    found: list[Path] = []
    repo.index.read()
    for entry in repo.index:
        if PurePosixPath(entry.path).name == ".sops.yaml":
            found.append(workdir / entry.path)
    nearest = find_config(start)
    if nearest is not None:
        try:
            nearest.resolve().relative_to(workdir)
            found.append(nearest.resolve())
        except ValueError:
            pass
    return sorted({p.resolve() for p in found if p.is_file()})


def collect_patterns(
    repo: pygit2.Repository, workdir: Path, start: Path
) -> tuple[list[str], list[str]]:
    """(patterns, notes): every encrypted-file pattern of the repository's ``.sops.yaml`` files."""
    from kagura_ops.sops.rules import load_config

    patterns: list[str] = []
    notes: list[str] = []
    fallback = False
    configs = _sops_configs(repo, workdir, start)
    for config in configs:
        directory = config.parent.relative_to(workdir).as_posix()
        directory = "" if directory == "." else directory
        shown = config.relative_to(workdir).as_posix()
        for rule in load_config(config).rules():
            found = patterns_for_regex(rule.path_regex, directory)
            if found is None:
                fallback = True
                why = "no path_regex" if not rule.path_regex else f"path_regex {rule.path_regex!r}"
                notes.append(f"{shown}: rule {rule.index + 1} ({why}): using the default patterns")
            else:
                patterns += found
    if not configs:
        notes.append("no .sops.yaml found: using the default patterns")
        fallback = True
    if fallback:
        patterns += FALLBACK_PATTERNS
    return list(dict.fromkeys(patterns)), notes


# -- install / uninstall -------------------------------------------------------------------------


def _workdir(repo: pygit2.Repository) -> Path:
    if not repo.workdir:
        raise InputError("git-setup needs a repository with a work tree (this one is bare)")
    return Path(repo.workdir).resolve()


def _without_block(text: str) -> tuple[str, bool]:
    lines = text.splitlines()
    if BEGIN not in lines:
        return text, False
    start = lines.index(BEGIN)
    end = lines.index(END, start) if END in lines[start:] else len(lines) - 1
    kept = lines[:start] + lines[end + 1 :]
    while kept and not kept[-1].strip():
        kept.pop()
    return ("\n".join(kept) + "\n") if kept else "", True


def _write_if_changed(path: Path, text: str, old: str | None) -> bool:
    from kagura_ops.atomicfile import atomic_write

    if text == old:
        return False
    if not text and old is not None:
        path.unlink()
        return True
    atomic_write(path, text)
    return True


def install(start: Path, *, command: str | None = None) -> list[str]:
    """Register the driver and textconv; returns what was done, one line each."""
    repo = open_repository(start)
    workdir = _workdir(repo)
    cmd = command or default_command()
    config = repo.config
    changed_config = False
    for key, template in _CONFIG.items():
        value = template.format(cmd=cmd)
        try:
            current = config[key]
        except KeyError:
            current = None
        if current != value:
            config[key] = value
            changed_config = True
    patterns, notes = collect_patterns(repo, workdir, start.resolve())
    attributes = workdir / ".gitattributes"
    old = attributes.read_text(encoding="utf-8") if attributes.is_file() else None
    rest, _ = _without_block(old or "")
    block = [BEGIN, *(f"{p} merge={DRIVER} diff={DRIVER}" for p in patterns), END]
    text = (rest + ("\n" if rest else "")) + "\n".join(block) + "\n"
    changed_attributes = _write_if_changed(attributes, text, old)
    report = [
        f".git/config: merge driver and diff textconv {'registered' if changed_config else 'already registered'} ({cmd})",
        f".gitattributes: {len(patterns)} pattern{'s' if len(patterns) != 1 else ''} "
        f"{'written' if changed_attributes else 'unchanged'}: {', '.join(patterns)}",
    ]
    report += [f"note: {n}" for n in notes]
    if changed_attributes:
        report.append("commit .gitattributes so the whole team gets the driver")
    return report


def uninstall(start: Path) -> list[str]:
    """Remove what :func:`install` added; returns what was done."""
    repo = open_repository(start)
    workdir = _workdir(repo)
    config = repo.config
    removed = 0
    for key in _CONFIG:
        try:
            del config[key]
            removed += 1
        except KeyError:
            pass
    for section in _SECTIONS:  # libgit2 leaves the emptied [section] header behind
        subprocess.run(
            ["git", "config", "--local", "--remove-section", section],
            cwd=workdir,
            capture_output=True,
            check=False,
        )
    attributes = workdir / ".gitattributes"
    old = attributes.read_text(encoding="utf-8") if attributes.is_file() else None
    text, had_block = _without_block(old or "")
    if had_block:
        _write_if_changed(attributes, text, old)
    return [
        f".git/config: {'driver and textconv removed' if removed else 'nothing to remove'}",
        f".gitattributes: {'kagura-ops lines removed' if had_block else 'nothing to remove'}",
    ]
