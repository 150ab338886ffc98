"""Multi-value trade-offs in activation space (MVA's questions without training): interference between value
directions, decorrelation, and a Pareto frontier over convex, box and extrapolated steering grids (`config` holds
the grids and the value texts). See docs/tradeoffs.md."""

from entangle.studies.tradeoffs.config import NAME, Config
from entangle.studies.tradeoffs.study import run

__all__ = ["NAME", "Config", "run"]
