"""Entanglement metrics (DESIGN.md §5-6) with frames as the unit of every resampling.

Behavioural: the entanglement index EI(f→K) = b_f / |b_K| from an OLS of the z-scored readout r_K on the
three factors (cluster-robust SE by frame), with a frame bootstrap whose draws are reproducible from `seed`
(`frame_bootstrap_indices`) so that two EI computations (before/after an ablation, model/human) can be
compared draw by draw. Representational: cosines between kind directions and the leakage of a factor into
a kind's direction, per layer.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from jaxtyping import Float, Int
from numpy.typing import ArrayLike
from scipy.stats import norm

from entangle.stimuli import FACTOR_LEVELS, KINDS

FACTORS: tuple[str, ...] = ("moral", "economic", "grammatical")
"""Factor columns (EI rows); a kind's own factor is the column of the same name (moral→m, economic→e, grammatical→g)."""

GOOD_BAD: dict[str, tuple[int, int]] = {f: (max(v), min(v)) for f, v in FACTOR_LEVELS.items()}
"""(good level, bad level) of each factor: m 1/−1, e 1/−1, g 1/0."""

RESAMPLING_UNIT = "frame"
CI_LEVEL = 0.95

_READOUT_COLUMNS = ("item_id", "frame", "moral", "economic", "grammatical", "kind", "value")


# ----------------------------------------------------------------------------------------------------------
# frame bootstrap plumbing
# ----------------------------------------------------------------------------------------------------------


def frame_levels(frames: ArrayLike) -> np.ndarray:
    """The sorted distinct frames: the index space of `frame_bootstrap_indices`."""
    return np.unique(np.asarray(frames))


def frame_bootstrap_indices(frames: ArrayLike, n_boot: int, seed: int = 0) -> Int[np.ndarray, "boot n_frames"]:
    """Frame resamples (with replacement) as indices into `frame_levels(frames)`; same frames + seed → same draws."""
    n_frames = len(frame_levels(frames))
    if n_frames < 2:
        raise ValueError(f"a frame bootstrap needs >= 2 frames, got {n_frames}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    return np.random.default_rng(seed).integers(0, n_frames, size=(n_boot, n_frames))


def draw_counts(draws: Int[np.ndarray, "boot n_frames"], n_frames: int) -> Float[np.ndarray, "boot n_frames"]:
    """How often each frame appears in each resample (a resample of frames = integer weights on frames)."""
    n_boot = draws.shape[0]
    flat = (draws + n_frames * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_frames).reshape(n_boot, n_frames).astype(np.float64)


def percentile_ci(draws: ArrayLike, level: float = CI_LEVEL, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval, ignoring draws that came out undefined (NaN)."""
    a = np.asarray(draws, dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    with warnings.catch_warnings():  # all-NaN slices (undefined draws) give NaN bounds, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanquantile(a, alpha, axis=axis)
        hi = np.nanquantile(a, 1.0 - alpha, axis=axis)
    return lo, hi


def boot_auc(
    scores: Float[np.ndarray, " n"],
    y: Int[np.ndarray, " n"],
    frame_codes: Int[np.ndarray, " n"],
    counts: Float[np.ndarray, "boot n_frames"],
) -> Float[np.ndarray, " boot"]:
    """ROC-AUC (y > 0 positive) of `scores` on each frame resample, as weighted Mann-Whitney: no refitting, no loops."""
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(y) > 0
    order = np.argsort(scores, kind="mergesort")
    s, pos, fc = scores[order], pos[order], np.asarray(frame_codes)[order]
    w = counts[:, fc]  # [boot, n]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # tied scores share half credit
    p = np.add.reduceat(w * pos, starts, axis=1)
    q = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(q, axis=1) - q
    num = (p * (below + 0.5 * q)).sum(axis=1)
    den = p.sum(axis=1) * q.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def auc(scores: ArrayLike, y: ArrayLike) -> float:
    """ROC-AUC with y > 0 as the positive class (ties count one half)."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(boot_auc(scores, np.asarray(y), np.zeros(len(scores), dtype=int), np.ones((1, 1)))[0])


def empirical_p_value(
    observed: float, null: ArrayLike, alternative: Literal["greater", "less", "two-sided"] = "greater"
) -> float:
    """Permutation-style p-value (1 + #{null at least as extreme}) / (1 + n): never 0, exact under exchangeability."""
    null = np.asarray(null, dtype=np.float64).ravel()
    null = null[np.isfinite(null)]
    if alternative == "greater":
        k = np.sum(null >= observed)
    elif alternative == "less":
        k = np.sum(null <= observed)
    elif alternative == "two-sided":
        k = np.sum(np.abs(null) >= abs(observed))
    else:
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    return float((1 + k) / (1 + len(null)))


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
    """EI(f→K) = b_f / |b_K| from OLS of z-scored value on m, e, g (+ z-scored n_tokens), per kind, frame bootstrap."""
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
    controls = ["n_tokens"] if control_tokens else []
    rater_levels = rater_draws = None

    for j, kind in enumerate(kinds):
        sub = df[df["kind"] == kind].reset_index(drop=True)
        n_items[j] = len(sub)
        fcodes = np.searchsorted(levels, sub["frame"].to_numpy())
        cols = [sub[f].to_numpy(dtype=np.float64) for f in FACTORS]
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
                if f == kind:
                    boot_ei[:, i, j] = np.sign(b_own_b)
                else:
                    boot_ei[:, i, j] = beta[:, vnames.index(f)] / np.abs(b_own_b)

    lo, hi = percentile_ci(boot_ei)
    return EIResult(
        kinds=kinds,
        factors=list(FACTORS),
        ei=out["ei"],
        ci_low=lo,
        ci_high=hi,
        coef=out["coef"],
        coef_se=out["coef_se"],
        coef_p=out["coef_p"],
        ei_se=out["ei_se"],
        ei_p=out["ei_p"],
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
    )


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
