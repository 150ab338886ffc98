"""Secondary conditions of the causal test on a held-out subset: other kinds' directions (selectivity controls), a
rank-k moral subspace, LEACE fitted per position group and applied where it was fitted, weight orthogonalisation
(checked equal to the all-layer hook ablation), and steering along the moral direction as a sufficiency test with
interventional entanglement."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from entangle.analysis.stats import draw_counts, frame_bootstrap_indices, percentile_ci
from entangle.engine import array_hash, measure, text_loss
from entangle.engine.measure import prompts_hash
from entangle.interventions import (
    GroupErasers,
    fit_group_leace,
    group_leace,
    orthogonalize_weights,
    residual_scale,
    steer,
)
from entangle.interventions.leace_groups import LEACE_GROUPS
from entangle.studies.entanglement.effects import kept

if TYPE_CHECKING:
    from entangle.studies.entanglement.causal import Causal
    from entangle.studies.entanglement.selection import Screened

log = logging.getLogger("entangle")
SUBSPACE_K = 4
"""Rank of the moral-subspace control (the issue's rank-k option)."""


def control_conditions(cz: Causal, chosen: Screened) -> dict[str, Any]:
    """Effects kept under the grammatical and economic directions, the rank-k moral subspace, LEACE per position group,
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
    # LEACE per position group: fitted on the selection frames' tokens of each group, applied to the same group
    texts = cz.ex.neutral_texts()
    base = float(text_loss(model, texts, batch_size=cfg.batch_size, cache_dir=cfg.cache_dir).mean())
    out["leace_groups"], after = _leace_groups(cz, prompts, before, texts, base)
    rows.append(after.assign(condition="leace_groups"))
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


def _leace_groups(cz: Causal, prompts: list, before: pd.DataFrame, texts: list[str], base: float
                  ) -> tuple[dict[str, Any], pd.DataFrame]:
    """LEACE of the moral level, one eraser per (hook point, position group) fitted on the selection frames' prompts
    and applied to that group's tokens on the held-out prompts; fitted only when its readouts are not cached."""
    cfg, model = cz.cfg, cz.model
    fit_prompts = cz.prompts(cz.items(cz.sel))
    key = f"leace-groups:{prompts_hash(fit_prompts)[:16]}"
    fitted: dict[str, GroupErasers] = {}

    def ctx() -> Any:
        if "erasers" not in fitted:
            fitted["erasers"] = fit_group_leace(model, fit_prompts, cz.t1, [p.moral for p in fit_prompts],
                                                batch_size=cfg.batch_size)
        return group_leace(model.bridge, fitted["erasers"])

    after = measure(model, prompts, cz.t1, batch_size=cfg.batch_size, intervention=ctx, cache_dir=cfg.cache_dir,
                    intervention_key=key, progress=cfg.progress, desc="LEACE per group")
    loss = float(text_loss(model, texts, batch_size=cfg.batch_size, intervention=ctx, cache_dir=cfg.cache_dir,
                           intervention_key=key).mean()) - base
    out = _summary(kept(before, after, n_boot=cfg.n_boot, seed=cfg.seed), loss)
    out["groups"] = {g: list(parts) for g, parts in LEACE_GROUPS.items()}
    out["note"] = (f"moral level (3 classes) erased by one LEACE eraser per hook point (embedding, each block's "
                   f"mid and output) and position group, fitted on {len(fit_prompts)} prompts of the selection "
                   "frames and applied only to that group's tokens; BOS and tokens before the sentence untouched; "
                   "loss_delta applies the sentence group's eraser to every token of the neutral texts")
    return out, after


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
