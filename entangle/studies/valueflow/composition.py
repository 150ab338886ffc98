"""Composition laws of activation steering, all with intervals over queries (paired resampling):

- additivity error for a pair (a, b) at α, per readout v in {a, b}: ΔI_v(a+b) - ΔI_v(a) - ΔI_v(b), ΔI against base;
- slope ratio for 2·a + 1·b: (ΔI_a / ΔI_a(a alone)) / (ΔI_b / ΔI_b(b alone)), intended 2 (raw ΔI kept beside it);
- dominance index of the joint pair: (R_a - R_b) / (|R_a| + |R_b|), R_v = ΔI_v(a+b) / ΔI_v(v alone) the share of
  v's solo effect that survives; +1: a dominates, -1: b dominates;
- the five-value mix: ΔI_v(mix) per value, its retention where v was steered alone, and which value dominates
  (largest ΔI; the share of resamples in which it is largest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from entangle.analysis.stats import percentile_ci


def per_query(df: pd.DataFrame, arm: str, steered: str, x: float, col: str) -> pd.Series:
    """Intensity per query of one setting (base: arm 'base')."""
    g = df[(df.arm == arm) & (df.steered == steered) & np.isclose(df.x, x)] if arm != "base" else df[df.arm == "base"]
    return g.groupby("query_id")[col].mean()


def _stat(name: str, f: Callable[[np.ndarray], float], y: np.ndarray, draws: np.ndarray, **extra: object) -> dict:
    b = np.array([f(y[d]) for d in draws])
    lo, hi = percentile_ci(b[np.isfinite(b)]) if np.isfinite(b).any() else (np.nan, np.nan)
    return {"measure": name, "estimate": float(f(y)), "ci_low": float(lo), "ci_high": float(hi), **extra}


def composition_table(df: pd.DataFrame, pair: Sequence[str], mix: Sequence[str], alpha: float, judge: str = "probe",
                      n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Rows: additivity errors, slope ratio, dominance index and the mix's per-value effects (see module doc)."""
    a, b = pair
    col = {v: f"I_{judge}_{v}" for v in {*pair, *mix}}
    rows: list[dict] = []
    base = {v: per_query(df, "base", "", 0.0, col[v]) for v in col}
    joint_key = f"{a}+{b}"

    def delta(arm: str, steered: str, v: str) -> pd.Series:
        return per_query(df, arm, steered, alpha, col[v]) - base[v]

    frames = {}
    for v in (a, b):
        frames[f"joint_{v}"] = delta("joint", joint_key, v)
        frames[f"ratio_{v}"] = delta("ratio", joint_key, v)
        for s in (a, b):
            frames[f"solo{s}_{v}"] = delta("activation", s, v)
    mix_key = "+".join(mix)
    for v in mix:
        frames[f"mix_{v}"] = delta("mix", mix_key, v)
        frames[f"solo{v}_{v}"] = delta("activation", v, v)
    wide = pd.DataFrame(frames).dropna(axis=1, how="all")
    wide = wide.dropna(axis=0)
    if wide.empty:
        return pd.DataFrame(rows)
    cols = {c: i for i, c in enumerate(wide.columns)}
    y = wide.to_numpy(dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    m = lambda s, c: s[:, cols[c]].mean()
    has = lambda *cs: all(c in cols for c in cs)
    for v in (a, b):
        if has(f"joint_{v}", f"solo{a}_{v}", f"solo{b}_{v}"):
            rows.append(_stat("additivity_error", lambda s, v=v: m(s, f"joint_{v}") - m(s, f"solo{a}_{v}")
                              - m(s, f"solo{b}_{v}"), y, draws, readout=v, pair=joint_key, alpha=alpha))
        for arm in ("joint", "ratio"):
            if has(f"{arm}_{v}"):
                rows.append(_stat(f"delta_{arm}", lambda s, c=f"{arm}_{v}": m(s, c), y, draws, readout=v,
                                  pair=joint_key, alpha=alpha))
    if has(f"ratio_{a}", f"ratio_{b}", f"solo{a}_{a}", f"solo{b}_{b}"):
        rows.append(_stat("slope_ratio", lambda s: (m(s, f"ratio_{a}") / m(s, f"solo{a}_{a}"))
                          / (m(s, f"ratio_{b}") / m(s, f"solo{b}_{b}")), y, draws, pair=joint_key, alpha=alpha,
                          intended=2.0))
    if has(f"joint_{a}", f"joint_{b}", f"solo{a}_{a}", f"solo{b}_{b}"):
        def dom(s: np.ndarray) -> float:
            ra, rb = m(s, f"joint_{a}") / m(s, f"solo{a}_{a}"), m(s, f"joint_{b}") / m(s, f"solo{b}_{b}")
            return (ra - rb) / (abs(ra) + abs(rb))
        rows.append(_stat("dominance", dom, y, draws, pair=joint_key, alpha=alpha))
    present = [v for v in mix if has(f"mix_{v}")]
    if present:
        idx = [cols[f"mix_{v}"] for v in present]
        top = np.array([np.argmax(y[d][:, idx].mean(0)) for d in draws])
        best = int(np.argmax(y[:, idx].mean(0)))
        for k, v in enumerate(present):
            rows.append(_stat("mix_delta", lambda s, v=v: m(s, f"mix_{v}"), y, draws, readout=v, pair=mix_key,
                              alpha=alpha, dominant=k == best, share_dominant=float(np.mean(top == k))))
            if has(f"solo{v}_{v}"):
                rows.append(_stat("mix_retention", lambda s, v=v: m(s, f"mix_{v}") / m(s, f"solo{v}_{v}"), y,
                                  draws, readout=v, pair=mix_key, alpha=alpha))
    return pd.DataFrame(rows)
