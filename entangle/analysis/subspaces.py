"""Value subspaces and how much two of them overlap: principal directions of paired differences, principal angles,
linear CKA and HSIC, per layer, with intervals from resampling contrast pairs.

A value's subspace at a layer is spanned by the top-k right singular vectors of its paired differences
(expressing − rejecting activations of the same situation), *uncentred*, so the first one is the mean difference
(the difference-of-means direction) up to noise and the others the main ways the contrast varies. CKA and HSIC compare
two values' *representations of the same texts*: the coordinates of a shared text set (all values' contrast texts)
in each value's subspace, so they measure whether the texts that vary on one value also vary on the other.

    >>> Q = value_subspace(diffs, k=3)                      # doctest: +SKIP
    >>> np.degrees(principal_angles(Q_moral, Q_care))       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float

from entangle.analysis.stats import percentile_ci

MEASURES = ("cosine", "angle_first", "angle_mean", "cka", "hsic_rbf", "hsic_linear")
"""Interference measures per pair of values: DoM cosine, first and mean principal angle (degrees) between rank-k
subspaces, linear CKA, HSIC (RBF kernel, median-heuristic bandwidth on standardised coordinates) and linear HSIC."""


def value_subspace(diffs: Float[np.ndarray, "n d"], k: int) -> Float[np.ndarray, "k d"]:
    """Orthonormal rows spanning the top-k principal directions (uncentred SVD) of paired differences.

    The first row is signed to point along the mean difference, so it is the value's positive pole."""
    x = np.asarray(diffs, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"diffs must be [n, d] with n >= 1, got shape {x.shape}")
    k = int(min(k, *x.shape))
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    q = vt[:k].copy()
    if float(q[0] @ x.mean(0)) < 0:
        q[0] = -q[0]
    return q


def principal_angles(a: Float[np.ndarray, "k d"], b: Float[np.ndarray, "m d"]) -> Float[np.ndarray, " r"]:
    """Principal angles (radians, ascending) between the row spans of `a` and `b` (r = min(k, m))."""
    qa, _ = np.linalg.qr(np.atleast_2d(np.asarray(a, dtype=np.float64)).T)
    qb, _ = np.linalg.qr(np.atleast_2d(np.asarray(b, dtype=np.float64)).T)
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.arccos(np.clip(s, -1.0, 1.0))


def cosine(a: Float[np.ndarray, " d"], b: Float[np.ndarray, " d"]) -> float:
    """Cosine similarity of two vectors."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def linear_cka(x: Float[np.ndarray, "n p"], y: Float[np.ndarray, "n q"]) -> float:
    """Linear CKA (Kornblith et al. 2019) between two representations of the same n samples: 1 = same up to rotation
    and scale, 0 = no linear relation."""
    x = _centre(x)
    y = _centre(y)
    num = np.linalg.norm(y.T @ x) ** 2
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(num / den) if den > 0 else float("nan")


def median_bandwidth(x: Float[np.ndarray, "n p"]) -> float:
    """The median heuristic: the median pairwise Euclidean distance between samples (1.0 if all coincide)."""
    d = np.sqrt(_sq_dists(np.asarray(x, dtype=np.float64)))
    pos = d[np.triu_indices_from(d, k=1)]
    pos = pos[pos > 0]
    return float(np.median(pos)) if pos.size else 1.0


def kernel_matrix(x: Float[np.ndarray, "n p"], kernel: str = "rbf", sigma: float | None = 1.0
                  ) -> Float[np.ndarray, "n n"]:
    """Gram matrix: "linear" (x xᵀ) or "rbf" exp(-|a-b|²/(2σ²)), σ = None for the median heuristic."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if kernel == "linear":
        return x @ x.T
    if kernel != "rbf":
        raise ValueError(f"kernel must be 'rbf' or 'linear', got {kernel!r}")
    s = median_bandwidth(x) if sigma is None else float(sigma)
    return np.exp(-_sq_dists(x) / (2.0 * s * s))


def hsic(x: Float[np.ndarray, "n p"], y: Float[np.ndarray, "n q"], kernel: str = "rbf",
         sigma: float | None = 1.0) -> float:
    """Biased HSIC estimate tr(K H L H) / (n-1)² (Gretton et al. 2005): 0 for independent samples in expectation
    (up to O(1/n) bias), larger the more x and y depend on each other."""
    k = kernel_matrix(x, kernel, sigma)
    m = kernel_matrix(y, kernel, sigma)
    n = k.shape[0]
    if m.shape[0] != n:
        raise ValueError(f"x and y need the same number of samples, got {n} and {m.shape[0]}")
    kc = k - k.mean(0, keepdims=True) - k.mean(1, keepdims=True) + k.mean()
    return float((kc * m).sum() / (n - 1) ** 2)


