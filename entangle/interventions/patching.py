"""Activation patching between moral minimal pairs: where moral value enters each judgement (issue 8 §3).

A pair is two items of one frame, economic level and grammatical level whose moral level differs (good +1 is the
*source*, bad −1 the *receiver*). Exact patching runs the receiver with its residual stream at layer ℓ and one
position group replaced by the source's activations there and reads the cloze log-odds at the last token;
attribution patching estimates the same change to first order from one forward and one backward pass per receiving
prompt, Δr ≈ Σ_{group positions} (x_src − x_recv)·∂r/∂x_recv.

    >>> pairs = minimal_pairs(load_stimuli(STIMULI_V2).subset(8))                      # doctest: +SKIP
    >>> exact = exact_patching(model, pairs, layers=range(0, 31, 3))                  # doctest: +SKIP
    >>> approx = attribution_patching(model, pairs, layers=range(0, 31, 3))           # doctest: +SKIP
    >>> compare_attribution(exact, approx).spearman                                   # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from entangle.analysis.patching_cells import (
    AttributionCheck,
    cell_table,
    compare_attribution,
)
from entangle.engine.tokens import Encoded, collate, encode
from entangle.hookpoints import resid_hook
from entangle.interventions.pairs import (
    ALIGNMENT,
    EVERYTHING,
    GROUPS,
    SPAN_GROUPS,
    MinimalPair,
    align,
    minimal_pairs,
    position_groups,
)
from entangle.models import LoadedModel
from entangle.prompts import answer_token_ids, render, templates
from entangle.schema import RESAMPLING_UNIT

__all__ = ["ALIGNMENT", "EVERYTHING", "GROUPS", "READOUTS", "SPAN_GROUPS", "AttributionCheck", "MinimalPair",
           "PatchingResult", "align", "attribution_patching", "cell_table", "compare_attribution", "exact_patching",
           "minimal_pairs", "position_groups"]

READOUTS: tuple[str, ...] = ("moral", "economic")


@dataclass(frozen=True)
class PatchingResult:
    """Cells (layer × group × readout) with restored fraction and raw Δ, per-pair values, and what could not be formed.

    `table`: layer, group, readout, template, method, n_pairs, n_frames, n_excluded, effect (mean r_good − r_bad),
    delta (mean r_patched − r_bad) and restored (Σ delta / Σ effect over the cell's pairs), each with a frame-bootstrap
    interval. `pairs`: one row per pair × layer × group × readout that entered. `unavailable`: group -> why no pair
    could enter it (e.g. v1 stimuli carry no spans).
    """

    method: str
    table: pd.DataFrame
    pairs: pd.DataFrame
    unavailable: dict[str, str]
    layers: tuple[int, ...]
    groups: tuple[str, ...]
    readouts: tuple[str, ...]
    n_pairs: int
    alpha: float
    seconds: float

    def metrics(self) -> dict[str, Any]:
        """JSON-able summary for `patching.*` in metrics.json (the cells themselves go into a table)."""
        return {"method": self.method, "layers": list(self.layers), "position_groups": list(self.groups),
                "readouts": list(self.readouts), "n_pairs": self.n_pairs, "alpha": self.alpha, "unavailable": dict(self.unavailable),
                "alignment": ALIGNMENT, "resampling_unit": RESAMPLING_UNIT, "seconds": round(self.seconds, 2)}


@dataclass(frozen=True)
class _Job:
    """One pair under one readout template: both prompts encoded, their groups, the answer token ids."""

    pair: MinimalPair
    readout: str
    template: str
    recv: Encoded
    src: Encoded
    answer: tuple[int, int]
    cells: dict[str, tuple[list[int], list[int]] | str]


def _jobs(model: LoadedModel, pairs: Sequence[MinimalPair], readouts: Sequence[str], groups: Sequence[str]
          ) -> list[_Job]:
    tok, bos = model.tokenizer, model.info.bos_policy
    out = []
    for kind in readouts:
        tmpl = templates("cloze", [kind], 1)[0]
        answer = answer_token_ids(tok, [tmpl])[tmpl.id]
        for pair in pairs:
            encs, grps = [], []
            for item in (pair.bad, pair.good):
                p = render(item, tmpl)
                e = encode(tok, p.text, (p.judged_start, p.judged_end), bos, p.span_dict())
                encs.append(e)
                grps.append(position_groups(e, bool(p.spans)))
            cells = {g: align(grps[0], grps[1], g) for g in groups}
            out.append(_Job(pair, kind, tmpl.id, encs[0], encs[1], answer, cells))
    return out


def _unavailable_reason(group: str, jobs: Sequence[_Job]) -> str:
    why = [j.cells[group] for j in jobs if isinstance(j.cells[group], str)]
    if why.count("missing") == len(jobs):
        return (f"no prompt has the {group!r} group: the stimuli record no act/outcome/violation spans "
                "(v1 stimuli; use data/stimuli/v2)" if group != "template" else "the templates have no tokens "
                "between the judged sentence and the last token")
    return f"every pair has unequal token counts in the {group!r} group, so none can be patched position by position"


# ------------------------------------------------------------------------------------------------ model passes


def _device(model: LoadedModel) -> torch.device:
    return next(model.hf_model.parameters()).device


def _log_odds(last_logits: torch.Tensor, answers: Sequence[tuple[int, int]]) -> torch.Tensor:
    """log p(positive) − log p(negative) per row (the readout the study uses for cloze prompts)."""
    a = torch.tensor(answers, device=last_logits.device)
    rows = torch.arange(last_logits.shape[0], device=last_logits.device)
    return last_logits[rows, a[:, 0]].float() - last_logits[rows, a[:, 1]].float()


def _forward(model: LoadedModel, rows: Sequence[Encoded], hooks: list) -> tuple[torch.Tensor, np.ndarray]:
    """Last-position logits of left-padded rows with the given hooks; hooks are removed on exit, also on errors."""
    dev = _device(model)
    ids, mask, pos, pads = collate([e.ids for e in rows], model.tokenizer.pad_token_id)
    with model.bridge.hooks(fwd_hooks=hooks):
        logits = model.bridge(ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), logits_to_keep=1)
    return logits[:, -1], pads


@torch.inference_mode()
def _capture(model: LoadedModel, encs: Sequence[Encoded], answers: Sequence[tuple[int, int]], layers: Sequence[int],
             batch_size: int) -> tuple[np.ndarray, list[dict[int, torch.Tensor]]]:
    """Readout of each prompt and its residual stream [t, d] at the given layers (unpadded)."""
    r = np.empty(len(encs))
    resid: list[dict[int, torch.Tensor]] = [{} for _ in encs]
    for s in range(0, len(encs), batch_size):
        idx = list(range(s, min(s + batch_size, len(encs))))
        got: dict[int, torch.Tensor] = {}

        def keep(layer: int, got: dict[int, torch.Tensor] = got):
            def hook(x: torch.Tensor, hook: Any) -> torch.Tensor:
                got[layer] = x.detach().clone()
                return x
            return hook

        last, pads = _forward(model, [encs[i] for i in idx], [(resid_hook(la), keep(la)) for la in layers])
        r[idx] = _log_odds(last, [answers[i] for i in idx]).cpu().numpy()
        for b, i in enumerate(idx):
            resid[i] = {la: got[la][b, int(pads[b]):] for la in layers}
    return r, resid


@dataclass(frozen=True)
class _Row:
    job: int
    layer: int
    group: str


def _patch_hooks(jobs: Sequence[_Job], rows: Sequence[_Row], src: Sequence[dict[int, torch.Tensor]],
                 shift: Sequence[int], alpha: float) -> list:
    """One hook per layer moving each row's group (receiver position + shift[b] in this pass) to the source values."""
    plan: dict[int, tuple[list[int], list[int], list[torch.Tensor]]] = {}
    for b, row in enumerate(rows):
        rp, sp = jobs[row.job].cells[row.group]
        bs, ps, vs = plan.setdefault(row.layer, ([], [], []))
        bs.extend([b] * len(rp))
        ps.extend(p + shift[b] for p in rp)
        vs.append(src[row.job][row.layer][sp])

    def put(b_idx: list[int], p_idx: list[int], vals: list[torch.Tensor]):
        v = torch.cat(vals)

        def hook(x: torch.Tensor, hook: Any) -> torch.Tensor:
            x = x.clone()
            new = v.to(x.dtype)
            x[b_idx, p_idx] = new if alpha == 1.0 else x[b_idx, p_idx] + alpha * (new - x[b_idx, p_idx])
            return x
        return hook

    return [(resid_hook(la), put(*plan[la])) for la in sorted(plan)]


PREFIX_CACHE = True
"""Run the receiver's tokens before the first patched position once per batch and the rest against its key/value
cache (a patch cannot change earlier positions); False runs every row in full (the reference the tests compare)."""


@torch.inference_mode()
def _patched(model: LoadedModel, jobs: Sequence[_Job], rows: Sequence[_Row], src: Sequence[dict[int, torch.Tensor]],
             batch_size: int, alpha: float = 1.0) -> np.ndarray:
    """Readout of each row: the receiver run with the row's group at the row's layer moved to the source's values
    (alpha = 1: replaced; alpha < 1: x + alpha·(x_src − x), the linearity check of attribution patching)."""
    out = np.empty(len(rows))
    first = [min(jobs[r.job].cells[r.group][0]) if PREFIX_CACHE else 0 for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (-(len(jobs[rows[i].job].recv.ids) - first[i]), rows[i].job,
                                                    first[i]))
    dev, pad_id = _device(model), model.tokenizer.pad_token_id
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        batch = [rows[i] for i in idx]
        recv = [jobs[r.job].recv.ids for r in batch]
        cut = [first[i] for i in idx]
        kwargs: dict[str, Any] = {}
        if min(cut) > 0:  # the prefixes run once each, unpatched, and keep their cache
            keys = list(dict.fromkeys(zip([r.job for r in batch], cut, strict=True)))
            own = torch.tensor([keys.index((r.job, c)) for r, c in zip(batch, cut, strict=True)], device=dev)
            pids, pmask, ppos, _ = collate([jobs[j].recv.ids[:c] for j, c in keys], pad_id)
            _, cache = model.bridge(pids.to(dev), attention_mask=pmask.to(dev), position_ids=ppos.to(dev),
                                    return_type="logits_and_cache", use_cache=True, logits_to_keep=1)
            for layer_cache in cache.layers:
                layer_cache.batch_select_indices(own)
            kwargs["past_key_values"] = cache
        else:
            cut = [0] * len(batch)
        ids, mask, pos, pads = collate([r[c:] for r, c in zip(recv, cut, strict=True)], pad_id,
                                       offset=cut if "past_key_values" in kwargs else None)
        if "past_key_values" in kwargs:
            mask = torch.cat([pmask.to(dev)[own], mask.to(dev)], dim=1)
        hooks = _patch_hooks(jobs, batch, src, [int(p) - c for p, c in zip(pads, cut, strict=True)], alpha)
        with model.bridge.hooks(fwd_hooks=hooks):
            logits = model.bridge(ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                                  logits_to_keep=1, **kwargs)
        out[idx] = _log_odds(logits[:, -1], [jobs[r.job].answer for r in batch]).cpu().numpy()
    return out


def _gradients(model: LoadedModel, encs: Sequence[Encoded], answers: Sequence[tuple[int, int]],
               layers: Sequence[int], batch_size: int
               ) -> tuple[np.ndarray, list[dict[int, torch.Tensor]], list[dict[int, torch.Tensor]]]:
    """Readout, residual [t, d] and its gradient ∂r/∂x [t, d] at each layer, one forward + backward per batch."""
    r = np.empty(len(encs))
    resid: list[dict[int, torch.Tensor]] = [{} for _ in encs]
    grads: list[dict[int, torch.Tensor]] = [{} for _ in encs]
    for s in range(0, len(encs), batch_size):
        idx = list(range(s, min(s + batch_size, len(encs))))
        got: dict[int, torch.Tensor] = {}

        def keep(layer: int, got: dict[int, torch.Tensor] = got):
            def hook(x: torch.Tensor, hook: Any) -> torch.Tensor:
                if layer == 0:  # a leaf below everything we differentiate: no gradient into the weights is needed
                    x = x.detach().requires_grad_(True)
                got[layer] = x
                return x
            return hook

        with torch.enable_grad():
            hook_layers = sorted({0, *layers})
            last, pads = _forward(model, [encs[i] for i in idx], [(resid_hook(la), keep(la)) for la in hook_layers])
            readout = _log_odds(last, [answers[i] for i in idx])
            g = torch.autograd.grad(readout.sum(), [got[la] for la in layers])  # rows are independent: sum is fine
        r[idx] = readout.detach().cpu().numpy()
        for b, i in enumerate(idx):
            p = int(pads[b])
            resid[i] = {la: got[la][b, p:].detach() for la in layers}
            grads[i] = {la: gl[b, p:].detach() for la, gl in zip(layers, g, strict=True)}
    return r, resid, grads


# ------------------------------------------------------------------------------------------------ public entry points


def _layers(model: LoadedModel, layers: Iterable[int] | None) -> tuple[int, ...]:
    n = model.info.n_layers
    out = tuple(range(n + 1)) if layers is None else tuple(sorted({int(x) for x in layers}))
    bad = [x for x in out if not 0 <= x <= n]
    if bad or not out:
        raise ValueError(f"layers must be a non-empty subset of 0..{n}, got {list(layers or [])}")
    return out


def _run(model: LoadedModel, pairs: Sequence[MinimalPair], method: str, layers: Iterable[int] | None,
         groups: Sequence[str], readouts: Sequence[str], pairs_per_batch: int, batch_size: int, n_boot: int,
         seed: int, alpha: float = 1.0) -> PatchingResult:
    t0 = time.perf_counter()
    if not pairs:
        raise ValueError("no minimal pairs to patch (need items of moral level +1 and −1 in the same frame × e × g)")
    lay, groups, readouts = _layers(model, layers), tuple(groups), tuple(readouts)
    jobs = _jobs(model, pairs, readouts, groups)
    pair_of = {p.id: k for k, p in enumerate(pairs)}
    records: list[dict[str, Any]] = []
    for start in range(0, len(pairs), pairs_per_batch):
        chunk = [j for j in jobs if start <= pair_of[j.pair.id] < start + pairs_per_batch]
        answers = [j.answer for j in chunk]
        r_good, src = _capture(model, [j.src for j in chunk], answers, lay, batch_size)
        rows = [_Row(k, la, g) for k, j in enumerate(chunk) for la in lay for g in groups
                if not isinstance(j.cells[g], str)]
        if method == "exact":
            r_bad, _ = _capture(model, [j.recv for j in chunk], answers, (), batch_size)
            patched = r_bad[[row.job for row in rows]]
            run = [i for i, row in enumerate(rows) if not _inert(chunk[row.job], row, model.info.n_layers)]
            patched[run] = _patched(model, chunk, [rows[i] for i in run], src, batch_size, alpha)
        else:
            r_bad, recv, grad = _gradients(model, [j.recv for j in chunk], answers, lay, batch_size)
            patched = np.array([r_bad[row.job] + _first_order(chunk[row.job], row, src, recv, grad) for row in rows])
        for row, value in zip(rows, patched, strict=True):
            j = chunk[row.job]
            records.append({"pair": j.pair.id, "frame": j.pair.frame, "economic": j.pair.economic,
                            "grammatical": j.pair.grammatical, "readout": j.readout, "template": j.template,
                            "layer": row.layer, "group": row.group, "n_positions": len(j.cells[row.group][0]),
                            "r_bad": r_bad[row.job], "r_good": r_good[row.job], "r_patched": float(value),
                            "delta": float(value - r_bad[row.job]), "effect": r_good[row.job] - r_bad[row.job]})
    per_pair = pd.DataFrame(records)
    excluded = {(g, k): sum(isinstance(j.cells[g], str) for j in jobs if j.readout == k) for g in groups
                for k in readouts}
    unavailable = {g: _unavailable_reason(g, jobs) for g in groups if all(isinstance(j.cells[g], str) for j in jobs)}
    table = cell_table(per_pair, method, excluded, n_boot=n_boot, seed=seed)
    return PatchingResult(method, table, per_pair, unavailable, lay, groups, readouts, len(pairs), alpha,
                          time.perf_counter() - t0)


def _inert(job: _Job, row: _Row, n_layers: int) -> bool:
    """True when the patch cannot change the readout, so the forward pass is skipped (r_patched = r_bad exactly):
    every patched position has the same token prefix at the same place in both prompts (identical activations; at
    layer 0, the embedding output, the same token at the same place suffices), or the layer is the last residual and
    the last position is not patched (nothing after it reads other positions)."""
    rp, sp = job.cells[row.group]
    if row.layer == n_layers and len(job.recv.ids) - 1 not in rp:
        return True
    lo = (lambda r: r) if row.layer == 0 else (lambda r: 0)
    return all(r == s and job.recv.ids[lo(r):r + 1] == job.src.ids[lo(s):s + 1] for r, s in zip(rp, sp, strict=True))


def _first_order(job: _Job, row: _Row, src: Sequence[dict[int, torch.Tensor]],
                 recv: Sequence[dict[int, torch.Tensor]], grad: Sequence[dict[int, torch.Tensor]]) -> float:
    rp, sp = job.cells[row.group]
    k, la = row.job, row.layer
    return float(((src[k][la][sp].double() - recv[k][la][rp].double()) * grad[k][la][rp].double()).sum())


def exact_patching(model: LoadedModel, pairs: Sequence[MinimalPair], *, layers: Iterable[int] | None = None,
                   groups: Sequence[str] = GROUPS, readouts: Sequence[str] = READOUTS, pairs_per_batch: int = 8,
                   batch_size: int = 64, n_boot: int = 1000, seed: int = 0, alpha: float = 1.0) -> PatchingResult:
    """Patch the good item's residual into the bad item at each layer × group and read each readout's log-odds.

    All layer × group conditions of `pairs_per_batch` pairs are packed into forward batches of `batch_size`
    receiver rows (one hook per layer patches only its rows). Groups may be unions ("act+outcome") or "all".
    `alpha` < 1 moves the group only part of the way, x + alpha·(x_good − x): delta / alpha → the attribution
    estimate as alpha → 0, which tells a wrong gradient from a nonlinear effect.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    return _run(model, pairs, "exact", layers, groups, readouts, pairs_per_batch, batch_size, n_boot, seed, alpha)


def attribution_patching(model: LoadedModel, pairs: Sequence[MinimalPair], *, layers: Iterable[int] | None = None,
                         groups: Sequence[str] = GROUPS, readouts: Sequence[str] = READOUTS, pairs_per_batch: int = 8,
                         batch_size: int = 16, n_boot: int = 1000, seed: int = 0) -> PatchingResult:
    """First-order estimate of `exact_patching` (same table): Δr ≈ Σ_positions (x_good − x_bad)·∂r/∂x_bad.

    Costs one clean pass per good prompt and one forward + backward per bad prompt, whatever the layers and groups.
    """
    return _run(model, pairs, "attribution", layers, groups, readouts, pairs_per_batch, batch_size, n_boot, seed)
