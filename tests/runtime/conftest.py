"""Fixtures for the runtime tests (the project helper lives in ``runtime_project``)."""

from __future__ import annotations

from runtime_project import rproj

__all__ = ["rproj"]
