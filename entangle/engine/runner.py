"""Runs judgement prompts through a TransformerBridge: shared-prefix forward passes with capture hooks.

Each item's prompts share their prefix (BOS + the judged sentence). `Runner.run` runs every distinct prefix once,
keeps its key/value cache, then runs the templates' suffixes against it; hooks act in both passes, so an ablation or
steering vector applies to prefix and suffix alike. Activations at sentence positions come from the prefix pass,
at the last prompt token from the suffix pass; `shared=False` runs whole prompts (the reference the self-check
compares against).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float

from entangle.engine.layout import Layout, layout, published
from entangle.engine.tokens import Encoded, collate, encode
from entangle.files import InputError
from entangle.hookpoints import all_layers, resid_hook
from entangle.models import LoadedModel
from entangle.prompts import Prompt, Template, answer_token_ids, likert_digit_ids
from entangle.readouts import cloze_log_odds, likert_expectation, span_logprob

SENTENCE_POSITIONS = ("judged_mean", "judged_last", "act_mean", "outcome_mean")
"""Read positions inside the judged sentence (computed in the prefix pass)."""
POSITIONS = ("last", *SENTENCE_POSITIONS)
"""Every read position: `last` is the last token of the judgement prompt."""


@dataclass
class BatchOutput:
    """Readouts and activations of one batch of prompts, rows in the order asked for."""

    readout: np.ndarray                       # [b] cloze log-odds or Likert expectation (NaN for text prompts)
    logprob: np.ndarray                       # [b] judged sentence: mean log-prob per token (NaN where not asked)
    acts: dict[str, np.ndarray] = field(default_factory=dict)  # position -> [b, n_layers + 1, d_model]
    tokens: int = 0                           # tokens actually run through the model (prefixes once)


def _weights(rows: Sequence[tuple[int, int] | None], width: int, pads: np.ndarray, mean: bool) -> torch.Tensor:
    """[b, t] read weights: uniform over each row's token span (mean) or 1 at its last token."""
    w = torch.zeros((len(rows), width), dtype=torch.float32)
    for b, span in enumerate(rows):
        if span is None:
            raise ValueError("a requested read position does not exist in this prompt (missing span)")
        lo, hi = span[0] + int(pads[b]), span[1] + int(pads[b])
        if mean:
            w[b, lo:hi] = 1.0 / (hi - lo)
        else:
            w[b, hi - 1] = 1.0
    return w


def _check_context(model: LoadedModel, prompts: Sequence[Prompt], encoded: Sequence[Encoded]) -> None:
    """Refuse prompts longer than the model's context window (positions it has no embedding for), before any pass."""
    limit = getattr(model.hf_model.config, "max_position_embeddings", None)
    too = [i for i, e in enumerate(encoded) if limit and len(e.ids) > limit]
    if too:
        p = prompts[too[0]]
        raise InputError(None, None, "text", f"the prompt of item {p.item_id!r} ({p.template_id}) is "
                         f"{len(encoded[too[0]].ids)} tokens, longer than the model's context of {limit} tokens "
                         f"({len(too)} prompt(s) are); shorten the text or use a model with a longer context")


