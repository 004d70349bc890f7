"""kagura-ops: GitOps config and secrets for AI-agent teams.

Secrets live in the repository as SOPS-format files whose values are encrypted
and whose keys stay readable (:mod:`kagura_ops.sops`), wrapped once per recipient
(:mod:`kagura_ops.keys`).
"""

from __future__ import annotations

from kagura_ops import errors
from kagura_ops.errors import KaguraOpsError

# The single source of the version (pyproject reads it from here). A literal, not
# importlib.metadata: that import alone costs ~20 ms on every CLI start.
__version__ = "0.1.0"

__all__ = ["KaguraOpsError", "__version__", "errors"]
