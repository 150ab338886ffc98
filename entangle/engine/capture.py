"""Batched, padding-correct runs of judgement prompts through a TransformerBridge with capture hooks.

One forward pass per prompt yields both the residual-stream activations (every layer, at the last prompt token
and averaged over the judged sentence) and the behavioural readouts (cloze log-odds or Likert expectation at
the last token, and the judged sentence's per-token log-probability). Tokenisation has one path with an explicit
BOS policy; batches are left-padded with an attention mask and position ids, and read positions come from the mask.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Int
from tqdm.auto import tqdm

from entangle import __version__
from entangle.engine.cache import DEFAULT_CACHE, CacheEntry, cache_key
from entangle.files import atomic_write
from entangle.hookpoints import all_layers, resid_hook
from entangle.models import LoadedModel
from entangle.prompts import (
    Prompt,
    Template,
    answer_token_ids,
    build_prompts,
    likert_digit_ids,
)
from entangle.prompts import templates as builtin_templates
from entangle.readouts import (
    cloze_log_odds,
    likert_expectation,
    span_logprob,
    standardised_separation,
)
from entangle.stimuli import KINDS, StimulusSet

POSITIONS = ("last", "judged_mean")


@dataclass(frozen=True)
class Encoded:
    """Token ids of one prompt and the token span [lo, hi) of its judged sentence."""

    ids: list[int]
    judged_lo: int
    judged_hi: int


def encode(tokenizer: Any, text: str, judged: tuple[int, int], bos: str = "prepend") -> Encoded:
    """Tokenise one prompt with the explicit BOS policy and map the judged character span to tokens.

    `bos="prepend"` adds the tokenizer's BOS unless the text already starts with it (chat templates do);
    `bos="none"` adds nothing. The HF tokenizer is called without special tokens so this is the only place a BOS
    can enter (TransformerBridge.to_tokens would add one on its own, the HF tokenizer would not).
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos == "prepend" and bos_id is not None and (not ids or ids[0] != bos_id):
        ids, offsets = [bos_id, *ids], [(0, 0), *offsets]
    elif bos not in ("prepend", "none"):
        raise ValueError(f"bos policy must be 'prepend' or 'none', got {bos!r}")
    inside = [i for i, (s, e) in enumerate(offsets) if e > judged[0] and s < judged[1] and e > s]
    if not inside:
        raise ValueError(f"judged span {judged} covers no token of prompt {text[:60]!r}")
    return Encoded(ids, inside[0], inside[-1] + 1)


def collate(batch: Sequence[Encoded], pad_id: int) -> tuple[Int[torch.Tensor, "b t"], Int[torch.Tensor, "b t"],
                                                           Int[torch.Tensor, "b t"], np.ndarray]:
    """Left-pad a batch: input ids, attention mask, position ids (0 at each prompt's first real token), pad offsets."""
    width = max(len(e.ids) for e in batch)
    pads = np.array([width - len(e.ids) for e in batch])
    ids = torch.tensor([[pad_id] * p + e.ids for e, p in zip(batch, pads, strict=True)])
    mask = torch.tensor([[0] * p + [1] * len(e.ids) for e, p in zip(batch, pads, strict=True)])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, pos, pads


def make_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Prompt indices grouped into batches of similar length (longest first), so little compute goes on padding."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass
class BatchOutput:
    readout: np.ndarray                       # [b] cloze log-odds or Likert expectation
    logprob: np.ndarray                       # [b] judged sentence: mean log-prob per token
    acts: dict[str, np.ndarray] = field(default_factory=dict)  # position -> [b, n_layers + 1, d_model]


