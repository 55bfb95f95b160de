"""Errors shared by the core modules, kept free of imports so any of them can raise them."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; ``errors`` holds one ``path: message`` line per problem."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors
