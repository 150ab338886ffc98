"""Behavioural entanglement (DESIGN.md §5): EI(f→K) = b_f / |b_K| with a frame bootstrap, excess over a norm, repair."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.stats import norm

from entangle.analysis.stats import (
    draw_counts,
    frame_bootstrap_indices,
    frame_levels,
    percentile_ci,
)
from entangle.schema import CI_LEVEL, FACTOR_LEVELS, FACTORS, KINDS, RESAMPLING_UNIT

_READOUT_COLUMNS = ("item_id", "frame", "moral", "economic", "grammatical", "kind", "value")


# ----------------------------------------------------------------------------------------------------------
# behavioural entanglement index
# ----------------------------------------------------------------------------------------------------------


@dataclass
class EIBoot:
    """Bootstrap draws of an EI computation; draw b of two results with equal `frame_levels`/`frame_draws` is paired."""

    frame_levels: np.ndarray  # sorted distinct frames
    frame_draws: np.ndarray  # [boot, n_frames] indices into frame_levels
    ei: np.ndarray  # [boot, n_factors, n_kinds]
    own_coef: np.ndarray  # [boot, n_kinds], z-scored units
    own_coef_raw: np.ndarray  # [boot, n_kinds], readout units
    rater_levels: np.ndarray | None = None
    rater_draws: np.ndarray | None = None  # [boot, n_raters] indices into rater_levels

    def pairs_with(self, other: EIBoot | None) -> bool:
        """True when both were drawn on the same frames with the same frame resamples."""
        return (
            other is not None
            and self.frame_draws.shape == other.frame_draws.shape
            and np.array_equal(self.frame_levels, other.frame_levels)
            and np.array_equal(self.frame_draws, other.frame_draws)
        )


@dataclass
class EIResult:
    """The 3×3 entanglement-index matrix (rows: from-factor, cols: to-kind) with intervals and coefficients."""

    kinds: list[str]
    factors: list[str]
    ei: np.ndarray  # [n_factors, n_kinds]; diagonal = sign(b_own)
    ci_low: np.ndarray
    ci_high: np.ndarray
    coef: np.ndarray  # [n_factors, n_kinds], OLS on the z-scored readout
    coef_se: np.ndarray  # cluster-robust (by frame)
    coef_p: np.ndarray
    ei_se: np.ndarray  # delta method on the cluster-robust covariance
    ei_p: np.ndarray
    own_coef: np.ndarray  # [n_kinds], z-scored units
    own_coef_raw: np.ndarray  # [n_kinds], readout units (for selectivity)
    n_items: np.ndarray  # [n_kinds]
    n_frames: int
    boot: EIBoot | None
    coef_raw: np.ndarray | None = None  # [n_factors, n_kinds], full-contrast effect in readout units
    coef_raw_ci_low: np.ndarray | None = None
    coef_raw_ci_high: np.ndarray | None = None
    source: str = "model"
    controls: list[str] = field(default_factory=list)
    n_boot: int = 0
    seed: int = 0
    resampling_unit: str = RESAMPLING_UNIT
    ci_level: float = CI_LEVEL

    def cell(self, from_factor: str, to_kind: str) -> float:
        """EI(from_factor → to_kind)."""
        return float(self.ei[self.factors.index(from_factor), self.kinds.index(to_kind)])

    def boot_cell(self, from_factor: str, to_kind: str) -> np.ndarray:
        """Bootstrap draws of one EI cell (a constant array when the result carries no draws)."""
        i, j = self.factors.index(from_factor), self.kinds.index(to_kind)
        if self.boot is None:
            return np.full(1, self.ei[i, j])
        return self.boot.ei[:, i, j]

    def table(self) -> pd.DataFrame:
        """Long table: one row per (from_factor, to_kind)."""
        rows = []
        for j, k in enumerate(self.kinds):
            for i, f in enumerate(self.factors):
                rows.append(
                    {
                        "from_factor": f,
                        "to_kind": k,
                        "ei": self.ei[i, j],
                        "ci_low": self.ci_low[i, j],
                        "ci_high": self.ci_high[i, j],
                        "coef": self.coef[i, j],
                        "coef_se": self.coef_se[i, j],
                        "coef_p": self.coef_p[i, j],
                        "ei_se": self.ei_se[i, j],
                        "ei_p": self.ei_p[i, j],
                        "own_coef": self.own_coef[j],
                        "coef_raw": np.nan if self.coef_raw is None else self.coef_raw[i, j],
                        "coef_raw_ci_low": np.nan if self.coef_raw_ci_low is None else self.coef_raw_ci_low[i, j],
                        "coef_raw_ci_high": np.nan if self.coef_raw_ci_high is None else self.coef_raw_ci_high[i, j],
                        "n_items": int(self.n_items[j]),
                        "n_frames": int(self.n_frames),
                        "source": self.source,
                    }
                )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no bootstrap draws)."""
        return {
            "source": self.source,
            "kinds": list(self.kinds),
            "factors": list(self.factors),
            "controls": list(self.controls),
            "resampling_unit": self.resampling_unit,
            "ci_level": self.ci_level,
            "n_boot": int(self.n_boot),
            "seed": int(self.seed),
            "n_frames": int(self.n_frames),
            "n_items": {k: int(n) for k, n in zip(self.kinds, self.n_items, strict=True)},
            "own_coef": {k: _f(c) for k, c in zip(self.kinds, self.own_coef, strict=True)},
            "own_coef_raw": {k: _f(c) for k, c in zip(self.kinds, self.own_coef_raw, strict=True)},
            "cells": _records(self.table()),
        }


def _f(x: Any) -> float | None:
    """A JSON-safe float (NaN/inf → None)."""
    x = float(x)
    return x if np.isfinite(x) else None


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts."""
    out = []
    for rec in df.to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, (bool, np.bool_)):
                clean[k] = bool(v)
            elif isinstance(v, (int, np.integer)):
                clean[k] = int(v)
            elif isinstance(v, (float, np.floating)):
                clean[k] = _f(v)
            else:
                clean[k] = v
        out.append(clean)
    return out


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x - x.mean()


def _wols_boot(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted OLS for every draw at once (integer weights = duplicated rows). Returns (beta [B, p], sd_y [B])."""
    # x: [n, p]; y: [n] or [B, n]; w: [B, n]
    xtwx = np.einsum("bn,ni,nj->bij", w, x, x)
    wy = w * y
    xtwy = np.einsum("bn,ni->bi", wy, x)
    beta = np.einsum("bij,bj->bi", np.linalg.pinv(xtwx), xtwy)
    sw = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = wy.sum(axis=1) / sw
        var = (w * y**2).sum(axis=1) / sw - mean**2
    return beta, np.sqrt(np.clip(var, 0.0, None))


def effect_code(values: np.ndarray, factor: str) -> np.ndarray:
    """Levels mapped so the top and bottom level are +½ and −½ (neutral 0): a coefficient is the full contrast."""
    levels = FACTOR_LEVELS[factor]
    lo, hi = min(levels), max(levels)
    return (np.asarray(values, dtype=np.float64) - (lo + hi) / 2.0) / (hi - lo)


