"""Embedding level (issue 8 §5): is moral good vs bad linearly readable from the input embeddings alone?

The last-token layer-0 activation is the embedding of the template's last word, constant within a template, so
it cannot answer the paper's embedding-level question. Here each item is the mean *input* embedding (the embedding
output, residual layer 0; no transformer block runs) over its judged sentence and over its act span, probed for
moral good vs bad with frame-grouped cross-validation and frame-bootstrap intervals. The outcome span is the
negative control: within a frame the good and bad items share it word for word, so its probe must sit at chance.

    >>> res = embedding_probe(model, load_stimuli(STIMULI_V2))   # doctest: +SKIP
    >>> res.table[["span", "accuracy", "ci_low", "ci_high"]]     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int

from entangle.analysis.probing import Method, fit_probes
from entangle.engine.tokens import encode
from entangle.models import LoadedModel
from entangle.schema import RESAMPLING_UNIT
from entangle.stimuli import Item

EMBEDDING_SPANS: tuple[str, ...] = ("sentence", "act", "outcome")
"""`sentence`: the judged sentence; `act`, `outcome`: the recorded spans (stimuli v2; outcome = the control)."""


@dataclass(frozen=True)
class EmbeddingLevel:
    """Moral probe accuracy per span at the embedding level, and the spans that could not be formed (and why).

    `table`: span, method, accuracy, ci_low, ci_high, auc, auc_ci_low, auc_ci_high, shuffled_accuracy, n_items,
    n_frames, n_splits, n_boot, resampling_unit (accuracy is out-of-fold, folds and resamples are frames).
    """

    table: pd.DataFrame
    unavailable: dict[str, str]

    def metrics(self) -> dict[str, Any]:
        """JSON-able: per span accuracy with its interval, plus what was not formed."""
        per_span = {r["span"]: {"accuracy": r["accuracy"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                                "auc": r["auc"], "shuffled_accuracy": r["shuffled_accuracy"], "n_items": r["n_items"],
                                "n_frames": r["n_frames"]} for r in self.table.to_dict("records")}
        return {"level": "mean input embedding (residual layer 0)", "spans": per_span,
                "unavailable": dict(self.unavailable), "resampling_unit": RESAMPLING_UNIT}


def span_embeddings(model: LoadedModel, items: Sequence[Item], spans: Sequence[str] = EMBEDDING_SPANS
                    ) -> tuple[dict[str, Float[np.ndarray, "n d"]], dict[str, str]]:
    """Mean input embedding of each item over each span (embedding module only), and why a span is missing.

    A span is formed only when every item records it (v1 stimuli record no act or outcome span).
    """
    tok, bos = model.tokenizer, model.info.bos_policy
    embed = model.hf_model.get_input_embeddings()
    dev = next(model.hf_model.parameters()).device
    unknown = [s for s in spans if s != "sentence" and s not in ("act", "outcome", "violation")]
    if unknown:
        raise ValueError(f"unknown span(s) {unknown}; expected 'sentence', 'act', 'outcome' or 'violation'")
    unavailable = {s: f"not every item records a {s!r} span (v1 stimuli record none; use data/stimuli/v2)"
                   for s in spans if s != "sentence" and any(it.span(s) is None for it in items)}
    use = [s for s in spans if s not in unavailable]
    out = {s: np.empty((len(items), model.info.d_model), dtype=np.float32) for s in use}
    with torch.inference_mode():
        for i, it in enumerate(items):
            named = {s: it.span(s) for s in use if s != "sentence"}
            e = encode(tok, it.text, (it.judged_start, it.judged_end), bos, named)
            x = embed(torch.tensor([e.ids], device=dev))[0].float()
            for s in use:
                lo, hi = (e.judged_lo, e.judged_hi) if s == "sentence" else e.spans[s]
                out[s][i] = x[lo:hi].mean(0).cpu().numpy()
    return out, unavailable


def probe_embeddings(means: Mapping[str, Float[np.ndarray, "n d"]], moral: Int[np.ndarray, " n"],
                     frames: Sequence[str], *, method: Method = "logistic", n_splits: int = 5, n_boot: int = 1000,
                     n_shuffle: int = 1, seed: int = 0, unavailable: Mapping[str, str] | None = None) -> EmbeddingLevel:
    """Frame-grouped CV probe of moral good (+1) vs bad (−1) on each span's [n, d] means (neutral rows left out)."""
    rows = []
    for span, x in means.items():
        res = fit_probes(np.asarray(x)[:, None, :], np.asarray(moral), np.asarray(frames), "moral", method=method,
                         n_splits=n_splits, n_boot=n_boot, n_shuffle=n_shuffle, seed=seed)
        rows.append({"span": span, "method": method, "accuracy": float(res.accuracy[0]),
                     "ci_low": float(res.acc_ci_low[0]), "ci_high": float(res.acc_ci_high[0]),
                     "auc": float(res.auc[0]), "auc_ci_low": float(res.auc_ci_low[0]),
                     "auc_ci_high": float(res.auc_ci_high[0]), "shuffled_accuracy": float(res.shuffled_accuracy[0]),
                     "n_items": res.n_items, "n_frames": res.n_frames, "n_splits": res.n_splits, "n_boot": n_boot,
                     "resampling_unit": RESAMPLING_UNIT})
    return EmbeddingLevel(pd.DataFrame(rows), dict(unavailable or {}))


def embedding_probe(model: LoadedModel, items: Sequence[Item], *, spans: Sequence[str] = EMBEDDING_SPANS,
                    method: Method = "logistic", n_splits: int = 5, n_boot: int = 1000, n_shuffle: int = 1,
                    seed: int = 0) -> EmbeddingLevel:
    """The embedding-level moral probe on stimulus items: `span_embeddings` then `probe_embeddings`."""
    items = list(items)
    means, unavailable = span_embeddings(model, items, spans)
    return probe_embeddings(means, np.array([it.moral for it in items]), [it.frame for it in items], method=method,
                            n_splits=n_splits, n_boot=n_boot, n_shuffle=n_shuffle, seed=seed, unavailable=unavailable)
