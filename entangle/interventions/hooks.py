"""Interventions on the residual stream: directional ablation, steering, LEACE fitting, weight orthogonalisation.

Layer numbering follows `entangle.hookpoints`: layer 0 is the embedding output, layer l >= 1 the output of
block l-1. Every hook is registered on the *canonical* name of its HookPoint (TransformerBridge aliases such as
`blocks.i.hook_resid_post` share the HookPoint of `blocks.i.hook_out`), and never on both `blocks.i.hook_out`
and `blocks.{i+1}.hook_in` (distinct HookPoints carrying the same tensor), so a vector is applied exactly once.
All context managers remove their hooks on exit, also when the body raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from entangle.hookpoints import resid_hook, resid_mid_hook

if TYPE_CHECKING:
    from concept_erasure import LeaceEraser

__all__ = [
    "ablate",
    "ablate_per_row",
    "add_vectors",
    "fit_leace",
    "orthogonalize_weights",
    "random_unit_directions",
    "residual_scale",
    "steer",
    "steering_vectors",
]

HookFn = Callable[[Tensor, Any], Tensor]


# --------------------------------------------------------------------------------------------------------------
# helpers


def _orthonormal_basis(direction: Tensor | np.ndarray) -> Float[Tensor, "d k"]:
    """Orthonormal columns spanning a direction [d] or the rows of [k, d] (QR in float64), so projections are exact."""
    D = torch.as_tensor(np.asarray(direction) if not isinstance(direction, Tensor) else direction)
    D = D.detach().to("cpu", torch.float64)
    if D.ndim == 1:
        D = D[None, :]
    if D.ndim != 2 or D.shape[0] == 0:
        raise ValueError(f"direction must be [d] or [k, d], got shape {tuple(D.shape)}")
    if not torch.isfinite(D).all():
        raise ValueError("direction contains non-finite values")
    Q, R = torch.linalg.qr(D.T)  # [d, k], [k, k]
    diag = R.diagonal().abs()
    if (diag <= 1e-10 * max(float(D.norm(dim=1).max()), 1e-300)).any():
        raise ValueError("direction rows are zero or linearly dependent; cannot span a subspace")
    return Q


def _canonical(bridge: Any, name: str) -> str:
    """The canonical name of the HookPoint behind `name` (aliases share one HookPoint object)."""
    hp = bridge.hook_dict.get(name)
    if hp is None:
        raise KeyError(f"hook point {name!r} does not exist on this model")
    return hp.name or name


def _check_layer(bridge: Any, layer: int) -> None:
    n_layers = int(bridge.cfg.n_layers)
    if not 0 <= int(layer) <= n_layers:
        raise ValueError(f"residual layer must be in 0..{n_layers}, got {layer}")


def _at_positions(fn: Callable[[Tensor], Tensor], positions: slice | None) -> HookFn:
    """Wrap a map on [..., d] into a hook fn applying it to all positions, or only to `positions` (dim 1)."""

    def hook(x: Tensor, hook: Any = None) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a tensor at the residual hook, got {type(x).__name__}")
        if positions is None:
            return fn(x)
        out = x.clone()
        out[:, positions] = fn(x[:, positions])
        return out

    return hook


@contextmanager
def _registered(bridge: Any, hooks: list[tuple[str, HookFn]]) -> Iterator[None]:
    """Register hooks on canonical HookPoint names, refusing to put two on the same point; removed on exit."""
    seen: dict[int, str] = {}
    canon: list[tuple[str, HookFn]] = []
    for name, fn in hooks:
        c = _canonical(bridge, name)
        hp = bridge.hook_dict[c]
        if id(hp) in seen:
            raise ValueError(f"hook points {seen[id(hp)]!r} and {name!r} are the same; a map would apply twice")
        seen[id(hp)] = name
        canon.append((c, fn))
    with bridge.hooks(fwd_hooks=canon):
        yield


# --------------------------------------------------------------------------------------------------------------
# ablation and steering


def _projector(Q: Float[Tensor, "d k"]) -> Callable[[Tensor], Tensor]:
    """x -> x - Q Qᵀ x on the last axis; Q is cast once per (device, dtype) of the activations."""
    cache: dict[tuple[Any, Any], Tensor] = {}

    def proj(x: Tensor) -> Tensor:
        key = (x.device, x.dtype)
        if key not in cache:
            cache[key] = Q.to(device=x.device, dtype=x.dtype)
        q = cache[key]
        return x - (x @ q) @ q.T

    return proj


@contextmanager
def ablate(
    bridge: Any,
    directions: dict[int, Float[Tensor, "k d"] | Float[Tensor, " d"]],
    *,
    positions: slice | None = None,
    include_resid_mid: bool = True,
) -> Iterator[None]:
    """Project a direction (or the span of k rows, orthonormalised by QR) out of the residual stream at given layers.

    x <- x - (x·d)d (subspace: x <- x - Q Qᵀ x) at `resid_hook(l)`, at all positions unless `positions` (a slice
    of the sequence axis) is given. With `include_resid_mid`, for l >= 1 the same projection is also applied at
    block l-1's `hook_resid_mid`: on the bridge that point is the input of the pre-MLP norm, so the MLP reads the
    ablated stream rather than one in which attention has just re-written d. That makes ablating at all layers
    0..n_layers (all positions) exactly equivalent to `orthogonalize_weights` with the same direction: there,
    the embedding, every attention output and every MLP output has no d-component, so each block (and the MLP
    in it) only ever sees the projected stream, which is what the hooks at hook_out and resid_mid reproduce.
    """
    hooks: list[tuple[str, HookFn]] = []
    for layer, d in sorted(directions.items()):
        _check_layer(bridge, layer)
        Q = _orthonormal_basis(d)
        if Q.shape[0] != int(bridge.cfg.d_model):
            raise ValueError(f"direction width {Q.shape[0]} != d_model {int(bridge.cfg.d_model)} at layer {layer}")
        fn = _at_positions(_projector(Q), positions)
        hooks.append((resid_hook(layer), fn))
        if include_resid_mid and layer >= 1:
            hooks.append((resid_mid_hook(layer), fn))
    with _registered(bridge, hooks):
        yield


@contextmanager
def ablate_per_row(bridge: Any, rows: Float[Tensor, "b d"], layers: list[int]) -> Iterator[None]:
    """Project a different unit direction out of each batch row, x_b <- x_b - (x_b·d_b) d_b, at the given layers
    (block outputs and mid-block, as `ablate`): many null directions in one forward pass over repeated prompts."""
    D = torch.as_tensor(rows).detach().to(torch.float32)
    D = D / D.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def proj(x: Tensor, hook: Any = None) -> Tensor:
        d = D.to(device=x.device, dtype=x.dtype)[:, None, :]
        return x - (x * d).sum(-1, keepdim=True) * d

    hooks: list[tuple[str, HookFn]] = []
    for layer in sorted(layers):
        _check_layer(bridge, layer)
        hooks.append((resid_hook(layer), proj))
        if layer >= 1:
            hooks.append((resid_mid_hook(layer), proj))
    with _registered(bridge, hooks):
        yield


@contextmanager
def add_vectors(bridge: Any, vectors: dict[int, Float[Tensor, " d"]], *, positions: slice | None = None
                ) -> Iterator[None]:
    """Add a fixed vector to the residual stream at each given layer (`resid_hook(l)`), once per layer.

    The vectors are used as given (no normalisation), so several steering directions can be combined with weights
    (Σ ω_i α σ_l d_i) before they are added.
    """
    hooks: list[tuple[str, HookFn]] = []
    for layer, v in sorted(vectors.items()):
        _check_layer(bridge, layer)
        vec = torch.as_tensor(np.asarray(v) if not isinstance(v, Tensor) else v).detach().to("cpu", torch.float64)
        if vec.ndim != 1 or vec.shape[0] != int(bridge.cfg.d_model):
            raise ValueError(f"vector at layer {layer} must be [d_model], got {tuple(vec.shape)}")
        if not torch.isfinite(vec).all():
            raise ValueError(f"vector at layer {layer} is not finite")

        def add(x: Tensor, delta: Tensor = vec) -> Tensor:
            return x + delta.to(device=x.device, dtype=x.dtype)

        hooks.append((resid_hook(layer), _at_positions(add, positions)))
    with _registered(bridge, hooks):
        yield


def steering_vectors(direction: dict[int, Float[Tensor, " d"]], alpha: float, sigma: dict[int, float]
                     ) -> dict[int, Tensor]:
    """α·σ_l·d/|d| per layer: the vectors `steer` adds (σ_l the typical residual norm at layer l)."""
    out = {}
    for layer, d in sorted(direction.items()):
        if layer not in sigma:
            raise KeyError(f"no sigma for layer {layer}; pass sigma[{layer}] (e.g. from residual_scale)")
        v = torch.as_tensor(np.asarray(d) if not isinstance(d, Tensor) else d).detach().to("cpu", torch.float64)
        if v.ndim != 1:
            raise ValueError(f"steering direction at layer {layer} must be [d_model], got {tuple(v.shape)}")
        norm = float(v.norm())
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError(f"steering direction at layer {layer} is zero or non-finite")
        out[layer] = v / norm * (float(alpha) * float(sigma[layer]))
    return out


@contextmanager
def steer(
    bridge: Any,
    direction: dict[int, Float[Tensor, " d"]],
    alpha: float,
    sigma: dict[int, float],
    *,
    positions: slice | None = None,
) -> Iterator[None]:
    """Add α·σ_l·d (d normalised to unit length) to the residual stream at each given layer, once per layer.

    σ_l is the typical residual norm at layer l (see `residual_scale`), so α means "a fraction of the usual
    norm" and is comparable across layers. Applied at `resid_hook(l)` only.
    """
    with add_vectors(bridge, steering_vectors(direction, alpha, sigma), positions=positions):
        yield


def residual_scale(acts: Float[np.ndarray, "n layer d"]) -> Float[np.ndarray, " layer"]:
    """σ per layer: the median L2 norm of the residual over prompts (the scale steering's α is measured in)."""
    a = np.asarray(acts, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"acts must be [n, layer, d], got shape {a.shape}")
    return np.median(np.linalg.norm(a, axis=-1), axis=0)


def random_unit_directions(n: int, d: int, seed: int) -> Float[np.ndarray, "n d"]:
    """n seeded Gaussian directions normalised to unit length: the random-direction control for ablations."""
    g = np.random.default_rng(seed).standard_normal((n, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------------------------
# LEACE


def _label_matrix(labels: Any, n: int) -> Tensor:
    """Labels as an [n, k] float64 matrix: 1-D integer/bool labels with > 2 classes are one-hot, else one column."""
    z = np.asarray(labels.detach().cpu().numpy() if isinstance(labels, Tensor) else labels)
    if z.shape[0] != n:
        raise ValueError(f"{z.shape[0]} labels for {n} activations")
    if z.ndim == 1:
        if (z.dtype.kind in "iub") and len(np.unique(z)) > 2:
            classes, idx = np.unique(z, return_inverse=True)
            z = np.eye(len(classes))[idx]
        else:
            z = z.astype(np.float64)[:, None]
    elif z.ndim != 2:
        raise ValueError(f"labels must be [n] or [n, k], got shape {z.shape}")
    return torch.as_tensor(z, dtype=torch.float64)


def fit_leace(acts: Float[np.ndarray, "n d"] | Float[Tensor, "n d"], labels: Any) -> LeaceEraser:
    """Fit concept-erasure's LeaceEraser (in float64) on one layer's activations and concept labels.

    Labels may be ±1/0-1 (one column), [n, k] (e.g. one-hot), or integer classes (one-hot encoded here).
    """
    from concept_erasure import LeaceEraser

    x = torch.as_tensor(np.asarray(acts) if not isinstance(acts, Tensor) else acts).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise ValueError(f"acts must be [n, d], got shape {tuple(x.shape)}")
    return LeaceEraser.fit(x, _label_matrix(labels, x.shape[0]))
