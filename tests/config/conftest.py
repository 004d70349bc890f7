"""The runtime tests' project (``tests/runtime/runtime_project.py``), for ConfigManager tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from runtime_project import rproj

__all__ = ["rproj"]
