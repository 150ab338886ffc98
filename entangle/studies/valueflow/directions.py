"""Value directions: difference of means (expressing - rejecting) per layer from a value's contrast pairs, with the
steering layer chosen by causal effect on held-out pairs, never by probe accuracy.

The causal effect of layer l: steer at l with +alpha0 and -alpha0 and measure how the model's own log-likelihood
margin (NLL of the rejecting text - NLL of the expressing text) of each held-out pair moves; a direction that
carries the value makes expressing texts more likely when pushed along +d. Held-out probe AUC is recorded beside it
for information only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float

from entangle.analysis.stats import auc, percentile_ci
from entangle.engine import chat_text, text_activations, text_loss
from entangle.interventions import residual_scale, steer
from entangle.models import LoadedModel
from entangle.values import Value


@dataclass(frozen=True)
class ValueDirection:
    """A value's unit direction at its causally selected layer, the DoM rows of every layer and the selection."""

    value_id: str
    layer: int
    unit: Float[np.ndarray, " d"]
    dom: Float[np.ndarray, "layer d"]
    selection: pd.DataFrame
    pairs_sha256: str


class ActCache:
    """Mean residual of texts at every layer of one model, computed once per text (probe judges share it)."""

    def __init__(self, model: LoadedModel, batch_size: int = 32) -> None:
        self.model, self.batch_size = model, batch_size
        self._acts: dict[str, np.ndarray] = {}

    def get(self, texts: Sequence[str]) -> Float[np.ndarray, "n layer d"]:
        todo = [t for t in dict.fromkeys(texts) if t not in self._acts]
        if todo:
            acts = text_activations(self.model, todo, position="mean", batch_size=self.batch_size)
            self._acts.update(zip(todo, acts, strict=True))
        return np.stack([self._acts[t] for t in texts])


def query_sigma(model: LoadedModel, queries: Sequence[str], batch_size: int = 32) -> Float[np.ndarray, " layer"]:
    """σ per layer: the median residual norm at the last token of the chat-formatted queries (the unit of α)."""
    acts = text_activations(model, [chat_text(model, q) for q in queries], position="last", batch_size=batch_size)
    return residual_scale(acts)


def default_layers(n_layers: int, n: int = 3) -> list[int]:
    """Candidate steering layers spread over the middle of the network (30%..60% depth)."""
    return sorted({max(1, round(n_layers * f)) for f in np.linspace(0.3, 0.6, n)})


def fit_direction(model: LoadedModel, value: Value, acts: ActCache, sigma: Float[np.ndarray, " layer"],
                  candidates: Sequence[int], *, n_heldout: int = 12, alpha0: float = 0.5, n_boot: int = 1000,
                  seed: int = 0, batch_size: int = 32) -> ValueDirection:
    """DoM per layer on the selection pairs; steering layer = the candidate with the largest held-out causal effect.

    With a single candidate and `alpha0` 0 the layer is taken as given and no causal test is run (readout-only
    values and the extra values of the mix: their effect is left empty in the table)."""
    pairs = value.pairs
    if not 2 <= n_heldout < len(pairs) - 1:
        raise ValueError(f"n_heldout must be in 2..{len(pairs) - 2}, got {n_heldout}")
    sel, held = pairs[:-n_heldout], pairs[-n_heldout:]
    a = acts.get([p.expressing for p in sel] + [p.rejecting for p in sel]).astype(np.float64)
    dom = a[: len(sel)].mean(0) - a[len(sel):].mean(0)
    h = acts.get([p.expressing for p in held] + [p.rejecting for p in held]).astype(np.float64)
    texts = [p.expressing for p in held] + [p.rejecting for p in held]
    rng = np.random.default_rng(seed)
    boots = rng.integers(0, len(held), size=(n_boot, len(held)))
    rows = []
    for layer in candidates:
        d = dom[layer] / np.linalg.norm(dom[layer])
        proj = h[:, layer] @ d
        row = {"value": value.id, "layer": int(layer), "effect": np.nan, "ci_low": np.nan, "ci_high": np.nan,
               "heldout_auc": auc(proj, np.r_[np.ones(len(held)), np.zeros(len(held))]), "sigma": float(sigma[layer])}
        if alpha0 == 0:
            if len(candidates) != 1:
                raise ValueError("without a causal test (alpha0 = 0) give exactly one layer")
            rows.append(row)
            continue
        margins = []
        for sign in (1.0, -1.0):
            nll = text_loss(model, texts, batch_size=batch_size,
                            intervention=lambda s=sign, d=d, layer=layer: steer(
                                model.bridge, {layer: d}, s * alpha0, {layer: float(sigma[layer])}))
            margins.append(nll[len(held):] - nll[: len(held)])
        eff = (margins[0] - margins[1]) / (2 * alpha0)
        lo, hi = percentile_ci(eff[boots].mean(1))
        rows.append(row | {"effect": float(eff.mean()), "ci_low": float(lo), "ci_high": float(hi)})
    table = pd.DataFrame(rows)
    best = int(table.layer.iloc[0]) if alpha0 == 0 else int(table.loc[table.effect.idxmax(), "layer"])
    table["selected"] = table.layer == best
    unit = dom[best] / np.linalg.norm(dom[best])
    digest = hashlib.sha256("\n".join(f"{p.id}\t{p.expressing}\t{p.rejecting}" for p in pairs).encode()).hexdigest()
    return ValueDirection(value.id, best, unit, dom, table, digest)
