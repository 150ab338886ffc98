"""Decorrelating value directions: none, Gram–Schmidt in a stated order, LEACE erasure of the other values' concepts
from each value's training data, and probes trained jointly with an HSIC penalty between their weight vectors.

The last is MVA's idea (arXiv 2511.17579: an HSIC penalty, RBF kernel σ = 1, weight 10, between per-value LoRA
parameters) moved from adapters to directions: one logistic probe per value on its own contrast texts, plus
λ·Σ_{i<j} HSIC(w_i, w_j), with each weight vector's coordinates as the samples (rescaled to unit RMS, so σ = 1 means
the same at any weight norm). With the linear kernel that penalty is the squared coordinate covariance of the two
weight vectors, a smooth push to orthogonality; the RBF kernel also penalises non-linear dependence.

    >>> D = decorrelate("gram_schmidt", train, order=["moral", "economic"])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float

from entangle.analysis.subspaces import hsic
from entangle.interventions.hooks import fit_leace

METHODS = ("none", "gram_schmidt", "leace", "hsic")
"""Decorrelation methods, in the order the report shows them."""

Pairs = tuple[Float[np.ndarray, "n d"], Float[np.ndarray, "n d"]]
"""One value's training data at one layer: (expressing activations, rejecting activations), row i the same pair."""


def dom(pairs: Pairs) -> Float[np.ndarray, " d"]:
    """Difference of means, expressing − rejecting."""
    return np.asarray(pairs[0], dtype=np.float64).mean(0) - np.asarray(pairs[1], dtype=np.float64).mean(0)


def gram_schmidt(directions: Float[np.ndarray, "m d"], order: Sequence[int] | None = None
                 ) -> Float[np.ndarray, "m d"]:
    """Orthonormal rows: in `order` (default 0..m-1) each direction keeps only its part orthogonal to the ones before
    it, so the first is only normalised. Rows are returned in the input order; a direction inside the span of
    earlier ones raises ValueError."""
    d = np.asarray(directions, dtype=np.float64)
    order = list(range(len(d))) if order is None else list(order)
    if sorted(order) != list(range(len(d))):
        raise ValueError(f"order must be a permutation of 0..{len(d) - 1}, got {order}")
    out = np.zeros_like(d)
    basis: list[np.ndarray] = []
    for i in order:
        v = d[i].copy()
        for _ in range(2):  # twice: classical GS re-orthogonalised is accurate to machine precision
            for b in basis:
                v -= (v @ b) * b
        n = np.linalg.norm(v)
        if n <= 1e-10 * max(np.linalg.norm(d[i]), 1e-300):
            raise ValueError(f"direction {i} lies in the span of the directions before it in the order")
        out[i] = v / n
        basis.append(out[i])
    return out


def leace_directions(train: Mapping[str, Pairs]) -> dict[str, Float[np.ndarray, " d"]]:
    """Each value's DoM after LEACE-erasing every *other* value's concept from its training texts.

    One eraser per value, fitted on all values' training texts with one label column per other value (+1 expressing,
    −1 rejecting on that value's texts, 0 on the rest); concept-erasure's covariance shrinkage keeps the fit stable
    with fewer texts than dimensions."""
    names = list(train)
    x = np.concatenate([np.concatenate([np.asarray(train[v][0]), np.asarray(train[v][1])]) for v in names])
    owner = np.concatenate([[v] * (2 * len(train[v][0])) for v in names])
    sign = np.concatenate([np.r_[np.ones(len(train[v][0])), -np.ones(len(train[v][1]))] for v in names])
    out = {}
    for v in names:
        others = [u for u in names if u != v]
        if not others:
            out[v] = dom(train[v])
            continue
        z = np.stack([np.where(owner == u, sign, 0.0) for u in others], axis=1)
        eraser = fit_leace(x, z)
        erase = lambda a, e=eraser: e(torch.as_tensor(np.asarray(a), dtype=torch.float64)).numpy()
        out[v] = dom((erase(train[v][0]), erase(train[v][1])))
    return out


@dataclass(frozen=True)
class ProbeFit:
    """Jointly trained probes: unit weight vectors [m, d] in activation space, the summed pairwise HSIC between them
    and the mean logistic loss, at the end of training."""

    directions: Float[np.ndarray, "m d"]
    penalty: float
    loss: float


