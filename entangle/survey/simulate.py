"""Simulated raters, for tests and demos only: they run through the real assignment, trial plans and database.

Each simulated participant is attentive (rates by the item's own factor, plus a planted moral leak into the other
kinds, a rater bias and noise), inattentive (random ratings, fails checks) or too fast (attentive ratings in
~0.4 s). The database is marked `simulated`, so both exports carry `simulated=yes` on every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from entangle.stimuli import StimulusSet
from entangle.survey.design import StudyConfig
from entangle.survey.export import SIMULATED
from entangle.survey.materials import SCALE, Materials
from entangle.survey.store import Store, Trial


@dataclass(frozen=True)
class RaterModel:
    """How simulated raters answer: rating = 4 + 1.5·own + leak·moral (other kinds) + bias + noise, clipped to 1..7."""

    leak: float = 0.3
    bias_sd: float = 0.4
    noise_sd: float = 0.8
    inattentive: float = 0.05
    too_fast: float = 0.05


def _rating(trial: Trial, levels: dict[str, tuple[int, int, int]], style: str, bias: float, model: RaterModel,
            rng: np.random.Generator) -> int:
    if style == "inattentive":
        return int(rng.integers(SCALE[0], SCALE[-1] + 1))
    if trial.expected_min is not None:
        return int(rng.integers(trial.expected_min, trial.expected_max + 1))
    m, e, g = levels.get(trial.item_id, (0, 0, 1))
    own = {"moral": m, "economic": e, "grammatical": 2 * g - 1}[trial.kind]
    value = 4 + 1.5 * own + (model.leak * m if trial.kind != "moral" else 0.0) + bias + rng.normal(0, model.noise_sd)
    return int(np.clip(round(value), SCALE[0], SCALE[-1]))


def simulate_study(stimuli: StimulusSet, materials: Materials, config: StudyConfig, db: str | Path, *,
                   model: RaterModel = RaterModel(), seed: int = 0, max_participants: int = 100_000) -> Store:
    """Fill database `db` with simulated participants until every item × kind has N raters; returns the store."""
    store = Store(db, durable=False)
    store.init_meta({"stimuli_sha256": stimuli.sha256, "stimuli_source": stimuli.source,
                     "completion_code": "SIMULATED", "simulated": SIMULATED})
    levels = {it.id: (it.moral, it.economic, it.grammatical) for it in stimuli}
    rng = np.random.default_rng(seed)
    clock = 1.7e9
    for i in range(max_participants):
        p = store.assign(f"simulated-{seed}-{i}", seed * 1_000_003 + i, stimuli, materials, config, now=clock)
        if p is None:
            break
        style = rng.choice(["attentive", "inattentive", "too_fast"],
                           p=[1 - model.inattentive - model.too_fast, model.inattentive, model.too_fast])
        bias = rng.normal(0, model.bias_sd)
        store.seen_instructions(p.id, now=clock)
        while (trial := store.next_trial(p.id, now=clock)) is not None:
            rt = rng.uniform(250, 600) if style != "attentive" else rng.lognormal(np.log(3000), 0.4)
            clock += rt / 1000
            store.answer(p.id, trial.position, _rating(trial, levels, style, bias, model, rng), int(rt), now=clock)
    return store
