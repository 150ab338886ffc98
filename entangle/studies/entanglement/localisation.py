"""Where moral value enters each judgement: activation patching between good/bad minimal pairs (attribution over
the full layer × position-group map, exact patching on a subset to check it), and the embedding-level probe."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd

from entangle.analysis.embedding import embedding_probe
from entangle.analysis.patching_cells import compare_attribution
from entangle.interventions.patching import (
    attribution_patching,
    exact_patching,
    minimal_pairs,
)

if TYPE_CHECKING:
    from entangle.studies.entanglement.pipeline import Experiment

log = logging.getLogger("entangle")


def patching(ex: Experiment, frames: list[str]) -> dict[str, Any]:
    """Attribution patching on the pairs of `frames` (every `patch_layer_step`-th layer), exact patching on the
    first `patch_exact_pairs` pairs at every other of those layers; both cell tables go to patching.csv."""
    cfg = ex.cfg
    keep = set(frames)
    pairs = minimal_pairs([it for it in ex.stimuli.items if it.frame in keep])
    layers = list(range(0, ex.model.info.n_layers + 1, cfg.patch_layer_step))
    approx = attribution_patching(ex.model, pairs, layers=layers, n_boot=cfg.n_boot, seed=cfg.seed)
    first: dict[str, object] = {}
    for pair in pairs:  # the first pair of each frame, so the exact cells span several frames
        first.setdefault(pair.frame, pair)
    one_per_frame = list(first.values())
    exact = exact_patching(ex.model, one_per_frame[: cfg.patch_exact_pairs], layers=layers[::2], n_boot=cfg.n_boot,
                           seed=cfg.seed, batch_size=cfg.batch_size)
    check = compare_attribution(exact, approx)
    table = pd.concat([approx.table, exact.table], ignore_index=True)
    ex.save_table("patching", table)
    main = {"exact": _strongest(exact.table), "attribution": _strongest(approx.table)}
    log.info("patching: attribution %.0f s, exact %.0f s, Spearman %.2f", approx.seconds, exact.seconds, check.spearman)
    return {**approx.metrics(), "file": "patching.csv", "exact": exact.metrics(),
            "exact_vs_attribution": check.to_dict(), "strongest": main}


def _strongest(table: pd.DataFrame) -> dict[str, Any]:
    """Per readout, among cells with a non-zero good − bad effect, the layer × group cell (other than the last token)
    whose patch restores most of the difference."""
    out = {}
    for readout, sub in table.groupby("readout"):
        sub = sub[(sub["group"] != "last") & (sub["effect"].abs() > 1e-6)].dropna(subset=["restored"])
        if sub.empty:
            continue
        row = sub.loc[sub["restored"].idxmax()]
        out[readout] = {"layer": int(row["layer"]), "group": row["group"], "restored": float(row["restored"]),
                        "effect": float(row["effect"])}
    return out


def embedding_level(ex: Experiment) -> dict[str, Any]:
    """Is moral good vs bad readable from the input embeddings alone (mean over the sentence and the act span)?"""
    res = embedding_probe(ex.model, ex.stimuli.items, n_boot=ex.cfg.n_boot, seed=ex.cfg.seed)
    ex.save_table("embedding", res.table)
    return res.metrics()
