"""In-process time of ``kagura-ops plan`` against one compile of the same project.

Run by hand (never from the test suite)::

    python benchmarks/bench_plan.py [--sizes 1000 10000] [--runs 5]

The input, per size N, in a temporary git repository:

* ``kagura.yaml`` with N leaf keys under ``app:`` in sections of 10 keys (strings,
  ints, floats, booleans, and a short list in every tenth section);
* ``envs/bench.yaml`` overriding 20% of them; ``secrets.enc.yaml`` with N/100
  encrypted values; ``schemas/app.schema.json`` declaring ``app`` and ``db``;
* one commit, then a working-tree change of 1% of the keys of each file
  (values changed, a few keys added and removed, one secret re-encrypted).

What is measured (median wall time of ``--runs`` rounds after a warm-up round,
the cases taking turns, a ``gc.collect()`` before each):

1. ``compile``: ``compile_env(Project(root), "bench", include_user=False,
   include_global=False)`` of the working tree, lockfile text and digest included;
2. ``plan``: ``plan_against_ref(Project(root), base_ref="HEAD", envs=["bench"])``:
   the base compiled from git objects (pygit2), the head from the working tree,
   and the diff of the two lockfiles (deepdiff for the changed lists).

Goal (from the issue): plan <= 2.5x one compile (two compiles plus a diff).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

GOAL = 2.5


def _value(rng: random.Random, kind: int) -> object:
    if kind == 0:
        return f"value-{rng.randrange(10**9)}"
    if kind == 1:
        return rng.randrange(100000)
    if kind == 2:
        return round(rng.random() * 1000, 3)
    return rng.random() < 0.5


def _yaml(tree: dict[str, dict[str, object]]) -> str:
    lines = ["app:"]
    for section, keys in tree.items():
        lines.append(f"  {section}:")
        for key, value in keys.items():
            lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _tree(n: int, rng: random.Random) -> dict[str, dict[str, object]]:
    tree: dict[str, dict[str, object]] = {}
    for i in range(n):
        section = f"s{i // 10}"
        tree.setdefault(section, {})[f"k{i % 10}"] = _value(rng, i % 4)
        if i % 100 == 0:
            tree[section]["items"] = [f"item-{j}" for j in range(5)]
    return tree


def _change(tree: dict[str, dict[str, object]], rng: random.Random, share: float) -> None:
    sections = list(tree)
    for _ in range(max(1, int(len(sections) * 10 * share))):
        keys = tree[rng.choice(sections)]
        key = rng.choice(list(keys))
        value = keys[key]
        keys[key] = [*value, "new-item"] if isinstance(value, list) else f"changed-{rng.random()}"
    tree[sections[0]]["added_key"] = "added"
    tree[sections[-1]].pop(next(iter(tree[sections[-1]])))


def build(root: Path, n: int, identity_dir: Path) -> None:
    from kagura_ops.keys.age import AgeKey
    from kagura_ops.keys.identities import Keyring
    from kagura_ops.sops.files import (
        EncryptionSettings,
        decrypt_text,
        encrypt_text,
        reencrypt,
    )
    from kagura_ops.sops.selection import Selection
    from kagura_ops.testing import make_identity

    rng = random.Random(n)
    identity = make_identity(identity_dir)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (root / "schemas").mkdir()
    (root / "schemas" / "app.schema.json").write_text(
        json.dumps({"properties": {"app": {"type": "object"}, "db": {"type": "object"}}})
    )
    project = _tree(n, rng)
    overlay = {s: dict(list(keys.items())[:2]) for s, keys in project.items()}
    for keys in overlay.values():
        for key in keys:
            keys[key] = f"override-{rng.random()}"
    (root / "envs").mkdir()
    (root / "kagura.yaml").write_text(_yaml(project))
    (root / "envs" / "bench.yaml").write_text(_yaml(overlay))
    secrets = "db:\n" + "".join(f"  s{i}: secret-{i}\n" for i in range(max(1, n // 100)))
    settings = EncryptionSettings([[AgeKey(identity.public)]], Selection.default())
    encrypted = encrypt_text(secrets, "yaml", settings)
    (root / "secrets.enc.yaml").write_text(encrypted)
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    _change(project, rng, 0.01)
    _change(overlay, rng, 0.01)
    (root / "kagura.yaml").write_text(_yaml(project))
    (root / "envs" / "bench.yaml").write_text(_yaml(overlay))
    keyring = Keyring([identity.path], environ={}, home=identity_dir)
    previous = decrypt_text(encrypted, "yaml", keyring)
    changed = secrets.replace("secret-0\n", "secret-0-rotated\n")
    (root / "secrets.enc.yaml").write_text(reencrypt(previous, changed, "yaml"))


def median_time(func: Callable[[], object], runs: int) -> tuple[float, float, float]:
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import deepdiff
    import pygit2

    from kagura_ops import __version__
    from kagura_ops.compiler.build import compile_env
    from kagura_ops.compiler.project import Project
    from kagura_ops.git.plan import plan_against_ref

    print(
        f"kagura-ops {__version__}, Python {platform.python_version()}, pygit2 {pygit2.__version__}, "
        f"deepdiff {deepdiff.__version__}, {platform.machine()} ({os.cpu_count()} CPUs)"
    )
    print(f"median of {args.runs} runs after a warm-up; ms (min-max)\n")
    header = (
        f"{'keys':>7}  {'changes':>7}  {'compile':>22}  {'plan':>22}  {'plan/compile':>12}  goal"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "repo"
            root.mkdir()
            keys = Path(tmp) / "keys"
            keys.mkdir()
            build(root, n, keys)
            project = Project(root)

            def compile_once(project: Project = project) -> object:
                return compile_env(project, "bench", include_user=False, include_global=False)

            def plan_once(project: Project = project) -> object:
                return plan_against_ref(project, base_ref="HEAD", envs=["bench"])

            result = plan_against_ref(project, base_ref="HEAD", envs=["bench"])
            if result.has_errors:
                print("plan failed:", result.envs[0].errors, file=sys.stderr)
                return 1
            count = len(result.envs[0].changes)
            compile_once()
            compiled: list[tuple[float, float, float]] = []
            planned: list[tuple[float, float, float]] = []
            for _ in range(args.runs):
                compiled.append(median_time(compile_once, 1))
                planned.append(median_time(plan_once, 1))
            c = statistics.median(t[0] for t in compiled)
            p = statistics.median(t[0] for t in planned)
            ratio = p / c
            verdicts.append(ratio <= GOAL)

            def cell(values: list[tuple[float, float, float]], mid: float) -> str:
                low = min(v[0] for v in values) * 1000
                high = max(v[0] for v in values) * 1000
                return f"{mid * 1000:8.1f} ({low:5.0f}-{high:5.0f})"

            print(
                f"{n:>7}  {count:>7}  {cell(compiled, c):>22}  {cell(planned, p):>22}  "
                f"{ratio:>11.2f}x  {'met' if ratio <= GOAL else 'MISSED'} (<= {GOAL}x)"
            )
    print()
    print("goal met" if all(verdicts) else "goal missed")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
