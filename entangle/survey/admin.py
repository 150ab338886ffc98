"""What the admin page shows: participants, progress per item × kind toward N raters, and exclusions so far."""

from __future__ import annotations

from dataclasses import dataclass

from entangle.schema import KINDS
from entangle.stimuli import StimulusSet
from entangle.survey.design import StudyConfig
from entangle.survey.export import ratings_table
from entangle.survey.quality import Exclusions, apply_exclusions
from entangle.survey.store import Store


@dataclass(frozen=True)
class KindProgress:
    """One kind: participants, answered item ratings, and how many items have reached N answered ratings."""

    kind: str
    participants: int
    completed: int
    ratings: int
    items_done: int
    min_raters: int


@dataclass(frozen=True)
class AdminSummary:
    participants: int
    completed: int
    kinds: tuple[KindProgress, ...]
    items: tuple[tuple[str, tuple[int, ...]], ...]  # item_id -> answered ratings per kind (KINDS order)
    exclusions: Exclusions
    n_items: int


def admin_summary(store: Store, stimuli: StimulusSet, config: StudyConfig) -> AdminSummary:
    """Progress and exclusions from the database as it is now (answered trials only)."""
    answered = {(k, i): n for k, i, n in store.rows(
        "SELECT kind, item_id, COUNT(*) FROM trials WHERE trial = 'item' AND rating IS NOT NULL "
        "GROUP BY kind, item_id")}
    people = {k: (n, c) for k, n, c in store.rows(
        "SELECT kind, COUNT(*), COUNT(completed_at) FROM participants GROUP BY kind")}
    ids = [it.id for it in stimuli]
    kinds = []
    for k in KINDS:
        per_item = [answered.get((k, i), 0) for i in ids]
        kinds.append(KindProgress(k, people.get(k, (0, 0))[0], people.get(k, (0, 0))[1], sum(per_item),
                                  sum(n >= config.raters_per_item for n in per_item), min(per_item)))
    _, exclusions = apply_exclusions(ratings_table(store))
    return AdminSummary(
        participants=sum(n for n, _ in people.values()), completed=sum(c for _, c in people.values()),
        kinds=tuple(kinds), items=tuple((i, tuple(answered.get((k, i), 0) for k in KINDS)) for i in ids),
        exclusions=exclusions, n_items=len(ids))
