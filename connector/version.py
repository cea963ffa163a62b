"""The connector's version: written here only (pyproject.toml reads it, through hatch)."""

__version__ = "0.2.0"
