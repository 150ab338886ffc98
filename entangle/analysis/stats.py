"""Bootstrap statistics with frames as the resampling unit: frame draws, percentile intervals, AUC, empirical p-values."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from jaxtyping import Float, Int
from numpy.typing import ArrayLike

from entangle.schema import CI_LEVEL, RESAMPLING_UNIT  # noqa: F401  (re-exported)

# ----------------------------------------------------------------------------------------------------------
# frame bootstrap plumbing
# ----------------------------------------------------------------------------------------------------------


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
