"""Interventional entanglement of steering: how steering value A along its direction moves the intensity of value B.

Per (A, B): the slope of B's intensity over A's α grid (base = α 0), per query by least squares, averaged over
queries, with an interval over queries; beside it the ratio to A's own slope (raw numerator kept). Readouts B are
every value with a direction, including the entanglement study's three kinds of good (moral, grammatical,
economic), each scored by its own probe judge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from entangle.analysis.stats import percentile_ci
from entangle.studies.valueflow.summary import dose_matrix

KINDS = ("moral", "grammatical", "economic")


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of y [n, k] on x [k]."""
    xc = x - x.mean()
    return (y - y.mean(1, keepdims=True)) @ xc / (xc @ xc)


def leakage_table(df: pd.DataFrame, steered: Sequence[str], readouts: Sequence[str], judge: str = "probe",
                  n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (steered A, readout B): slope dI_B/dα with interval, and slope_B / slope_A with interval."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in steered:
        own_x, own_y = dose_matrix(df, "activation", a, f"I_{judge}_{a}")
        if len(own_x) < 2:
            continue
        draws = rng.integers(0, len(own_y), size=(n_boot, len(own_y)))
        own = _slopes(own_x, own_y)
        for b in readouts:
            x, y = dose_matrix(df, "activation", a, f"I_{judge}_{b}")
            if len(x) < 2 or len(y) != len(own_y):
                continue
            s = _slopes(x, y)
            boot_s = s[draws].mean(1)
            boot_r = boot_s / own[draws].mean(1)
            lo, hi = percentile_ci(boot_s)
            rlo, rhi = percentile_ci(boot_r[np.isfinite(boot_r)]) if np.isfinite(boot_r).any() else (np.nan, np.nan)
            rows.append({"steered": a, "readout": b, "judge": judge, "kind_of_good": b in KINDS,
                         "slope": float(s.mean()), "ci_low": float(lo), "ci_high": float(hi),
                         "own_slope": float(own.mean()), "ratio": float(s.mean() / own.mean()) if own.mean() else
                         float("nan"), "ratio_ci_low": float(rlo), "ratio_ci_high": float(rhi),
                         "n_queries": len(y)})
    return pd.DataFrame(rows)
