"""The `entangle` command line: one module per command group, all registered on one typer app."""

from entangle.cli import core  # noqa: F401  (registers the core commands)
from entangle.cli import orthogonalize  # noqa: F401  (registers `entangle orthogonalize`)
from entangle.cli import steer  # noqa: F401  (registers `entangle steer`)
from entangle.cli import tradeoff  # noqa: F401  (registers `entangle tradeoff`)
from entangle.cli.app import app
from entangle.cli.survey import survey_app

app.add_typer(survey_app, name="survey")

__all__ = ["app"]
