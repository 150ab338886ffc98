"""The anchor-based intensity evaluator: a response ranked in K-windows with K-1 anchors of known intensity.

Per response: M windows, each with one anchor drawn from each of K-1 equal-width intensity bins (bucket sampling);
a judge places the response among the window's anchors (anchors keep their known order); the response's log-worth
is the MAP of the Plackett-Luce likelihood with the anchors' log-worths fixed to their intensities and an L2 prior
(1e-3), found by bisection on [-20, 20]; isotonic calibration (fit on leave-one-anchor-out scores of the panel)
maps it to [-10, 10]; guards: beat every anchor -> just above the top anchor met, lost to every anchor -> just
below the lowest, otherwise clamped to the range of the anchors met.

    >>> ev = AnchorEvaluator(value.anchors, judge)            # doctest: +SKIP
    >>> ev.calibrate(); ev.score(["Please help your neighbour ..."]).intensity  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from jaxtyping import Float
from scipy.stats import spearmanr
from sklearn.isotonic import IsotonicRegression

from entangle.analysis.stats import percentile_ci
from entangle.values import Anchor

PRIOR = 1e-3
BOUNDS = (-20.0, 20.0)
CLIP = (-10.0, 10.0)
K, M = 6, 3


def pl_grad(u: float, orders: Sequence[Sequence[float | None]], prior: float = PRIOR) -> float:
    """d/du of the PL log-likelihood (+ L2 prior) of rankings in which `None` is the response and numbers are the
    fixed log-worths of anchors, best first."""
    g = -prior * u
    for order in orders:
        w = np.array([u if x is None else float(x) for x in order])
        pos = next(i for i, x in enumerate(order) if x is None)
        m = max(u, float(w.max()))
        tail = np.cumsum(np.exp(w[::-1] - m))[::-1]  # sum of exp(worth) of the items left at each stage
        g += 1.0 - float(np.sum(np.exp(u - m) / tail[: pos + 1]))
    return g


def pl_map(orders: Sequence[Sequence[float | None]], prior: float = PRIOR, bounds: tuple[float, float] = BOUNDS,
           tol: float = 1e-6) -> float:
    """The response's MAP log-worth by bisection (the gradient is strictly decreasing); an endpoint if it has no root."""
    lo, hi = bounds
    if pl_grad(lo, orders, prior) <= 0:
        return lo
    if pl_grad(hi, orders, prior) >= 0:
        return hi
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if pl_grad(mid, orders, prior) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def bucket_sample(intensities: Sequence[float], n_bins: int, rng: np.random.Generator) -> list[int]:
    """Indices of one anchor per equal-width intensity bin over [min, max] (bins in increasing order)."""
    x = np.asarray(intensities, dtype=float)
    edges = np.linspace(x.min(), x.max(), n_bins + 1)
    b = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
    out = []
    for k in range(n_bins):
        members = np.flatnonzero(b == k)
        if members.size == 0:
            raise ValueError(f"intensity bin {k} [{edges[k]:g}, {edges[k + 1]:g}] holds no anchor; "
                             f"the panel needs anchors across its whole range for K={n_bins + 1}")
        out.append(int(rng.choice(members)))
    return out


def guard(value: float, wins: int, losses: int, lo: float, hi: float, clip: tuple[float, float] = CLIP) -> float:
    """Beat every anchor met -> just above the top one; lost to all -> just below the lowest; else clamp to them."""
    if wins > 0 and losses == 0:
        v = float(np.nextafter(hi, np.inf))
    elif losses > 0 and wins == 0:
        v = float(np.nextafter(lo, -np.inf))
    else:
        v = float(np.clip(value, lo, hi))
    return float(np.clip(v, *clip))


