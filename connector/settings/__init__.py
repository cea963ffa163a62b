"""Settings: raw values from flags, files, connections and the environment -> one checked
``Config``.

``keys`` is the one table of setting keys and their parsers, and ``build_config``; ``config``
the frozen dataclasses it builds; ``file`` the TOML file; ``credentials`` where secrets come
from (the environment or files, never a value on a command line).
"""
