"""Showing a :class:`~kagura_ops.git.plan.Plan`: text (terminal), markdown (a PR comment), JSON.

A secret is shown as ``(sensitive value)`` with whether it was added, changed or
removed; no renderer ever receives its plaintext (the plan has only ciphertext,
and not even that reaches the output). Values are written as JSON
(``"gpt-4o"``, ``8080``, ``true``) so a string ``"8080"`` and a number differ.
The JSON format is documented in the README ("Plans").
"""

from __future__ import annotations

import html
import json
from typing import Any

from kagura_ops.git.plan import ADD, CHANGE, REMOVE, Change, EnvPlan, ItemChange, Plan

__all__ = ["JSON_FORMAT_VERSION", "render_json", "render_markdown", "render_text", "summary"]

JSON_FORMAT_VERSION = 1
SENSITIVE = "(sensitive value)"
_SYMBOL = {ADD: "+", CHANGE: "~", REMOVE: "-"}
_COLOR = {ADD: "green", CHANGE: "yellow", REMOVE: "red", "+": "green", "~": "yellow", "-": "red"}
_SECRET_WORD = {ADD: "added", CHANGE: "changed", REMOVE: "removed"}
_MARKDOWN_VALUE_LIMIT = 200


def summary(plan: Plan | EnvPlan) -> str:
    """``Plan: 1 to add, 2 to change, 1 to remove.``"""
    return (
        f"Plan: {plan.count(ADD)} to add, {plan.count(CHANGE)} to change, "
        f"{plan.count(REMOVE)} to remove."
    )


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _where(origin: dict[str, Any] | None) -> str:
    if not origin:
        return ""
    if origin.get("env_var"):
        return f"${origin['env_var']}"
    layer = str(origin.get("layer", ""))
    if not origin.get("file"):
        return "schema default" if layer == "defaults" else layer
    place = str(origin["file"]) + (f":{origin['line']}" if origin.get("line") else "")
    return f"{place}, {layer}" if layer else place


def _source(change: Change) -> str:
    text = _where(change.origin)
    if change.was:
        text += f"; was {_where(change.was)}"
    return text


def _describe(change: Change) -> str:
    """After the key: `` = 8080``, ``: "a" -> "b"``, ``: (sensitive value) changed``."""
    if change.sensitive:
        text = f": {SENSITIVE} {_SECRET_WORD[change.action]}"
        return text + (f" ({change.note})" if change.note else "")
    if change.action == ADD:
        return f" = {_value(change.new)}"
    if change.action == REMOVE:
        return f" = {_value(change.old)}"
    if change.items or change.note:
        return f" ({change.note})" if change.note else ""
    return f": {_value(change.old)} -> {_value(change.new)}"


def _item(item: ItemChange) -> str:
    where = item.where
    if item.op == "+":
        return f"{where}: {_value(item.new)}" if "." in where else _value(item.new)
    if item.op == "-":
        return f"{where}: {_value(item.old)}" if "." in where else _value(item.old)
    return f"{where}: {_value(item.old)} -> {_value(item.new)}"


def _env_title(env: EnvPlan) -> str:
    if env.status == "error":
        return "errors"
    if env.status == "added":
        return "new environment, " + _counts(env)
    if env.status == "removed":
        return "environment removed, " + _counts(env)
    if not env.changes:
        return "stale lockfile, same values" if env.stale else "no changes"
    return _counts(env)


def _counts(env: EnvPlan) -> str:
    return f"{env.count(ADD)} to add, {env.count(CHANGE)} to change, {env.count(REMOVE)} to remove"


# -- text ---------------------------------------------------------------------------------------


def render_text(plan: Plan) -> list[tuple[str, str | None]]:
    """Lines with a colour each (None: default); the caller decides whether to colour them."""
    lines: list[tuple[str, str | None]] = [
        (f"kagura-ops plan: {plan.base} -> {plan.head}", None),
        ("", None),
    ]
    for env in plan.envs:
        lines.append((f"env {env.env}: {_env_title(env)}", "red" if env.errors else None))
        for error in env.errors:
            for n, line in enumerate(error.splitlines()):
                lines.append((("  error: " if n == 0 else "    ") + line, "red"))
        for warning in env.warnings:
            lines.append((f"  warning: {warning}", "yellow"))
        for change in env.changes:
            source = _source(change)
            text = f"  {_SYMBOL[change.action]} {change.path}{_describe(change)}"
            if source:
                text += f"  ({source})"
            lines.append((text, _COLOR[change.action]))
            for item in change.items:
                lines.append((f"      {item.op} {_item(item)}", _COLOR[item.op]))
        lines.append(("", None))
    if plan.has_errors:
        failed = sum(1 for e in plan.envs if e.errors)
        lines.append(
            (f"Plan failed: {failed} environment{'s' if failed != 1 else ''} with errors.", "red")
        )
    elif not plan.has_changes:
        lines.append((f"No changes: the resolved config matches {plan.base}.", None))
    else:
        lines.append((summary(plan), None))
    return lines


# -- markdown -----------------------------------------------------------------------------------


