"""The runtime: what agent processes call to read the compiled configuration.

``load_resolved`` (:mod:`.loader`) reads a lockfile into a :class:`Resolved`
(:mod:`.resolved`) of immutable snapshots, secrets as :class:`Secret`
(:mod:`.secret`), kept current by a :class:`~.watcher.Watcher` when asked.
"""