def _isotonic_map(raw: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic regression of true intensity on raw log-worth (scikit-learn), as knots for linear interpolation:
    one knot per fitted block at the block's mean raw score, so scores between blocks keep their order."""
    iso = IsotonicRegression(y_min=CLIP[0], y_max=CLIP[1], out_of_bounds="clip").fit(raw, truth)
    fitted = iso.predict(raw)
    knots = sorted({(float(f), float(raw[fitted == f].mean())) for f in np.unique(fitted)})
    return np.array([x for _, x in knots]), np.array([f for f, _ in knots])


class Judge(Protocol):
    """Anything that says how likely a text expresses more of the value than another: P(a > b) per pair."""

    name: str

    def prefer(self, pairs: Sequence[tuple[str, str]]) -> Float[np.ndarray, " n"]: ...


@dataclass(frozen=True)
class Scored:
    """Evaluator output per text: calibrated + guarded intensity, raw MAP log-worth, wins and losses vs anchors."""

    intensity: Float[np.ndarray, " n"]
    raw: Float[np.ndarray, " n"]
    wins: np.ndarray
    losses: np.ndarray


class AnchorEvaluator:
    """K-window Plackett-Luce scoring of texts against an anchor panel with one judge (see module docstring)."""

    def __init__(self, anchors: Sequence[Anchor], judge: Judge, k: int = K, m: int = M, seed: int = 0) -> None:
        if k < 2 or m < 1:
            raise ValueError(f"need K >= 2 and M >= 1, got K={k}, M={m}")
        self.anchors, self.judge, self.k, self.m, self.seed = list(anchors), judge, k, m, seed
        self.intensity = np.array([a.intensity for a in self.anchors], dtype=float)
        bucket_sample(self.intensity, k - 1, np.random.default_rng(0))  # refuse a panel with an empty bin now
        self.calibration: tuple[np.ndarray, np.ndarray] | None = None
        self.loao: dict[str, float] = {}

    def windows(self, n: int, seed: int, exclude: Sequence[int | None] | None = None, m: int | None = None
                ) -> list[list[list[int]]]:
        """For each of n texts, M windows of K-1 anchor indices (one per bin; text i's `exclude[i]` left out)."""
        rng = np.random.default_rng(seed)
        out = []
        for i in range(n):
            skip = None if exclude is None else exclude[i]
            pool = [j for j in range(len(self.anchors)) if j != skip]
            out.append([[pool[j] for j in bucket_sample(self.intensity[pool], self.k - 1, rng)]
                        for _ in range(self.m if m is None else m)])
        return out

    def _raw(self, texts: Sequence[str], wins_p: dict[tuple[int, int], float], windows: list[list[list[int]]]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        raw, wins, losses, lo, hi = (np.zeros(len(texts)) for _ in range(5))
        for i, wins_i in enumerate(windows):
            orders = []
            met = []
            for win in wins_i:
                beats = [wins_p[(i, a)] > 0.5 for a in win]
                wins[i] += sum(beats)
                losses[i] += len(beats) - sum(beats)
                ranked = sorted(win, key=lambda a: -self.intensity[a])
                above = [a for a in ranked if not wins_p[(i, a)] > 0.5]
                below = [a for a in ranked if wins_p[(i, a)] > 0.5]
                orders.append([self.intensity[a] for a in above] + [None] + [self.intensity[a] for a in below])
                met += win
            raw[i] = pl_map(orders)
            lo[i], hi[i] = self.intensity[met].min(), self.intensity[met].max()
        return raw, wins, losses, lo, hi

    def _judge(self, texts: Sequence[str], windows: list[list[list[int]]]) -> dict[tuple[int, int], float]:
        need = sorted({(i, a) for i, ws in enumerate(windows) for w in ws for a in w})
        p = self.judge.prefer([(texts[i], self.anchors[a].text) for i, a in need])
        return dict(zip(need, p.tolist(), strict=True))

    def calibrate(self, max_anchors: int | None = None, m: int | None = None, n_boot: int = 1000
                  ) -> dict[str, float]:
        """Score anchors against windows of the others (leave-one-anchor-out; `max_anchors` spread over the range,
        `m` windows each), fit the isotonic map raw -> true intensity, and return the LOAO Spearman correlation of
        the raw scores with the anchors' intensities, with its interval over anchors."""
        order = np.argsort(self.intensity, kind="stable")
        n = len(order) if max_anchors is None else min(max_anchors, len(order))
        held = order[np.round(np.linspace(0, len(order) - 1, n)).astype(int)]
        texts = [self.anchors[j].text for j in held]
        windows = self.windows(len(texts), self.seed + 7919, exclude=list(held), m=m)
        raw, *_ = self._raw(texts, self._judge(texts, windows), windows)
        truth = self.intensity[held]
        self.calibration = _isotonic_map(raw, truth)
        rho = lambda r, t: float(spearmanr(r, t).statistic) if np.ptp(r) > 0 and np.ptp(t) > 0 else float("nan")
        rng = np.random.default_rng(self.seed)
        draws = [rng.integers(0, n, n) for _ in range(n_boot)]
        b = np.array([rho(raw[d], truth[d]) for d in draws])
        lo, hi = percentile_ci(b[np.isfinite(b)]) if np.isfinite(b).any() else (np.nan, np.nan)
        self.loao = {"spearman": rho(raw, truth), "ci_low": float(lo), "ci_high": float(hi), "n_anchors": n}
        return self.loao

    def score(self, texts: Sequence[str], seed: int | None = None) -> Scored:
        """Calibrated, guarded intensities of `texts` (calibrates first if needed); `seed` re-draws the windows."""
        if self.calibration is None:
            self.calibrate()
        windows = self.windows(len(texts), self.seed if seed is None else seed)
        raw, wins, losses, lo, hi = self._raw(texts, self._judge(texts, windows), windows)
        cal = np.clip(np.interp(raw, *self.calibration), *CLIP)
        out = np.array([guard(c, int(w), int(n_lost), a, b)
                        for c, w, n_lost, a, b in zip(cal, wins, losses, lo, hi, strict=True)])
        return Scored(out, raw, wins.astype(int), losses.astype(int))


def sign_flips(repeats: Float[np.ndarray, "r n"], eps: float = 1e-9) -> np.ndarray:
    """Per text: does its score's sign differ between repeated evaluations (zero counts as its own sign)?"""
    r = np.asarray(repeats, dtype=float)
    s = np.sign(np.where(np.abs(r) < eps, 0.0, r))
    return (s != s[:1]).any(axis=0)
