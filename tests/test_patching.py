"""Activation patching between moral minimal pairs: groups, exactness, the all-position control, attribution, hooks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import n_hooks

from entangle.engine.tokens import encode
from entangle.interventions import patching
from entangle.interventions.patching import (
    EVERYTHING,
    GROUPS,
    MinimalPair,
    attribution_patching,
    cell_table,
    compare_attribution,
    exact_patching,
    minimal_pairs,
    position_groups,
)
from entangle.prompts import render, templates
from entangle.stimuli import STIMULI_V1, STIMULI_V2, load_stimuli


@pytest.fixture(scope="module")
def v2():
    return load_stimuli(STIMULI_V2)


@pytest.fixture(scope="module")
def pairs(v2):
    return minimal_pairs(v2.subset(2))  # 2 frames x 3 economic x 2 grammatical levels = 12 pairs


def test_minimal_pairs_differ_only_in_moral_level(v2):
    pairs = minimal_pairs(v2)
    assert len(pairs) == len(v2.frames()) * 3 * 2
    for p in pairs:
        assert (p.good.moral, p.bad.moral) == (1, -1)
        assert {p.good.frame, p.bad.frame} == {p.frame}
        assert (p.good.economic, p.good.grammatical) == (p.bad.economic, p.bad.grammatical) == (p.economic,
                                                                                                 p.grammatical)
    assert len({p.id for p in pairs}) == len(pairs)


def test_position_groups_partition_the_prompt(tiny, v2):
    item = v2.items[0]
    p = render(item, templates("cloze", ["economic"], 1)[0])
    e = encode(tiny.tokenizer, p.text, (p.judged_start, p.judged_end), "prepend", p.span_dict())
    groups = position_groups(e, has_spans=True)
    assert set(GROUPS) <= set(groups)
    flat = {g: [q for run in groups[g] for q in run] for g in GROUPS}
    every = sorted(q for g in GROUPS for q in flat[g])
    assert every == list(range(1, len(e.ids)))  # disjoint, and everything but the BOS token
    assert flat["last"] == [len(e.ids) - 1]
    assert flat["act"] == list(range(*e.spans["act"]))
    ids = [e.ids[q] for q in flat["act"]]
    assert tiny.tokenizer.decode(ids).strip() == item.span_text("act")
    assert len(groups["context"]) >= 2  # the act and outcome cut the rest of the sentence into runs


def test_v1_stimuli_say_which_groups_cannot_be_formed(tiny):
    v1 = load_stimuli(STIMULI_V1)
    res = exact_patching(tiny, minimal_pairs(v1.subset(1)), layers=[1], n_boot=20)
    assert set(res.unavailable) == {"context", "act", "outcome", "violation"}
    assert all("v1" in why for why in res.unavailable.values())
    assert set(res.table["group"]) == {"template", "last"}


def test_patching_a_pair_with_itself_changes_nothing(tiny, pairs, monkeypatch):
    monkeypatch.setattr(patching, "_inert", lambda *a: False)  # run every patch through the hooks
    same = [MinimalPair(p.frame, p.economic, p.grammatical, p.bad, p.bad) for p in pairs]
    res = exact_patching(tiny, same, n_boot=20)
    assert len(res.pairs) == len(same) * 2 * (tiny.info.n_layers + 1) * len(GROUPS)
    assert float(res.pairs["delta"].abs().max()) <= 1e-6  # measured: exactly 0.0 on CPU
    assert float(res.pairs["effect"].abs().max()) == 0.0


def test_patching_everything_reproduces_the_source(tiny, pairs):
    union = "+".join(GROUPS)
    res = exact_patching(tiny, pairs, groups=(union, EVERYTHING, "act"), n_boot=50)
    at0 = res.pairs[(res.pairs.layer == 0) & (res.pairs.group == union)]
    assert len(at0) == len(pairs) * 2
    np.testing.assert_allclose(at0["r_patched"], at0["r_good"], atol=1e-5, rtol=0)
    every = res.pairs[res.pairs.group == EVERYTHING]
    np.testing.assert_allclose(every["r_patched"], every["r_good"], atol=1e-5, rtol=0)  # at every layer
    cells = res.table[res.table.group == EVERYTHING]
    np.testing.assert_allclose(cells["restored"], 1.0, atol=1e-3)
    # the good and bad items differ only in the act: at layer 0 the act alone carries the whole difference
    act0 = res.pairs[(res.pairs.layer == 0) & (res.pairs.group == "act")]
    np.testing.assert_allclose(act0["r_patched"], act0["r_good"], atol=1e-5, rtol=0)
    assert float(res.pairs["effect"].abs().min()) > 0  # the control moved something


def test_skipped_inert_patches_equal_running_them(tiny, pairs, monkeypatch):
    layers = [0, 2, tiny.info.n_layers]
    fast = exact_patching(tiny, pairs, layers=layers, n_boot=20).pairs
    inert = [patching._inert(j, patching._Row(0, la, g), tiny.info.n_layers)
             for j in patching._jobs(tiny, pairs, ("moral",), GROUPS) for la in layers for g in GROUPS]
    assert 0 < sum(inert) < len(inert)  # some rows are skipped (violation before the act, final-layer non-last)
    monkeypatch.setattr(patching, "_inert", lambda *a: False)
    full = exact_patching(tiny, pairs, layers=layers, n_boot=20).pairs
    np.testing.assert_allclose(fast["r_patched"], full["r_patched"], atol=1e-5, rtol=0)


def test_prefix_cache_equals_full_runs(tiny, pairs, monkeypatch):
    groups = (*GROUPS, EVERYTHING)
    cached = exact_patching(tiny, pairs, groups=groups, n_boot=20).pairs
    monkeypatch.setattr(patching, "PREFIX_CACHE", False)
    full = exact_patching(tiny, pairs, groups=groups, n_boot=20).pairs
    assert cached[["pair", "layer", "group", "readout"]].equals(full[["pair", "layer", "group", "readout"]])
    np.testing.assert_allclose(cached["r_patched"], full["r_patched"], atol=1e-5, rtol=0)
    assert float((cached["r_patched"] - cached["r_bad"]).abs().max()) > 1e-3  # patches that did something


def test_attribution_agrees_with_exact_on_a_planted_linear_case(tiny, pairs):
    # planted: move each group only 1% of the way to the good item, where the first-order estimate must hold
    alpha = 0.01
    exact = exact_patching(tiny, pairs, alpha=alpha, n_boot=20)
    approx = attribution_patching(tiny, pairs, n_boot=20)
    key = ["pair", "layer", "group", "readout"]
    j = exact.pairs[[*key, "delta"]].merge(approx.pairs[[*key, "delta"]], on=key, suffixes=("_x", "_a"))
    assert len(j) == len(approx.pairs) == len(exact.pairs)
    x, a = j["delta_x"].to_numpy() / alpha, j["delta_a"].to_numpy()
    big = np.abs(a) > 1e-2 * np.abs(a).max()
    assert big.sum() > 20
    assert np.all(np.sign(x[big]) == np.sign(a[big]))
    assert np.max(np.abs(x - a)) < 0.05 * np.abs(a).max()
    check = compare_attribution(exact, approx)
    assert check.n_cells == len(exact.table)
    assert check.pearson > 0.999 and check.spearman > 0.95
    assert check.sign_agreement == 1.0 and check.n_signed >= 10
    # at the last layer only the last position can move the readout, in both methods
    top = approx.pairs[(approx.pairs.layer == tiny.info.n_layers) & (approx.pairs.group != "last")]
    assert float(top["delta"].abs().max()) == 0.0


def test_hooks_are_removed_after_an_exception(tiny, pairs, monkeypatch):
    before = n_hooks(tiny.bridge)
    forward = tiny.bridge.forward
    for run in (exact_patching, attribution_patching):
        hooked: list[int] = []

        def failing(*args, hooked=hooked, **kwargs):
            live = n_hooks(tiny.bridge) - before
            if live:
                hooked.append(live)
                if len(hooked) == 2:  # the patching (exact) or gradient (attribution) pass, its hooks in place
                    raise RuntimeError("forward failed")
            return forward(*args, **kwargs)

        monkeypatch.setattr(tiny.bridge, "forward", failing)
        with pytest.raises(RuntimeError, match="forward failed"):
            run(tiny, pairs[:2], layers=[1, 2], n_boot=10)
        assert len(hooked) == 2 and hooked[-1] > 0
        assert n_hooks(tiny.bridge) == before
    monkeypatch.setattr(tiny.bridge, "forward", forward)
    assert len(exact_patching(tiny, pairs[:1], layers=[1], n_boot=10).pairs) > 0  # still works afterwards


def test_bad_arguments_are_refused(tiny, pairs):
    with pytest.raises(ValueError, match="layers"):
        exact_patching(tiny, pairs, layers=[tiny.info.n_layers + 1])
    with pytest.raises(ValueError, match="alpha"):
        exact_patching(tiny, pairs, alpha=0.0)
    with pytest.raises(ValueError, match="no minimal pairs"):
        exact_patching(tiny, [])


def test_cell_table_pools_pairs_and_resamples_frames():
    rng = np.random.default_rng(0)
    frames = np.repeat([f"f{i}" for i in range(10)], 3)
    effect = rng.uniform(1, 2, len(frames))
    delta = 0.4 * effect + rng.normal(0, 0.05, len(frames))
    df = pd.DataFrame({"frame": frames, "layer": 3, "group": "act", "readout": "moral", "template": "moral.c1",
                       "delta": delta, "effect": effect})
    t = cell_table(df, "exact", {("act", "moral"): 2}, n_boot=500).iloc[0]
    assert t["n_pairs"] == 30 and t["n_frames"] == 10 and t["n_excluded"] == 2
    assert t["restored"] == pytest.approx(delta.sum() / effect.sum())
    assert t["restored_ci_low"] < t["restored"] < t["restored_ci_high"]
    assert 0.3 < t["restored_ci_low"] and t["restored_ci_high"] < 0.5
    assert t["delta"] == pytest.approx(delta.mean())
    assert t["resampling_unit"] == "frame"
