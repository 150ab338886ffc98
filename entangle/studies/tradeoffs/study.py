"""The trade-offs study (MVA, arXiv 2511.17579, in activation space): value subspaces and their interference per
layer, decorrelated directions, multi-value steering over convex, box and extrapolated grids, Pareto sets and
hypervolume against the unsteered model.

    >>> from entangle.studies.base import StudyContext
    >>> from entangle.studies.tradeoffs import Config, run
    >>> result = run(StudyContext(model, RunFolder("runs/t"), Path(".cache")), Config())   # doctest: +SKIP
    >>> result.save(ctx.folder)                                                            # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict

import numpy as np
import pandas as pd

from entangle.analysis.decorrelate import decorrelate, weight_hsic
from entangle.analysis.subspaces import cosine, interference
from entangle.directions import (
    Direction,
    direction_meta,
    load_direction,
    save_direction,
)
from entangle.engine import text_activations
from entangle.files import InputError, clean_json
from entangle.interventions import residual_scale
from entangle.studies.base import StudyContext, StudyResult
from entangle.studies.tradeoffs.config import (
    NAME,
    Config,
    grids,
    load_neutral,
    load_value_texts,
    method_points,
)
from entangle.studies.tradeoffs.evaluate import (
    Scores,
    ablate_intervention,
    score,
    steer_intervention,
    steering_vector,
    vector_key,
)
from entangle.studies.tradeoffs.frontier import Point, analyse, compare, cross_effects

log = logging.getLogger("entangle")


def _moral_direction(cfg: Config, raw: dict[str, np.ndarray], d_model: int
                     ) -> tuple[np.ndarray | None, str, int]:
    """The direction ablated for the ω_moral = 0 point and its layer: a direction file's row at the steering layer
    (or its only row, at that row's layer: the entanglement study's `moral_causal`), else the DoM moral direction
    when "moral" is one of the values, else none."""
    if cfg.moral_direction:
        direction = load_direction(cfg.moral_direction)
        layers = [int(x) for x in direction.layers]
        layer = cfg.layer if cfg.layer in layers else layers[0] if len(layers) == 1 else None
        if layer is None:
            raise InputError(cfg.moral_direction, None, "layers", f"no row for the steering layer {cfg.layer} "
                             f"(has {layers})")
        vec = np.asarray(direction.vectors[layers.index(layer)], dtype=np.float64)
        if vec.shape != (d_model,):
            raise InputError(cfg.moral_direction, None, "vectors", f"width {vec.shape} != d_model {d_model}")
        return vec, f"{cfg.moral_direction} (layer {layer})", layer
    if "moral" in raw:
        return raw["moral"], "DoM of the moral pairs (this study)", cfg.layer
    return None, "none", cfg.layer


def run(ctx: StudyContext, cfg: Config | None = None) -> StudyResult:
    """Run the study on `ctx.model`; tables `tradeoffs/*` and the metrics.json key `tradeoffs`."""
    cfg = (cfg or Config()).check()
    t0 = time.perf_counter()
    model = ctx.model
    n_res = model.info.n_layers + 1
    if not 0 <= cfg.layer < n_res:
        raise InputError(None, None, "layer", f"must be in 0..{n_res - 1}")
    texts = {v: load_value_texts(v, cfg.n_train, cfg.n_heldout, cfg.values_dir) for v in cfg.values}
    neutral = load_neutral(cfg.n_neutral, cfg.neutral_path)
    frontier = cfg.frontier_values
    layers = sorted(set(range(0, n_res, cfg.interference_every)) | {cfg.layer})

    # 1. activations of the training pairs, value subspaces and their interference per layer
    batch = [t for v in cfg.values for t in texts[v].train_expressing + texts[v].train_rejecting]
    acts = text_activations(model, batch, layers=layers, batch_size=ctx.batch_size)
    expr, rej, at = {}, {}, 0
    for v in cfg.values:
        n = len(texts[v].train_expressing)
        expr[v], rej[v] = acts[at:at + n], acts[at + n:at + 2 * n]
        at += 2 * n
    li = layers.index(cfg.layer)
    sigma = float(residual_scale(acts)[li])
    inter = interference(expr, rej, layers, k=cfg.k, n_boot=cfg.interference_boot, seed=ctx.seed)
    log.info("tradeoffs: interference over %d layers (%.0f s)", len(layers), time.perf_counter() - t0)

    # 2. directions at the steering layer, per decorrelation method
    train = {v: (expr[v][:, li].astype(np.float64), rej[v][:, li].astype(np.float64)) for v in cfg.values}
    dirs = {m: decorrelate(m, train, order=cfg.gs_order, lam=cfg.hsic_lambda, sigma=cfg.hsic_sigma, seed=ctx.seed)
            for m in cfg.methods}
    drows = []
    for m, dm in dirs.items():
        for a in cfg.values:
            drows.append({"method": m, "value": a, "cos_raw": cosine(dm[a], dirs["none"][a]),
                          **{f"cos_{b}": cosine(dm[a], dm[b]) for b in cfg.values},
                          "weight_hsic": weight_hsic(np.stack([dm[v] for v in cfg.values]), cfg.hsic_sigma)})
    directions = pd.DataFrame(drows)

    # 3. the model under each setting: unsteered, single directions (all values read), the frontier grids
    def run_vector(vec: np.ndarray, values: tuple[str, ...]) -> Scores:
        return score(model, texts, neutral, values, intervention=steer_intervention(model, cfg.layer, vec),
                     key=vector_key(cfg.layer, vec), cache_dir=ctx.cache_dir, batch_size=ctx.batch_size)

    base = run_vector(np.zeros(model.info.d_model), cfg.values)
    # raw directions: every value read (cross-effects); decorrelated ones: the frontier and the steered value
    singles = {(m, v): run_vector(steering_vector(dirs[m], {v: 1.0}, cfg.alpha, sigma),
                                  cfg.values if m == "none" else tuple(dict.fromkeys([*frontier, v])))
               for m in cfg.methods for v in cfg.values}
    effects = cross_effects(cfg.values, base, singles, cfg.n_boot, ctx.seed + 1)
    _export(ctx, cfg, texts, dirs, sigma, effects)
    points = [Point("unsteered", tuple([0.0] * len(frontier)), base)]
    for m in cfg.methods:
        for omega in method_points(cfg, m):
            w = dict(zip(frontier, omega, strict=True))
            nonzero = [v for v, x in w.items() if x]
            if len(nonzero) == 1 and w[nonzero[0]] == 1.0:
                sc = singles[(m, nonzero[0])]
            else:
                sc = run_vector(steering_vector(dirs[m], w, cfg.alpha, sigma), frontier)
            points.append(Point(m, omega, sc))
        log.info("tradeoffs: %s grid done (%.0f s)", m, time.perf_counter() - t0)
    moral_vec, moral_source, moral_layer = _moral_direction(cfg, dirs["none"], model.info.d_model)
    ablation = None
    if moral_vec is not None:
        ablation = score(model, texts, neutral, frontier,
                         intervention=ablate_intervention(model, moral_layer, moral_vec),
                         key=f"ablate@{moral_layer}:{vector_key(moral_layer, moral_vec)}", cache_dir=ctx.cache_dir,
                         batch_size=ctx.batch_size)
        points.append(Point("moral_ablation", tuple([0.0] * len(frontier)), ablation))

    # 4. Pareto sets and hypervolumes, with paired comparisons
    gb = grids(cfg)
    steer_points = [p for p in points if p.method != "moral_ablation"]
    ptable, hv_table, hv = analyse(steer_points, frontier, gb, list(cfg.methods), cfg.fluency_budget, cfg.n_boot,
                                   ctx.seed + 2)
    if ablation is not None:
        abl, _, _ = analyse([points[0], points[-1]], frontier, {}, [], cfg.fluency_budget, cfg.n_boot, ctx.seed + 2)
        ptable = pd.concat([ptable, abl.iloc[1:].assign(method="moral_ablation", grids="")], ignore_index=True)
    comparisons = compare(hv, list(cfg.methods), list(gb))
    seconds = time.perf_counter() - t0
    metrics = _metrics(cfg, sigma, inter, directions, effects, hv_table, comparisons, moral_source, seconds)
    tables = {f"{NAME}/interference": inter, f"{NAME}/directions": directions, f"{NAME}/cross_effects": effects,
              f"{NAME}/points": ptable, f"{NAME}/hypervolume": hv_table, f"{NAME}/comparisons": comparisons}
    return StudyResult(NAME, {NAME: clean_json(metrics)}, tables, seconds)


def _export(ctx: StudyContext, cfg: Config, texts: dict, dirs: dict[str, dict[str, np.ndarray]], sigma: float,
            effects: pd.DataFrame) -> None:
    """directions/tradeoffs_<method>_<value>.safetensors: every method's unit direction at the steering layer, with
    its α calibration (vector = ω·α·σ·d) and own-value effect at ω = 1 in the metadata."""
    own = effects[effects["own"]].set_index(["method", "steered"])
    for m, dm in dirs.items():
        for v, d in dm.items():
            sha = hashlib.sha256("\x00".join(texts[v].train_expressing + texts[v].train_rejecting).encode()).hexdigest()
            calib = {"vector": "omega * alpha * sigma * unit direction, added at the residual layer (all positions)",
                     "alpha": cfg.alpha, "sigma": sigma, "llamacpp_scale_per_alpha": sigma}
            meta = direction_meta(ctx.model.info, kind=v, method=f"tradeoffs_{m}", layers=[cfg.layer],
                                  position="mean", stimuli_sha256=sha,
                                  cv_metrics={"own_effect_at_omega_1": [float(own.loc[(m, v), "estimate"])]},
                                  extra={"alpha_calibration": calib, "study": NAME, "decorrelation": m})
            save_direction(Direction(d[None, :], [cfg.layer], v, f"tradeoffs_{m}", meta),
                           ctx.folder.path / "directions" / f"tradeoffs_{m}_{v}.safetensors")


def _metrics(cfg: Config, sigma: float, inter: pd.DataFrame, directions: pd.DataFrame, effects: pd.DataFrame,
             hv_table: pd.DataFrame, comparisons: pd.DataFrame, moral_source: str, seconds: float) -> dict:
    """The headline block of metrics.json: settings, positive controls, interference at the steering layer,
    own-value efficacy per method, hypervolumes and the paired comparisons."""
    own = effects[effects["own"]]
    controls = {r.steered: {"delta": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high, "passes": bool(r.ci_low > 0)}
                for r in own[own["method"] == "none"].itertuples()}
    raw_own = {r.steered: r.estimate for r in own[own["method"] == "none"].itertuples()}
    efficacy = {m: {r.steered: {"delta": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high,
                                "ratio_to_raw": r.estimate / raw_own[r.steered] if raw_own[r.steered] else None,
                                "raw_delta": raw_own[r.steered]}
                    for r in own[own["method"] == m].itertuples()} for m in cfg.methods}
    at = inter[inter["layer"] == cfg.layer]
    pairs = {f"{r.value_a}|{r.value_b}": {} for r in at.itertuples()}
    for r in at.itertuples():
        pairs[f"{r.value_a}|{r.value_b}"][r.measure] = {"estimate": r.estimate, "ci_low": r.ci_low,
                                                        "ci_high": r.ci_high}
    cross = {f"{r.method}|{r.steered}->{r.readout}": {"delta": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high}
             for r in effects[~effects["own"]].itertuples()}
    return {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "frontier": list(cfg.frontier_values), "layer": cfg.layer, "alpha": cfg.alpha, "sigma": sigma,
        "readout": "NLL(rejecting) - NLL(expressing), nats/token, mean over held-out pairs",
        "resampling_unit": "held-out contrast pairs (per value) and neutral texts; training pairs for interference",
        "n_boot": cfg.n_boot, "positive_control": controls,
        "positive_control_passes": all(c["passes"] for c in controls.values()),
        "interference_at_layer": pairs, "efficacy": efficacy, "cross_effects": cross,
        "directions": directions.to_dict(orient="records"),
        "hypervolume": hv_table.to_dict(orient="records"), "comparisons": comparisons.to_dict(orient="records"),
        "moral_ablation_direction": moral_source, "seconds": seconds,
    }
