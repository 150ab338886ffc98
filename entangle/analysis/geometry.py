"""Representational geometry per layer: cosines between kind directions, projections, and leakage of a factor."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from jaxtyping import Float

from entangle.analysis.stats import (
    draw_counts,
    frame_bootstrap_indices,
    frame_levels,
    percentile_ci,
)
from entangle.schema import FACTORS, GOOD_BAD, KINDS, RESAMPLING_UNIT

# ----------------------------------------------------------------------------------------------------------
# representational metrics
# ----------------------------------------------------------------------------------------------------------


def _unit_rows(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return d / norm


def cosine_by_layer(
    directions: Mapping[str, Float[np.ndarray, "layer d"]], *, layers: Sequence[int] | None = None
) -> pd.DataFrame:
    """Cosine between every pair of kind directions at each layer: do the kinds share a direction?"""
    names = list(directions)
    arrs = {k: _unit_rows(directions[k]) for k in names}
    n_layers = {a.shape[0] for a in arrs.values()}
    if len(n_layers) != 1:
        raise ValueError(f"directions have different numbers of layers: { {k: a.shape for k, a in arrs.items()} }")
    n = n_layers.pop()
    layers = list(range(n)) if layers is None else list(layers)
    if len(layers) != n:
        raise ValueError(f"{len(layers)} layer numbers for {n} direction rows")
    rows = []
    for a, b in combinations(names, 2):
        cos = np.sum(arrs[a] * arrs[b], axis=1)
        for li, layer in enumerate(layers):
            rows.append({"layer": int(layer), "kind_a": a, "kind_b": b, "cosine": float(cos[li])})
    return pd.DataFrame(rows, columns=["layer", "kind_a", "kind_b", "cosine"])


def project(
    acts: Float[np.ndarray, "n layer d"],
    directions: Float[np.ndarray, "n_sel d"],
    layers: Sequence[int],
    rows: np.ndarray | None = None,
) -> Float[np.ndarray, "n n_sel"]:
    """Projections x·d per selected layer, reading one layer at a time (memmap-friendly)."""
    d = np.asarray(directions, dtype=np.float64)
    n = acts.shape[0] if rows is None else len(rows)
    out = np.empty((n, len(layers)), dtype=np.float64)
    for li, layer in enumerate(layers):
        x = acts[:, layer, :] if rows is None else acts[rows, layer, :]
        out[:, li] = np.asarray(x, dtype=np.float64) @ d[li]
    return out


def leakage(
    acts: Float[np.ndarray, "n layer d"],
    factors: pd.DataFrame,
    directions: Mapping[str, Float[np.ndarray, "n_sel d"]],
    to_kind: str,
    *,
    from_factor: str = "moral",
    n_boot: int = 1000,
    seed: int = 0,
    layers: Sequence[int] | None = None,
) -> pd.DataFrame:
    """L(f→K, ℓ): projection gap onto d_K between f-good and f-bad items (K's factor fixed) / gap K's own factor makes.

    Numerator: within each level of K's own factor, mean projection of f-good minus f-bad items, averaged over
    those levels. Denominator: within each level of f, mean projection of K-good minus K-bad items, averaged
    over f's levels. `acts` are the activations of K's own judgement prompts, rows aligned with `factors`.
    """
    if to_kind not in KINDS or from_factor not in FACTORS:
        raise ValueError(f"unknown kind {to_kind!r} or factor {from_factor!r}")
    if from_factor == to_kind:
        raise ValueError("leakage of a kind's own factor into its own direction is 1 by definition")
    missing = [c for c in (from_factor, to_kind, "frame") if c not in factors.columns]
    if missing:
        raise ValueError(f"factors table lacks column(s) {missing}")
    if len(factors) != acts.shape[0]:
        raise ValueError(f"{len(factors)} factor rows for {acts.shape[0]} activation rows")
    dk = np.asarray(directions[to_kind])
    layers = list(range(dk.shape[0])) if layers is None else list(layers)
    if len(layers) != dk.shape[0]:
        raise ValueError(f"{len(layers)} layer numbers for {dk.shape[0]} direction rows")
    proj = project(acts, _unit_rows(dk), layers)  # [n, L]

    levels = frame_levels(factors["frame"].to_numpy())
    fc = np.searchsorted(levels, factors["frame"].to_numpy())
    nfr = len(levels)
    src = factors[from_factor].to_numpy()
    own = factors[to_kind].to_numpy()
    sg, sb = GOOD_BAD[from_factor]
    og, ob = GOOD_BAD[to_kind]

    def cell_sums(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame sums of projections [n_frames, L] and counts [n_frames] over rows in mask."""
        s = np.zeros((nfr, proj.shape[1]))
        np.add.at(s, fc[mask], proj[mask])
        return s, np.bincount(fc[mask], minlength=nfr).astype(np.float64)

    def contrast(split_vals, split_levels, hi_mask, lo_mask, w):
        """Mean over split levels of (mean proj hi − mean proj lo), for frame weights w [B, n_frames]."""
        diffs = []
        for lv in split_levels:
            at = split_vals == lv
            sh, ch = cell_sums(at & hi_mask)
            sl, cl = cell_sums(at & lo_mask)
            if ch.sum() == 0 or cl.sum() == 0:
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                diffs.append((w @ sh) / (w @ ch)[:, None] - (w @ sl) / (w @ cl)[:, None])
        if not diffs:
            raise ValueError("no level has both good and bad items: leakage is undefined")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.stack(diffs), axis=0)

    own_levels = np.unique(own)
    src_levels = np.unique(src)
    ones = np.ones((1, nfr))
    w = np.vstack([ones, draw_counts(frame_bootstrap_indices(levels, n_boot, seed), nfr)])
    num = contrast(own, own_levels, src == sg, src == sb, w)  # [1+B, L]
    den = contrast(src, src_levels, own == og, own == ob, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = num / den
    lo, hi = percentile_ci(ratio[1:])
    return pd.DataFrame(
        {
            "layer": layers,
            "from_factor": from_factor,
            "to_kind": to_kind,
            "leakage": ratio[0],
            "ci_low": lo,
            "ci_high": hi,
            "numerator": num[0],
            "denominator": den[0],
            "n_items": len(factors),
            "n_frames": nfr,
            "resampling_unit": RESAMPLING_UNIT,
        }
    )
