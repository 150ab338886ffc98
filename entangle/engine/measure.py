"""Readouts without activations, under an optional intervention, cached on disk like captures.

`measure` re-measures judgement prompts (the ablation sweep, steering, controls) through the shared-prefix engine.
With a `cache_dir` and an `intervention_key` (what the intervention is: method, layers, hashes of its vectors) the
result is stored, so a warm run re-analyses without the model and an interrupted sweep resumes at the condition
where it stopped. `next_token_logprobs`, `text_loss` and `text_activations` serve studies that score free texts.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from entangle.engine.cache import cached_arrays
from entangle.engine.runner import Runner
from entangle.engine.tokens import collate, encode, group_batches, make_batches
from entangle.hookpoints import all_layers, resid_hook
from entangle.models import LoadedModel
from entangle.prompts import TEXT_TEMPLATE, Prompt, Template, text_prompts

Intervention = Callable[[], contextlib.AbstractContextManager]


def array_hash(*arrays: np.ndarray | torch.Tensor) -> str:
    """A short content hash of arrays (for intervention keys: which vectors were ablated or added)."""
    h = hashlib.sha256()
    for a in arrays:
        x = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(str(x.shape).encode())
        h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def prompts_hash(prompts: Sequence[Prompt]) -> str:
    """A content hash of prompts (texts and templates), for cache keys that depend on which prompts were used."""
    return hashlib.sha256("\x00".join(p.text + "\x01" + p.template_id for p in prompts).encode()).hexdigest()


def prompt_table(prompts: Sequence[Prompt], runner: Runner) -> pd.DataFrame:
    """Per-prompt metadata (item, kind, template, factors, token counts), the table stored beside activations."""
    df = pd.DataFrame([p.to_dict() for p in prompts]).drop(columns=["text"])
    df["n_prompt_tokens"] = [len(e.ids) for e in runner.encoded]
    df["n_judged_tokens"] = [e.judged_hi - e.judged_lo for e in runner.encoded]
    return df


def measure(model: LoadedModel, prompts: Sequence[Prompt], tmpls: Sequence[Template], *, batch_size: int = 32,
            intervention: Intervention | None = None, progress: bool = False, desc: str = "measure",
            cache_dir: str | Path | None = None, intervention_key: str | None = None,
            shared: bool = True) -> pd.DataFrame:
    """Readouts only (no activations), optionally with an intervention active; one row per prompt, input order.

    `shared=False` runs whole prompts (for interventions acting at positions counted from the prompt's end).

    >>> df = measure(model, prompts, tmpls, intervention=lambda: ablate(model.bridge, {17: d}))  # doctest: +SKIP
    """
    runner = Runner(model, prompts, tmpls)
    table = prompt_table(prompts, runner)

    def compute() -> dict[str, np.ndarray]:
        readout = np.empty(len(prompts), dtype=np.float32)
        logprob = np.empty(len(prompts), dtype=np.float32)
        ctx = intervention() if intervention is not None else contextlib.nullcontext()
        with ctx:
            batches = group_batches(runner.encoded, batch_size) if shared else make_batches(runner.lengths(), batch_size)
            for idx in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
                out = runner.run(idx, positions=(), shared=shared)
                readout[idx], logprob[idx] = out.readout, out.logprob
        return {"readout": readout, "logprob": logprob}

    cacheable = cache_dir is not None and (intervention is None or intervention_key is not None)
    parts = {"what": "measure", "prompts": prompts_hash(prompts),
             "templates": [t.__dict__ for t in tmpls], "intervention": intervention_key or "none", "shared": shared}
    got = cached_arrays(cache_dir if cacheable else None, model.info, parts, compute)
    return table.assign(readout=got["readout"], sentence_logprob=got["logprob"])


def text_loss(model: LoadedModel, texts: Sequence[str], *, batch_size: int = 32,
              intervention: Intervention | None = None, cache_dir: str | Path | None = None,
              intervention_key: str | None = None) -> Float[np.ndarray, " n"]:
    """Mean per-token negative log-likelihood (nats) of each text, with an intervention if given (cached like
    `measure` when a cache folder and, for an intervention, its key are given)."""
    df = measure(model, text_prompts(texts), [TEXT_TEMPLATE], batch_size=batch_size, intervention=intervention,
                 cache_dir=cache_dir, intervention_key=intervention_key)
    return -df["sentence_logprob"].to_numpy(dtype=np.float64)


@torch.inference_mode()
def next_token_logprobs(model: LoadedModel, texts: Sequence[str], token_ids: Sequence[int], *, batch_size: int = 32,
                        intervention: Intervention | None = None) -> Float[np.ndarray, "n k"]:
    """log p(token | text) over the full vocabulary at the end of each text, for the given token ids.

    Texts are used as they are (apply a chat template first for chat prompts); BOS follows the model's policy.
    """
    tok, bos = model.tokenizer, model.info.bos_policy
    enc = [encode(tok, t, (0, len(t)), bos) for t in texts]
    ids_sel = torch.tensor(list(token_ids), dtype=torch.long)
    out = np.empty((len(texts), len(ids_sel)), dtype=np.float64)
    dev = next(model.hf_model.parameters()).device
    ctx = intervention() if intervention is not None else contextlib.nullcontext()
    with ctx:
        for idx in make_batches([len(e.ids) for e in enc], batch_size):
            ids, mask, pos, _ = collate([enc[i].ids for i in idx], tok.pad_token_id)
            logits = model.bridge(ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                                  logits_to_keep=1)[:, -1].float()
            out[idx] = torch.log_softmax(logits, dim=-1)[:, ids_sel.to(dev)].cpu().numpy()
    return out


@torch.inference_mode()
def text_activations(model: LoadedModel, texts: Sequence[str], *, position: str = "mean",
                     layers: Sequence[int] | None = None, batch_size: int = 32,
                     intervention: Intervention | None = None) -> Float[np.ndarray, "n layer d"]:
    """Residual stream of each text at every layer (0 = embedding output): mean over its tokens or its last token."""
    if position not in ("mean", "last"):
        raise ValueError(f"position must be 'mean' or 'last', got {position!r}")
    tok = model.tokenizer
    enc = [encode(tok, t, (0, len(t)), model.info.bos_policy) for t in texts]
    layers = list(all_layers(model.info.n_layers)) if layers is None else list(layers)
    out = np.empty((len(texts), len(layers), model.info.d_model), dtype=np.float32)
    dev = next(model.hf_model.parameters()).device
    ctx = intervention() if intervention is not None else contextlib.nullcontext()
    with ctx:
        for idx in make_batches([len(e.ids) for e in enc], batch_size):
            ids, mask, pos, pads = collate([enc[i].ids for i in idx], tok.pad_token_id)
            w = torch.zeros(mask.shape, dtype=torch.float32)
            for b, i in enumerate(idx):
                lo, hi = int(pads[b]) + enc[i].judged_lo, int(pads[b]) + enc[i].judged_hi
                if position == "mean":
                    w[b, lo:hi] = 1.0 / (hi - lo)
                else:
                    w[b, hi - 1] = 1.0
            w = w.to(dev)
            got: dict[int, torch.Tensor] = {}

            def keep(layer: int) -> Callable:
                def hook(t: torch.Tensor, hook: object) -> torch.Tensor:
                    got[layer] = torch.einsum("bt,btd->bd", w, t.float())
                    return t
                return hook

            with model.bridge.hooks(fwd_hooks=[(resid_hook(layer), keep(layer)) for layer in layers]):
                model.bridge(ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), logits_to_keep=1)
            out[idx] = torch.stack([got[layer] for layer in layers], dim=1).cpu().numpy()
    return out