class Runner:
    """Runs prompts through a model in padding-correct batches, capturing activations and readouts in one pass."""

    def __init__(self, model: LoadedModel, prompts: Sequence[Prompt], tmpls: Sequence[Template], bos: str | None = None):
        self.model, self.prompts = model, list(prompts)
        tok = model.tokenizer
        self.bos = bos or model.info.bos_policy
        self.encoded = [encode(tok, p.text, (p.judged_start, p.judged_end), self.bos) for p in self.prompts]
        by_id = {t.id: t for t in tmpls}
        missing = {p.template_id for p in self.prompts} - set(by_id)
        if missing:
            raise ValueError(f"prompts use unknown templates: {sorted(missing)}")
        answers = answer_token_ids(tok, tmpls)
        digits = likert_digit_ids(tok) if any(t.style == "likert" for t in tmpls) else []
        self.answer = [answers.get(p.template_id) for p in self.prompts]
        self.digits = torch.tensor(digits, dtype=torch.long)
        self.pad_id = tok.pad_token_id
        # A cloze prompt starts with the item text, so the judged sentence's log-prob is the same under every
        # cloze template: score it once per item (the first cloze prompt) and leave the others NaN.
        first: set[str] = set()
        self.want_logprob = []
        for p in self.prompts:
            self.want_logprob.append(p.style != "cloze" or p.item_id not in first)
            if p.style == "cloze":
                first.add(p.item_id)
        self.device = next(model.hf_model.parameters()).device

    def lengths(self) -> list[int]:
        return [len(e.ids) for e in self.encoded]

    @torch.inference_mode()
    def run(self, idx: Sequence[int], positions: Sequence[str] = POSITIONS, layers: Sequence[int] | None = None) -> BatchOutput:
        """One forward pass over the prompts `idx`; activations at `positions` for `layers` (all by default)."""
        batch = [self.encoded[i] for i in idx]
        ids, mask, pos, pads = collate(batch, self.pad_id)
        ids, mask, pos = ids.to(self.device), mask.to(self.device), pos.to(self.device)
        layers = list(all_layers(self.model.info.n_layers)) if layers is None else list(layers)
        unknown = set(positions) - set(POSITIONS)
        if unknown:
            raise ValueError(f"unknown position(s) {sorted(unknown)}; known: {POSITIONS}")
        last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)  # last real token, from the mask
        span = [(int(p) + e.judged_lo, int(p) + e.judged_hi) for e, p in zip(batch, pads, strict=True)]
        weights = torch.zeros(mask.shape, dtype=torch.float32, device=self.device)  # 1/len over each judged span
        for b, (lo, hi) in enumerate(span):
            weights[b, lo:hi] = 1.0 / (hi - lo)
        rows = torch.arange(len(idx), device=self.device)
        store: dict[str, dict[int, torch.Tensor]] = {name: {} for name in positions}
        normed: dict[str, torch.Tensor] = {}

        def keep(layer: int) -> Callable:
            # keep only what is read: [b, d] per position, never the whole [b, t, d] stream
            def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
                if "last" in store:
                    store["last"][layer] = t[rows, last].float()
                if "judged_mean" in store:
                    store["judged_mean"][layer] = torch.einsum("bt,btd->bd", weights, t.float())
                return t
            return hook

        def keep_normed(t: torch.Tensor, hook: Any) -> torch.Tensor:
            normed["x"] = t.detach()
            return t

        hooks = [(resid_hook(layer), keep(layer)) for layer in (layers if positions else [])]
        hooks.append(("ln_final.hook_out", keep_normed))
        with self.model.bridge.hooks(fwd_hooks=hooks):
            logits = self.model.bridge(ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)
        readout = self._readout(idx, logits[:, -1].float())
        logprob = np.full(len(idx), np.nan, dtype=np.float32)
        need = [j for j, i in enumerate(idx) if self.want_logprob[i]]
        if need:
            logprob[need] = span_logprob(self.model.hf_model, normed["x"][need], ids[need], [span[j] for j in need])
        out = BatchOutput(readout=readout, logprob=logprob)
        for name in positions:
            out.acts[name] = torch.stack([store[name][layer] for layer in layers], dim=1).cpu().numpy()
        return out

    def _readout(self, idx: Sequence[int], last_logits: torch.Tensor) -> np.ndarray:
        styles = {self.prompts[i].style for i in idx}
        vals = np.full(len(idx), np.nan, dtype=np.float32)  # text prompts have no judgement readout
        cloze = [j for j, i in enumerate(idx) if self.prompts[i].style == "cloze"]
        if cloze:
            pairs = torch.tensor([self.answer[idx[j]] for j in cloze], device=last_logits.device)
            vals[cloze] = cloze_log_odds(last_logits[cloze], pairs[:, 0], pairs[:, 1])
        if "likert" in styles:
            ev = likert_expectation(last_logits, self.digits.to(last_logits.device))
            for j, i in enumerate(idx):
                if self.prompts[i].style == "likert":
                    vals[j] = ev[j]
        return vals


