"""The anchor-based evaluator's pieces on planted problems (no model): PL MAP, guards, bucket sampling, ranking,
the values loader and the VALUEFLOW anchor importer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from entangle.files import InputError
from entangle.studies.valueflow.evaluator import (
    AnchorEvaluator,
    bucket_sample,
    guard,
    pl_grad,
    pl_map,
    sign_flips,
)
from entangle.studies.valueflow.importer import panel_for, read_valueflow_anchors
from entangle.values import Anchor, load_queries, load_values


def _sample_ranking(worths: np.ndarray, rng: np.random.Generator) -> list[int]:
    """A Plackett-Luce draw: pick items one by one with probability proportional to exp(worth)."""
    left, out = list(range(len(worths))), []
    while left:
        p = np.exp(worths[left] - worths[left].max())
        out.append(left.pop(int(rng.choice(len(left), p=p / p.sum()))))
    return out


def test_pl_map_recovers_a_planted_worth_and_matches_choix():
    choix = pytest.importorskip("choix")
    rng = np.random.default_rng(0)
    anchors = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    for true in (-1.5, 1.2):
        worths = np.r_[anchors, true]
        ranks = [_sample_ranking(worths, rng) for _ in range(1000)]
        orders = [[None if i == 5 else anchors[i] for i in r] for r in ranks]
        est = pl_map(orders, prior=1e-3)
        assert abs(est - true) < 0.15
        # choix fits all six worths jointly (mean-centred); shift so the anchors' mean is theirs
        fit = choix.opt_rankings(6, ranks, alpha=1e-6)
        joint = fit[5] - fit[:5].mean() + anchors.mean()
        assert abs(joint - est) < 0.15


def test_bt_map_recovers_a_planted_worth_from_pairwise_outcomes():
    """Bradley-Terry is Plackett-Luce on pairs: windows of one anchor and the response."""
    rng = np.random.default_rng(2)
    true, anchors = 0.7, rng.uniform(-2, 2, size=4000)
    won = rng.random(4000) < 1 / (1 + np.exp(-(true - anchors)))
    orders = [[None, a] if w else [a, None] for a, w in zip(anchors, won, strict=True)]
    assert abs(pl_map(orders) - true) < 0.15


def test_pl_gradient_is_decreasing_and_map_is_its_root():
    orders = [[1.0, None, -1.0], [None, 0.5, -2.0], [2.0, 0.0, None]]
    us = np.linspace(-5, 5, 21)
    g = [pl_grad(u, orders) for u in us]
    assert all(a > b for a, b in zip(g, g[1:], strict=False))
    assert abs(pl_grad(pl_map(orders), orders)) < 1e-6


def test_pl_map_beyond_every_anchor_is_held_by_the_prior():
    """Beating every anchor puts the MAP above the top anchor (only the L2 prior keeps it finite), and vice versa."""
    top = pl_map([[None, 8.0, 4.0, 0.0]] * 3)
    assert 9 < top < 20
    assert pl_map([[8.0, 4.0, 0.0, None]] * 3) < -1
    assert pl_map([[None, 8.0, 4.0, 0.0]] * 3, prior=1e-1) < top  # a stronger prior pulls it towards 0


def test_guards():
    assert guard(3.0, wins=5, losses=0, lo=-8, hi=8) > 8 and guard(3.0, 5, 0, -8, 8) - 8 < 1e-12
    assert guard(3.0, wins=0, losses=5, lo=-8, hi=8) < -8 and -8 - guard(3.0, 0, 5, -8, 8) < 1e-12
    assert guard(9.5, wins=2, losses=3, lo=-8, hi=8) == 8.0
    assert guard(-9.5, wins=2, losses=3, lo=-8, hi=8) == -8.0
    assert guard(1.5, wins=2, losses=3, lo=-8, hi=8) == 1.5
    assert guard(3.0, wins=5, losses=0, lo=-4, hi=10) == 10.0  # clipped to [-10, 10]


def test_bucket_sampling_draws_one_anchor_per_bin():
    x = np.repeat([-8.0, -4.0, 0.0, 4.0, 8.0], 5)
    rng = np.random.default_rng(1)
    for _ in range(50):
        idx = bucket_sample(x, 5, rng)
        assert list(x[idx]) == [-8.0, -4.0, 0.0, 4.0, 8.0]
    seen = {i for _ in range(200) for i in bucket_sample(x, 5, rng)}
    assert len(seen) == 25  # every anchor of a bin can be drawn
    with pytest.raises(ValueError, match="holds no anchor"):
        bucket_sample(np.array([-8.0, -8.0, 8.0, 8.0]), 3, rng)


class PlantedJudge:
    """Knows every text's true intensity (a number in the text); P(a > b) is a logistic in the difference."""

    name = "planted"

    def prefer(self, pairs):
        v = np.array([[float(a.split()[-1]), float(b.split()[-1])] for a, b in pairs]).reshape(-1, 2)
        return 1.0 / (1.0 + np.exp(-(v[:, 0] - v[:, 1])))


