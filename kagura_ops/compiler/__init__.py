"""The config compiler: layers, merge, interpolation, schema, lockfile (DESIGN.md §2-3)."""
