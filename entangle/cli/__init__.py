"""The `entangle` command line: one module per command group, all registered on one typer app."""

from entangle.cli import core  # noqa: F401  (registers the core commands)
from entangle.cli.app import app

__all__ = ["app"]
