"""The studies entangle runs on one engine: entanglement (the core), valueflow (calibrated steering), svo (social
value orientation) and tradeoffs (multi-value interference and Pareto frontiers). Each follows `studies.base`."""

from __future__ import annotations

import importlib
from types import ModuleType

STUDIES: tuple[str, ...] = ("entanglement", "valueflow", "svo", "tradeoffs")
"""Every study, in the order `entangle run` runs them (the entanglement study first: the others may reuse its
moral direction)."""


def study_module(name: str) -> ModuleType:
    """The module holding a study's `Config` and `run(ctx, cfg) -> StudyResult` (entanglement: its pipeline)."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
    return importlib.import_module(f"entangle.studies.{name}.study" if name != "entanglement"
                                   else "entangle.studies.entanglement.pipeline")