def _code(text: str, limit: int | None = _MARKDOWN_VALUE_LIMIT) -> str:
    """``text`` as an inline code span that is safe inside a table cell."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("|", "\\|").replace("\n", " ")
    longest = 0
    run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_where(origin: dict[str, Any] | None) -> str:
    if not origin:
        return ""
    return _code(_where(origin), None)


def _md_change(change: Change) -> str:
    if change.sensitive:
        text = f"*{SENSITIVE} {_SECRET_WORD[change.action]}*"
        return text + (f" ({change.note})" if change.note else "")
    if change.action == ADD:
        return _code(_value(change.new))
    if change.action == REMOVE:
        return "~~" + _code(_value(change.old)) + "~~"
    if change.items or change.note:
        parts = [f"{item.op} {_code(_item(item))}" for item in change.items]
        if change.note:
            parts.append(f"({change.note})")
        return "<br>".join(parts)
    return f"{_code(_value(change.old))} → {_code(_value(change.new))}"


def render_markdown(plan: Plan) -> str:
    """One PR comment: summary first, removals and errors called out, one collapsible per env."""
    out: list[str] = ["### kagura-ops plan", ""]
    if plan.has_errors:
        failed = sum(1 for e in plan.envs if e.errors)
        out.append(
            f"**Plan failed:** {failed} environment{'s' if failed != 1 else ''} with errors."
        )
    elif not plan.has_changes:
        out.append("**No changes.** The resolved config is the same.")
    else:
        out.append(f"**{summary(plan)}**")
    out += ["", f"Base {_code(plan.base, None)} → {plan.head}.", ""]
    errors = [env for env in plan.envs if env.errors]
    if errors:
        out += ["> [!CAUTION]", "> **Errors** (the plan cannot be trusted until they are fixed):"]
        for env in errors:
            for error in env.errors:
                first, *rest = error.splitlines()
                out.append(f"> - {_code(env.env, None)}: {_code(first.strip(), None)}")
                out += [f">   - {_code(line.strip(), None)}" for line in rest if line.strip()]
        out.append("")
    removals = [(env, c) for env in plan.envs for c in env.changes if c.action == REMOVE]
    gone = [env for env in plan.envs if env.status == "removed"]
    if removals or gone:
        count = len(removals)
        out += ["> [!WARNING]", f"> **{count} key{'s' if count != 1 else ''} removed:**"]
        for env in gone:
            out.append(f"> - environment {_code(env.env, None)} is removed")
        for env, change in removals:
            secret = " (secret)" if change.sensitive else ""
            out.append(f"> - {_code(change.path, None)} in {_code(env.env, None)}{secret}")
        out.append("")
    quiet = [env.env for env in plan.envs if not env.changes and not env.errors and not env.stale]
    for env in plan.envs:
        if env.env in quiet or env.errors:
            continue  # errors are listed above
        name = html.escape(env.env)
        out += ["<details>", f"<summary><b>{name}</b>: {_env_title(env)}</summary>", ""]
        for warning in env.warnings:
            out.append(f"- warning: {_code(warning, None)}")
        if env.warnings:
            out.append("")
        if env.changes:
            out += ["| | key | change | from |", "|:-:|---|---|---|"]
            for change in env.changes:
                symbol = _SYMBOL[change.action]
                out.append(
                    f"| `{symbol}` | {_code(change.path, None)} | {_md_change(change)} "
                    f"| {_md_where(change.origin)}"
                    + (f" (was {_md_where(change.was)})" if change.was else "")
                    + " |"
                )
            out.append("")
        out += ["</details>", ""]
    if quiet:
        out += ["No changes in " + ", ".join(_code(name, None) for name in quiet) + ".", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# -- JSON ---------------------------------------------------------------------------------------


def _change_json(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"action": change.action, "path": change.path, "kind": change.kind}
    if change.sensitive:
        out["sensitive"] = True
    else:
        if change.action != ADD:
            out["old"] = change.old
        if change.action != REMOVE:
            out["new"] = change.new
    if change.items:
        out["items"] = [
            {
                "op": item.op,
                "where": item.where,
                **({"old": item.old} if item.op != "+" else {}),
                **({"new": item.new} if item.op != "-" else {}),
            }
            for item in change.items
        ]
    if change.note:
        out["note"] = change.note
    if change.origin:
        out["origin"] = change.origin
    if change.was:
        out["was"] = change.was
    return out


def _summary_json(plan: Plan | EnvPlan) -> dict[str, int]:
    return {"add": plan.count(ADD), "change": plan.count(CHANGE), "remove": plan.count(REMOVE)}


def render_json(plan: Plan) -> str:
    document = {
        "format": JSON_FORMAT_VERSION,
        "mode": "lockfile" if plan.lockfile_mode else "ref",
        "base": plan.base,
        "base_commit": plan.base_commit,
        "head": plan.head,
        "summary": _summary_json(plan),
        "changed": plan.has_changes,
        "errors": plan.has_errors,
        "envs": [
            {
                "env": env.env,
                "status": env.status,
                "summary": _summary_json(env),
                "stale": env.stale,
                "errors": env.errors,
                "warnings": env.warnings,
                "changes": [_change_json(c) for c in env.changes],
            }
            for env in plan.envs
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
