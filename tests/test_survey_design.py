"""Survey design and store: balanced between-participant assignment, trial plans, idempotent answers, exports."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entangle.files import InputError
from entangle.schema import KINDS
from entangle.stimuli import load_stimuli
from entangle.survey.design import StudyConfig, choose_items, choose_kind, plan_trials
from entangle.survey.export import ratings_table, trials_table
from entangle.survey.materials import load_materials
from entangle.survey.simulate import RaterModel, simulate_study
from entangle.survey.store import Store


@pytest.fixture(scope="module")
def stim():
    return load_stimuli().subset(6)


@pytest.fixture(scope="module")
def mats():
    return load_materials()


def test_choose_kind_takes_largest_shortfall_and_reports_full():
    rng = np.random.default_rng(0)
    counts = {"moral": {"a": 2, "b": 2}, "grammatical": {"a": 2}, "economic": {"a": 1, "b": 2}}
    assert choose_kind(counts, n_items=2, target=2, rng=rng) == "grammatical"  # b has no grammatical rater
    assert choose_kind({k: {"a": 2, "b": 2} for k in KINDS}, 2, 2, rng) is None
    assert {choose_kind({}, 2, 2, np.random.default_rng(s)) for s in range(30)} == set(KINDS)


def test_choose_items_one_per_frame_least_rated_first(stim):
    counts = {it.id: 5 for it in stim}
    least = [it.id for it in stim if it.frame == stim.frames()[3]][4]
    counts[least] = 0
    picked = choose_items(stim, counts, 4, np.random.default_rng(1))
    frames = [i.split("_")[0] for i in picked]
    assert len(picked) == 4 and len(set(frames)) == 4 and picked[0] == least


def test_plan_trials_practice_first_checks_after_two_items_seeded(stim, mats):
    ids = choose_items(stim, {}, 6, np.random.default_rng(0))
    plan = plan_trials("grammatical", ids, stim, mats, np.random.default_rng(7))
    kinds = [t.trial for t in plan]
    assert kinds[:2] == ["practice", "practice"] and kinds[2:4] == ["item", "item"]
    assert Counter(kinds) == {"practice": 2, "item": 6, "catch": 2, "instructed": 1}
    assert all(t.kind == "grammatical" for t in plan)
    instructed = next(t for t in plan if t.trial == "instructed")
    assert instructed.expected_min == instructed.expected_max == 2 and "choose 2" in instructed.question
    assert plan == plan_trials("grammatical", ids, stim, mats, np.random.default_rng(7))
    assert plan != plan_trials("grammatical", ids, stim, mats, np.random.default_rng(8))


def test_config_refuses_more_items_than_frames(stim):
    with pytest.raises(ValueError, match="at most one item of each of the 6 frames"):
        StudyConfig(3, 7).validate(stim)


def test_materials_errors_name_the_field(tmp_path, mats):
    import json

    data = json.loads(Path(mats.source).read_text(encoding="utf-8"))
    data["catch"]["moral"][0]["max"] = 9
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match=r"catch\.moral\[0\]\.max"):
        load_materials(bad)


def test_answers_are_idempotent_and_in_order(tmp_path, stim, mats):
    store = Store(tmp_path / "s.db")
    p = store.assign("tok", 1, stim, mats, StudyConfig(2, 4), {"prolific_pid": "P1"}, now=100.0)
    first = store.next_trial(p.id, now=100.0)
    assert first.position == 0 and first.trial == "practice"
    assert store.answer(p.id, 0, 5, 1200, now=101.0)
    assert not store.answer(p.id, 0, 1, 900, now=102.0)  # duplicate: first answer stays
    assert not store.answer(p.id, 3, 4, 900, now=102.0)  # not the next trial: ignored
    assert store.progress(p.id) == (1, 9)
    rows = store.rows("SELECT position, rating, rt_ms FROM trials WHERE rating IS NOT NULL")
    assert [tuple(r) for r in rows] == [(0, 5, 1200)]
    # the same Prolific id resumes the same participant instead of a second list
    again = store.assign("other-token", 2, stim, mats, StudyConfig(2, 4), {"prolific_pid": "P1"})
    assert again.id == p.id and again.token == "tok"
    # server-side response time when the page sent none
    store.next_trial(p.id, now=200.0)
    assert store.answer(p.id, 1, 3, None, now=202.5)
    assert store.rows("SELECT rt_ms FROM trials WHERE position = 1")[0][0] == 2500
    while (t := store.next_trial(p.id)) is not None:
        store.answer(p.id, t.position, 4, 2000)
    assert store.participant(token="tok").completed_at is not None


def test_simulated_study_is_balanced_and_exports_every_answer_once(tmp_path, stim, mats):
    cfg = StudyConfig(raters_per_item=2, items_per_participant=6)
    store = simulate_study(stim, mats, cfg, tmp_path / "sim.db", model=RaterModel(inattentive=0.1, too_fast=0.0))
    valid = store.counts(cfg, now=2e9)  # only participants without a failed check count toward N
    for kind in KINDS:
        per_item = [valid.get(kind, {}).get(it.id, 0) for it in stim]
        assert min(per_item) >= 2 and max(per_item) <= 3, kind
    # between participants: one kind per participant
    trials = trials_table(store)
    assert (trials.groupby("rater_id")["kind"].nunique() == 1).all()
    assert (trials["simulated"] == "yes").all()
    ratings = ratings_table(store)
    assert "practice" not in set(ratings["trial"]) and (ratings["simulated"] == "yes").all()
    assert len(ratings) == (trials["trial"] != "practice").sum()
    assert not ratings.duplicated(["rater_id", "item_id"]).any()
    # no participant saw two items of one frame
    items = ratings[ratings["trial"] == "item"]
    assert not items.assign(frame=items["item_id"].str.split("_").str[0]).duplicated(["rater_id", "frame"]).any()
    assert isinstance(items, pd.DataFrame) and set(items["rating"]) <= set(range(1, 8))
