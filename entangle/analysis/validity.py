"""Readouts are used only where they respond to their own factor: the validity gate, Holm control, level means,
monotonicity, and the log-prob grammaticality readout as a minimal-pair difference (DESIGN.md §5)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from entangle.analysis.entanglement import EIResult, effect_code
from entangle.analysis.stats import (
    draw_counts,
    frame_bootstrap_indices,
    frame_levels,
    percentile_ci,
)
from entangle.schema import FACTOR_LEVELS, KINDS, RESAMPLING_UNIT

ALPHA = 0.05


def validity_gate(ei: EIResult, readout: str, cells: Sequence[tuple[str, str]], alpha: float = ALPHA) -> pd.DataFrame:
    """One row per cell (from → to): valid when the to-kind's own effect on this readout has a frame-bootstrap
    interval excluding 0; Holm-adjusted p of b_from over the valid cells (the cells a verdict rests on)."""
    t = ei.table().set_index(["from_factor", "to_kind"])
    rows = []
    for f, k in cells:
        own = t.loc[(k, k)]
        cell = t.loc[(f, k)]
        own_lo, own_hi = float(own["coef_raw_ci_low"]), float(own["coef_raw_ci_high"])
        valid = bool(np.isfinite(own_lo) and np.isfinite(own_hi) and (own_lo > 0 or own_hi < 0))
        rows.append({"readout": readout, "from_factor": f, "to_kind": k, "valid": valid,
                     "own_effect": float(own["coef_raw"]), "own_ci_low": own_lo, "own_ci_high": own_hi,
                     "b_from": float(cell["coef_raw"]), "b_from_ci_low": float(cell["coef_raw_ci_low"]),
                     "b_from_ci_high": float(cell["coef_raw_ci_high"]), "ei": float(cell["ei"]),
                     "ci_low": float(cell["ci_low"]), "ci_high": float(cell["ci_high"]), "p": float(cell["coef_p"])})
    df = pd.DataFrame(rows)
    df["p_holm"] = np.nan
    ok = df["valid"] & df["p"].notna()
    if ok.any():
        df.loc[ok, "p_holm"] = multipletests(df.loc[ok, "p"].to_numpy(), alpha=alpha, method="holm")[1]
    return df


def level_means(table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean readout per readout × kind × factor × level with frame-bootstrap intervals, and a monotonicity flag:
    does the kind's readout order its own factor's levels bottom < middle < top (e.g. loss < none < gain)?"""
    levels = frame_levels(table["frame"].to_numpy())
    counts = draw_counts(frame_bootstrap_indices(levels, n_boot, seed), len(levels))
    rows = []
    for (readout, kind), sub in table.groupby(["readout", "kind"], sort=False):
        fc = np.searchsorted(levels, sub["frame"].to_numpy())
        vals = sub["value"].to_numpy(dtype=np.float64)
        for factor, lv in FACTOR_LEVELS.items():
            means = []
            for level in lv:
                sel = sub[factor].to_numpy() == level
                if not sel.any():
                    continue
                tot = np.bincount(fc[sel], weights=vals[sel], minlength=len(levels))
                cnt = np.bincount(fc[sel], minlength=len(levels)).astype(float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    boot = (counts @ tot) / (counts @ cnt)
                lo, hi = percentile_ci(boot)
                means.append(float(vals[sel].mean()))
                rows.append({"readout": readout, "kind": kind, "factor": factor, "level": int(level),
                             "mean": means[-1], "ci_low": float(lo), "ci_high": float(hi), "n": int(sel.sum()),
                             "resampling_unit": RESAMPLING_UNIT})
            if factor == kind and len(means) == len(lv):
                for r in rows[-len(lv):]:
                    r["monotone"] = bool(np.all(np.diff(means) > 0))
    return pd.DataFrame(rows)


def minimal_pair_logprob(prompts: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Grammaticality from the sentence log-prob as a within-pair difference (violated − well-formed, same frame,
    m and e), and its moral interaction (slope of that difference on the effect-coded moral level).

    The raw per-token log-prob carries the act's own word predictability; only the difference inside a minimal pair
    is a grammaticality judgement, and only its dependence on m is moral leakage into it.
    """
    lp = prompts.dropna(subset=["sentence_logprob"]).groupby(["frame", "moral", "economic", "grammatical"],
                                                                 as_index=False)["sentence_logprob"].mean()
    wide = lp.pivot_table(index=["frame", "moral", "economic"], columns="grammatical",
                          values="sentence_logprob").dropna().reset_index()
    if wide.empty or 0 not in wide.columns or 1 not in wide.columns:
        raise ValueError("minimal pairs need both grammatical levels of a frame × moral × economic cell")
    wide["diff"] = wide[0] - wide[1]
    levels = frame_levels(wide["frame"].to_numpy())
    fc = np.searchsorted(levels, wide["frame"].to_numpy())
    counts = draw_counts(frame_bootstrap_indices(levels, n_boot, seed), len(levels))
    w = counts[:, fc]
    d = wide["diff"].to_numpy(dtype=np.float64)
    m = effect_code(wide["moral"].to_numpy(), "moral")

    def slope(weights: np.ndarray) -> np.ndarray:
        sw = weights.sum(-1)
        mm = (weights * m).sum(-1) / sw
        dm = (weights * d).sum(-1) / sw
        cov = (weights * (m - mm[..., None]) * (d - dm[..., None])).sum(-1)
        var = (weights * (m - mm[..., None]) ** 2).sum(-1)
        return cov / var

    mean_b = (w * d).sum(1) / w.sum(1)
    slope_b = slope(w)
    dlo, dhi = percentile_ci(mean_b)
    slo, shi = percentile_ci(slope_b)
    own = float(d.mean())
    inter = float(slope(np.ones((1, len(d))))[0])
    return {"violation_effect": own, "violation_ci_low": float(dlo), "violation_ci_high": float(dhi),
            "moral_interaction": inter, "moral_interaction_ci_low": float(slo),
            "moral_interaction_ci_high": float(shi),
            "ratio_to_violation": inter / abs(own) if own else float("nan"), "n_pairs": int(len(d)),
            "valid": bool(dhi < 0 or dlo > 0), "resampling_unit": RESAMPLING_UNIT}


def target_cells(kinds: Sequence[str] = KINDS) -> list[tuple[str, str]]:
    """The cells of the headline: moral value leaking into each other kind's judgement."""
    return [("moral", k) for k in kinds if k != "moral"]
