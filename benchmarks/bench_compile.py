"""In-process time of ``kagura-ops compile`` against dynaconf loading the same layers.

Run by hand (never from the test suite)::

    python benchmarks/bench_compile.py [--sizes 100 1000 10000] [--runs 5] [--profile 10000]

The input, per size N (keys per layer), generated in a temporary directory:

* four layer files, global < user < project (``kagura.yaml``) < env
  (``envs/bench.yaml``), each with N leaf keys under a top-level ``app:``,
  in sections of 10-20 keys; values are strings, ints, floats and booleans;
* 20% overlap between consecutive layers: each higher layer sets 0.2 N keys of
  the layer below again, with a different value of the same type (so the
  merged tree holds N + 3 x 0.8 N = 3.4 N keys);
* 10% of each layer's values interpolated: half are references to another
  (non-interpolated, string) value of the merged tree, half read an
  environment variable with a default. Both kinds appear alone or inside a
  longer string (``https://${config.app.s.k}/api/v1``). All referenced
  variables (a pool of at most 50) are set, so the variable's value wins.

What is measured (median wall time of ``--runs`` rounds after one warm-up round;
the cases run in turn within each round, with a ``gc.collect()`` before each):

1. kagura-ops compile: ``compile_env(Project(root), "bench", ...)`` in-process,
   with user and global layers: discover + read + parse the four files, merge
   with provenance, interpolate, validate against the JSON Schema (built-in +
   ``schemas/app.schema.json`` declaring ``app`` as an object), build the lockfile
   and serialise it to canonical JSON with its digest. The file is not written.
2. lockfile load: ``Lockfile.from_text`` of that text (JSON parse + digest check).
3. dynaconf, equivalent semantics: ``Dynaconf(settings_files=[4 files],
   merge_enabled=True, environments=False, load_dotenv=False, envvar_prefix=<a
   prefix no variable has>)`` then ``settings.as_dict()``, which evaluates every
   lazy value. References are ``@format {this.APP.s.k}``; an environment
   variable with a default is ``@jinja {{ env.get('VAR', 'default') }}`` (dynaconf's
   ``@format`` has no default syntax).
4. dynaconf, ``@format`` only: the same, but variables are read with
   ``@format {env[VAR]}`` (no default, cheaper than Jinja2). A lower bound for
   dynaconf's cost, shown so a win over case 3 cannot come from Jinja2 alone.

Before timing, every merged value from kagura-ops' lockfile, from both dynaconf
variants and from the generator's own expected tree is compared (types
included); any difference aborts the benchmark.

Goal (from the issue): compile <= 1.0x dynaconf's load at 1,000 and 10,000 keys.
The verdict uses case 3 (same semantics); the ratio to case 4 is shown too.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.metadata
import io
import json
import os
import platform
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from kagura_ops import __version__ as kagura_version
from kagura_ops.compiler.build import Compiled, compile_env
from kagura_ops.compiler.lockfile import Lockfile
from kagura_ops.compiler.project import Project
from kagura_ops.errors import CompileError

ENV_NAME = "bench"
ENV_PREFIX = "KBENCH_ENV_"
NO_MATCH_PREFIX = "KBENCH_NOTHING_MATCHES"
GOAL_SIZES = (1000, 10000)
GOAL_RATIO = 1.0
OVERLAP = 0.20
INTERPOLATED = 0.10
ENV_POOL = 50

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Ref:
    """A reference to another value: ``prefix${config.app.<section>.<key>}suffix``."""

    section: str
    key: str
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class EnvRef:
    """An environment variable with a default: ``prefix${VAR:-default}suffix``."""

    var: str
    default: str
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class RefSlot:
    """A reference whose target is chosen once the merged tree is known."""

    prefix: str
    suffix: str


Value = Scalar | Ref | EnvRef | RefSlot
LayerData = dict[str, dict[str, Value]]
"""section -> key -> value (everything sits under ``app:``)."""


@dataclass
class Plan:
    """The generated layers and what merging and interpolating them must give."""

    keys_per_layer: int
    layers: list[LayerData]
    env_values: dict[str, str]
    expected: dict[str, dict[str, Scalar]] = field(default_factory=dict)
    overrides: int = 0
    references: int = 0
    env_reads: int = 0


# -- generating the layers ------------------------------------------------------------------

_STR_WORDS = (
    "host",
    "url",
    "name",
    "region",
    "endpoint",
    "bucket",
    "path",
    "user",
    "level",
    "queue",
    "model",
)
_INT_WORDS = (
    "port",
    "timeout_ms",
    "retries",
    "pool_size",
    "max_conn",
    "ttl_s",
    "workers",
    "batch_size",
)
_FLOAT_WORDS = ("ratio", "threshold", "temperature", "sample_rate", "backoff_factor")
_BOOL_WORDS = ("enabled", "debug", "verbose", "use_tls", "cache", "dry_run")
_KINDS = (("str", 40), ("int", 25), ("float", 15), ("bool", 20))
_REF_WRAPS = (("", ""), ("https://", "/api/v1"), ("", ":5432"), ("redis://", "/0"))
_ENV_WRAPS = (("", ""), ("", ":6379"), ("http://", "/health"))
_ENV_DEFAULTS = ("localhost", "info", "eu-west-1", "default-pool")
_SECTION_WORDS = (
    "svc",
    "db",
    "cache",
    "queue",
    "worker",
    "gateway",
    "auth",
    "search",
    "billing",
    "mail",
)
# Plain scalars both parsers could read as something other than a string.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"})


def _word_for(kind: str, rng: random.Random) -> str:
    words = {"str": _STR_WORDS, "int": _INT_WORDS, "float": _FLOAT_WORDS, "bool": _BOOL_WORDS}[kind]
    return rng.choice(words)


def _value(kind: str, rng: random.Random) -> Scalar:
    if kind == "int":
        return rng.choice(
            (rng.randint(1, 100), rng.randint(1024, 65535), rng.randint(100, 100_000))
        )
    if kind == "float":
        return round(rng.uniform(0.001, 100.0), 3)
    if kind == "bool":
        return rng.random() < 0.5
    shape = rng.randrange(5)
    n = rng.randint(1, 999)
    if shape == 0:
        return f"db-{n}.internal.example.com"
    if shape == 1:
        return f"https://api-{n}.example.com/v{rng.randint(1, 3)}"
    if shape == 2:
        return rng.choice(("eu-west-1", "us-east-2", "ap-south-1")) + f"-zone-{n}"
    if shape == 3:
        return f"/var/lib/app/data-{n}"
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(6, 16)))


def _kind_of(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"  # strings and interpolated values


def _different(old: Value, rng: random.Random) -> Scalar:
    kind = _kind_of(old)
    if kind == "bool":
        return not old
    while True:
        new = _value(kind, rng)
        if new != old:
            return new


def make_plan(keys_per_layer: int, seed: int) -> Plan:
    """Four layers of ``keys_per_layer`` keys, 20% overlap, 10% interpolated."""
    rng = random.Random(seed)
    n_override = round(keys_per_layer * OVERLAP)
    n_interp = round(keys_per_layer * INTERPOLATED)
    pool = [f"{ENV_PREFIX}{i:02d}" for i in range(min(ENV_POOL, max(1, n_interp * 2)))]
    env_values = {name: f"env-{name[len(ENV_PREFIX) :]}.example.net" for name in pool}
    plan = Plan(keys_per_layer, [], env_values)
    section_no = 0
    for index in range(4):
        layer: LayerData = {}
        if index > 0:
            below = plan.layers[-1]
            chosen = rng.sample([(s, k) for s, keys in below.items() for k in keys], n_override)
            for section, key in chosen:
                layer.setdefault(section, {})[key] = _different(below[section][key], rng)
            plan.overrides += n_override
        fresh: list[tuple[str, str]] = []
        remaining = keys_per_layer - (n_override if index > 0 else 0)
        while remaining > 0:
            size = min(remaining, rng.randint(10, 20))
            section = f"{rng.choice(_SECTION_WORDS)}_{section_no:05d}"
            section_no += 1
            layer[section] = {}
            for j in range(size):
                kind = rng.choices([k for k, _ in _KINDS], weights=[w for _, w in _KINDS])[0]
                key = f"{_word_for(kind, rng)}_{j:02d}"
                layer[section][key] = _value(kind, rng)
                fresh.append((section, key))
            remaining -= size
        strings = [(s, k) for s, k in fresh if isinstance(layer[s][k], str)]
        sites = rng.sample(strings, min(n_interp, len(strings)))
        for number, (section, key) in enumerate(sites):
            if number < len(sites) // 2:
                layer[section][key] = RefSlot(*rng.choice(_REF_WRAPS))
                plan.references += 1
            else:
                prefix, suffix = rng.choice(_ENV_WRAPS)
                layer[section][key] = EnvRef(
                    rng.choice(pool), rng.choice(_ENV_DEFAULTS), prefix, suffix
                )
                plan.env_reads += 1
        plan.layers.append(layer)
    # Reference targets: values that end up as plain strings in the merged tree.
    merged = _merge(plan.layers)
    targets = [(s, k) for s, keys in merged.items() for k, v in keys.items() if type(v) is str]
    for layer in plan.layers:
        for keys in layer.values():
            for key, value in keys.items():
                if isinstance(value, RefSlot):
                    section, target = rng.choice(targets)
                    keys[key] = Ref(section, target, value.prefix, value.suffix)
    merged = _merge(plan.layers)
    plan.expected = {
        section: {key: _expected(value, merged, env_values) for key, value in keys.items()}
        for section, keys in merged.items()
    }
    return plan


def _merge(layers: list[LayerData]) -> LayerData:
    out: LayerData = {}
    for layer in layers:
        for section, keys in layer.items():
            out.setdefault(section, {}).update(keys)
    return out


def _expected(value: Value, merged: LayerData, env: Mapping[str, str]) -> Scalar:
    if isinstance(value, Ref):
        target = merged[value.section][value.key]
        assert type(target) is str, "a reference target must be a plain string"
        return value.prefix + target + value.suffix
    if isinstance(value, EnvRef):
        return value.prefix + env.get(value.var, value.default) + value.suffix
    assert not isinstance(value, RefSlot)
    return value


# -- writing the files ----------------------------------------------------------------------

_PLAIN = re.compile(r"[a-z][a-z0-9.-]*")


def _yaml_scalar(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if _PLAIN.fullmatch(value) and value not in _YAML_WORDS:
        return value
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def _flavoured(value: Value, flavour: str) -> Scalar:
    """The value as written in a ``kagura``, ``dynaconf`` or ``dynaconf-format`` file."""
    if isinstance(value, Ref):
        if flavour == "kagura":
            return f"{value.prefix}${{config.app.{value.section}.{value.key}}}{value.suffix}"
        return f"@format {value.prefix}{{this.APP.{value.section}.{value.key}}}{value.suffix}"
    if isinstance(value, EnvRef):
        if flavour == "kagura":
            return f"{value.prefix}${{{value.var}:-{value.default}}}{value.suffix}"
        if flavour == "dynaconf":
            return f"@jinja {value.prefix}{{{{ env.get('{value.var}', '{value.default}') }}}}{value.suffix}"
        return f"@format {value.prefix}{{env[{value.var}]}}{value.suffix}"
    assert not isinstance(value, RefSlot)
    return value


def render(layer: LayerData, flavour: str) -> str:
    lines = ["app:"]
    for section, keys in layer.items():
        lines.append(f"  {section}:")
        lines.extend(
            f"    {key}: {_yaml_scalar(_flavoured(v, flavour))}" for key, v in keys.items()
        )
    return "\n".join(lines) + "\n"


@dataclass
class Workspace:
    """The files of one size: a kagura-ops project and two dynaconf copies."""

    root: Path
    environ: dict[str, str]
    """What kagura-ops is given as its environment."""
    dynaconf_files: list[str]
    dynaconf_format_files: list[str]
    total_bytes: int


APP_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"app": {"type": "object"}},
}


def write_workspace(plan: Plan, base: Path) -> Workspace:
    home = base / "home"
    project = base / "project"
    files = {
        "kagura": [
            base / "global" / "config.yaml",
            home / ".kagura" / "config.yaml",
            project / "kagura.yaml",
            project / "envs" / f"{ENV_NAME}.yaml",
        ],
        "dynaconf": [base / "dynaconf" / f"{n}.yaml" for n in ("global", "user", "project", "env")],
        "dynaconf-format": [
            base / "dynaconf-format" / f"{n}.yaml" for n in ("global", "user", "project", "env")
        ],
    }
    total = 0
    for flavour, paths in files.items():
        for path, layer in zip(paths, plan.layers, strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            text = render(layer, flavour)
            path.write_text(text, encoding="utf-8")
            if flavour == "kagura":
                total += len(text.encode("utf-8"))
    (project / "schemas").mkdir()
    (project / "schemas" / "app.schema.json").write_text(json.dumps(APP_SCHEMA, indent=2) + "\n")
    environ = {
        "HOME": str(home),
        "KAGURA_HOME": str(home / ".kagura"),
        "KAGURA_GLOBAL_CONFIG": str(files["kagura"][0]),
        **plan.env_values,
    }
    return Workspace(
        project,
        environ,
        [str(p) for p in files["dynaconf"]],
        [str(p) for p in files["dynaconf-format"]],
        total,
    )


# -- the three contenders ---------------------------------------------------------------------


def kagura_compile(ws: Workspace) -> Compiled:
    return compile_env(
        Project(ws.root), ENV_NAME, environ=ws.environ, include_user=True, include_global=True
    )


def dynaconf_load(files: list[str]) -> dict[str, Any]:
    from dynaconf import Dynaconf

    settings = Dynaconf(
        settings_files=files,
        merge_enabled=True,
        environments=False,
        load_dotenv=False,
        envvar_prefix=NO_MATCH_PREFIX,
    )
    data: dict[str, Any] = settings.as_dict()
    return data


# -- checking that they agree ------------------------------------------------------------------


def differences(expected: Mapping[str, Any], got: Any, label: str, limit: int = 10) -> list[str]:
    """Typed comparison of ``app``; at most ``limit`` lines."""
    out: list[str] = []
    if not isinstance(got, Mapping):
        return [f"{label}: app is {type(got).__name__}, not a mapping"]
    for section, keys in expected.items():
        have = got.get(section)
        if not isinstance(have, Mapping):
            out.append(f"{label}: app.{section} is missing or not a mapping")
            continue
        for key, want in keys.items():
            value = have.get(key, "<missing>")
            if type(value) is not type(want) or value != want:
                out.append(f"{label}: app.{section}.{key} = {value!r}, expected {want!r}")
        out.extend(f"{label}: unexpected app.{section}.{k}" for k in have if k not in keys)
    out.extend(f"{label}: unexpected app.{s}" for s in got if s not in expected)
    return out[:limit]


def check_agreement(plan: Plan, ws: Workspace) -> int:
    """Abort unless kagura-ops, both dynaconf variants and the generator agree; returns key count."""
    try:
        compiled = kagura_compile(ws)
    except CompileError as exc:
        sys.exit(f"kagura-ops compile failed, nothing to compare:\n{exc}")
    ours = Lockfile.from_text(compiled.text).values.get("app")
    problems = differences(plan.expected, ours, "kagura-ops")
    for label, files in (
        ("dynaconf", ws.dynaconf_files),
        ("dynaconf @format", ws.dynaconf_format_files),
    ):
        problems += differences(plan.expected, dynaconf_load(files).get("APP"), label)
    if problems:
        sys.exit(
            "ABORTED: the merged values differ, so the timing comparison would be meaningless:\n  "
            + "\n  ".join(problems)
        )
    return sum(len(keys) for keys in plan.expected.values())


# -- timing -------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(
    cases: dict[str, Callable[[], object]], runs: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per run of each case; cases alternate within each round."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            samples[name].append(timed(fn))
    return samples


@contextmanager
def environment(extra: Mapping[str, str]) -> Iterator[None]:
    """``extra`` in ``os.environ`` for dynaconf (kagura-ops gets its environ explicitly)."""
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def profile_compile(ws: Workspace, top: int = 15) -> str:
    kagura_compile(ws)  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    kagura_compile(ws)
    profiler.disable()
    out = io.StringIO()
    for order in ("cumulative", "tottime"):
        out.write(f"\n--- top {top} by {order} ---\n")
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
    return out.getvalue()


# -- report -------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def yaml_backend() -> str:
    try:
        import _ruamel_yaml  # noqa: F401  (the libyaml C parser kagura-ops' loader uses)
    except ImportError:
        return "pure Python"
    return "libyaml (ruamel.yaml.clib)"


@dataclass
class Row:
    keys: int
    merged: int
    interpolated: int
    size_kb: float
    samples: dict[str, list[float]]

    @property
    def times(self) -> dict[str, float]:
        """Median seconds per case."""
        return {name: statistics.median(values) for name, values in self.samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100, 1000, 10000], help="keys per layer"
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="timed rounds per size (median reported)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--profile", type=int, metavar="SIZE", help="also cProfile one compile at SIZE"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated files and print where"
    )
    args = parser.parse_args()
    try:
        dynaconf_version = importlib.metadata.version("dynaconf")
    except importlib.metadata.PackageNotFoundError:
        sys.exit("dynaconf is not installed: pip install -e '.[dev]'")
    clash = [n for n in os.environ if n.startswith((ENV_PREFIX, NO_MATCH_PREFIX))]
    if clash:
        sys.exit(f"unset these first, the benchmark uses their names: {', '.join(clash)}")

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"machine:    {cpu_model()}, {cpus} CPUs usable ({os.cpu_count()} total), {platform.platform()}"
    )
    print(
        f"python:     {platform.python_version()} ({platform.python_implementation()}, {sys.executable})"
    )
    print(f"kagura-ops: {kagura_version} (YAML parser: {yaml_backend()})")
    print(f"dynaconf:   {dynaconf_version} (its vendored pure-Python ruamel.yaml)")
    print(
        f"runs:       median of {args.runs} after {args.warmup} warm-up round(s), in-process, gc.collect() before each"
    )
    print()
    print("Each size: 4 layers (global < user < project < env) x N keys under app:, sections of")
    print("10-20 keys; each layer re-sets 20% of the keys below it; 10% of each layer's values")
    print("interpolated (half references to other values, half env variables with a default).")
    print("  compile    kagura-ops compile_env(): read+parse 4 files, merge with provenance,")
    print("             interpolate ${config.app.s.k} / ${VAR:-default}, JSON Schema validation,")
    print("             lockfile build + canonical JSON + digest (not written to disk)")
    print("  load       Lockfile.from_text() of that lockfile: JSON parse + digest check")
    print("  dynaconf   Dynaconf(settings_files=[4 files], merge_enabled=True, environments=False,")
    print(f"             load_dotenv=False, envvar_prefix={NO_MATCH_PREFIX!r}).as_dict()")
    print(
        "             refs '@format {this.APP.s.k}', env '@jinja {{ env.get(\"VAR\", \"default\") }}'"
    )
    print("  dyn-fmt    the same, env read with '@format {env[VAR]}' (no default: lower bound)")
    print(
        "All merged values of compile, dynaconf and dyn-fmt are checked equal (with types) first."
    )
    print(flush=True)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="kagura-bench-") as tmp:
        base = Path(tmp)
        for n in args.sizes:
            plan = make_plan(n, args.seed + n)
            ws = write_workspace(plan, base / f"n{n}")
            with environment(plan.env_values):
                merged = check_agreement(plan, ws)
                text = kagura_compile(ws).text
                cases: dict[str, Callable[[], object]] = {
                    "compile": partial(kagura_compile, ws),
                    "load": partial(Lockfile.from_text, text),
                    "dynaconf": partial(dynaconf_load, ws.dynaconf_files),
                    "dyn-fmt": partial(dynaconf_load, ws.dynaconf_format_files),
                }
                samples = measure(cases, args.runs, args.warmup)
            interpolated = plan.references + plan.env_reads
            rows.append(Row(n, merged, interpolated, ws.total_bytes / 1024, samples))
            print(
                f"  N={n:,}: values agree ({merged:,} merged keys); timed",
                file=sys.stderr,
                flush=True,
            )
        if args.profile:
            plan = make_plan(args.profile, args.seed + args.profile)
            ws = write_workspace(plan, base / f"profile{args.profile}")
            profile_text = profile_compile(ws)
        if args.keep:
            keep = Path(tempfile.mkdtemp(prefix="kagura-bench-kept-"))
            import shutil

            shutil.copytree(base, keep, dirs_exist_ok=True)
            print(f"generated files kept in {keep}")

    header = (
        f"{'keys/layer':>10} {'merged':>7} {'interp':>6} {'yaml KB':>8} | {'compile':>9} {'load':>8} "
        f"{'dynaconf':>9} {'dyn-fmt':>9} | {'cmp/dyn':>7} {'cmp/fmt':>7} {'load/dyn':>8}"
    )
    print("median ms")
    print(header)
    print("-" * len(header))
    for row in rows:
        t = {name: value * 1000 for name, value in row.times.items()}
        print(
            f"{row.keys:>10,} {row.merged:>7,} {row.interpolated:>6,} {row.size_kb:>8.0f} | "
            f"{t['compile']:>9.1f} {t['load']:>8.1f} {t['dynaconf']:>9.1f} {t['dyn-fmt']:>9.1f} | "
            f"{t['compile'] / t['dynaconf']:>6.2f}x {t['compile'] / t['dyn-fmt']:>6.2f}x "
            f"{t['load'] / t['dynaconf']:>7.2f}x"
        )
    print()
    print(f"Goal: compile <= {GOAL_RATIO:.1f}x dynaconf's load at 1,000 and 10,000 keys per layer")
    for row in rows:
        if row.keys not in GOAL_SIZES:
            continue
        ratio = row.times["compile"] / row.times["dynaconf"]
        strict = row.times["compile"] / row.times["dyn-fmt"]
        verdict = "MET" if ratio <= GOAL_RATIO else "NOT MET"
        print(
            f"  {row.keys:>6,} keys: {ratio:.2f}x dynaconf -> {verdict}"
            f"   (vs the @format-only lower bound: {strict:.2f}x, "
            f"{'met' if strict <= GOAL_RATIO else 'not met'})"
        )
    if not any(row.keys in GOAL_SIZES for row in rows):
        print("  (no goal size among --sizes)")
    print()
    print("Spread over the timed runs, min-max ms (a busy machine shows up here):")
    for row in rows:
        spread = "  ".join(
            f"{name} {min(v) * 1000:.0f}-{max(v) * 1000:.0f}" for name, v in row.samples.items()
        )
        print(f"  {row.keys:>6,}: {spread}")
    if args.profile:
        print(
            f"\ncProfile of one compile at N={args.profile} keys per layer (after a warm-up compile):"
        )
        print(profile_text)


if __name__ == "__main__":
    main()
