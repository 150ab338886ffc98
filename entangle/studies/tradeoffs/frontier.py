"""From per-item scores to objectives, cross-effects, Pareto sets and hypervolumes, with paired bootstrap intervals.

Objectives of a steering setting (all maximised): each frontier value's readout gain over the unsteered model, and
minus the neutral-text loss increase. The hypervolume's reference point is the unsteered model on every value axis
and a loss increase of `fluency_budget` on the fluency axis (the unsteered model itself would make every fluency
gain negative and every hypervolume 0). Intervals resample held-out pairs (per value) and neutral texts; the same
draws serve every setting, so differences between settings and methods are paired.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from entangle.analysis.pareto import hypervolume, pareto_mask
from entangle.analysis.stats import percentile_ci
from entangle.studies.tradeoffs.config import in_grid
from entangle.studies.tradeoffs.evaluate import Scores


@dataclass(frozen=True)
class Point:
    """One evaluated setting: decorrelation method ("none" raw; "unsteered" for ω = 0), weights, scores."""

    method: str
    omega: tuple[float, ...]
    scores: Scores


def _draws(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot + 1, n] item weights: row 0 all ones (the estimate), then bootstrap counts."""
    w = np.ones((n_boot + 1, n))
    for b in range(1, n_boot + 1):
        w[b] = np.bincount(rng.integers(0, n, n), minlength=n)
    return w


