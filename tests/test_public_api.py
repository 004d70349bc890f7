"""The curated top-level API: ``__all__`` is exactly the public names, imported lazily."""

from __future__ import annotations

import subprocess
import sys
import types

import kagura_ops


def test_all_matches_public_names() -> None:
    # Every public name the module defines (lazy ones included); subpackages that other
    # imports attached as attributes are not API, except `errors`.
    public = {
        name
        for name in dir(kagura_ops)
        if not name.startswith("_")
        and (name == "errors" or not isinstance(getattr(kagura_ops, name), types.ModuleType))
    } | {"__version__"}
    assert sorted(public) == sorted(kagura_ops.__all__)
    for name in kagura_ops.__all__:
        assert getattr(kagura_ops, name) is not None
    assert {"load_resolved", "Resolved", "Secret", "ConfigManager", "KaguraOpsError"} <= set(
        kagura_ops.__all__
    )


def test_import_is_lazy() -> None:
    code = (
        "import sys, kagura_ops; "
        "print(sorted(m for m in sys.modules if m.startswith(('kagura_ops.', 'jinja2', 'watchfiles', 'cryptography'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['kagura_ops.errors']"
