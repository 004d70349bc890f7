"""kagura-ops: GitOps config and secrets for AI-agent teams.

Secrets live in the repository as SOPS-format files whose values are encrypted
and whose keys stay readable (:mod:`kagura_ops.sops`), wrapped once per recipient
(:mod:`kagura_ops.keys`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from kagura_ops import errors
from kagura_ops.errors import KaguraOpsError

try:
    __version__ = version("kagura-ops")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["KaguraOpsError", "__version__", "errors"]
