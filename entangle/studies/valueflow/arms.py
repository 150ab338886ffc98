"""The two steering arms and the fluency cost of a setting.

Activation arm: α·σ_l·d added at layer l (several values at once: Σ ω_v α σ_l d_v, see `mix_vectors`).
Prompt arm: levels -2..+2, the value's definition given in the system turn (level 0: no instruction).
Fluency: mean NLL of neutral text under the same intervention, distinct-2 across a setting's responses and the
share of repeated 3-grams within a response, so that "steered" never means "broken".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from entangle.engine import generate, text_loss
from entangle.interventions.hooks import add_vectors
from entangle.models import LoadedModel
from entangle.studies.valueflow.directions import ValueDirection
from entangle.values import Value

LEVELS = (-2, -1, 0, 1, 2)
_LEVEL_TEXT = {
    2: "You hold this value very strongly and it shows clearly in everything you say.",
    1: "You lean slightly towards this value, and it colours your answers a little.",
    -1: "You are slightly against this value, and that colours your answers a little.",
    -2: "You firmly reject this value and it shows clearly in everything you say.",
}

Intervention = Callable[[], contextlib.AbstractContextManager]


def level_system(value: Value, level: int) -> str | None:
    """The prompt arm's system text for `level` (None at 0): the value's name and definition, then the stance."""
    if level not in LEVELS:
        raise ValueError(f"prompt level must be one of {LEVELS}, got {level}")
    if level == 0:
        return None
    return (f"The value of {value.name}: {value.definition} {_LEVEL_TEXT[level]} "
            "Answer in one or two short sentences.")


def mix_vectors(dirs: Mapping[str, ValueDirection], weights: Mapping[str, float], alpha: float,
                sigma: np.ndarray) -> dict[int, torch.Tensor]:
    """Σ_v ω_v·α·σ_l·d_v per layer (each value at its own layer)."""
    out: dict[int, torch.Tensor] = {}
    for v, w in weights.items():
        d = dirs[v]
        vec = torch.as_tensor(d.unit * (w * alpha * float(sigma[d.layer])), dtype=torch.float64)
        out[d.layer] = out.get(d.layer, torch.zeros_like(vec)) + vec
    return out


def vectors_intervention(model: LoadedModel, vectors: dict[int, torch.Tensor]) -> Intervention | None:
    """A zero-argument context-manager factory adding `vectors`; None when every vector is zero (no hooks at all)."""
    if all(float(v.abs().max()) == 0.0 for v in vectors.values()):
        return None
    return lambda: add_vectors(model.bridge, vectors)


def respond(model: LoadedModel, queries: Sequence[str], *, intervention: Intervention | None = None,
            system: str | None = None, max_new_tokens: int = 24, batch_size: int = 16, seed: int = 0,
            temperature: float = 0.0) -> list[str]:
    """The model's short responses to the queries under one setting (greedy unless temperature > 0)."""
    return generate(model, queries, max_new_tokens=max_new_tokens, batch_size=batch_size, intervention=intervention,
                    temperature=temperature, seed=seed, system=system)


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Unique n-grams / all n-grams over a setting's responses (whitespace tokens); NaN without any n-gram."""
    grams = [g for t in texts for g in _ngrams(t.lower().split(), n)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition(text: str, n: int = 3) -> float:
    """Share of a response's n-grams that repeat an earlier one (0: none repeated)."""
    grams = _ngrams(text.lower().split(), n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def neutral_loss(model: LoadedModel, texts: Sequence[str], intervention: Intervention | None,
                 batch_size: int = 32) -> np.ndarray:
    """Per-text NLL (nats/token) of neutral texts under the setting's intervention."""
    return text_loss(model, texts, batch_size=batch_size, intervention=intervention)
