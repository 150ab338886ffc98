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


def cloze_log_odds(last_logits: Float[torch.Tensor, "vocab"], positive: int, negative: int) -> float:
    """log p(positive) - log p(negative) at the next token (the softmax normaliser cancels)."""
    return float(last_logits[positive] - last_logits[negative])


def likert_expectation(last_logits: Float[torch.Tensor, "b vocab"], digit_ids: Int[torch.Tensor, "7"]) -> np.ndarray:
    """Expected rating 1..7 under the model's next-token distribution renormalised over the seven digits."""
    p = torch.softmax(last_logits[:, digit_ids].float(), dim=-1)
    return (p * torch.arange(1, p.shape[-1] + 1, device=p.device, dtype=p.dtype)).sum(-1).cpu().numpy()


def span_logprob(hf_model: Any, normed: Float[torch.Tensor, "b t d"], ids: Int[torch.Tensor, "b t"],
                 spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Mean log-prob per token of each row's token span [lo, hi), from the final-norm hidden states.

    Only the positions that predict span tokens go through the unembedding, so the full [b, t, vocab] logits
    are never built (the forward pass itself keeps just the last position's logits).
    """
    head = hf_model.get_output_embeddings()
    cap = getattr(getattr(hf_model, "config", None), "final_logit_softcapping", None)
    out = np.empty(len(spans), dtype=np.float32)
    for b, (lo, hi) in enumerate(spans):
        lo = max(lo, 1)  # the first token of a prompt has no prediction
        logits = head(normed[b, lo - 1:hi - 1]).float()
        if cap:
            logits = torch.tanh(logits / cap) * cap
        lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[b, lo:hi, None])
        out[b] = float(lp.mean())
    return out


def standardised_separation(values: np.ndarray, labels: np.ndarray) -> float:
    """(mean of label +1 - mean of label -1) / pooled SD: how well a readout separates good from bad items."""
    good, bad = values[labels > 0], values[labels < 0]
    sd = np.sqrt((good.var(ddof=1) + bad.var(ddof=1)) / 2)
    return float((good.mean() - bad.mean()) / sd) if sd > 0 else 0.0
