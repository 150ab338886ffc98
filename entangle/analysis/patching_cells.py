"""Cells of an activation-patching run: frame-bootstrapped restored fractions, and attribution checked against exact.

Used by `entangle.interventions.patching` (which computes the per-pair values) and by the studies that report them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from entangle.analysis.stats import (
    draw_counts,
    frame_bootstrap_indices,
    frame_levels,
    percentile_ci,
)
from entangle.schema import RESAMPLING_UNIT

if TYPE_CHECKING:
    from entangle.interventions.patching import PatchingResult


def cell_table(per_pair: pd.DataFrame, method: str, excluded: dict[tuple[str, str], int] | None = None, *,
               n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per layer × group × readout: mean Δ and restored fraction Σ Δ / Σ (r_good − r_bad), frame-bootstrap intervals."""
    rows = []
    for (layer, group, readout), df in per_pair.groupby(["layer", "group", "readout"], sort=False):
        levels = frame_levels(df["frame"])
        codes = np.searchsorted(levels, df["frame"].to_numpy())
        sums = {c: np.bincount(codes, weights=df[c].to_numpy(np.float64), minlength=len(levels))
                for c in ("delta", "effect")}
        n_f = np.bincount(codes, minlength=len(levels)).astype(np.float64)
        if len(levels) >= 2:
            w = draw_counts(frame_bootstrap_indices(levels, n_boot, seed), len(levels))
            with np.errstate(invalid="ignore", divide="ignore"):
                d_lo, d_hi = percentile_ci(w @ sums["delta"] / (w @ n_f))
                f_lo, f_hi = percentile_ci(w @ sums["delta"] / (w @ sums["effect"]))
        else:
            d_lo = d_hi = f_lo = f_hi = np.nan
        effect = sums["effect"].sum()
        rows.append({"layer": int(layer), "group": group, "readout": readout, "template": df["template"].iloc[0],
                     "method": method, "n_pairs": len(df), "n_frames": len(levels),
                     "n_excluded": (excluded or {}).get((group, readout), 0),
                     "effect": effect / len(df), "delta": sums["delta"].sum() / len(df),
                     "delta_ci_low": float(d_lo), "delta_ci_high": float(d_hi),
                     "restored": sums["delta"].sum() / effect if effect != 0 else np.nan,
                     "restored_ci_low": float(f_lo), "restored_ci_high": float(f_hi),
                     "resampling_unit": RESAMPLING_UNIT})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class AttributionCheck:
    """How well attribution patching reproduced exact patching on the same pairs, layers, groups and readouts."""

    n_cells: int
    spearman: float
    pearson: float
    sign_agreement: float  # over the n_signed cells whose exact |Δ| is >= 1% of the largest (others are ~0)
    n_signed: int
    cells: pd.DataFrame  # layer, group, readout, exact, attribution (mean Δ over the common pairs)

    def to_dict(self) -> dict[str, Any]:
        return {"n_cells": self.n_cells, "spearman": self.spearman, "pearson": self.pearson,
                "sign_agreement": self.sign_agreement, "n_signed": self.n_signed,
                "cell_value": "mean delta over the pairs both methods ran",
                "signed_cells": "exact |delta| >= 1% of the largest exact |delta|"}


def compare_attribution(exact: PatchingResult, attribution: PatchingResult) -> AttributionCheck:
    """Spearman and Pearson correlation of the cell mean Δ over the pairs both methods ran, and the share of cells
    with a clearly non-zero exact Δ whose sign attribution gets right."""
    key = ["pair", "layer", "group", "readout"]
    both = exact.pairs[[*key, "delta"]].merge(attribution.pairs[[*key, "delta"]], on=key,
                                              suffixes=("_exact", "_attribution"))
    if both.empty:
        raise ValueError("the two results share no pair × layer × group × readout")
    cells = (both.groupby(["layer", "group", "readout"], sort=False)[["delta_exact", "delta_attribution"]].mean()
             .reset_index().rename(columns={"delta_exact": "exact", "delta_attribution": "attribution"}))
    x, y = cells["exact"].to_numpy(), cells["attribution"].to_numpy()
    signed = np.abs(x) >= 0.01 * np.abs(x).max()
    enough = len(cells) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0
    return AttributionCheck(
        n_cells=len(cells),
        spearman=float(sps.spearmanr(x, y).statistic) if enough else float("nan"),
        pearson=float(sps.pearsonr(x, y).statistic) if enough else float("nan"),
        sign_agreement=float(np.mean(np.sign(x[signed]) == np.sign(y[signed]))) if signed.any() else float("nan"),
        n_signed=int(signed.sum()),
        cells=cells,
    )
