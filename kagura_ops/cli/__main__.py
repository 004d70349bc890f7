"""``python -m kagura_ops.cli``: the same as the ``kagura-ops`` console script."""

from kagura_ops.cli import entry

if __name__ == "__main__":
    entry()