def weight_hsic(w: Float[np.ndarray, "m d"], sigma: float | None = 1.0, kernel: str = "rbf") -> float:
    """Σ_{i<j} HSIC(w_i, w_j), each vector's coordinates the samples, rescaled to unit RMS (the probes' penalty)."""
    w = np.asarray(w, dtype=np.float64)
    w = w / np.sqrt((w * w).mean(1, keepdims=True))
    return float(sum(hsic(w[i], w[j], kernel, sigma) for i in range(len(w)) for j in range(i + 1, len(w))))


def _torch_hsic(a: torch.Tensor, b: torch.Tensor, sigma: float) -> torch.Tensor:
    def gram(x: torch.Tensor) -> torch.Tensor:
        x = x / x.pow(2).mean().sqrt()
        return torch.exp(-(x[:, None] - x[None, :]).pow(2) / (2 * sigma * sigma))

    k, m = gram(a), gram(b)
    kc = k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()
    return (kc * m).sum() / (a.shape[0] - 1) ** 2


def hsic_probes(train: Mapping[str, Pairs], *, lam: float = 10.0, sigma: float = 1.0, l2: float = 1e-3,
                steps: int = 300, lr: float = 0.05, seed: int = 0) -> ProbeFit:
    """Logistic probes (expressing vs rejecting, one per value, on its own texts) trained jointly with
    λ·Σ HSIC(w_i, w_j) (RBF, σ on unit-RMS coordinates) and an L2 term; Adam, full batch, from the DoM directions.

    Inputs are centred on the pooled mean and scaled by one scalar (the RMS coordinate), which keeps directions as
    they are; the returned rows are the unit weight vectors in activation space (sign: expressing scores higher)."""
    names = list(train)
    pooled = np.concatenate([np.concatenate([np.asarray(train[v][0]), np.asarray(train[v][1])]) for v in names])
    mu = pooled.mean(0)
    scale = float(np.sqrt(((pooled - mu) ** 2).mean()))
    xs, ys = [], []
    for v in names:
        e, r = np.asarray(train[v][0], dtype=np.float64), np.asarray(train[v][1], dtype=np.float64)
        xs.append(torch.as_tensor((np.concatenate([e, r]) - mu) / scale))
        ys.append(torch.as_tensor(np.r_[np.ones(len(e)), np.zeros(len(r))]))
    init = np.stack([dom(train[v]) for v in names])
    torch.manual_seed(seed)
    w = torch.nn.Parameter(torch.as_tensor(init / np.linalg.norm(init, axis=1, keepdims=True)))
    b = torch.nn.Parameter(torch.zeros(len(names), dtype=torch.float64))
    opt = torch.optim.Adam([w, b], lr=lr)

    def objective() -> tuple[torch.Tensor, torch.Tensor]:
        fit = sum(torch.nn.functional.binary_cross_entropy_with_logits(xs[i] @ w[i] + b[i], ys[i])
                  for i in range(len(names))) / len(names)
        pen = sum((_torch_hsic(w[i], w[j], sigma) for i in range(len(names)) for j in range(i + 1, len(names))),
                  torch.zeros((), dtype=torch.float64))
        return fit + l2 * w.pow(2).sum(), pen

    for _ in range(steps):
        opt.zero_grad()
        fit, pen = objective()
        (fit + lam * pen).backward()
        opt.step()
    with torch.no_grad():
        fit, pen = objective()
    wd = w.detach().numpy()
    return ProbeFit(wd / np.linalg.norm(wd, axis=1, keepdims=True), float(pen), float(fit))


def decorrelate(method: str, train: Mapping[str, Pairs], *, order: Sequence[str] | None = None, lam: float = 10.0,
                sigma: float = 1.0, seed: int = 0) -> dict[str, Float[np.ndarray, " d"]]:
    """One direction per value (unit length, sign: towards expressing) by a decorrelation method in `METHODS`.

    `order` is Gram–Schmidt's order (default: the order of `train`): the first value keeps its own DoM direction."""
    names = list(train)
    if method == "none":
        raw = {v: dom(train[v]) for v in names}
    elif method == "gram_schmidt":
        order = names if order is None else list(order)
        if sorted(order) != sorted(names):
            raise ValueError(f"order {order} must name each of {names} once")
        gs = gram_schmidt(np.stack([dom(train[v]) for v in names]), [names.index(v) for v in order])
        raw = dict(zip(names, gs, strict=True))
    elif method == "leace":
        raw = leace_directions(train)
    elif method == "hsic":
        raw = dict(zip(names, hsic_probes(train, lam=lam, sigma=sigma, seed=seed).directions, strict=True))
    else:
        raise ValueError(f"unknown decorrelation method {method!r}; choose from {', '.join(METHODS)}")
    return {v: d / np.linalg.norm(d) for v, d in raw.items()}
