"""Inducing a social value orientation: by prompt (a persona, in one step or in HVAE's two steps, with an optional
goal) and in activation space (steering along a contrastive direction at calibrated α).

    >>> systems = two_step_systems(model, ("altruistic", "competitive"))        # doctest: +SKIP
    >>> d = contrast_direction(model, DirectionSource("data/svo/prosocial_pairs.jsonl", "prosocial", "proself"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float

from entangle.directions import load_direction
from entangle.engine import generate, text_activations
from entangle.files import InputError
from entangle.models import LoadedModel

ROOT = Path(__file__).resolve().parents[3]
PERSONAS: dict[str, str] = {
    "altruistic": ("You are an altruistic person. Whenever you share money or other resources with someone, you "
                   "try to make the other person as well off as possible, even when it costs you."),
    "prosocial": ("You are a prosocial person. Whenever you share money or other resources with someone, you try "
                  "to make the total that both of you receive as large as possible and to keep the split fair."),
    "individualistic": ("You are an individualistic person. Whenever you share money or other resources with "
                        "someone, you care only about how much you yourself receive; what the other person gets "
                        "does not matter to you."),
    "competitive": ("You are a competitive person. Whenever you share money or other resources with someone, you "
                    "try to come out as far ahead of the other person as possible, even if you receive less."),
}
"""One-step personas (system prompts), written for entangle."""
GOALS: dict[str, str] = {
    "altruistic": "Your goal is to make the other person's amount as large as possible.",
    "prosocial": "Your goal is to make the sum of both amounts as large as possible.",
    "individualistic": "Your goal is to make your own amount as large as possible.",
    "competitive": "Your goal is to make your amount as much larger than the other person's as possible.",
}
"""Optional goal prompts, appended to the question."""
DESCRIBE = ("In three sentences, describe the values of a person with {article} {name} social value orientation: "
            "how do they weigh their own gain against another person's gain when they divide money?")
ACT_AS = "You are a person who holds the following values. {description} Act as this person would."


def one_step_system(persona: str) -> str:
    """The persona's system prompt (one-step induction)."""
    return PERSONAS[persona]


def two_step_systems(model: LoadedModel, personas: Sequence[str], *, max_new_tokens: int = 60,
                     batch_size: int = 8) -> dict[str, tuple[str, str]]:
    """HVAE's two-step induction: the model first describes each value system (greedy), then is told to act as a
    person holding it. Returns persona -> (the model's description, the system prompt built from it)."""
    asks = [DESCRIBE.format(article="an" if p[0] in "aeiou" else "a", name=p) for p in personas]
    described = generate(model, asks, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return {p: (d, ACT_AS.format(description=d)) for p, d in zip(personas, described, strict=True)}


@dataclass(frozen=True)
class DirectionSource:
    """Where a steering direction comes from: contrast pairs (JSONL with a positive and a negative text field,
    difference of means) or a saved direction file (.safetensors/.npz/.pt/.gguf, e.g. the entanglement study's)."""

    path: str
    positive: str = "expressing"
    negative: str = "rejecting"

    def resolve(self) -> Path:
        p = Path(self.path)
        return p if p.is_absolute() or p.exists() else ROOT / p


def read_pairs(path: Path, positive: str, negative: str) -> tuple[list[str], list[str]]:
    """The positive and negative texts of a contrast-pair JSONL file (InputError names a bad line)."""
    pos, neg = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pos.append(str(row[positive]))
            neg.append(str(row[negative]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(path, n, None, f"expected a JSON object with {positive!r} and {negative!r}: {exc}"
                             ) from None
    if len(pos) < 2:
        raise InputError(path, None, None, "need at least two contrast pairs")
    return pos, neg


def contrast_direction(model: LoadedModel, source: DirectionSource, *, batch_size: int = 32
                       ) -> dict[int, Float[np.ndarray, " d"]]:
    """Per residual layer, the direction of `source`: mean(positive) − mean(negative) of the texts' token-mean
    residuals, or the vectors of a saved direction file."""
    path = source.resolve()
    if path.suffix.lower() != ".jsonl":
        d = load_direction(path)
        if d.vectors.shape[1] != model.info.d_model:
            raise InputError(path, None, None, f"d_model {d.vectors.shape[1]} != the model's {model.info.d_model}")
        return {int(layer): np.asarray(v, dtype=np.float64) for layer, v in zip(d.layers, d.vectors, strict=True)}
    pos, neg = read_pairs(path, source.positive, source.negative)
    acts = text_activations(model, pos + neg, position="mean", batch_size=batch_size).astype(np.float64)
    diff = acts[: len(pos)].mean(axis=0) - acts[len(pos):].mean(axis=0)
    return {layer: diff[layer] for layer in range(diff.shape[0])}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (how far the moral direction is also a prosocial one)."""
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
