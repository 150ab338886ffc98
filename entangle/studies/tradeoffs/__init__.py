"""Multi-value trade-offs in activation space (MVA's questions without training): interference between value
directions, decorrelation, and a Pareto frontier over convex, box and extrapolated steering grids. See
docs/tradeoffs.md."""

from entangle.studies.tradeoffs.config import (
    NAME,
    Config,
    grids,
    load_neutral,
    load_value_texts,
    method_points,
)
from entangle.studies.tradeoffs.study import run

__all__ = ["NAME", "Config", "grids", "load_neutral", "load_value_texts", "method_points", "run"]
