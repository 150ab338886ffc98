"""Scoring one steering setting: each value's readout on its held-out pairs and the fluency cost on neutral text.

Readout (chosen for being behavioural, cheap and paired): for a held-out pair, NLL(rejecting) − NLL(expressing), the
mean per-token negative log-likelihoods under the (steered) model, so > 0 means the model finds the text that acts on
the value more probable than its counterpart. Both texts tell one situation, so everything but the value cancels,
and no generation or judge is needed (two forward passes per pair). The study checks that each value's readout
moves with its own direction (the positive control) before reading any cross-effect off it. Fluency cost: the mean
per-token NLL of neutral texts. Results are cached per (texts, intervention) so an interrupted run resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float

from entangle.engine import array_hash, text_loss
from entangle.files import atomic_write
from entangle.interventions.hooks import ablate, add_vectors
from entangle.models import LoadedModel
from entangle.studies.tradeoffs.config import ValueTexts

Intervention = Callable[[], contextlib.AbstractContextManager]


@dataclass(frozen=True)
class Scores:
    """Per-item results of one setting: readout[value] [n_heldout] (per pair) and loss [n_neutral] (per text)."""

    readout: Mapping[str, Float[np.ndarray, " n"]]
    loss: Float[np.ndarray, " n"]


def steering_vector(directions: Mapping[str, np.ndarray], omega: Mapping[str, float], alpha: float, sigma: float
                    ) -> Float[np.ndarray, " d"]:
    """Σ_i ω_i α σ d_i/|d_i|: the vector added at the steering layer for weights ω."""
    out = np.zeros_like(next(iter(directions.values())), dtype=np.float64)
    for v, w in omega.items():
        d = np.asarray(directions[v], dtype=np.float64)
        out += float(w) * alpha * sigma * d / np.linalg.norm(d)
    return out


def steer_intervention(model: LoadedModel, layer: int, vector: np.ndarray) -> Intervention | None:
    """add_vectors at one layer (None for a zero vector: the unsteered model)."""
    if not np.any(vector):
        return None
    vec = torch.as_tensor(vector)
    return lambda: add_vectors(model.bridge, {layer: vec})


def ablate_intervention(model: LoadedModel, layer: int, direction: np.ndarray) -> Intervention:
    """Project a direction out at one layer (all positions, and the block's mid-residual), as the entanglement
    study's repair does."""
    d = torch.as_tensor(np.asarray(direction, dtype=np.float64))
    return lambda: ablate(model.bridge, {layer: d})


def score(model: LoadedModel, texts: Mapping[str, ValueTexts], neutral: Sequence[str], values: Sequence[str], *,
          intervention: Intervention | None, key: str, cache_dir: str | Path | None, batch_size: int = 32) -> Scores:
    """Readouts of `values` and the neutral loss under `intervention` (`key` names it for the cache)."""
    batch: list[str] = []
    for v in values:
        batch += list(texts[v].heldout_expressing) + list(texts[v].heldout_rejecting)
    batch += list(neutral)
    path = None
    if cache_dir is not None:
        h = hashlib.sha256("\x00".join([model.info.name, model.info.weights_hash or "", key, *batch]).encode())
        path = Path(cache_dir) / "tradeoffs" / f"{h.hexdigest()[:24]}.npy"
    if path is not None and path.is_file():
        nll = np.load(path)
    else:
        nll = text_loss(model, batch, batch_size=batch_size, intervention=intervention)
        if path is not None:
            atomic_write(path, lambda tmp: _save(tmp, nll))
    out, at = {}, 0
    for v in values:
        n = len(texts[v].heldout_expressing)
        out[v] = nll[at + n:at + 2 * n] - nll[at:at + n]
        at += 2 * n
    return Scores(out, nll[at:])


def _save(tmp: Path, a: np.ndarray) -> None:
    with open(tmp, "wb") as f:  # a file object: np.save would append .npy to the temp name
        np.save(f, a)


def vector_key(layer: int, vector: np.ndarray) -> str:
    """Cache key of a steering setting: layer and the vector's hash."""
    return f"steer@{layer}:{array_hash(vector)}" if np.any(vector) else "unsteered"
