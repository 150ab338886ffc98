"""Comparisons of EI results drawn on the same frame resamples: excess over a human norm, and the repair an
intervention brings (with selectivity), each with a paired bootstrap interval."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from entangle.analysis.stats import (
    percentile_ci,
)
from entangle.schema import RESAMPLING_UNIT

_READOUT_COLUMNS = ("item_id", "frame", "moral", "economic", "grammatical", "kind", "value")


from entangle.analysis.entanglement import EIResult

# ----------------------------------------------------------------------------------------------------------
# excess entanglement and repair
# ----------------------------------------------------------------------------------------------------------


def _draws_of(r: EIResult, from_factor: str, to_kind: str, n: int) -> np.ndarray:
    d = r.boot_cell(from_factor, to_kind)
    if len(d) == 1:
        return np.full(n, d[0])
    if len(d) != n:
        raise ValueError(f"bootstrap sizes differ ({len(d)} vs {n}); use the same n_boot")
    return d


def _n_draws(*rs: EIResult) -> int:
    ns = {r.boot.ei.shape[0] for r in rs if r.boot is not None}
    if len(ns) > 1:
        raise ValueError(f"bootstrap sizes differ: {sorted(ns)}; use the same n_boot")
    return ns.pop() if ns else 1


def _pairing(a: EIResult, b: EIResult) -> str:
    """'paired' (same frame draws), 'constant' (one side carries no draws, e.g. the design norm) or 'independent'."""
    if a.boot is None or b.boot is None:
        return "constant"
    return "paired" if a.boot.pairs_with(b.boot) else "independent"


def excess_ei(model: EIResult, human: EIResult) -> pd.DataFrame:
    """EI_model − EI_human per cell with a bootstrap interval on paired frame draws (design norm: zero width)."""
    n = _n_draws(model, human)
    pairing = _pairing(model, human)
    rows = []
    for k in model.kinds:
        for f in model.factors:
            if k not in human.kinds:
                continue
            em, eh = model.cell(f, k), human.cell(f, k)
            d = _draws_of(model, f, k, n) - _draws_of(human, f, k, n)
            lo, hi = percentile_ci(d)
            rows.append(
                {
                    "from_factor": f,
                    "to_kind": k,
                    "ei_model": em,
                    "ei_human": eh,
                    "excess": em - eh,
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "pairing": pairing,
                    "human_source": human.source,
                    "resampling_unit": RESAMPLING_UNIT,
                }
            )
    return pd.DataFrame(rows)


def repair(
    before: EIResult,
    after: EIResult,
    human: EIResult,
    *,
    cells: Sequence[tuple[str, str]] = (("moral", "grammatical"), ("moral", "economic")),
) -> pd.DataFrame:
    """Repair fraction (EI_before − EI_after)/(EI_before − EI_human) per cell and selectivity b_K,after/b_K,before."""
    if not (before.boot is not None and after.boot is not None and before.boot.pairs_with(after.boot)):
        raise ValueError(
            "before and after must be bootstrapped on the same frame resamples (same frames, n_boot, seed)"
        )
    n = _n_draws(before, after, human)
    pairing = _pairing(before, human)
    rows = []
    for f, k in cells:
        eb, ea, eh = before.cell(f, k), after.cell(f, k), human.cell(f, k)
        db, da, dh = (_draws_of(r, f, k, n) for r in (before, after, human))
        with np.errstate(invalid="ignore", divide="ignore"):
            est = (eb - ea) / (eb - eh)
            draws = (db - da) / (db - dh)
        draws[~np.isfinite(draws)] = np.nan
        lo, hi = percentile_ci(draws)
        rows.append(
            {
                "measure": "repair_fraction",
                "from_factor": f,
                "to_kind": k,
                "estimate": float(est),
                "ci_low": float(lo),
                "ci_high": float(hi),
                "before": eb,
                "after": ea,
                "human": eh,
                "human_pairing": pairing,
                "resampling_unit": RESAMPLING_UNIT,
            }
        )
    # selectivity in readout units: z-scoring would rescale by the after-ablation SD and hide a lost effect
    for k in before.kinds:
        if k not in after.kinds:
            continue
        jb, ja = before.kinds.index(k), after.kinds.index(k)
        ob, oa = before.own_coef_raw[jb], after.own_coef_raw[ja]
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = after.boot.own_coef_raw[:, ja] / before.boot.own_coef_raw[:, jb]
        lo, hi = percentile_ci(draws)
        rows.append(
            {
                "measure": "selectivity",
                "from_factor": k,
                "to_kind": k,
                "estimate": float(oa / ob),
                "ci_low": float(lo),
                "ci_high": float(hi),
                "before": float(ob),
                "after": float(oa),
                "human": np.nan,
                "human_pairing": "n/a",
                "resampling_unit": RESAMPLING_UNIT,
            }
        )
    return pd.DataFrame(rows)


def mean_repair(before: EIResult, after: EIResult, human: EIResult, kinds: Sequence[str]
                ) -> tuple[float | None, float | None, float | None]:
    """Mean repair fraction of EI(moral → K) over `kinds`, with a paired frame-bootstrap interval of that mean
    (the human EI enters at its point value)."""
    if not kinds:
        return None, None, None
    est, draws = [], []
    for k in kinds:
        eb, ea, eh = before.cell("moral", k), after.cell("moral", k), human.cell("moral", k)
        n = _n_draws(before, after)
        with np.errstate(invalid="ignore", divide="ignore"):
            est.append((eb - ea) / (eb - eh))
            draws.append((_draws_of(before, "moral", k, n) - _draws_of(after, "moral", k, n)) /
                         (_draws_of(before, "moral", k, n) - eh))
    d = np.nanmean(np.vstack(draws), axis=0)
    lo, hi = percentile_ci(d[np.isfinite(d)])
    return float(np.mean(est)), float(lo), float(hi)
