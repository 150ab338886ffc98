"""Entanglement metrics on synthetic readouts and planted geometry (no model)."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from entangle.analysis.entanglement import behavioural_ei
from entangle.analysis.geometry import cosine_by_layer, leakage
from entangle.analysis.norms import design_norm
from entangle.analysis.repair import excess_ei, repair
from entangle.analysis.stats import (
    boot_auc,
    draw_counts,
    empirical_p_value,
    frame_bootstrap_indices,
)
from entangle.schema import GOOD_BAD

KINDS = ("moral", "grammatical", "economic")


def factorial(n_frames: int = 40) -> pd.DataFrame:
    """Full 3×3×2 design per frame with token counts unrelated to the factors."""
    rng = np.random.default_rng(1)
    rows = [
        {
            "item_id": f"f{f:02d}_m{m:+d}_e{e:+d}_g{g}",
            "frame": f"f{f:02d}",
            "moral": m,
            "economic": e,
            "grammatical": g,
            "n_tokens": int(rng.integers(15, 25)),
        }
        for f in range(n_frames)
        for m, e, g in product((1, 0, -1), (1, 0, -1), (1, 0))
    ]
    return pd.DataFrame(rows)


def readouts(
    items: pd.DataFrame,
    leak: dict[tuple[str, str], float] | None = None,
    own: float = 1.0,
    seed: int = 0,
    noise: float = 0.5,
) -> pd.DataFrame:
    """value_K = own·(K's factor) + Σ leak·(factor) + frame random effect + noise, one row per item × kind."""
    leak = leak or {}
    rng = np.random.default_rng(seed)
    frames = items["frame"].unique()
    out = []
    for kind in KINDS:
        fe = dict(zip(frames, rng.normal(0, 0.4, len(frames)), strict=True))
        v = own * items[kind].to_numpy(float) + items["frame"].map(fe).to_numpy() + rng.normal(0, noise, len(items))
        for f in ("moral", "economic", "grammatical"):
            v = v + leak.get((f, kind), 0.0) * items[f].to_numpy(float)
        out.append(items.assign(kind=kind, value=v))
    return pd.concat(out, ignore_index=True)


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    return factorial()


def test_frame_bootstrap_indices_reproducible(items):
    a = frame_bootstrap_indices(items["frame"], 50, seed=3)
    b = frame_bootstrap_indices(items["frame"].sample(frac=1, random_state=0), 50, seed=3)  # row order irrelevant
    assert a.shape == (50, 40) and np.array_equal(a, b)
    assert not np.array_equal(a, frame_bootstrap_indices(items["frame"], 50, seed=4))
    counts = draw_counts(a, 40)
    assert np.all(counts.sum(axis=1) == 40)


def test_ei_null_contains_zero(items):
    res = behavioural_ei(readouts(items), n_boot=400, seed=0)
    t = res.table().set_index(["from_factor", "to_kind"])
    for f, k in product(("moral", "economic", "grammatical"), KINDS):
        if f == k:
            assert t.loc[(f, k), "ei"] == 1.0
            continue
        assert abs(t.loc[(f, k), "ei"]) < 0.1
    for cell in [("moral", "grammatical"), ("moral", "economic")]:
        assert t.loc[cell, "ci_low"] <= 0.0 <= t.loc[cell, "ci_high"]
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["resampling_unit"] == "frame" and d["n_frames"] == 40


def test_ei_recovers_planted_leak(items):
    # effect coding: b_m is the full good − bad contrast, 2 × 0.15, against the grammatical contrast 1 → EI 0.3
    res = behavioural_ei(readouts(items, leak={("moral", "grammatical"): 0.15}), n_boot=400, seed=0)
    t = res.table().set_index(["from_factor", "to_kind"])
    row = t.loc[("moral", "grammatical")]
    assert row["ci_low"] <= 0.3 <= row["ci_high"]
    assert row["ci_low"] > 0.0 and row["coef_p"] < 1e-3
    assert abs(row["ei"] - 0.3) < 0.06
    assert row["ei_se"] > 0 and row["ei_p"] < 1e-3
    # the other cells stay near zero
    assert abs(t.loc[("economic", "grammatical"), "ei"]) < 0.1


def test_ei_sign_of_own_effect(items):
    """A readout that runs backwards on its own factor gets diagonal −1 and EI in units of |b_K|."""
    df = readouts(items, own=-1.0, leak={("moral", "grammatical"): 0.15})
    res = behavioural_ei(df, n_boot=50)
    assert res.cell("grammatical", "grammatical") == -1.0
    assert 0.2 < res.cell("moral", "grammatical") < 0.4


def test_ei_input_validation(items):
    df = readouts(items)
    with pytest.raises(ValueError, match="more than one row"):
        behavioural_ei(pd.concat([df, df.iloc[:1]]), n_boot=10)
    with pytest.raises(ValueError, match="n_tokens"):
        behavioural_ei(df.drop(columns="n_tokens"), n_boot=10)
    res = behavioural_ei(df.drop(columns="n_tokens"), n_boot=10, control_tokens=False)
    assert res.controls == []


def test_excess_against_design_norm(items):
    model = behavioural_ei(readouts(items, leak={("moral", "grammatical"): 0.3}), n_boot=200)
    ex = excess_ei(model, design_norm(items)).set_index(["from_factor", "to_kind"])
    mt = model.table().set_index(["from_factor", "to_kind"])
    cell = ("moral", "grammatical")
    assert ex.loc[cell, "excess"] == pytest.approx(mt.loc[cell, "ei"])
    assert ex.loc[cell, "ci_low"] == pytest.approx(mt.loc[cell, "ci_low"])  # human side has zero width
    assert ex.loc[cell, "ci_high"] == pytest.approx(mt.loc[cell, "ci_high"])
    assert ex.loc[cell, "pairing"] == "constant"


def test_excess_paired_with_same_draws(items):
    a = behavioural_ei(readouts(items, leak={("moral", "grammatical"): 0.3}), n_boot=200, seed=5)
    b = behavioural_ei(readouts(items, leak={("moral", "grammatical"): 0.3}, seed=1), n_boot=200, seed=5)
    assert a.boot.pairs_with(b.boot)
    ex = excess_ei(a, a).set_index(["from_factor", "to_kind"])
    assert (ex["excess"] == 0).all() and (ex["ci_low"] == 0).all() and (ex["ci_high"] == 0).all()
    assert excess_ei(a, b)["pairing"].iloc[0] == "paired"
    c = behavioural_ei(readouts(items), n_boot=200, seed=6)
    assert excess_ei(a, c)["pairing"].iloc[0] == "independent"


def test_repair_fraction(items):
    base = readouts(items, leak={("moral", "grammatical"): 0.4, ("moral", "economic"): 0.3})
    before = behavioural_ei(base, n_boot=300)
    # after: the same readouts with the moral leak removed exactly (same noise, same frames → paired)
    fixed = base.copy()
    for k, c in (("grammatical", 0.4), ("economic", 0.3)):
        sel = fixed["kind"] == k
        fixed.loc[sel, "value"] -= c * fixed.loc[sel, "moral"]
    after_fixed = behavioural_ei(fixed, n_boot=300)
    human = design_norm(items)
    r = repair(before, after_fixed, human).set_index(["measure", "to_kind"])
    for k in ("grammatical", "economic"):
        row = r.loc[("repair_fraction", k)]
        # in-sample noise leaves a small EI after the fix, so the estimate is near (not exactly) 1
        assert abs(row["estimate"] - 1.0) < 0.1 and row["ci_low"] <= 1.0 <= row["ci_high"]
        assert row["ci_low"] > 0.5
        sel = r.loc[("selectivity", k)]
        assert sel["estimate"] == pytest.approx(1.0, abs=0.05)

    unchanged = repair(before, behavioural_ei(base, n_boot=300), human).set_index(["measure", "to_kind"])
    row = unchanged.loc[("repair_fraction", "grammatical")]
    assert row["estimate"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0

    # halving the own effect of grammatical judgements: selectivity ≈ 0.5 (readout units, not z-scored)
    halved = base.copy()
    sel = halved["kind"] == "grammatical"
    halved.loc[sel, "value"] -= 0.5 * halved.loc[sel, "grammatical"]
    s = repair(before, behavioural_ei(halved, n_boot=300), human).set_index(["measure", "to_kind"])
    assert s.loc[("selectivity", "grammatical"), "estimate"] == pytest.approx(0.5, abs=0.05)

    with pytest.raises(ValueError, match="same frame resamples"):
        repair(before, behavioural_ei(fixed, n_boot=300, seed=9), human)


def test_empirical_p_value():
    null = np.linspace(0, 1, 20)
    assert empirical_p_value(2.0, null) == pytest.approx(1 / 21)
    assert empirical_p_value(-1.0, null) == 1.0
    assert empirical_p_value(null[10], null) == pytest.approx((1 + 10) / 21)  # ties count as extreme
    assert empirical_p_value(-2.0, null, alternative="less") == pytest.approx(1 / 21)
    assert empirical_p_value(-2.0, null - 0.5, alternative="two-sided") == pytest.approx(1 / 21)


def test_boot_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    n, nf = 300, 30
    scores = np.round(rng.normal(size=n), 1)  # plenty of ties
    y = np.where(rng.random(n) < 0.5 + 0.2 * (scores > 0), 1, -1)
    fc = rng.integers(0, nf, n)
    counts = draw_counts(frame_bootstrap_indices(np.arange(nf), 5, 0), nf)
    got = boot_auc(scores, y, fc, counts)
    for b in range(5):
        want = roc_auc_score(y > 0, scores, sample_weight=counts[b, fc])
        assert got[b] == pytest.approx(want)


def test_cosine_by_layer_planted():
    d, L = 16, 5
    e0, e1 = np.eye(d)[0], np.eye(d)[1]
    angles = np.linspace(0, np.pi / 2, L)
    dirs = {
        "moral": np.tile(e0, (L, 1)),
        "grammatical": np.stack([np.cos(a) * e0 + np.sin(a) * e1 for a in angles]) * 3.0,  # norm ignored
        "economic": np.tile(-e0, (L, 1)),
    }
    df = cosine_by_layer(dirs, layers=range(10, 15))
    mg = df[(df.kind_a == "moral") & (df.kind_b == "grammatical")]
    np.testing.assert_allclose(mg["cosine"], np.cos(angles), atol=1e-12)
    assert list(mg["layer"]) == list(range(10, 15))
    me = df[(df.kind_a == "moral") & (df.kind_b == "economic")]
    np.testing.assert_allclose(me["cosine"], -1.0)
    assert len(df) == 3 * L


def test_leakage_planted(items):
    """Layer 0: no moral component on d_g; layer 1: moral shifts proj by 0.15 per unit (good−bad = 0.3 = 0.3×g gap)."""
    rng = np.random.default_rng(0)
    d = 8
    v, w = np.eye(d)[0], np.eye(d)[1]
    m, g = items["moral"].to_numpy(float), items["grammatical"].to_numpy(float)
    acts = rng.normal(0, 0.3, size=(len(items), 2, d))
    acts[:, 0] += np.outer(g, v) + np.outer(m, w)  # moral lives on an orthogonal axis
    acts[:, 1] += np.outer(g, v) + np.outer(0.15 * m, v) + np.outer(m, w)
    dirs = {"grammatical": np.stack([v, v])}
    df = leakage(acts, items, dirs, "grammatical", n_boot=300, seed=0)
    assert list(df["layer"]) == [0, 1]
    r0, r1 = df.iloc[0], df.iloc[1]
    assert abs(r0["leakage"]) < 0.05 and r0["ci_low"] <= 0.0 <= r0["ci_high"]
    assert r1["ci_low"] <= 0.3 <= r1["ci_high"] and r1["ci_low"] > 0.1
    assert r1["denominator"] == pytest.approx(1.0, abs=0.05)
    assert (df["resampling_unit"] == "frame").all()
    # the economic factor does not leak at either layer
    de = leakage(acts, items, dirs, "grammatical", from_factor="economic", n_boot=100)
    assert np.all(np.abs(de["leakage"]) < 0.05)
    assert GOOD_BAD["grammatical"] == (1, 0)