def test_evaluator_ranks_a_planted_monotone_panel():
    anchors = [Anchor(f"a{i}", float(x), f"anchor {x}") for i, x in enumerate(np.repeat([-8, -4, 0, 4, 8], 5))]
    ev = AnchorEvaluator(anchors, PlantedJudge(), k=6, m=3, seed=0)
    loao = ev.calibrate(n_boot=200)
    assert loao["spearman"] > 0.9
    truth = np.array([-9.5, -6.0, -2.0, 2.0, 6.0, 9.5])  # one per gap between anchor levels: ranks differ
    got = ev.score([f"response {x}" for x in truth]).intensity
    assert np.all(np.diff(got) > 0)
    assert got[0] < -8 and got[-1] > 8  # guards: below the lowest / above the top anchor
    assert np.all(np.abs(got) <= 10)


def test_sign_flips():
    r = np.array([[1.0, -1.0, 0.5, 0.0], [2.0, 1.0, 0.4, 0.0]])
    assert list(sign_flips(r)) == [False, True, False, False]


def test_load_values_and_queries():
    care, moral = load_values(["care", "moral"])
    assert care.theory == "moral_foundations" and len(care.pairs) >= 40
    assert sorted({a.intensity for a in moral.anchors}) == [-8.0, -4.0, 0.0, 4.0, 8.0]
    assert len(load_queries()) == 48
    with pytest.raises(InputError, match="unknown value"):
        load_values(["kindness"])


def test_load_values_reports_file_line_field(tmp_path):
    src = load_values(["care"])[0]
    d = tmp_path / "care"
    d.mkdir()
    (d / "value.json").write_text(json.dumps({"id": "care", "name": "Care", "theory": "moral_foundations",
                                              "definition": "x", "positive_pole": "p", "negative_pole": "n"}))
    (d / "pairs.jsonl").write_text("\n".join(json.dumps({"id": p.id, "expressing": p.expressing,
                                                         "rejecting": p.rejecting}) for p in src.pairs))
    lines = [json.dumps({"id": a.id, "intensity": a.intensity, "text": a.text}) for a in src.anchors]
    lines[2] = json.dumps({"id": "bad", "intensity": 14, "text": "too strong"})
    (d / "anchors.jsonl").write_text("\n".join(lines))
    with pytest.raises(InputError) as exc:
        load_values(["care"], root=tmp_path)
    assert exc.value.line == 3 and exc.value.field == "intensity" and "anchors.jsonl" in str(exc.value)


def test_valueflow_anchor_importer(tmp_path):
    doc = {"care-harm": {"-2": [{"text": "t1", "intensity": -8.4}], "-1": [{"text": "t2", "intensity": -4.2}],
                         "1": [{"text": "t3", "intensity": 4.1}], "2": [{"text": "t4", "intensity": 7.9}]},
           "Benevolence": {"-2": [{"text": "u1", "intensity": -7.0}], "2": [{"text": "u2", "intensity": 8.0}]}}
    path = tmp_path / "few_shot.json"
    path.write_text(json.dumps(doc))
    panels = read_valueflow_anchors(path)
    care, benevolence, hedonism = load_values(["care", "benevolence", "hedonism"])
    assert [a.intensity for a in panel_for(care, panels, path)] == [-8.4, -4.2, 4.1, 7.9]
    assert len(panel_for(benevolence, panels, path)) == 2
    assert panel_for(hedonism, panels, path) is None
    doc["care-harm"]["1"][0]["intensity"] = "high"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"care-harm\.1\[0\]\.intensity"):
        read_valueflow_anchors(path)
