"""The amnesic check of the chosen moral direction: once it is projected out at every layer, how much of the moral
good − bad difference is left in the residual stream, layer by layer, and can a fresh linear probe still read it?

A direction whose ablation removes the moral *judgement* may still leave moral value decodable elsewhere (the
judgement reads one direction, the representation spans more); both numbers are reported for the chosen direction
on held-out frames, with frame-bootstrap intervals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from jaxtyping import Float, Int

from entangle.analysis.probing import fit_probes
from entangle.analysis.stats import draw_counts, frame_bootstrap_indices, frame_levels, percentile_ci
from entangle.engine import Runner, array_hash
from entangle.engine.cache import cached_arrays
from entangle.engine.tokens import group_batches
from entangle.schema import RESAMPLING_UNIT
from entangle.studies.entanglement.selection import Screened, ablation_of

if TYPE_CHECKING:
    from entangle.studies.entanglement.causal import Causal


def removed_share(before: Float[np.ndarray, "n layer d"], after: Float[np.ndarray, "n layer d"],
                  labels: Int[np.ndarray, " n"], frames: np.ndarray, *, n_boot: int = 1000, seed: int = 0
                  ) -> pd.DataFrame:
    """Per layer, 1 − ‖Δμ_after‖ / ‖Δμ_before‖ with Δμ = mean(good) − mean(bad) activation, and its percentile
    interval from a bootstrap over frames (the same draws before and after). 1 = the whole moral difference is gone."""
    levels = frame_levels(frames)
    codes = np.searchsorted(levels, frames)
    counts = draw_counts(frame_bootstrap_indices(levels, n_boot, seed), len(levels))
    weights = np.vstack([np.ones(len(levels)), counts])  # row 0: the full sample
    rows = []
    for layer in range(before.shape[1]):
        norms = []
        for acts in (before, after):
            diff = 0.0
            for sign in (1, -1):
                m = labels == sign
                sums = np.zeros((len(levels), acts.shape[2]))
                np.add.at(sums, codes[m], acts[m, layer].astype(np.float64))
                n = np.bincount(codes[m], minlength=len(levels)).astype(np.float64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    diff = diff + sign * (weights @ sums) / (weights @ n)[:, None]
            norms.append(np.linalg.norm(diff, axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            share = 1.0 - norms[1] / norms[0]
        lo, hi = percentile_ci(share[1:])
        rows.append({"layer": layer, "removed_share": float(share[0]), "removed_ci_low": float(lo),
                     "removed_ci_high": float(hi)})
    return pd.DataFrame(rows)


def amnesic_check(cz: Causal, chosen: Screened) -> dict[str, Any]:
    """Last-token activations of the moral prompts on the control frames (held out), without (read from the capture
    cache) and with the chosen direction projected out at every layer (one shared-prefix pass, cached): the share of
    the good − bad difference removed per layer, and frame-grouped CV logistic-probe accuracy before and after.
    Writes `amnesic.csv`; returns the summary for metrics.json."""
    cfg, model, c = cz.cfg, cz.model, chosen.candidate
    frames = cz.held[: max(2, cfg.control_frames)]
    prompts = cz.prompts(cz.items(frames, moral=(-1, 1)), ("moral",))
    labels = np.array([p.moral for p in prompts])
    groups = np.array([p.frame for p in prompts])
    pr = cz.ex.acts.prompts
    row_of = {key: i for i, key in enumerate(zip(pr["item_id"], pr["template_id"], strict=True))}
    before = cz.ex.acts.at("last", np.array([row_of[(p.item_id, p.template_id)] for p in prompts]))

    def ablated() -> dict[str, np.ndarray]:
        runner = Runner(model, prompts, cz.t1)
        acts = np.empty(before.shape, dtype=np.float32)
        with ablation_of(model, c.vector)():
            for idx in group_batches(runner.encoded, cfg.batch_size):
                acts[idx] = runner.run(idx, positions=("last",)).acts["last"]
        return {"acts": acts}

    parts = {"what": "amnesic", "prompts": [p.text + "\x01" + p.template_id for p in prompts],
             "direction": array_hash(c.vector)}
    after = cached_arrays(cfg.cache_dir, model.info, parts, ablated)["acts"]
    table = removed_share(before, after, labels, groups, n_boot=cfg.n_boot, seed=cfg.seed)
    n_splits = min(5, len(frames))
    for tag, acts in (("before", before), ("after", after)):
        p = fit_probes(acts, labels, groups, "moral", method="logistic", n_splits=n_splits, n_boot=cfg.n_boot,
                       seed=cfg.seed)
        table[f"accuracy_{tag}"], table[f"accuracy_{tag}_ci_low"] = p.accuracy, p.acc_ci_low
        table[f"accuracy_{tag}_ci_high"] = p.acc_ci_high
    table["resampling_unit"] = RESAMPLING_UNIT
    cz.ex.save_table("amnesic", table)
    at = table.set_index("layer").loc[c.layer]
    best_after = table.loc[table["accuracy_after"].idxmax()]
    return {"position": "last", "probe": "logistic", "n_prompts": len(prompts), "n_frames": len(frames),
            "layer": int(c.layer), "removed_share": float(at["removed_share"]),
            "removed_ci": [float(at["removed_ci_low"]), float(at["removed_ci_high"])],
            "accuracy_before": float(at["accuracy_before"]), "accuracy_after": float(at["accuracy_after"]),
            "accuracy_after_ci": [float(at["accuracy_after_ci_low"]), float(at["accuracy_after_ci_high"])],
            "best_layer_after": int(best_after["layer"]), "best_accuracy_after": float(best_after["accuracy_after"]),
            "best_accuracy_after_ci": [float(best_after["accuracy_after_ci_low"]),
                                       float(best_after["accuracy_after_ci_high"])],
            "file": "amnesic.csv", "resampling_unit": RESAMPLING_UNIT}