def _check_readouts(df: pd.DataFrame, control_tokens: bool) -> None:
    need = list(_READOUT_COLUMNS) + (["n_tokens"] if control_tokens else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"readout table lacks column(s) {missing}; has {list(df.columns)}")
    bad = sorted(set(df["kind"]) - set(KINDS))
    if bad:
        raise ValueError(f"unknown kind(s) {bad}; expected {list(KINDS)}")
    dup = df.duplicated(["item_id", "kind"])
    if dup.any():
        ex = df.loc[dup, ["item_id", "kind"]].iloc[0].tolist()
        raise ValueError(f"more than one row per (item_id, kind), e.g. {ex}: average templates first")
    vals = df["value"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        raise ValueError("readout values must be finite")


def behavioural_ei(
    df: pd.DataFrame,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    control_tokens: bool = True,
    source: str = "model",
    _rater_values: Any = None,
) -> EIResult:
    """EI(f→K) = b_f / |b_K| from OLS of z-scored value on m, e, g (+ z-scored n_tokens), per kind, frame bootstrap.

    Factors are effect-coded so that each coefficient is its full contrast (good − bad, gain − loss, well-formed −
    violated; DESIGN.md §5): EI compares like with like. Raw coefficients (readout units) come with their intervals.
    """
    _check_readouts(df, control_tokens)
    kinds = [k for k in KINDS if k in set(df["kind"])]
    levels = frame_levels(df["frame"].to_numpy())
    n_frames = len(levels)
    draws = frame_bootstrap_indices(levels, n_boot, seed)
    counts = draw_counts(draws, n_frames)

    nf, nk = len(FACTORS), len(kinds)
    shape = (nf, nk)
    out = {k: np.full(shape, np.nan) for k in ("ei", "coef", "coef_se", "coef_p", "ei_se", "ei_p")}
    own = np.full(nk, np.nan)
    own_raw = np.full(nk, np.nan)
    n_items = np.zeros(nk, dtype=int)
    boot_ei = np.full((n_boot, nf, nk), np.nan)
    boot_own = np.full((n_boot, nk), np.nan)
    boot_own_raw = np.full((n_boot, nk), np.nan)
    coef_raw = np.full(shape, np.nan)
    boot_coef_raw = np.full((n_boot, nf, nk), np.nan)
    controls = ["n_tokens"] if control_tokens else []
    rater_levels = rater_draws = None

    for j, kind in enumerate(kinds):
        sub = df[df["kind"] == kind].reset_index(drop=True)
        n_items[j] = len(sub)
        fcodes = np.searchsorted(levels, sub["frame"].to_numpy())
        cols = [effect_code(sub[f].to_numpy(dtype=np.float64), f) for f in FACTORS]
        names = list(FACTORS)
        if control_tokens:
            cols.append(_zscore(sub["n_tokens"].to_numpy(dtype=np.float64)))
            names.append("n_tokens")
        x = np.column_stack([np.ones(len(sub))] + cols)
        varies = np.r_[True, x[:, 1:].std(axis=0) > 0]
        xv = x[:, varies]
        vnames = ["const"] + [n for n, v in zip(names, varies[1:], strict=True) if v]
        if kind not in vnames:
            raise ValueError(f"kind {kind!r}: its own factor does not vary in the readouts, EI is undefined")
        y_raw = sub["value"].to_numpy(dtype=np.float64)
        sd_raw = y_raw.std()
        if not sd_raw > 0:
            raise ValueError(f"kind {kind!r}: readout values are constant")
        y = (y_raw - y_raw.mean()) / sd_raw

        fit = sm.OLS(y, xv).fit(cov_type="cluster", cov_kwds={"groups": fcodes})
        params = np.asarray(fit.params)
        cov = np.asarray(fit.cov_params())
        io = vnames.index(kind)
        b_own = params[io]
        own[j], own_raw[j] = b_own, b_own * sd_raw
        for i, f in enumerate(FACTORS):
            if f not in vnames:
                continue
            ii = vnames.index(f)
            out["coef"][i, j] = params[ii]
            coef_raw[i, j] = params[ii] * sd_raw
            out["coef_se"][i, j] = np.asarray(fit.bse)[ii]
            out["coef_p"][i, j] = np.asarray(fit.pvalues)[ii]
            if f == kind:
                out["ei"][i, j] = np.sign(b_own)
                continue
            ei = params[ii] / abs(b_own)
            out["ei"][i, j] = ei
            grad = np.zeros(len(params))
            grad[ii] = 1.0 / abs(b_own)
            grad[io] = -ei / b_own  # d(b_f/|b_K|)/db_K = -b_f sign(b_K)/b_K^2
            se = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
            out["ei_se"][i, j] = se
            if se > 0:
                out["ei_p"][i, j] = 2 * norm.sf(abs(ei / se))

        # bootstrap: frame counts as row weights (and, for ratings, resampled raters' item means)
        w = counts[:, fcodes]
        if _rater_values is not None:
            yb_raw, present, rater_levels, rater_draws = _rater_values(sub, draws.shape[0])
            w = w * present
        else:
            yb_raw = y_raw
        beta, sd_b = _wols_boot(xv, yb_raw, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            b_own_b = beta[:, io]
            boot_own_raw[:, j] = b_own_b
            boot_own[:, j] = b_own_b / sd_b
            for i, f in enumerate(FACTORS):
                if f not in vnames:
                    continue
                boot_coef_raw[:, i, j] = beta[:, vnames.index(f)]
                if f == kind:
                    boot_ei[:, i, j] = np.sign(b_own_b)
                else:
                    boot_ei[:, i, j] = beta[:, vnames.index(f)] / np.abs(b_own_b)

    lo, hi = percentile_ci(boot_ei)
    raw_lo, raw_hi = percentile_ci(boot_coef_raw)
    return EIResult(
        kinds=kinds,
        factors=list(FACTORS),
        **out,  # ei, coef, coef_se, coef_p, ei_se, ei_p
        ci_low=lo,
        ci_high=hi,
        own_coef=own,
        own_coef_raw=own_raw,
        n_items=n_items,
        n_frames=n_frames,
        boot=EIBoot(levels, draws, boot_ei, boot_own, boot_own_raw, rater_levels, rater_draws),
        source=source,
        controls=controls,
        n_boot=n_boot,
        seed=seed,
        resampling_unit=RESAMPLING_UNIT if _rater_values is None else "frame+rater",
        coef_raw=coef_raw,
        coef_raw_ci_low=raw_lo,
        coef_raw_ci_high=raw_hi,
    )