def _centre(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    return x - x.mean(0, keepdims=True)


def _sq_dists(x: np.ndarray) -> np.ndarray:
    x = x[:, None] if x.ndim == 1 else x
    sq = (x * x).sum(1)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)


def _standardise(x: np.ndarray) -> np.ndarray:
    x = _centre(x)
    sd = x.std(0, keepdims=True)
    return x / np.where(sd > 0, sd, 1.0)


def pair_measures(qa: np.ndarray, qb: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray, texts: np.ndarray
                  ) -> dict[str, float]:
    """All interference measures between two values at one layer: `q*` [k, d] their subspaces, `mean_*` [d] their
    mean differences, `texts` [t, d] the shared text set whose coordinates in each subspace CKA and HSIC compare."""
    ang = np.degrees(principal_angles(qa, qb))
    ca, cb = _standardise(texts @ qa.T), _standardise(texts @ qb.T)
    return {"cosine": cosine(mean_a, mean_b), "angle_first": float(ang[0]), "angle_mean": float(ang.mean()),
            "cka": linear_cka(ca, cb), "hsic_rbf": hsic(ca, cb, "rbf", None), "hsic_linear": hsic(ca, cb, "linear")}


def interference(expressing: Mapping[str, Float[np.ndarray, "n layer d"]],
                 rejecting: Mapping[str, Float[np.ndarray, "n layer d"]], layers: Sequence[int], *, k: int = 3,
                 n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Interference between every pair of values at every layer, with percentile intervals from resampling each
    value's contrast pairs (the unit; the shared text set is resampled with them).

    `expressing[v]`/`rejecting[v]` are the activations of value v's pairs ([n_v, len(layers), d], row i of both the
    same situation). A row per (layer, value_a, value_b, measure). value_a == value_b rows are split-half
    self-agreement, the ceiling a pair of different values is read against: the mean over n_boot + 1 random
    half-splits of the pairs, with the 2.5-97.5% range over splits as its interval (resampling with replacement would
    put copies of one pair in both halves). Rank-k measures (principal angles) are biased upwards under resampling,
    since each resample's subspace is noisier than the full sample's: read their intervals as spread, not coverage."""
    names = list(expressing)
    rng = np.random.default_rng(seed)
    draws = {v: [np.arange(len(expressing[v]))] + [rng.integers(0, len(expressing[v]), len(expressing[v]))
                                                   for _ in range(n_boot)] for v in names}
    rows = []
    for li, layer in enumerate(layers):
        diffs = {v: np.asarray(expressing[v][:, li] - rejecting[v][:, li], dtype=np.float64) for v in names}
        texts = {v: np.concatenate([expressing[v][:, li], rejecting[v][:, li]]).astype(np.float64) for v in names}
        got: dict[tuple[str, str], list[dict[str, float]]] = {}
        for bi in range(n_boot + 1):
            d = {v: diffs[v][draws[v][bi]] for v in names}
            q = {v: value_subspace(d[v], k) for v in names}
            shared = np.concatenate([_pair_texts(texts[v], draws[v][bi]) for v in names])
            for ia, a in enumerate(names):
                perm = rng.permutation(len(diffs[a]))  # self: a random half-split of the original pairs
                h1, h2 = diffs[a][perm[:len(perm) // 2]], diffs[a][perm[len(perm) // 2:]]
                got.setdefault((a, a), []).append(pair_measures(value_subspace(h1, k), value_subspace(h2, k),
                                                                h1.mean(0), h2.mean(0), shared))
                for b in names[ia + 1:]:
                    got.setdefault((a, b), []).append(pair_measures(q[a], q[b], d[a].mean(0), d[b].mean(0), shared))
        for (a, b), vals in got.items():
            for m in MEASURES:
                x = np.array([v[m] for v in vals])
                lo, hi = percentile_ci(x[1:] if a != b else x) if n_boot else (np.nan, np.nan)
                rows.append({"layer": layer, "value_a": a, "value_b": b, "measure": m,
                             "estimate": float(x[0] if a != b else x.mean()), "ci_low": float(lo),
                             "ci_high": float(hi)})
    return pd.DataFrame(rows)


def _pair_texts(texts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Both texts of the pairs `idx` from a [2n, d] stack (expressing rows first, then rejecting)."""
    n = len(texts) // 2
    return np.concatenate([texts[idx], texts[idx + n]])
