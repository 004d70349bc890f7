"""``python -m kagura_ops.cli``."""

from kagura_ops.cli import entry

entry()