def boot_means(values: Sequence[str], points: Sequence[Scores], n_boot: int, seed: int
               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Mean readout per value [B+1, P] and mean neutral loss [B+1, P] per setting, row 0 the estimate."""
    rng = np.random.default_rng(seed)
    out = {}
    for v in values:
        x = np.stack([p.readout[v] for p in points])  # [P, n]
        w = _draws(x.shape[1], n_boot, rng)
        out[v] = w @ x.T / x.shape[1]
    loss = np.stack([p.loss for p in points])
    w = _draws(loss.shape[1], n_boot, rng)
    return out, w @ loss.T / loss.shape[1]


def _interval(x: np.ndarray) -> dict[str, float]:
    lo, hi = percentile_ci(x[1:]) if len(x) > 1 else (np.nan, np.nan)
    return {"estimate": float(x[0]), "ci_low": float(lo), "ci_high": float(hi)}


def cross_effects(values: Sequence[str], base: Scores, singles: Mapping[tuple[str, str], Scores], n_boot: int,
                  seed: int) -> pd.DataFrame:
    """Δreadout of every value a single-direction setting (method, steered value) read, vs unsteered, paired over
    held-out pairs (the same draws for every setting); `own` marks the positive control (steered == readout)."""
    rng = np.random.default_rng(seed)
    draws = {v: _draws(len(base.readout[v]), n_boot, rng) for v in values}
    rows = []
    for (method, steered), sc in singles.items():
        for v in values:
            if v not in sc.readout:
                continue
            delta = draws[v] @ (sc.readout[v] - base.readout[v]) / len(base.readout[v])
            rows.append({"method": method, "steered": steered, "readout": v, "own": steered == v,
                         **_interval(delta)})
    return pd.DataFrame(rows)


def analyse(points: Sequence[Point], frontier: Sequence[str], grid_bounds: Mapping[str, float | None],
            methods: Sequence[str], fluency_budget: float, n_boot: int, seed: int
            ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Objectives with intervals per setting (with Pareto flags per grid), hypervolume per (method, grid), and the
    hypervolume draws [B+1, methods, grids] for paired comparisons. Point 0 must be the unsteered model. A method
    whose weights never exceed 1 has no extrapolated grids (they would repeat its box)."""
    if points[0].method != "unsteered":
        raise ValueError("point 0 must be the unsteered model")
    means, loss = boot_means(frontier, [p.scores for p in points], n_boot, seed)
    obj = np.stack([means[v] - means[v][:, :1] for v in frontier] + [-(loss - loss[:, :1])], axis=-1)  # [B+1, P, m]
    ref = np.r_[np.zeros(len(frontier)), -fluency_budget]
    gnames = list(grid_bounds)
    reach = {m: max((max(p.omega) for p in points if p.method == m), default=0.0) for m in methods}
    member = {(m, g): np.array([(p.method in (m, "unsteered")) and in_grid(np.array(p.omega), grid_bounds[g])
                                and (grid_bounds[g] is None or grid_bounds[g] <= 1 or reach[m] > 1)
                                for p in points]) for m in methods for g in gnames}
    hv = np.full((n_boot + 1, len(methods), len(gnames)), np.nan)
    for (m, g), mask in member.items():
        if mask.sum() < 2:  # the unsteered point alone: this method was not run on this grid
            continue
        for b in range(n_boot + 1):
            hv[b, methods.index(m), gnames.index(g)] = hypervolume(obj[b][mask], ref)
    rows = []
    for (m, g), mask in member.items():
        if mask.sum() < 2:
            continue
        front = np.zeros(len(points), dtype=bool)
        front[mask] = pareto_mask(obj[0][mask])
        rows.append({"method": m, "grid": g, "n_points": int(mask.sum()), "n_pareto": int(front.sum()),
                     **{("hv" if k == "estimate" else k): x
                        for k, x in _interval(hv[:, methods.index(m), gnames.index(g)]).items()}})
    hv_table = pd.DataFrame(rows)
    prow = []
    for i, p in enumerate(points):
        row = {"method": p.method, **{f"w_{v}": w for v, w in zip(frontier, p.omega, strict=True)},
               "grids": " ".join(g for g in gnames if in_grid(np.array(p.omega), grid_bounds[g]))}
        for j, v in enumerate(frontier):
            iv = _interval(obj[:, i, j])
            row.update({f"gain_{v}": iv["estimate"], f"gain_{v}_low": iv["ci_low"], f"gain_{v}_high": iv["ci_high"],
                        f"readout_{v}": float(means[v][0, i])})
        iv = _interval(-obj[:, i, -1])
        row.update({"loss_increase": iv["estimate"], "loss_increase_low": iv["ci_low"],
                    "loss_increase_high": iv["ci_high"], "loss": float(loss[0, i])})
        for m in methods:
            for g in gnames:
                mask = member[(m, g)]
                if mask[i] and mask.sum() >= 2 and p.method != "unsteered":
                    row[f"pareto_{g}"] = bool(pareto_mask(obj[0][mask])[int(mask[:i].sum())])
        prow.append(row)
    return pd.DataFrame(prow), hv_table, hv


def compare(hv: np.ndarray, methods: Sequence[str], grids: Sequence[str]) -> pd.DataFrame:
    """Paired hypervolume differences: each decorrelation method − raw on every grid both ran, and for each method
    every larger grid − the box (extrapolation) and the box − convex; the share of draws <= 0 beside each."""
    rows = []

    def add(kind: str, a: tuple[str, str], b: tuple[str, str]) -> None:
        x = hv[:, methods.index(a[0]), grids.index(a[1])] - hv[:, methods.index(b[0]), grids.index(b[1])]
        if np.isnan(x[0]):
            return
        rows.append({"comparison": kind, "a": f"{a[0]}/{a[1]}", "b": f"{b[0]}/{b[1]}", **_interval(x),
                     "share_draws_le_0": float(np.mean(x[1:] <= 0)) if len(x) > 1 else np.nan,
                     "hv_a": float(hv[0, methods.index(a[0]), grids.index(a[1])]),
                     "hv_b": float(hv[0, methods.index(b[0]), grids.index(b[1])])})

    for m in methods[1:]:
        for g in grids:
            add("decorrelation", (m, g), (methods[0], g))
    for m in methods:
        add("box_vs_convex", (m, "box"), (m, "convex"))
        for g in grids:
            if g.startswith("box_"):
                add("extrapolation", (m, g), (m, "box"))
                add("extrapolated_vs_convex", (m, g), (m, "convex"))
    return pd.DataFrame(rows)
