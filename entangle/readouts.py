"""Behavioural readouts from one forward pass: cloze log-odds, Likert expectation, judged-sentence log-probability.

Which judgement readout works depends on the model: SmolLM2-135M answers 1-7 questions flatly (~1.8 whatever the
item) while its cloze log-odds separate moral items, so `choose_style` measures both on a small calibration set
and picks the one that separates moral good from bad items better; the choice and the evidence are recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int


def cloze_log_odds(last_logits: Float[torch.Tensor, "b vocab"], positive: Int[torch.Tensor, " b"],
                   negative: Int[torch.Tensor, " b"]) -> np.ndarray:
    """log p(positive) - log p(negative) at the next token, per row (the softmax normaliser cancels)."""
    rows = torch.arange(last_logits.shape[0], device=last_logits.device)
    return (last_logits[rows, positive] - last_logits[rows, negative]).cpu().numpy()


def likert_expectation(last_logits: Float[torch.Tensor, "b vocab"], digit_ids: Int[torch.Tensor, "7"]) -> np.ndarray:
    """Expected rating 1..7 under the model's next-token distribution renormalised over the seven digits."""
    p = torch.softmax(last_logits[:, digit_ids].float(), dim=-1)
    return (p * torch.arange(1, p.shape[-1] + 1, device=p.device, dtype=p.dtype)).sum(-1).cpu().numpy()


def span_logprob(hf_model: Any, normed: Float[torch.Tensor, "b t d"], ids: Int[torch.Tensor, "b t"],
                 spans: Sequence[tuple[int, int]], chunk: int = 256) -> np.ndarray:
    """Mean log-prob per token of each row's token span [lo, hi), from the final-norm hidden states.

    Only the positions that predict span tokens go through the unembedding, so the full [b, t, vocab] logits
    are never built (the forward pass itself keeps just the last position's logits).
    """
    head = hf_model.get_output_embeddings()
    cap = getattr(getattr(hf_model, "config", None), "final_logit_softcapping", None)
    # every (row, position) pair that predicts a span token, gathered into one matrix; the first token of a
    # prompt has no prediction
    pairs = [(b, p) for b, (lo, hi) in enumerate(spans) for p in range(max(lo, 1), hi)]
    row = torch.tensor([b for b, _ in pairs], device=ids.device)
    pos = torch.tensor([p for _, p in pairs], device=ids.device)
    lp = torch.empty(len(pairs), device=ids.device)
    for start in range(0, len(pairs), chunk):  # chunks bound the [n, vocab] logits for large vocabularies
        r, p = row[start:start + chunk], pos[start:start + chunk]
        logits = head(normed[r, p - 1]).float()
        if cap:
            logits = torch.tanh(logits / cap) * cap
        lp[start:start + chunk] = torch.log_softmax(logits, dim=-1).gather(-1, ids[r, p, None])[:, 0]
    sums = torch.zeros(len(spans), device=ids.device).index_add_(0, row, lp)
    counts = torch.zeros(len(spans), device=ids.device).index_add_(0, row, torch.ones_like(lp))
    return (sums / counts).cpu().numpy().astype(np.float32)


def standardised_separation(values: np.ndarray, labels: np.ndarray) -> float:
    """(mean of label +1 - mean of label -1) / pooled SD: how well a readout separates good from bad items."""
    good, bad = values[labels > 0], values[labels < 0]
    sd = np.sqrt((good.var(ddof=1) + bad.var(ddof=1)) / 2)
    return float((good.mean() - bad.mean()) / sd) if sd > 0 else 0.0