class Runner:
    """Runs prompts through a model in padding-correct batches, capturing activations and readouts in one pass.

        >>> runner = Runner(model, prompts, templates("cloze"))            # doctest: +SKIP
        >>> out = runner.run(range(16), positions=("last", "judged_mean"))  # doctest: +SKIP
    """

    def __init__(self, model: LoadedModel, prompts: Sequence[Prompt], tmpls: Sequence[Template], bos: str | None = None):
        self.model, self.prompts = model, list(prompts)
        tok = model.tokenizer
        self.bos = bos or model.info.bos_policy
        self.encoded: list[Encoded] = [
            encode(tok, p.text, (p.judged_start, p.judged_end), self.bos, p.span_dict()) for p in self.prompts]
        _check_context(model, self.prompts, self.encoded)
        by_id = {t.id: t for t in tmpls}
        missing = {p.template_id for p in self.prompts} - set(by_id)
        if missing:
            raise ValueError(f"prompts use unknown templates: {sorted(missing)}")
        answers = answer_token_ids(tok, tmpls)
        digits = likert_digit_ids(tok) if any(t.style == "likert" for t in tmpls) else []
        self.answer = [answers.get(p.template_id) for p in self.prompts]
        self.digits = torch.tensor(digits, dtype=torch.long)
        self.pad_id = tok.pad_token_id
        # the judged sentence's log-prob is the same under every prompt sharing its prefix: score it once
        first: set[tuple[int, ...]] = set()
        self.want_logprob = []
        for e in self.encoded:
            self.want_logprob.append(e.prefix not in first)
            first.add(e.prefix)
        self.device = next(model.hf_model.parameters()).device

    def lengths(self) -> list[int]:
        return [len(e.ids) for e in self.encoded]

    # ------------------------------------------------------------------------------------------------ passes
    def _pass(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, layers: Sequence[int],
              reads: dict[str, torch.Tensor], lay: Layout, *, past: Any = None, keep_cache: bool = False,
              keep_normed: bool = False
              ) -> tuple[torch.Tensor, Any, dict[str, dict[int, torch.Tensor]], torch.Tensor | None]:
        """One forward pass with its token layout published; `reads` maps a position name to [b, t] weights over
        this pass's tokens."""
        dev = self.device
        weights = {name: w.to(dev) for name, w in reads.items()}
        store: dict[str, dict[int, torch.Tensor]] = {name: {} for name in reads}
        normed: dict[str, torch.Tensor] = {}

        def keep(layer: int) -> Callable:
            def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:  # only the read positions: [b, d] per position
                for name, w in weights.items():
                    store[name][layer] = torch.einsum("bt,btd->bd", w, t.float())
                return t
            return hook

        def grab_normed(t: torch.Tensor, hook: Any) -> torch.Tensor:
            normed["x"] = t.detach()
            return t

        hooks = [(resid_hook(layer), keep(layer)) for layer in (layers if reads else [])]
        if keep_normed:
            hooks.append(("ln_final.hook_out", grab_normed))
        kwargs: dict[str, Any] = {"attention_mask": mask.to(dev), "position_ids": pos.to(dev), "logits_to_keep": 1}
        if past is not None:
            kwargs["past_key_values"] = past
        with self.model.bridge.hooks(fwd_hooks=hooks), published(lay):
            if keep_cache:
                logits, cache = self.model.bridge(ids.to(dev), return_type="logits_and_cache", use_cache=True, **kwargs)
            else:
                logits, cache = self.model.bridge(ids.to(dev), **kwargs), None
        return logits[:, -1].float(), cache, store, normed.get("x")

    @torch.inference_mode()
    def run(self, idx: Sequence[int], positions: Sequence[str] = ("last", "judged_mean"),
            layers: Sequence[int] | None = None, *, shared: bool = True) -> BatchOutput:
        """Readouts and activations at `positions` for `layers` (all by default) of the prompts `idx`."""
        unknown = set(positions) - set(POSITIONS)
        if unknown:
            raise ValueError(f"unknown position(s) {sorted(unknown)}; known: {POSITIONS}")
        idx = list(idx)
        layers = list(all_layers(self.model.info.n_layers)) if layers is None else list(layers)
        return self._run_shared(idx, positions, layers) if shared else self._run_full(idx, positions, layers)

    def _sentence_reads(self, encs: Sequence[Encoded], pads: np.ndarray, width: int,
                        positions: Sequence[str]) -> dict[str, torch.Tensor]:
        reads = {}
        for name in positions:
            if name == "judged_mean":
                reads[name] = _weights([(e.judged_lo, e.judged_hi) for e in encs], width, pads, True)
            elif name == "judged_last":
                reads[name] = _weights([(e.judged_lo, e.judged_hi) for e in encs], width, pads, False)
            elif name in ("act_mean", "outcome_mean"):
                reads[name] = _weights([e.spans.get(name.removesuffix("_mean")) for e in encs], width, pads, True)
        return reads

    def _run_full(self, idx: list[int], positions: Sequence[str], layers: list[int]) -> BatchOutput:
        encs = [self.encoded[i] for i in idx]
        ids, mask, pos, pads = collate([e.ids for e in encs], self.pad_id)
        reads = self._sentence_reads(encs, pads, ids.shape[1], positions)
        if "last" in positions:
            reads["last"] = _weights([(len(e.ids) - 1, len(e.ids)) for e in encs], ids.shape[1], pads, False)
        lay = layout(encs, idx, pads, ids.shape[1])
        last_logits, _, store, normed = self._pass(ids, mask, pos, layers, reads, lay, keep_normed=True)
        logprob = self._logprob(idx, normed, ids, pads, range(len(idx)))
        out = BatchOutput(readout=self._readout(idx, last_logits), logprob=logprob, tokens=int(mask.sum()))
        for name in positions:
            out.acts[name] = torch.stack([store[name][layer] for layer in layers], dim=1).cpu().numpy()
        return out

    def _run_shared(self, idx: list[int], positions: Sequence[str], layers: list[int]) -> BatchOutput:
        encs = [self.encoded[i] for i in idx]
        group: dict[tuple[int, ...], int] = {}
        owner = [group.setdefault(e.prefix, len(group)) for e in encs]
        heads = list({g: j for j, g in reversed(list(enumerate(owner)))}.values())  # first prompt of each prefix
        heads = sorted(heads, key=lambda j: owner[j])
        p_encs = [encs[j] for j in heads]
        pids, pmask, ppos, ppads = collate([e.prefix for e in p_encs], self.pad_id)
        reads = self._sentence_reads(p_encs, ppads, pids.shape[1], positions)
        empty = [j for j, e in enumerate(encs) if not e.suffix]
        if "last" in positions and empty:
            reads["prefix_last"] = _weights([(len(e.prefix) - 1, len(e.prefix)) for e in p_encs], pids.shape[1],
                                            ppads, False)
        with_suffix = [j for j, e in enumerate(encs) if e.suffix]
        p_lay = layout(p_encs, [idx[j] for j in heads], ppads, pids.shape[1], "prefix")
        p_logits, cache, p_store, normed = self._pass(pids, pmask, ppos, layers, reads, p_lay,
                                                      keep_cache=bool(with_suffix), keep_normed=True)
        tokens = int(pmask.sum())
        last_logits = torch.empty((len(idx), p_logits.shape[-1]), dtype=torch.float32, device=p_logits.device)
        acts_last = {}
        if empty:
            last_logits[empty] = p_logits[[owner[j] for j in empty]]
        if with_suffix:
            own = torch.tensor([owner[j] for j in with_suffix], device=self.device)
            sids, smask, spos, _ = collate([encs[j].suffix for j in with_suffix], self.pad_id,
                                           offset=[len(encs[j].prefix) for j in with_suffix])
            past = copy.deepcopy(cache)
            for layer_cache in past.layers:
                layer_cache.batch_select_indices(own)
            full_mask = torch.cat([pmask.to(self.device)[own], smask.to(self.device)], dim=1)
            s_pads = [sids.shape[1] - len(encs[j].suffix) for j in with_suffix]
            s_reads = {"last": _weights([(len(encs[j].suffix) - 1, len(encs[j].suffix)) for j in with_suffix],
                                        sids.shape[1], np.array(s_pads), False)} \
                if "last" in positions else {}
            s_lay = layout([encs[j] for j in with_suffix], [idx[j] for j in with_suffix], s_pads, sids.shape[1],
                           "suffix")
            s_logits, _, s_store, _ = self._pass(sids, full_mask, spos, layers, s_reads, s_lay, past=past)
            last_logits[with_suffix] = s_logits
            tokens += int(smask.sum())
            if "last" in positions:
                acts_last = {layer: (with_suffix, s_store["last"][layer]) for layer in layers}
        logprob = self._logprob(idx, normed, pids, ppads, owner)
        out = BatchOutput(readout=self._readout(idx, last_logits), logprob=logprob, tokens=tokens)
        rows_of = torch.tensor(owner, device=self.device)
        for name in positions:
            per_layer = []
            for layer in layers:
                if name == "last":
                    x = torch.empty((len(idx), self.model.info.d_model), dtype=torch.float32, device=self.device)
                    if empty:
                        x[empty] = p_store["prefix_last"][layer][[owner[j] for j in empty]]
                    if with_suffix:
                        x[acts_last[layer][0]] = acts_last[layer][1]
                else:
                    x = p_store[name][layer][rows_of]
                per_layer.append(x)
            out.acts[name] = torch.stack(per_layer, dim=1).cpu().numpy()
        return out

    def _logprob(self, idx: Sequence[int], normed: torch.Tensor, ids: torch.Tensor, pads: np.ndarray,
                 row_of: Sequence[int]) -> np.ndarray:
        """Judged-sentence log-prob per token for the prompts that want it (once per prefix), NaN elsewhere."""
        logprob = np.full(len(idx), np.nan, dtype=np.float32)
        need = [j for j, i in enumerate(idx) if self.want_logprob[i]]
        if need:
            rows = [row_of[j] for j in need]
            spans = [(int(pads[r]) + self.encoded[idx[j]].judged_lo, int(pads[r]) + self.encoded[idx[j]].judged_hi)
                     for j, r in zip(need, rows, strict=True)]
            dev_rows = torch.tensor(rows, device=normed.device)
            logprob[need] = span_logprob(self.model.hf_model, normed[dev_rows], ids.to(normed.device)[dev_rows], spans)
        return logprob

    def _readout(self, idx: Sequence[int], last_logits: Float[torch.Tensor, "b vocab"]) -> np.ndarray:
        vals = np.full(len(idx), np.nan, dtype=np.float32)  # text prompts have no judgement readout
        cloze = [j for j, i in enumerate(idx) if self.prompts[i].style == "cloze"]
        if cloze:
            pairs = torch.tensor([self.answer[idx[j]] for j in cloze], device=last_logits.device)
            vals[cloze] = cloze_log_odds(last_logits[cloze], pairs[:, 0], pairs[:, 1])
        likert = [j for j, i in enumerate(idx) if self.prompts[i].style == "likert"]
        if likert:
            vals[likert] = likert_expectation(last_logits[likert], self.digits.to(last_logits.device))
        return vals
