"""Per-value dose-response summaries with intervals over queries: intensity per α or level, Spearman(dose,
intensity), Δ+ = I(top) - I(0), Δ- = I(0) - I(bottom), their ratio, and the hard-to-steer / asymmetric flags.

The response table has one row per (setting, query): `arm`, `steered`, `x` (α or level), `query_id` and one
intensity column per judge and readout value (`I_probe_<value>`, `I_pairwise_<value>`). The base setting (no
steering, no instruction) is x = 0 of every value's arms. Resampling unit: queries (paired across settings).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from entangle.analysis.stats import percentile_ci


def dose_matrix(df: pd.DataFrame, arm: str, value: str, col: str) -> tuple[np.ndarray, np.ndarray]:
    """(doses [k], intensities [n_queries, k]) for one value's arm with the base setting as dose 0."""
    part = df[((df.arm == arm) & (df.steered == value)) | (df.arm == "base")]
    wide = part.pivot_table(index="query_id", columns="x", values=col, aggfunc="mean").dropna(axis=1, how="all")
    wide = wide.dropna(axis=0)
    return wide.columns.to_numpy(dtype=float), wide.to_numpy(dtype=float)


def boot(stat: Callable[[np.ndarray], float], y: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """stat(y) and its percentile interval over resampled rows (queries) of y."""
    rng = np.random.default_rng(seed)
    draws = np.array([stat(y[rng.integers(0, len(y), len(y))]) for _ in range(n_boot)])
    lo, hi = percentile_ci(draws[np.isfinite(draws)]) if np.isfinite(draws).any() else (np.nan, np.nan)
    return float(stat(y)), float(lo), float(hi)


def _spearman(x: np.ndarray) -> Callable[[np.ndarray], float]:
    def f(y: np.ndarray) -> float:
        xs = np.tile(x, len(y))
        ys = y.ravel()
        return float(spearmanr(xs, ys).statistic) if np.ptp(ys) > 0 else 0.0
    return f


def dose_table(df: pd.DataFrame, arm: str, value: str, col: str, n_boot: int, seed: int) -> pd.DataFrame:
    """Mean intensity per dose with its interval over queries."""
    x, y = dose_matrix(df, arm, value, col)
    rows = []
    for j, dose in enumerate(x):
        m, lo, hi = boot(lambda s, j=j: s[:, j].mean(), y, n_boot, seed)
        rows.append({"value": value, "arm": arm, "readout": col, "x": dose, "mean": m, "ci_low": lo, "ci_high": hi,
                     "n_queries": len(y)})
    return pd.DataFrame(rows)


def asymmetry(df: pd.DataFrame, arm: str, value: str, col: str, n_boot: int, seed: int,
              min_span: float = 1.0) -> dict:
    """Spearman(dose, intensity), Δ+, Δ-, Δ+/Δ- and Δ+ - Δ- with intervals; flags:

    hard_to_steer: the Spearman interval reaches 0 or I(top) - I(bottom) < `min_span` intensity points;
    asymmetric: the interval of Δ+ - Δ- excludes 0."""
    x, y = dose_matrix(df, arm, value, col)
    if len(x) < 3 or 0.0 not in x or len(y) < 2:
        return {"value": value, "arm": arm, "readout": col, "n_queries": len(y)}
    top, zero, bottom = int(np.argmax(x)), int(np.flatnonzero(x == 0.0)[0]), int(np.argmin(x))
    out: dict = {"value": value, "arm": arm, "readout": col, "n_queries": len(y), "x_top": x[top],
                 "x_bottom": x[bottom]}
    stats = {
        "spearman": _spearman(x),
        "d_plus": lambda s: s[:, top].mean() - s[:, zero].mean(),
        "d_minus": lambda s: s[:, zero].mean() - s[:, bottom].mean(),
        "d_diff": lambda s: (s[:, top].mean() - s[:, zero].mean()) - (s[:, zero].mean() - s[:, bottom].mean()),
        "span": lambda s: s[:, top].mean() - s[:, bottom].mean(),
    }
    for name, f in stats.items():
        out[name], out[name + "_ci_low"], out[name + "_ci_high"] = boot(f, y, n_boot, seed)
    out["ratio"] = out["d_plus"] / out["d_minus"] if out["d_minus"] != 0 else float("nan")
    out["hard_to_steer"] = bool(out["spearman_ci_low"] <= 0 or out["span"] < min_span)
    out["asymmetric"] = bool(out["d_diff_ci_low"] > 0 or out["d_diff_ci_high"] < 0)
    return out


def fluency_rows(df: pd.DataFrame, losses: dict[str, np.ndarray], distinct: Callable[[Sequence[str]], float],
                 rep: Callable[[str], float], n_boot: int, seed: int) -> pd.DataFrame:
    """Per setting: neutral-text NLL (interval over neutral texts), distinct-2 and repetition (over queries)."""
    rows = []
    for setting, g in df.groupby("setting", sort=False):
        r = np.array([rep(t) for t in g.text])[:, None]
        row = {"setting": setting, "arm": g.arm.iloc[0], "steered": g.steered.iloc[0], "x": g.x.iloc[0],
               "distinct2": distinct(list(g.text)), "repetition": float(r.mean()),
               "repetition_ci_low": boot(lambda s: s.mean(), r, n_boot, seed)[1],
               "repetition_ci_high": boot(lambda s: s.mean(), r, n_boot, seed)[2]}
        if setting in losses:
            loss = losses[setting][:, None]
            row["neutral_loss"], row["neutral_loss_ci_low"], row["neutral_loss_ci_high"] = boot(
                lambda s: s.mean(), loss, n_boot, seed)
        rows.append(row)
    return pd.DataFrame(rows)
