"""Pareto sets and hypervolume for maximised objectives: exact in two dimensions, pymoo's indicator beyond.

Every objective is *maximised* (turn a cost into a gain by negating it). The hypervolume of a point set against a
reference point r is the volume of the region that some point dominates and that dominates r; points that do not
dominate r add nothing. With r = the unsteered model, it is the room for improvement on every objective at once
that the set of steering settings reaches.

    >>> F = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.2]])
    >>> pareto_mask(F).tolist()
    [True, True, True, False]
    >>> hypervolume(F, np.zeros(2))
    0.25
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float


def pareto_mask(points: Float[np.ndarray, "n m"]) -> Bool[np.ndarray, " n"]:
    """True for the non-dominated points (maximisation): no other point is >= on every objective and > on one.

    Duplicates of a non-dominated point are all kept; rows with a NaN are never on the set and dominate nothing."""
    f = np.asarray(points, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"points must be [n, m], got shape {f.shape}")
    ok = np.isfinite(f).all(1)
    mask = ok.copy()
    for i in np.flatnonzero(ok):
        other = f[ok]
        dominated = (other >= f[i]).all(1) & (other > f[i]).any(1)
        mask[i] = not dominated.any()
    return mask


def hypervolume_2d(points: Float[np.ndarray, "n 2"], ref: Float[np.ndarray, " 2"]) -> float:
    """Exact 2-D hypervolume (maximisation) by a sweep over the Pareto set sorted by the first objective."""
    f = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    r = np.asarray(ref, dtype=np.float64)
    f = f[np.isfinite(f).all(1) & (f > r).all(1)]
    if not len(f):
        return 0.0
    f = f[pareto_mask(f)]
    f = f[np.argsort(-f[:, 0], kind="stable")]
    area, y_prev = 0.0, r[1]
    for x, y in f:
        if y > y_prev:
            area += (x - r[0]) * (y - y_prev)
            y_prev = y
    return float(area)


def hypervolume_pymoo(points: Float[np.ndarray, "n m"], ref: Float[np.ndarray, " m"]) -> float:
    """Hypervolume by pymoo's indicator (which minimises: objectives and reference are negated)."""
    from pymoo.indicators.hv import HV

    f = np.asarray(points, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    f = f[np.isfinite(f).all(1) & (f > r).all(1)]
    if not len(f):
        return 0.0
    return float(HV(ref_point=-r)(-f))


def hypervolume(points: Float[np.ndarray, "n m"], ref: Float[np.ndarray, " m"]) -> float:
    """Hypervolume of maximised `points` against `ref`: exact sweep for m = 2, pymoo for m >= 3 (m = 1: the gain)."""
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    f = np.asarray(points, dtype=np.float64).reshape(-1, r.shape[0]) if np.size(points) else np.empty((0, r.shape[0]))
    if np.ndim(points) == 2 and np.shape(points)[1] != r.shape[0]:
        raise ValueError(f"points have {np.shape(points)[1]} objectives, the reference point {r.shape[0]}")
    if f.shape[1] == 1:
        best = np.nanmax(f[:, 0]) if len(f) else -np.inf
        return float(max(best - r[0], 0.0))
    if f.shape[1] == 2:
        return hypervolume_2d(f, r)
    return hypervolume_pymoo(f, r)
