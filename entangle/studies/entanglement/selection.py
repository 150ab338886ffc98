"""Causal selection of the moral direction: a first-order pre-screen of every candidate, exact ablation of the best
few on the selection frames, and the positive control on held-out frames.

A direction is *causal for morality* when projecting it out (every layer, every position) removes most of the
model's own moral effect at small collateral cost; candidates are ranked by that effect, never by probe accuracy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from scipy.stats import spearmanr

from entangle.engine.cache import cached_arrays
from entangle.engine.runner import Runner
from entangle.engine.tokens import collate, make_batches
from entangle.hookpoints import all_layers, resid_hook
from entangle.models import LoadedModel
from entangle.prompts import Prompt, Template
from entangle.studies.entanglement.candidates import Candidate
from entangle.studies.entanglement.effects import Kept


def attribution_matrix(model: LoadedModel, prompts: Sequence[Prompt], tmpls: Sequence[Template],
                       batch_size: int = 16, cache_dir: str | Path | None = None
                       ) -> tuple[Float[np.ndarray, "d d"], float]:
    """M with d·M·d ≈ the moral effect (mean good − mean bad readout) removed by ablating d at every layer.

    First order: ablating d changes x_ℓp by −(x_ℓp·d)d, so the readout moves by −Σ_ℓp (g_ℓp·d)(x_ℓp·d) = −dᵀ(Σ g xᵀ)d,
    with g the gradient of the readout; one forward and backward pass per batch gives it for every candidate at once.
    Returns (M symmetrised, the measured effect); cached under `cache_dir` when given.
    """
    parts = {"what": "attribution", "prompts": [p.text + "\x01" + p.template_id + f"\x01{p.moral}" for p in prompts]}
    got = cached_arrays(cache_dir, model.info, parts, lambda: dict(zip(
        ("M", "effect"), _attribution(model, prompts, tmpls, batch_size), strict=True)))
    return got["M"], float(got["effect"])


def _attribution(model: LoadedModel, prompts: Sequence[Prompt], tmpls: Sequence[Template],
                 batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    runner = Runner(model, prompts, tmpls)
    labels = np.array([p.moral for p in prompts], dtype=float)
    n_good, n_bad = int((labels > 0).sum()), int((labels < 0).sum())
    if not n_good or not n_bad:
        raise ValueError("attribution needs moral good and bad items")
    weight = np.where(labels > 0, 1.0 / n_good, np.where(labels < 0, -1.0 / n_bad, 0.0))
    d = model.info.d_model
    M = torch.zeros((d, d), dtype=torch.float64)
    effect = 0.0
    dev = runner.device
    layers = all_layers(model.info.n_layers)
    for idx in make_batches(runner.lengths(), batch_size):
        ids, mask, pos, _ = collate([runner.encoded[i].ids for i in idx], runner.pad_id)
        kept: dict[int, torch.Tensor] = {}

        def keep(layer: int) -> Callable:
            def hook(t: torch.Tensor, hook: object) -> torch.Tensor:
                t.retain_grad()
                kept[layer] = t
                return t
            return hook

        with torch.enable_grad(), model.bridge.hooks(fwd_hooks=[(resid_hook(ly), keep(ly)) for ly in layers]):
            logits = model.bridge(ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                                  logits_to_keep=1)[:, -1].float()
            pairs = torch.tensor([runner.answer[i] for i in idx], device=dev)
            rows = torch.arange(len(idx), device=dev)
            r = logits[rows, pairs[:, 0]] - logits[rows, pairs[:, 1]]
            w = torch.tensor(weight[idx], dtype=r.dtype, device=dev)
            total = (r * w).sum()
            total.backward()
        effect += float(total.detach())
        for t in kept.values():
            if t.grad is not None:
                M += torch.einsum("btd,bte->de", t.grad.double(), t.detach().double()).cpu()
        model.hf_model.zero_grad(set_to_none=True)
    M = (M + M.T) / 2
    return M.numpy(), np.asarray(effect)


def estimated_kept(M: np.ndarray, effect: float, candidates: Sequence[Candidate]) -> np.ndarray:
    """First-order estimate of the share of the moral effect each candidate's ablation keeps."""
    V = np.stack([c.vector.astype(np.float64) for c in candidates])
    removed = np.einsum("kd,de,ke->k", V, M, V)
    return 1.0 - removed / effect


