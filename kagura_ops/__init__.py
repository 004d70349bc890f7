"""kagura-ops: GitOps config and secrets for AI-agent teams.

Secrets live in the repository as SOPS-format files whose values are encrypted
and whose keys stay readable (:mod:`kagura_ops.sops`), wrapped once per recipient
(:mod:`kagura_ops.keys`); layers compile into a lockfile (:mod:`kagura_ops.compiler`)
that agents read with :func:`load_resolved` (:mod:`kagura_ops.runtime`) or
:class:`ConfigManager` (:mod:`kagura_ops.config`).

The names below are the public API. They are imported on first use, so
``import kagura_ops`` (and every CLI start) stays cheap.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from kagura_ops import errors
from kagura_ops.errors import (
    CompileError,
    ConfigError,
    DecryptionError,
    EncryptionError,
    FormatError,
    InputError,
    IntegrityError,
    KaguraOpsError,
    NoIdentityError,
    StaleLockfileError,
    UnsupportedError,
)

if _TYPE_CHECKING:
    from kagura_ops.config.manager import ConfigManager
    from kagura_ops.runtime.loader import load_resolved
    from kagura_ops.runtime.resolved import Resolved, Snapshot
    from kagura_ops.runtime.secret import Secret

# The single source of the version (pyproject reads it from here). A literal, not
# importlib.metadata: that import alone costs ~20 ms on every CLI start.
__version__ = "0.1.0"

_LAZY = {
    "ConfigManager": "kagura_ops.config.manager",
    "Resolved": "kagura_ops.runtime.resolved",
    "Secret": "kagura_ops.runtime.secret",
    "Snapshot": "kagura_ops.runtime.resolved",
    "load_resolved": "kagura_ops.runtime.loader",
}

__all__ = [
    "CompileError",
    "ConfigError",
    "ConfigManager",
    "DecryptionError",
    "EncryptionError",
    "FormatError",
    "InputError",
    "IntegrityError",
    "KaguraOpsError",
    "NoIdentityError",
    "Resolved",
    "Secret",
    "Snapshot",
    "StaleLockfileError",
    "UnsupportedError",
    "__version__",
    "errors",
    "load_resolved",
]


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kagura_ops' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
