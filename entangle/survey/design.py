"""The study design: which kind and which items a new participant gets, and the order of their trials.

- The kind of judgement is assigned **between participants**: a rater judges one kind only, so judging one kind
  cannot colour another (that contamination is what the study measures).
- Balanced lists: the kind with the largest shortfall below N raters per item comes first, then, one item per
  frame, the items with the fewest raters so far; a participant never sees two items of the same frame (a
  minimal pair side by side would reveal the manipulation).
- Random order per participant from a stored seed; practice first, then the items with the attention checks
  (catch items and one instructed response) at random places after the first two items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from entangle.schema import KINDS
from entangle.stimuli import StimulusSet
from entangle.survey.materials import Materials


@dataclass(frozen=True)
class StudyConfig:
    """What the server was asked to run."""

    raters_per_item: int = 5
    items_per_participant: int = 40
    stale_minutes: float = 60.0  # an unfinished participant idle longer than this frees their items

    def validate(self, stimuli: StimulusSet) -> None:
        """Refuse settings the stimuli cannot satisfy (one item per frame per participant)."""
        n_frames = len(stimuli.frames())
        if not 1 <= self.raters_per_item <= 1000:
            raise ValueError(f"--raters-per-item must be 1..1000, got {self.raters_per_item}")
        if not 1 <= self.items_per_participant <= n_frames:
            raise ValueError(f"--items-per-participant must be 1..{n_frames}: a participant sees at most one item of "
                             f"each of the {n_frames} frames, got {self.items_per_participant}")


@dataclass(frozen=True)
class PlannedTrial:
    """One screen a participant will answer: a practice sentence, a stimulus item, or an attention check."""

    trial: str  # practice | item | catch | instructed
    item_id: str
    kind: str
    text: str
    expected_min: int | None = None
    expected_max: int | None = None
    question: str | None = None  # only the instructed response replaces the kind's question


def choose_kind(counts: Mapping[str, Mapping[str, int]], n_items: int, target: int,
                rng: np.random.Generator) -> str | None:
    """The kind with the largest total shortfall below `target` raters per item (ties at random); None when full."""
    shortfall = {k: sum(max(0, target - counts.get(k, {}).get(i, 0)) for i in counts.get(k, {}))
                 + max(0, n_items - len(counts.get(k, {}))) * target for k in KINDS}
    best = max(shortfall.values())
    if best <= 0:
        return None
    tied = [k for k in KINDS if shortfall[k] == best]
    return tied[int(rng.integers(len(tied)))]


def choose_items(stimuli: StimulusSet, counts: Mapping[str, int], k: int, rng: np.random.Generator) -> list[str]:
    """K item ids, at most one per frame, the least-rated first (ties at random)."""
    by_frame: dict[str, list[str]] = {}
    for it in stimuli:
        by_frame.setdefault(it.frame, []).append(it.id)
    picks = []
    for ids in by_frame.values():
        c = np.array([counts.get(i, 0) for i in ids])
        pool = np.flatnonzero(c == c.min())
        picks.append((int(c.min()), float(rng.random()), ids[int(pool[rng.integers(len(pool))])]))
    picks.sort()
    return [item for _, _, item in picks[:k]]


def plan_trials(kind: str, item_ids: Sequence[str], stimuli: StimulusSet, materials: Materials,
                rng: np.random.Generator) -> list[PlannedTrial]:
    """Practice, then the items in random order with the attention checks at random places after the second item."""
    text = {it.id: it.judged for it in stimuli}
    practice = [PlannedTrial("practice", f"practice_{kind}_{i + 1}", kind, t)
                for i, t in enumerate(materials.practice[kind])]
    items = [PlannedTrial("item", i, kind, text[i]) for i in rng.permutation(list(item_ids))]
    checks = [PlannedTrial(c.trial, c.id, kind, c.text, c.min, c.max, c.question)
              for c in (*materials.catch[kind], materials.instructed[kind])]
    checks = [checks[i] for i in rng.permutation(len(checks))]
    first = min(2, len(items))
    slots = sorted(rng.choice(np.arange(first, len(items) + 1), size=len(checks), replace=True))
    body = list(items)
    for offset, (slot, check) in enumerate(zip(slots, checks, strict=True)):
        body.insert(int(slot) + offset, check)
    return practice + body
