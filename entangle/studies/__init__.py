"""The studies entangle runs on one engine: entanglement (the core), valueflow (calibrated steering), svo (social
value orientation) and tradeoffs (multi-value interference and Pareto frontiers). Each follows `studies.base`."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

STUDIES: tuple[str, ...] = ("entanglement", "valueflow", "svo", "tradeoffs")
"""Every study, in the order `entangle run` runs them (the entanglement study first: the others may reuse its
moral direction)."""


def study_module(name: str) -> ModuleType:
    """The module holding a study's `Config` and `run(ctx, cfg) -> StudyResult` (entanglement: its pipeline)."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
    return importlib.import_module(f"entangle.studies.{name}.study" if name != "entanglement"
                                   else "entangle.studies.entanglement.pipeline")


def study_config(name: str, run_dir: Path) -> Any:
    """A study's default config for a run into `run_dir`: where the entanglement study wrote its causal moral
    direction there, it is the direction the SVO study steers along and the trade-off study ablates."""
    cfg = study_module(name).Config()
    path = run_dir / "directions" / "moral_causal.safetensors"
    if not path.exists():
        return cfg
    if name == "svo":
        from entangle.studies.svo.induction import DirectionSource  # noqa: PLC0415

        return replace(cfg, moral=DirectionSource(str(path)))
    if name == "tradeoffs":
        return replace(cfg, moral_direction=str(path))
    return cfg
