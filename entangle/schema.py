"""Names every module shares, defined once: kinds of good, factors and their levels, positions, readouts."""

from __future__ import annotations

from pathlib import Path

KINDS: tuple[str, ...] = ("moral", "grammatical", "economic")
"""The three kinds of good; each is judged by its own prompts and has its own factor."""

FACTORS: tuple[str, ...] = ("moral", "economic", "grammatical")
"""Factor columns (EI rows); a kind's own factor is the column of the same name (moral→m, economic→e, grammatical→g)."""

FACTOR_LEVELS: dict[str, tuple[int, ...]] = {"moral": (-1, 0, 1), "economic": (-1, 0, 1), "grammatical": (0, 1)}
"""Levels of each factor: moral good +1 / neutral 0 / bad −1; economic gain / none / loss; grammatical 1 / 0."""

GOOD_BAD: dict[str, tuple[int, int]] = {f: (max(v), min(v)) for f, v in FACTOR_LEVELS.items()}
"""(good level, bad level) of each factor: m 1/−1, e 1/−1, g 1/0."""

POSITIONS: dict[str, str] = {
    "last": "the last token of the judgement prompt",
    "judged_mean": "the mean over the judged sentence's tokens",
}
"""Read positions of the activation cache (name -> what it is); directions and `score` use these names only."""

READOUT_STYLES: tuple[str, ...] = ("cloze", "likert")
"""Judgement readouts; `auto` picks one per model (see `entangle.engine.capture.choose_style`)."""

RESAMPLING_UNIT = "frame"
CI_LEVEL = 0.95

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
"""The shipped data folder (stimuli, neutral texts, value texts, norms examples) beside the package."""
