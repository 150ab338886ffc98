"""Secondary conditions of the causal test on a held-out subset: other kinds' directions (selectivity controls), a
rank-k moral subspace, LEACE fitted at the last token and applied there, weight orthogonalisation (checked equal to
the all-layer hook ablation), and steering along the moral direction as a sufficiency test with interventional
entanglement."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from entangle.analysis.stats import draw_counts, frame_bootstrap_indices, percentile_ci
from entangle.engine import array_hash, measure
from entangle.hookpoints import all_layers
from entangle.interventions import (
    fit_leace,
    leace,
    orthogonalize_weights,
    residual_scale,
    steer,
)
from entangle.studies.entanglement.effects import kept

if TYPE_CHECKING:
    from entangle.studies.entanglement.causal import Causal
    from entangle.studies.entanglement.selection import Screened

log = logging.getLogger("entangle")
SUBSPACE_K = 4
"""Rank of the moral-subspace control (the issue's rank-k option)."""


def control_conditions(cz: Causal, chosen: Screened) -> dict[str, Any]:
    """Effects kept under the grammatical and economic directions, the rank-k moral subspace, LEACE at the last token,
    and orthogonalised weights, on the first `control_frames` held-out frames; each with its loss change on neutral
    text."""
    cfg, model = cz.cfg, cz.model
    prompts = cz.prompts(cz.items(cz.held[: cfg.control_frames]))
    before = cz.ex.baseline(prompts)
    out: dict[str, Any] = {}
    rows = []
    for kind in ("economic", "grammatical"):
        vec = cz.control_direction(chosen, kind)
        after = cz.after(prompts, vec, f"{kind}-dom")
        out[f"{kind}_direction"] = _summary(kept(before, after, n_boot=cfg.n_boot, seed=cfg.seed), cz.loss_delta(vec))
        rows.append(after.assign(condition=f"{kind}_direction"))
    # rank-k moral subspace: does the judgement live in a few directions rather than one?
    basis = moral_subspace(cz, chosen, SUBSPACE_K)
    after = cz.after(prompts, basis, f"moral-subspace-k{len(basis)}")
    out["moral_subspace"] = {**_summary(kept(before, after, n_boot=cfg.n_boot, seed=cfg.seed), cz.loss_delta(basis)),
                             "rank": len(basis), "note": f"span of the top {len(basis)} singular vectors of the "
                             "per-frame good − bad differences at the chosen position and layer (selection frames), "
                             "projected out at every layer"}
    rows.append(after.assign(condition="moral_subspace"))
    # LEACE: fitted on the moral prompts' last-token activations (selection frames), applied at the last token only
    pr, acts = cz.ex.acts.prompts, cz.ex.acts
    sel = np.flatnonzero((pr["frame"].isin(cz.sel) & (pr["kind"] == "moral")).to_numpy())
    labels = pr["moral"].to_numpy()[sel] + 1
    erasers = {layer: fit_leace(acts.at("last", sel, layer), labels) for layer in all_layers(model.info.n_layers)}
    ctx = lambda: leace(model.bridge, erasers, positions=slice(-1, None))  # noqa: E731
    after = measure(model, prompts, cz.t1, batch_size=cfg.batch_size, intervention=ctx, shared=False,
                    cache_dir=cfg.cache_dir, intervention_key=f"leace-last:{array_hash(sel)}")
    texts = cz.ex.neutral_texts()
    from entangle.engine import text_loss  # noqa: PLC0415

    base = float(text_loss(model, texts).mean())
    out["leace_last_token"] = _summary(kept(before, after, n_boot=cfg.n_boot, seed=cfg.seed), None)
    out["leace_last_token"]["note"] = ("fitted on last-token activations of the moral prompts, applied at the last "
                                       "token of every prompt at every layer; neutral-text loss is unaffected by "
                                       "construction only at the positions it touches")
    rows.append(after.assign(condition="leace_last_token"))
    # weight orthogonalisation = the all-layer hook ablation (checked on the first frames' prompts)
    check = prompts[: min(len(prompts), 36)]
    try:
        ortho = orthogonalize_weights(model, torch.from_numpy(chosen.candidate.vector))
    except NotImplementedError as exc:  # an architecture whose residual writes are normalised (Gemma 3)
        out["orthogonalized_weights"] = {"skipped": str(exc).split(". Use")[0]}
    else:
        hooked = cz.after(check, chosen.candidate.vector, chosen.candidate.label)
        weights = measure(ortho, check, cz.t1, batch_size=cfg.batch_size)
        diff = float(np.nanmax(np.abs(weights["readout"].to_numpy() - hooked["readout"].to_numpy())))
        loss = float(text_loss(ortho, texts).mean()) - base
        out["orthogonalized_weights"] = {"max_abs_diff_vs_hooks": diff, "equal": diff <= 1e-3,
                                         "n_prompts": len(check), "loss_delta": loss}
        del ortho
    cz.ex.save_table("ablation_controls", pd.concat(rows, ignore_index=True))
    return out


def moral_subspace(cz: Causal, chosen: Screened, k: int) -> np.ndarray:
    """Orthonormal [k, d] basis of the moral subspace at the chosen position and layer: the top-k right singular
    vectors of the per-frame mean(good) − mean(bad) activation differences on the moral prompts (selection frames)."""
    pr, acts, c = cz.ex.acts.prompts, cz.ex.acts, chosen.candidate
    rows = cz.moral_rows(c.position)
    x = np.asarray(acts.at(c.position, rows, c.layer), dtype=np.float64)
    frame, good = pr["frame"].to_numpy()[rows], pr["moral"].to_numpy()[rows] > 0
    diffs = np.stack([x[(frame == f) & good].mean(0) - x[(frame == f) & ~good].mean(0) for f in cz.sel
                      if ((frame == f) & good).any() and ((frame == f) & ~good).any()])
    _, _, vt = np.linalg.svd(diffs, full_matrices=False)
    return vt[: min(k, len(vt))].astype(np.float32)


def _summary(k: dict, loss_delta: float | None) -> dict[str, Any]:
    return {**{f"{name}_kept": v.to_dict() for name, v in k.items()}, "loss_delta": loss_delta}


def steering(cz: Causal, chosen: Screened) -> dict[str, Any]:
    """±α·σ_ℓ·d at the chosen layer on morally neutral held-out items: does pushing the moral direction move the moral
    readout (sufficiency), and how far does it move the other kinds' readouts per unit of moral change?"""
    cfg, model, c = cz.cfg, cz.model, chosen.candidate
    items = cz.items(cz.held[: cfg.control_frames], moral=(0,))
    prompts = cz.prompts(items)
    base = cz.ex.baseline(prompts)
    pr = cz.ex.acts.prompts
    rows = np.flatnonzero((pr["kind"] == "moral").to_numpy())
    sigma = float(residual_scale(cz.ex.acts.at("last", rows[:512])[:, [c.layer]])[0])
    vec = torch.from_numpy(c.vector)
    frames = sorted({p.frame for p in prompts})
    counts = draw_counts(frame_bootstrap_indices(np.arange(len(frames)), cfg.n_boot, cfg.seed), len(frames))
    table, out = [], {"alphas": list(cfg.steer_alphas), "layer": c.layer, "sigma": sigma, "interventional_ei": {}}
    by_frame = {}
    for alpha in cfg.steer_alphas:
        ctx = lambda a=alpha: steer(model.bridge, {c.layer: vec}, a, {c.layer: sigma})  # noqa: E731
        after = measure(model, prompts, cz.t1, batch_size=cfg.batch_size, intervention=ctx, cache_dir=cfg.cache_dir,
                        intervention_key=f"steer:{c.layer}:{alpha}:{array_hash(c.vector)}")
        delta = after.assign(delta=after["readout"].to_numpy() - base["readout"].to_numpy())
        per = delta.groupby(["kind", "frame"])["delta"].mean().unstack("frame").reindex(columns=frames)
        by_frame[alpha] = per
        for kind in per.index:
            v = per.loc[kind].to_numpy(dtype=float)
            lo, hi = percentile_ci(counts @ v / len(frames))
            table.append({"alpha": alpha, "kind": kind, "delta": float(v.mean()), "ci_low": float(lo),
                          "ci_high": float(hi)})
    cz.ex.save_table("steering_moral", pd.DataFrame(table))
    # interventional entanglement: Δr_K / Δr_moral pooled over α (signed α, so both directions count)
    for kind in ("economic", "grammatical"):
        num = sum(np.sign(a) * by_frame[a].loc[kind].to_numpy(dtype=float) for a in cfg.steer_alphas)
        den = sum(np.sign(a) * by_frame[a].loc["moral"].to_numpy(dtype=float) for a in cfg.steer_alphas)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = (counts @ num) / (counts @ den)
        lo, hi = percentile_ci(draws)
        out["interventional_ei"][kind] = {"estimate": float(num.sum() / den.sum()), "ci_low": float(lo),
                                          "ci_high": float(hi), "numerator": float(num.mean()),
                                          "moral_change": float(den.mean())}
    moral = pd.DataFrame(table).query("kind == 'moral'").sort_values("alpha")
    out["moral_monotone"] = bool(np.all(np.diff(moral["delta"].to_numpy()) > 0))
    out["resampling_unit"] = "frame"
    return out
