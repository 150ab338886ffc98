"""The `entangle` command line: one module per command group, all registered on one typer app."""

from entangle.cli import (
    core,  # noqa: F401  (registers the core commands)
    orthogonalize,  # noqa: F401  (registers `entangle orthogonalize`)
    steer,  # noqa: F401  (registers `entangle steer`)
    svo,  # noqa: F401  (registers `entangle svo`)
    tradeoff,  # noqa: F401  (registers `entangle tradeoff`)
)
from entangle.cli.app import app
from entangle.cli.survey import survey_app

app.add_typer(survey_app, name="survey")

__all__ = ["app"]
