"""Capture: every item x kind x template through the shared-prefix engine into the resumable activation cache.

One pass per item's prefix and one per template suffix yields both the residual-stream activations (every layer, at
the last prompt token and at positions inside the judged sentence) and the behavioural readouts (cloze log-odds or
Likert expectation, and the judged sentence's per-token log-probability). Batches are flushed to memory-mapped files
as they finish, so an interrupted capture resumes at the first unfinished batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from entangle import __version__
from entangle.engine.cache import DEFAULT_CACHE, CacheEntry, cache_key
from entangle.engine.checks import run_self_checks
from entangle.engine.measure import measure, prompt_table
from entangle.engine.runner import Runner
from entangle.engine.tokens import group_batches, shared_tokens
from entangle.files import atomic_write, read_json
from entangle.hookpoints import resid_hook
from entangle.models import LoadedModel
from entangle.prompts import Template, build_prompts
from entangle.prompts import templates as builtin_templates
from entangle.readouts import standardised_separation
from entangle.schema import KINDS
from entangle.stimuli import StimulusSet


def available_positions(stimuli: StimulusSet) -> tuple[str, ...]:
    """Every read position these stimuli allow: act and outcome spans only where every item records them."""
    spans = [getattr(it, "span", None) for it in stimuli.items]
    named = tuple(f"{n}_mean" for n in ("act", "outcome")
                  if all(callable(s) and s(n) is not None for s in spans))
    return ("last", "judged_mean", "judged_last", *named)

ENGINE = "shared-prefix/1"
"""Recorded in every cache key and manifest: how the activations were computed."""


@dataclass
class ActivationSet:
    """Activations per position, readouts, and per-prompt metadata.

    `acts["last"]` is [n_prompts, n_layers + 1, d_model]; positions inside the judged sentence (`judged_mean`, ...)
    are the same under every template of an item, so they are stored once per item: [n_items, n_layers + 1,
    d_model], row `prompts.item_row` (use `position_rows`).
    """

    prompts: pd.DataFrame
    acts: dict[str, np.ndarray]
    manifest: dict[str, Any]
    path: Path | None = None

    def position_rows(self, position: str, rows: np.ndarray) -> np.ndarray:
        """Rows of `acts[position]` holding the prompts `rows` (item rows for sentence positions)."""
        return rows if position == "last" else self.prompts["item_row"].to_numpy()[rows]

    def at(self, position: str, rows: np.ndarray, layer: int | None = None) -> np.ndarray:
        """Activations of the prompts `rows` at `position` (all layers, or one), read from the memory map."""
        arr = self.acts[position]
        r = self.position_rows(position, np.asarray(rows))
        return np.asarray(arr[r] if layer is None else arr[r, layer])

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
        manifest = read_json(path / "manifest.json")
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
    positions: Sequence[str] | None = None,
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
    positions = tuple(positions) if positions is not None else available_positions(stimuli)
    tmpls = resolve_templates(model, style, kinds, per_kind)
    prompts = build_prompts(stimuli.items, tmpls, model.tokenizer)
    info = model.info
    key = cache_key({
        "model": info.name, "weights": info.weights_hash, "dtype": info.dtype, "stimuli": stimuli.sha256,
        "templates": [t.__dict__ for t in tmpls], "positions": list(positions), "bos": info.bos_policy,
        "padding": info.padding_side, "batch_size": batch_size, "engine": ENGINE,
    })
    entry = CacheEntry(cache_dir, info.name, key)
    if entry.complete:
        return ActivationSet.load(entry.dir)
    runner = Runner(model, prompts, tmpls)
    batches = group_batches(runner.encoded, batch_size)
    work = entry.work_dir()
    table = prompt_table(prompts, runner)
    table["item_row"] = pd.factorize(table["item_id"])[0]
    atomic_write(work / "prompts.csv", lambda p: table.to_csv(p, index=False))
    n, width = len(prompts), info.n_layers + 1
    n_items = int(table["item_row"].max()) + 1
    arrays = {p: entry.open_array(f"acts_{p}", (n if p == "last" else n_items, width, info.d_model), work)
              for p in positions}
    values = entry.open_array("readouts", (n, 3), work)
    item_row = table["item_row"].to_numpy()
    done, seconds_before = entry.done_batches(), entry.seconds_so_far()
    start = time.perf_counter()
    todo = [b for b in range(len(batches)) if b not in done]
    for b in tqdm(todo, desc=f"capture {info.name}", disable=not progress, unit="batch"):
        idx = batches[b]
        out = runner.run(idx, positions)
        for p in positions:
            arrays[p][idx if p == "last" else item_row[idx]] = out.acts[p]
        values[idx] = np.stack([out.readout, out.logprob, table["n_judged_tokens"].to_numpy()[idx]], axis=1)
        for arr in (*arrays.values(), values):
            arr.flush()
        done.add(b)
        entry.mark_done(done, seconds_before + time.perf_counter() - start)
        if on_batch is not None:
            on_batch(b)
    elapsed = seconds_before + time.perf_counter() - start
    checks = run_self_checks(runner, batches, arrays, values, item_row) if self_check else {}
    manifest = {
        "entangle_version": __version__, "key": key, "model": info.to_dict(), "stimuli_sha256": stimuli.sha256,
        "stimuli_source": stimuli.source, "n_items": len(stimuli), "n_prompts": n, "kinds": list(kinds),
        "readout_style": style, "templates": [t.__dict__ for t in tmpls], "positions": list(positions),
        "layers": list(range(width)), "hook_points": [resid_hook(layer) for layer in range(width)],
        "batch_size": batch_size, "n_batches": len(batches), "resumed_batches": len(done) - len(todo),
        "capture_seconds": round(elapsed, 2), "engine": ENGINE, "tokens": int(sum(runner.lengths())),
        "tokens_shared_prefix": shared_tokens(runner.encoded), "self_checks": checks,
        **(extra_manifest or {}),
    }
    for arr in (*arrays.values(), values):
        del arr
    entry.finalise(manifest)
    return ActivationSet.load(entry.dir)


def choose_style(model: LoadedModel, stimuli: StimulusSet, n_frames: int = 6, batch_size: int = 16,
                 cache_dir: str | Path | None = None) -> tuple[str, dict[str, Any]]:
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
        vals = measure(model, build_prompts(items, tmpls, model.tokenizer), tmpls, batch_size=batch_size,
                       cache_dir=cache_dir)["readout"]
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
