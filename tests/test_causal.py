"""The causal test's parts: selection by effect, the validity gate, matched nulls and p resolution, per-row ablation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from entangle.analysis.entanglement import behavioural_ei
from entangle.analysis.validity import level_means, minimal_pair_logprob, validity_gate
from entangle.studies.entanglement.candidates import Candidate, fit_direction
from entangle.studies.entanglement.causal import split_frames
from entangle.studies.entanglement.effects import Kept, kept
from entangle.studies.entanglement.nulls import (
    cell_repair,
    p_value,
    shuffled_dom,
    variance_matched,
)
from entangle.studies.entanglement.selection import (
    Filters,
    Screened,
    estimated_kept,
    select,
)


def _kept(v: float) -> Kept:
    return Kept("x", v, v - 0.05, v + 0.05, 1.0, v, 8)


def test_selection_picks_the_planted_causal_direction_not_the_destructive_or_merely_decodable_one():
    d = 8
    planted, decodable, destructive = (Candidate("dom", "last", 5, np.eye(d, dtype=np.float32)[i]) for i in range(3))
    f = Filters()
    screened = [
        Screened(decodable, 0.9, _kept(0.92), _kept(1.0), _kept(1.0), 0.001, True),  # readable, not causal
        Screened(planted, 0.2, _kept(0.12), _kept(0.9), _kept(0.95), 0.01, f.ok(_kept(0.9), _kept(0.95), 0.01)),
        Screened(destructive, 0.0, _kept(0.0), _kept(0.1), _kept(0.2), 2.5, f.ok(_kept(0.1), _kept(0.2), 2.5)),
    ]
    assert not screened[2].passes_filters
    assert select(screened).candidate is planted


def test_attribution_estimate_is_the_quadratic_form():
    """M = effect · u uᵀ: ablating u removes the whole effect (kept 0), an orthogonal direction keeps it all."""
    u = np.zeros(6)
    u[2] = 1.0
    M = 3.0 * np.outer(u, u)
    cands = [Candidate("dom", "last", 1, u.astype(np.float32)),
             Candidate("dom", "last", 1, np.eye(6, dtype=np.float32)[0])]
    assert np.allclose(estimated_kept(M, 3.0, cands), [0.0, 1.0])


def test_fit_direction_recovers_a_planted_direction_and_orients_it():
    rng = np.random.default_rng(0)
    u = rng.standard_normal(20)
    u /= np.linalg.norm(u)
    y = np.repeat([1, -1], 200)
    x = rng.standard_normal((400, 20)) + np.outer(y * 1.5, u)
    for method in ("dom", "logistic", "lda"):
        v = fit_direction(x, y, method)
        assert v @ u > 0.9, method


def factorial(n_frames: int = 24) -> pd.DataFrame:
    rows = [{"item_id": f"f{f}_{m}_{e}_{g}", "frame": f"f{f}", "moral": m, "economic": e, "grammatical": g}
            for f in range(n_frames) for m in (-1, 0, 1) for e in (-1, 0, 1) for g in (0, 1)]
    return pd.DataFrame(rows)


def test_validity_gate_drops_a_cell_whose_readout_ignores_its_own_factor():
    items = factorial()
    rng = np.random.default_rng(1)
    # noise shared by the two grammatical levels of a cell: the grammatical readout carries no grammar at all
    cell_noise = items.groupby(["frame", "moral", "economic"]).ngroup().map(dict(enumerate(rng.normal(0, 0.5, 999))))
    out = []
    for kind, own in (("moral", 1.0), ("economic", 1.0), ("grammatical", 0.0)):  # grammar readout ignores grammar
        v = own * items[kind] + 0.4 * items["moral"] * (kind != "moral") + cell_noise.to_numpy()
        out.append(items.assign(kind=kind, value=v, n_tokens=10))
    res = behavioural_ei(pd.concat(out, ignore_index=True), n_boot=200, control_tokens=False)
    gate = validity_gate(res, "cloze", [("moral", "economic"), ("moral", "grammatical")]).set_index("to_kind")
    assert bool(gate.loc["economic", "valid"]) and not bool(gate.loc["grammatical", "valid"])
    assert np.isfinite(gate.loc["economic", "p_holm"]) and np.isnan(gate.loc["grammatical", "p_holm"])


def test_level_means_flag_a_readout_that_ranks_none_above_gain():
    items = factorial()
    value = np.where(items["economic"] == 0, 0.6, np.where(items["economic"] > 0, 0.35, 0.0))
    table = items.assign(kind="economic", readout="cloze", value=value)
    lm = level_means(table, n_boot=50)
    own = lm[(lm.factor == "economic")]
    assert not own["monotone"].any()


def test_minimal_pair_logprob_separates_violation_from_moral_interaction():
    items = factorial()
    lp = -3.0 - 0.5 * (1 - items["grammatical"]) + 0.2 * items["moral"] * (1 - items["grammatical"])
    prompts = items.assign(sentence_logprob=lp)
    mp = minimal_pair_logprob(prompts, n_boot=100)
    assert mp["violation_effect"] == pytest.approx(-0.5)
    assert mp["moral_interaction"] == pytest.approx(0.4)  # full good − bad contrast of 2 × 0.2
    assert mp["valid"]


def test_variance_matched_null_matches_the_covariance():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    acts = rng.standard_normal((4000, 5)) @ A.T
    draws = variance_matched(acts, 20000, seed=1)
    assert np.allclose(np.cov(draws, rowvar=False), np.cov(acts, rowvar=False), atol=0.15 * np.abs(A @ A.T).max())


def test_p_value_resolution_reaches_one_percent_with_99_draws():
    p, res = p_value(10.0, np.linspace(0, 1, 99))
    assert p == pytest.approx(0.01) and res == pytest.approx(0.01)
    assert p_value(0.5, np.linspace(0, 1, 99))[0] == pytest.approx(50 / 100)


def test_shuffled_dom_keeps_frames_balanced_and_loses_the_signal():
    rng = np.random.default_rng(0)
    u = np.eye(10)[0]
    y = np.tile([1, -1], 100)
    frames = np.repeat(np.arange(20), 10)
    x = rng.standard_normal((200, 10)) + np.outer(y, u) * 2
    null = shuffled_dom(x, y, frames, 50, seed=0)
    cos = np.abs(null @ u) / np.linalg.norm(null, axis=1)
    assert np.median(cos) < 0.6  # the real DoM has cosine ≈ 1


def test_kept_is_after_over_before_with_paired_frames():
    items = factorial(10).assign(kind="moral", sentence_logprob=np.nan)
    before = items.assign(readout=2.0 * items["moral"])
    after = items.assign(readout=0.5 * items["moral"])
    k = kept(before, after, n_boot=100)["moral"]
    assert k.kept == pytest.approx(0.25) and k.ci_low == pytest.approx(0.25)


def test_cell_repair_on_a_planted_2x2():
    from entangle.prompts import Prompt

    prompts = [Prompt(f"i{m}{e}", "f", "economic", "economic.c1", "cloze", "t", 0, 1, m, e, 1)
               for m in (-1, 1) for e in (-1, 1)]
    m = np.array([p.moral for p in prompts], float)
    e = np.array([p.economic for p in prompts], float)
    before = e + 0.5 * m          # EI = 1 / 2
    after = np.stack([e + 0.25 * m, e + 0.5 * m])  # half repaired; not repaired
    rep = cell_repair(prompts, before, after, ["economic"], {"economic": 0.0})
    assert rep["repair"].tolist() == pytest.approx([0.5, 0.0])


def test_per_row_null_ablation_equals_ablating_each_direction(tiny):
    from entangle.engine import measure
    from entangle.hookpoints import all_layers
    from entangle.interventions import ablate
    from entangle.prompts import build_prompts, templates
    from entangle.stimuli import load_stimuli
    from entangle.studies.entanglement.nulls import readouts_per_direction

    tm = templates("cloze", ["economic"], 1)
    prompts = build_prompts(load_stimuli().subset(1).items[:6], tm, tiny.tokenizer)
    dirs = np.random.default_rng(0).standard_normal((3, tiny.info.d_model)).astype(np.float32)
    per_row = readouts_per_direction(tiny, prompts, tm, dirs, rows_per_pass=12)
    for i, d in enumerate(dirs):
        v = torch.from_numpy(d / np.linalg.norm(d))
        ref = measure(tiny, prompts, tm,
                      intervention=lambda v=v: ablate(tiny.bridge, {ly: v for ly in all_layers(tiny.info.n_layers)}))
        assert np.abs(per_row[i] - ref["readout"].to_numpy()).max() < 1e-4


def test_repair_and_nulls_run_end_to_end_on_the_tiny_model(tiny, tmp_path):
    """The stages after a passing positive control, on valid cells (forced here: a random model has none)."""
    from entangle.studies.entanglement.causal import Causal
    from entangle.studies.entanglement.pipeline import Experiment, RunConfig

    cfg = RunConfig(model=str(tiny.info.source), out=str(tmp_path / "run"), frames=6, n_boot=30, n_splits=2,
                    cache_dir=str(tmp_path / "cache"), progress=False, selection_frames=2, n_null=4, null_frames=2,
                    control_frames=2, kept_threshold=1e9, methods=("dom",), n_exact=1)
    ex = Experiment(cfg, model=tiny)
    ex.run_capture()
    ex.run_probes()
    ex.run_behavioural()
    cz = Causal(ex)
    cz.filters = Filters(max_loss_delta=1e9, min_other_kept=-1e9)  # a random model: open the filters too
    chosen = select(cz.screen(cz.candidates()))
    assert cz.positive_control(chosen)["passed"]  # threshold and filters forced open
    ex.metrics["entanglement"]["validity"]["cells"] = {"cloze.moral_to_economic": {"valid": True}}
    summary, valid = cz.repair(chosen)
    assert valid == ["economic"] and "moral_to_economic" in summary["cells"]
    cell = summary["cells"]["moral_to_economic"]
    assert len(cell["b_from_before_ci"]) == 2 and cell["b_from_before_ci"][0] <= cell["b_from_before"]
    nulls = cz.nulls(chosen, valid)
    for name in ("variance_matched", "shuffled_dom"):
        assert nulls[name]["n"] == 4 and nulls[name]["p_resolution"] == pytest.approx(0.2)
        assert 0.2 <= nulls[name]["p_value"] <= 1.0
    assert (tmp_path / "run" / "ablation_nulls.csv").exists()


def test_selection_frames_default_leaves_most_frames_held_out():
    frames = [f"f{i:02d}" for i in range(64)]
    sel, held = split_frames(frames, None)
    assert len(sel) == 16 and len(held) == 48 and not set(sel) & set(held)
    assert sel[0] == "f00" and sel[1] == "f04"  # every 4th frame, so every stimulus kind is selected on
    sel, held = split_frames(frames[:24], None)
    assert (len(sel), len(held)) == (6, 18)
    assert len(split_frames(frames[:24], 10)[0]) == 10  # an explicit number is kept
    assert len(split_frames(frames[:4], None)[0]) == 2  # never fewer than two selection frames


def test_removed_share_is_one_when_the_moral_difference_is_projected_out_and_zero_when_untouched():
    from entangle.studies.entanglement.amnesic import removed_share

    rng = np.random.default_rng(0)
    n_frames, per, d = 8, 6, 16
    frames = np.repeat([f"f{i}" for i in range(n_frames)], per)
    labels = np.tile([1, -1], n_frames * per // 2)
    u = np.eye(d)[0]
    before = rng.normal(size=(len(labels), 2, d)) * 0.1
    before[:, 1] += labels[:, None] * u  # layer 1 carries the moral difference along u; layer 0 carries none
    gone = before - np.einsum("nld,d->nl", before, u)[..., None] * u
    t = removed_share(before, gone, labels, frames, n_boot=200)
    assert t.loc[1, "removed_share"] > 0.9 and t.loc[1, "removed_ci_low"] > 0.8
    same = removed_share(before, before.copy(), labels, frames, n_boot=200)
    assert np.allclose(same["removed_share"], 0.0) and np.allclose(same["removed_ci_high"], 0.0)
