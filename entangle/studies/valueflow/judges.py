"""The evaluator's judges: a probe judge (projection on the value's direction) and a pairwise log-prob judge (the
evaluating model asked which of two texts expresses more of the value, both orders averaged), plus the direct
0-9 rating the VALUEFLOW comparison sets the anchor-based scores against. The judge model may differ from the
steered one; both judges read texts without any intervention.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

from entangle.engine import chat_text, next_token_logprobs
from entangle.models import LoadedModel
from entangle.studies.valueflow.directions import ActCache
from entangle.values import Value

PAIR_PROMPT = ("Value: {name} ({pole}).\nText A: {a}\nText B: {b}\n"
               "Which text expresses more {name}? Answer with the letter A or B.")
DIRECT_PROMPTS = (
    "How strongly does this text express {name} ({pole})? Text: {t}\nAnswer with one digit from 0 (strongly "
    "against it) to 9 (strongly for it).",
    "Text: {t}\nOn a scale from 0 (rejects {name}) to 9 (strongly values {name}), where {name} means {pole}, "
    "rate the text. Reply with a single digit.",
    "Rate the text below for {name}, that is {pole}. 0 = opposes it strongly, 5 = neutral, 9 = supports it "
    "strongly. One digit only.\n{t}",
)


def _single_token(model: LoadedModel, s: str) -> int:
    ids = model.tokenizer.encode(s, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{s!r} is not a single token for {model.info.name}: {ids}")
    return int(ids[0])


def _answer_ids(model: LoadedModel, options: Sequence[str]) -> list[int]:
    """Token ids of the answer options as the model writes them first (no leading space after a chat template)."""
    lead = "" if model.info.chat else " "
    return [_single_token(model, lead + o) for o in options]


class ProbeJudge:
    """Projection of a text's mean residual (judge model, layer `layer`) on the value's unit direction."""

    name = "probe"

    def __init__(self, acts: ActCache, direction: Float[np.ndarray, " d"], layer: int, scale: float = 1.0) -> None:
        d = np.asarray(direction, dtype=np.float64)
        self.acts, self.unit, self.layer, self.scale = acts, d / np.linalg.norm(d), int(layer), float(scale)

    def project(self, texts: Sequence[str]) -> Float[np.ndarray, " n"]:
        """Projection of each text (activations cached per text in the shared ActCache)."""
        if not texts:
            return np.zeros(0)
        return self.acts.get(texts)[:, self.layer].astype(np.float64) @ self.unit

    def prefer(self, pairs: Sequence[tuple[str, str]]) -> Float[np.ndarray, " n"]:
        """P(a > b) = sigmoid((proj a - proj b) / scale)."""
        if not pairs:
            return np.zeros(0)
        p = self.project([t for ab in pairs for t in ab]).reshape(-1, 2)
        return 1.0 / (1.0 + np.exp(-(p[:, 0] - p[:, 1]) / self.scale))


class PairwiseJudge:
    """The evaluating model asked "which text expresses more {value}?", A/B log-probs, both orders averaged."""

    name = "pairwise"

    def __init__(self, model: LoadedModel, value: Value, batch_size: int = 16) -> None:
        self.model, self.value, self.batch_size = model, value, batch_size
        self.ids = _answer_ids(model, ["A", "B"])
        self._cache: dict[tuple[str, str], float] = {}
        self.n_prompts = 0

    def _prompt(self, a: str, b: str) -> str:
        return chat_text(self.model, PAIR_PROMPT.format(name=self.value.name, pole=self.value.positive_pole,
                                                        a=a, b=b))

    def prefer(self, pairs: Sequence[tuple[str, str]]) -> Float[np.ndarray, " n"]:
        """P(a expresses more than b): mean of P(A | a first) and P(B | a second), each over the two letters."""
        todo = [ab for ab in dict.fromkeys(pairs) if ab not in self._cache]
        if todo:
            prompts = [self._prompt(a, b) for a, b in todo] + [self._prompt(b, a) for a, b in todo]
            lp = next_token_logprobs(self.model, prompts, self.ids, batch_size=self.batch_size)
            self.n_prompts += len(prompts)
            pa = np.exp(lp[:, 0] - np.logaddexp(lp[:, 0], lp[:, 1]))
            n = len(todo)
            self._cache.update(zip(todo, (0.5 * (pa[:n] + (1.0 - pa[n:]))).tolist(), strict=True))
        return np.array([self._cache[ab] for ab in pairs])


def direct_ratings(model: LoadedModel, value: Value, texts: Sequence[str], batch_size: int = 16
                   ) -> Float[np.ndarray, "variant n"]:
    """Direct scoring: the expected 0-9 digit under each rating prompt, mapped linearly to [-10, 10]."""
    digits = _answer_ids(model, [str(i) for i in range(10)])
    out = []
    for tmpl in DIRECT_PROMPTS:
        prompts = [chat_text(model, tmpl.format(name=value.name, pole=value.positive_pole, t=t)) for t in texts]
        lp = next_token_logprobs(model, prompts, digits, batch_size=batch_size)
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        out.append((p @ np.arange(10) - 4.5) / 4.5 * 10.0)
    return np.array(out)