@dataclass
class ActivationSet:
    """Activations [n_prompts, n_layers + 1, d_model] per position, readouts, and per-prompt metadata."""

    prompts: pd.DataFrame
    acts: dict[str, np.ndarray]
    manifest: dict[str, Any]
    path: Path | None = None

    def rows(self, kind: str, template_id: str | None = None) -> np.ndarray:
        """Row indices of one kind's prompts (optionally one template)."""
        sel = self.prompts["kind"] == kind
        if template_id is not None:
            sel &= self.prompts["template_id"] == template_id
        return np.flatnonzero(sel.to_numpy())

    def readout_table(self) -> pd.DataFrame:
        """Long table for metrics: one row per item x kind x readout, the readout averaged over templates."""
        return readout_table(self.prompts, self.manifest["readout_style"])

    @classmethod
    def load(cls, path: str | Path) -> ActivationSet:
        """Open a complete cache entry; activations are memory-mapped, not read into memory."""
        path = Path(path)
        manifest = json.loads((path / "manifest.json").read_text())
        prompts = pd.read_csv(path / "prompts.csv")
        acts = {p: np.load(path / f"acts_{p}.npy", mmap_mode="r") for p in manifest["positions"]}
        values = np.load(path / "readouts.npy")
        prompts["readout"], prompts["sentence_logprob"] = values[:, 0], values[:, 1]
        return cls(prompts=prompts, acts=acts, manifest=manifest, path=path)


def readout_table(prompts: pd.DataFrame, style: str) -> pd.DataFrame:
    """Per item x kind: the judgement readout (`style`, template-averaged) and, for grammar, sentence log-prob."""
    keys = ["item_id", "frame", "moral", "economic", "grammatical", "kind"]
    judged = prompts.groupby(keys, sort=False).agg(value=("readout", "mean"), n_tokens=("n_judged_tokens", "first"))
    judged = judged.reset_index().assign(readout=style)
    lp = prompts.groupby(keys[:-1], sort=False).agg(value=("sentence_logprob", "mean"), n_tokens=("n_judged_tokens", "first"))
    lp = lp.reset_index().assign(kind="grammatical", readout="logprob")
    return pd.concat([judged, lp], ignore_index=True)


def prompt_table(prompts: Sequence[Prompt], runner: Runner) -> pd.DataFrame:
    """Per-prompt metadata stored beside the activations."""
    df = pd.DataFrame([p.to_dict() for p in prompts]).drop(columns=["text"])
    df["n_prompt_tokens"] = [len(e.ids) for e in runner.encoded]
    df["n_judged_tokens"] = [e.judged_hi - e.judged_lo for e in runner.encoded]
    return df


def resolve_templates(model: LoadedModel, style: str, kinds: Sequence[str] = KINDS, per_kind: int | None = None) -> list[Template]:
    """Templates for a style; Likert only for chat models (a clear error otherwise)."""
    if style == "likert" and not model.info.chat:
        raise ValueError(f"model {model.info.name} is not a chat model; the Likert readout needs one (use cloze)")
    return builtin_templates(style, kinds, per_kind)


