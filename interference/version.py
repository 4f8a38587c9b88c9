"""The version of the toolkit (also in pyproject.toml); reports record it."""

__version__ = "0.1.0"