@dataclass(frozen=True)
class Screened:
    """One candidate after exact ablation on the selection frames."""

    candidate: Candidate
    estimated_kept: float
    moral: Kept
    economic: Kept | None
    grammatical: Kept | None
    loss_delta: float
    passes_filters: bool

    def row(self) -> dict[str, object]:
        c = self.candidate
        return {"method": c.method, "position": c.position, "layer": c.layer, "label": c.label,
                "estimated_kept": self.estimated_kept, "moral_kept": self.moral.kept,
                "moral_kept_ci_low": self.moral.ci_low, "moral_kept_ci_high": self.moral.ci_high,
                "economic_kept": None if self.economic is None else self.economic.kept,
                "grammatical_kept": None if self.grammatical is None else self.grammatical.kept,
                "loss_delta": self.loss_delta, "passes_filters": self.passes_filters}


@dataclass(frozen=True)
class Filters:
    """Collateral limits a causal moral direction must respect (stated in the report)."""

    max_loss_delta: float = 0.1       # nats per token on neutral text
    min_other_kept: float = 0.5       # the economic and grammatical own effects keep at least half
    # grammar is read as the sentence log-prob minimal pair (well-formed − violated): it needs no question and is
    # precise per frame, while the grammatical cloze effect is a few hundredths of a nat on small models

    def ok(self, economic: Kept | None, grammatical: Kept | None, loss_delta: float) -> bool:
        others = [k.kept for k in (economic, grammatical) if k is not None and np.isfinite(k.kept)]
        return loss_delta <= self.max_loss_delta and all(v >= self.min_other_kept for v in others)


def rank_agreement(estimated: Sequence[float], exact: Sequence[float]) -> float:
    """Spearman correlation between the first-order estimates and the exact effects kept."""
    if len(estimated) < 3:
        return float("nan")
    return float(spearmanr(estimated, exact).statistic)


def ablation_of(model: LoadedModel, vector: np.ndarray) -> Callable[[], contextlib.AbstractContextManager]:
    """The intervention that projects `vector` out at every residual layer and position (and mid-block)."""
    from entangle.interventions import ablate  # noqa: PLC0415

    v = torch.from_numpy(np.asarray(vector, dtype=np.float32))
    return lambda: ablate(model.bridge, {layer: v for layer in all_layers(model.info.n_layers)})


def select(screened: Sequence[Screened]) -> Screened:
    """The candidate whose ablation leaves the moral effect closest to zero among those passing the filters (if none
    passes, the closest overall is returned and the positive control fails on its filters)."""
    passing = [s for s in screened if s.passes_filters] or list(screened)
    return min(passing, key=lambda s: abs(s.moral.kept) if np.isfinite(s.moral.kept) else np.inf)


def energy_share(vectors: Float[np.ndarray, "k d"], acts: Sequence[np.ndarray]) -> Float[np.ndarray, " k"]:
    """Each vector's largest share of residual energy over the layers of `acts` ([n, L, d] each): a direction that
    carries much of the stream (token identity, outlier dimensions) breaks the model when projected out."""
    V = np.asarray(vectors, dtype=np.float64)
    share = np.zeros(len(V))
    for a in acts:
        x = np.asarray(a, dtype=np.float64)
        for layer in range(x.shape[1]):
            xl = x[:, layer]
            C = xl.T @ xl / len(xl)  # second moments: E[(x·v)²] = vᵀCv
            share = np.maximum(share, np.einsum("kd,kd->k", V @ C, V) / max(np.trace(C), 1e-12))
    return share


def screened_table(screened: Sequence[Screened]) -> pd.DataFrame:
    return pd.DataFrame([s.row() for s in screened])