def capture(
    model: LoadedModel,
    stimuli: StimulusSet,
    *,
    style: str = "cloze",
    kinds: Sequence[str] = KINDS,
    per_kind: int | None = None,
    positions: Sequence[str] = POSITIONS,
    batch_size: int = 32,
    cache_dir: str | Path = DEFAULT_CACHE,
    progress: bool = True,
    self_check: bool = True,
    on_batch: Callable[[int], None] | None = None,
    extra_manifest: dict[str, Any] | None = None,
) -> ActivationSet:
    """Capture activations and readouts for every item x kind x template, reading the cache when it has them.

    Batches are flushed to a memory-mapped file as they finish; an interrupted capture resumes at the first
    unfinished batch. `on_batch(i)` is called after batch i is on disk (tests use it to interrupt a run).
    """
    tmpls = resolve_templates(model, style, kinds, per_kind)
    prompts = build_prompts(stimuli.items, tmpls, model.tokenizer)
    info = model.info
    key = cache_key({
        "model": info.name, "weights": info.weights_hash, "dtype": info.dtype, "stimuli": stimuli.sha256,
        "templates": [t.__dict__ for t in tmpls], "positions": list(positions), "bos": info.bos_policy,
        "padding": info.padding_side, "batch_size": batch_size,
    })
    entry = CacheEntry(cache_dir, info.name, key)
    if entry.complete:
        return ActivationSet.load(entry.dir)
    runner = Runner(model, prompts, tmpls)
    batches = make_batches(runner.lengths(), batch_size)
    work = entry.work_dir()
    table = prompt_table(prompts, runner)
    atomic_write(work / "prompts.csv", lambda p: table.to_csv(p, index=False))
    n, width = len(prompts), info.n_layers + 1
    arrays = {p: entry.open_array(f"acts_{p}", (n, width, info.d_model), work) for p in positions}
    values = entry.open_array("readouts", (n, 3), work)
    done = entry.done_batches()
    start = time.perf_counter()
    todo = [b for b in range(len(batches)) if b not in done]
    for b in tqdm(todo, desc=f"capture {info.name}", disable=not progress, unit="batch"):
        idx = batches[b]
        out = runner.run(idx, positions)
        for p in positions:
            arrays[p][idx] = out.acts[p]
        values[idx] = np.stack([out.readout, out.logprob, table["n_judged_tokens"].to_numpy()[idx]], axis=1)
        for arr in (*arrays.values(), values):
            arr.flush()
        done.add(b)
        entry.mark_done(done)
        if on_batch is not None:
            on_batch(b)
    elapsed = time.perf_counter() - start
    checks = run_self_checks(runner, batches, arrays, values) if self_check else {}
    manifest = {
        "entangle_version": __version__, "key": key, "model": info.to_dict(), "stimuli_sha256": stimuli.sha256,
        "stimuli_source": stimuli.source, "n_items": len(stimuli), "n_prompts": n, "kinds": list(kinds),
        "readout_style": style, "templates": [t.__dict__ for t in tmpls], "positions": list(positions),
        "layers": list(range(width)), "hook_points": [resid_hook(layer) for layer in range(width)],
        "batch_size": batch_size, "n_batches": len(batches), "resumed_batches": len(done) - len(todo),
        "capture_seconds": round(elapsed, 2), "tokens": int(sum(runner.lengths())), "self_checks": checks,
        **(extra_manifest or {}),
    }
    for arr in (*arrays.values(), values):
        del arr
    entry.finalise(manifest)
    return ActivationSet.load(entry.dir)


def run_self_checks(runner: Runner, batches: list[list[int]], arrays: dict[str, np.ndarray], values: np.ndarray,
                    n_sample: int = 4) -> dict[str, Any]:
    """Padding invariance (prompts run alone vs batched) and hook semantics (bridge hooks vs HF hidden states)."""
    padded = [b[-1] for b in batches if len(b) > 1 and len({len(runner.encoded[i].ids) for i in b}) > 1]
    sample = (padded or [b[-1] for b in batches])[:n_sample]
    worst = 0.0
    for i in sample:
        alone = runner.run([i], list(arrays))
        for p, arr in arrays.items():
            ref = torch.from_numpy(np.asarray(arr[i]))
            got = torch.from_numpy(alone.acts[p][0])
            worst = max(worst, float(((got - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-12)).max()))
        worst = max(worst, abs(float(alone.readout[0]) - float(values[i, 0])) / max(1.0, abs(float(values[i, 0]))))
    hook_err = hook_semantics_error(runner, batches[0])
    checks = {
        "padding_invariance": {"max_rel_error": worst, "n_prompts": len(sample), "tolerance": 1e-4,
                               "passed": worst <= 1e-4},
        "hook_semantics": {"max_rel_error": hook_err, "tolerance": 1e-4, "passed": hook_err <= 1e-4,
                           "compared": "blocks.l.hook_out vs HF hidden_states[l+1], l < n_layers - 1"},
    }
    for name, c in checks.items():
        if not c["passed"]:
            warnings.warn(f"capture self-check {name} failed: relative error {c['max_rel_error']:.2e}", stacklevel=2)
    return checks


