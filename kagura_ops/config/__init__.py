"""Configuration management: :class:`~.manager.ConfigManager` and the scope files it writes."""
