"""Candidate moral directions: method x read position x layer, fitted on the selection frames only.

Difference of means is the default for interventions (projecting the class-mean difference out equalises the class
means, the LEACE condition for a binary concept); the logistic normal and the shrinkage-LDA direction are candidates
too, so the causal selection can show which kind of direction carries the judgement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

METHODS = ("dom", "logistic", "lda")


@dataclass(frozen=True)
class Candidate:
    """One candidate direction: unit vector (good projects higher) of `method` at `position`, residual `layer`."""

    method: str
    position: str
    layer: int
    vector: np.ndarray
    separation: float = float("nan")  # standardised good − bad separation of the projections (selection frames)

    @property
    def label(self) -> str:
        return f"{self.method}@{self.position}/L{self.layer}"


def fit_direction(x: Float[np.ndarray, "n d"], y: np.ndarray, method: str) -> Float[np.ndarray, " d"]:
    """Unit direction separating y > 0 (good) from y < 0 (bad), oriented so that good projects higher."""
    x = np.asarray(x, dtype=np.float64)
    good, bad = y > 0, y < 0
    if method == "dom":
        w = x[good].mean(0) - x[bad].mean(0)
    elif method == "logistic":
        mu, sd = x.mean(0), x.std(0) + 1e-8
        clf = LogisticRegression(C=1.0, max_iter=1000).fit((x - mu) / sd, good)
        w = clf.coef_[0] / sd
    elif method == "lda":
        w = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(x[good | bad], good[good | bad]).coef_[0]
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n = np.linalg.norm(w)
    if not n > 0:
        return np.zeros(x.shape[1])
    w = w / n
    return w if x[good].mean(0) @ w >= x[bad].mean(0) @ w else -w


def fit_candidates(data: dict[str, tuple[np.ndarray, np.ndarray]], layers: Sequence[int],
                   methods: Sequence[str] = METHODS) -> list[Candidate]:
    """Every method x position x layer: `data[position] = (acts [n, L, d], labels ±1)` of the selection frames."""
    out = []
    with threadpool_limits(limits=1, user_api="blas"):  # many small solves: threaded BLAS only adds overhead
        for position, (acts, y) in data.items():
            for layer in layers:
                x = np.asarray(acts[:, layer], dtype=np.float64)
                for method in methods:
                    v = fit_direction(x, y, method)
                    if np.linalg.norm(v) > 0:
                        proj = x @ v
                        sd = np.sqrt((proj[y > 0].var() + proj[y < 0].var()) / 2) or 1.0
                        sep = float((proj[y > 0].mean() - proj[y < 0].mean()) / sd)
                        out.append(Candidate(method, position, int(layer), v.astype(np.float32), sep))
    return out