@torch.inference_mode()
def hook_semantics_error(runner: Runner, idx: Sequence[int]) -> float:
    """Max relative difference between hook-captured layers and HF `output_hidden_states` on the same tokens."""
    model = runner.model
    n = model.info.n_layers
    ids, mask, pos, _ = collate([runner.encoded[i] for i in idx], runner.pad_id)
    ids, mask, pos = ids.to(runner.device), mask.to(runner.device), pos.to(runner.device)
    hf = model.hf_model(ids, attention_mask=mask, position_ids=pos, output_hidden_states=True, logits_to_keep=1)
    ours = runner.run(idx, ["last"])
    err = 0.0
    for layer in range(n):  # hidden_states[n] has the final norm applied in HF; skip it
        ref = hf.hidden_states[layer][:, -1].float().cpu()
        got = torch.from_numpy(ours.acts["last"][:, layer])
        err = max(err, float(((got - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-12)).max()))
    return err


def measure(model: LoadedModel, prompts: Sequence[Prompt], tmpls: Sequence[Template], *, batch_size: int = 16,
            intervention: Callable[[], contextlib.AbstractContextManager] | None = None, progress: bool = False,
            desc: str = "measure") -> pd.DataFrame:
    """Readouts only (no activations), optionally with an intervention active; one row per prompt, input order."""
    runner = Runner(model, prompts, tmpls)
    table = prompt_table(prompts, runner)
    readout = np.empty(len(prompts), dtype=np.float32)
    logprob = np.empty(len(prompts), dtype=np.float32)
    ctx = intervention() if intervention is not None else contextlib.nullcontext()
    with ctx:
        for idx in tqdm(make_batches(runner.lengths(), batch_size), desc=desc, disable=not progress, unit="batch"):
            out = runner.run(idx, positions=())
            readout[idx], logprob[idx] = out.readout, out.logprob
    return table.assign(readout=readout, sentence_logprob=logprob)


def choose_style(model: LoadedModel, stimuli: StimulusSet, n_frames: int = 6, batch_size: int = 16) -> tuple[str, dict[str, Any]]:
    """Pick the judgement readout that works on this model: the one separating moral good from bad items better.

    Calibration uses the first `n_frames` frames' moral-good and moral-bad items (economic none, well-formed),
    one moral template per style. Base models always get cloze (Likert needs a chat template).
    """
    if not model.info.chat:
        return "cloze", {"reason": "base model: the Likert readout needs a chat model"}
    items = [it for it in stimuli.subset(min(n_frames, len(stimuli.frames()))).items if it.moral != 0 and it.economic == 0 and it.grammatical == 1]
    labels = np.array([it.moral for it in items])
    evidence: dict[str, Any] = {"n_items": len(items)}
    for style in ("cloze", "likert"):
        tmpls = builtin_templates(style, ["moral"], 1)
        vals = measure(model, build_prompts(items, tmpls, model.tokenizer), tmpls, batch_size=batch_size)["readout"]
        v = vals.to_numpy()
        evidence[style] = {"separation": standardised_separation(v, labels), "mean": float(v.mean()),
                           "sd": float(v.std()), "good_minus_bad": float(v[labels > 0].mean() - v[labels < 0].mean())}
    # A flat Likert readout can look "separated" in SD units by noise alone: also ask for a quarter scale point.
    likert_ok = evidence["likert"]["good_minus_bad"] >= 0.25
    chosen = "likert" if likert_ok and evidence["likert"]["separation"] > evidence["cloze"]["separation"] else "cloze"
    evidence["reason"] = (f"{chosen} separates moral good from bad items better on {len(items)} calibration items "
                          f"(standardised separation cloze {evidence['cloze']['separation']:.2f}, "
                          f"likert {evidence['likert']['separation']:.2f})")
    return chosen, evidence
