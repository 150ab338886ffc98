"""Nulls that can reject: variance-matched random directions and shuffled-label difference-of-means directions,
each ablated like the chosen direction on a control subset, many per forward pass (one direction per batch row).

p = (1 + #{null repair ≥ observed}) / (1 + n): with n ≥ 99 draws p can reach 0.01, its resolution 1/(n + 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from entangle.engine.cache import cached_arrays
from entangle.engine.measure import array_hash
from entangle.engine.runner import Runner
from entangle.engine.tokens import collate
from entangle.hookpoints import all_layers
from entangle.interventions.hooks import ablate_per_row
from entangle.models import LoadedModel
from entangle.prompts import Prompt, Template
from entangle.readouts import cloze_log_odds


def variance_matched(acts: Float[np.ndarray, "n d"], n: int, seed: int) -> Float[np.ndarray, "n d"]:
    """n draws from N(0, Σ) of the activations (Σ their covariance), unnormalised: a random direction that, like a
    real one, lies where the residual stream varies (isotropic directions remove almost no variance)."""
    x = np.asarray(acts, dtype=np.float64)
    cov = np.cov(x, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    z = np.random.default_rng(seed).standard_normal((n, x.shape[1]))
    return z @ root.T


def shuffled_dom(acts: Float[np.ndarray, "n d"], labels: np.ndarray, frames: np.ndarray, n: int,
                 seed: int) -> Float[np.ndarray, "n d"]:
    """n difference-of-means directions with good/bad labels permuted within frames (the method, minus the label)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(acts, dtype=np.float64)
    y = np.asarray(labels)
    out = np.empty((n, x.shape[1]))
    groups = [np.flatnonzero(frames == f) for f in np.unique(frames)]
    for i in range(n):
        ys = y.copy()
        for g in groups:
            ys[g] = rng.permutation(y[g])
        out[i] = x[ys > 0].mean(0) - x[ys < 0].mean(0)
    return out


def p_value(observed: float, null: np.ndarray) -> tuple[float, float]:
    """(p, resolution) of `observed` against the null draws (greater is more extreme)."""
    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    return float((1 + np.sum(null >= observed)) / (1 + len(null))), 1.0 / (1 + len(null))


@torch.inference_mode()
def readouts_per_direction(model: LoadedModel, prompts: Sequence[Prompt], tmpls: Sequence[Template],
                           directions: Float[np.ndarray, "k d"], *, rows_per_pass: int = 256,
                           progress: bool = False, cache_dir: str | Path | None = None) -> Float[np.ndarray, "k n"]:
    """Cloze readout of every prompt with each direction projected out at every layer: [directions, prompts].

    Prompts are repeated once per direction in a batch and each row gets its own direction, so one forward pass
    serves many null draws (bigger batches also run faster on a CPU). Cached under `cache_dir` when given."""
    parts = {"what": "ablate-per-row", "prompts": [p.text + "\x01" + p.template_id for p in prompts],
             "directions": array_hash(directions)}
    return cached_arrays(cache_dir, model.info, parts, lambda: {"readout": _per_direction(
        model, prompts, tmpls, directions, rows_per_pass, progress)})["readout"]


def _per_direction(model: LoadedModel, prompts: Sequence[Prompt], tmpls: Sequence[Template],
                   directions: np.ndarray, rows_per_pass: int, progress: bool) -> np.ndarray:
    runner = Runner(model, prompts, tmpls)
    n, k = len(prompts), len(directions)
    per = max(1, rows_per_pass // n)
    out = np.empty((k, n), dtype=np.float64)
    dev = runner.device
    pairs = torch.tensor([runner.answer[i] for i in range(n)], device=dev)
    ids1, mask1, pos1, _ = collate([e.ids for e in runner.encoded], runner.pad_id)
    layers = list(all_layers(model.info.n_layers))
    for start in tqdm(range(0, k, per), desc="null directions", disable=not progress, unit="pass"):
        chunk = directions[start:start + per]
        reps = len(chunk)
        D = torch.from_numpy(np.repeat(np.asarray(chunk, dtype=np.float32), n, axis=0))
        with ablate_per_row(model.bridge, D, layers):
            logits = model.bridge(ids1.repeat(reps, 1).to(dev), attention_mask=mask1.repeat(reps, 1).to(dev),
                                  position_ids=pos1.repeat(reps, 1).to(dev), logits_to_keep=1)[:, -1].float()
        r = cloze_log_odds(logits, pairs.repeat(reps, 1)[:, 0], pairs.repeat(reps, 1)[:, 1])
        out[start:start + reps] = r.reshape(reps, n)
    return out


def cell_repair(prompts: Sequence[Prompt], before: np.ndarray, after: Float[np.ndarray, "k n"],
                cells: Sequence[str], human: dict[str, float]) -> pd.DataFrame:
    """Repair of EI(moral → K) per direction on the control subset, from the 2 x 2 (moral x K's factor) design:
    EI = (good − bad) / |top − bottom of K's factor| on K's prompts; repair = (EI_b − EI_a) / (EI_b − EI_human)."""
    meta = pd.DataFrame([{"kind": p.kind, "moral": p.moral, "economic": p.economic, "grammatical": p.grammatical}
                         for p in prompts])
    rows = []
    for kind in cells:
        sel = (meta["kind"] == kind).to_numpy()
        m = meta.loc[sel, "moral"].to_numpy()
        f = meta.loc[sel, kind].to_numpy()

        def ei(v: np.ndarray) -> np.ndarray:
            v = np.atleast_2d(v)[:, sel]
            bm = v[:, m > 0].mean(1) - v[:, m < 0].mean(1)
            bk = v[:, f == f.max()].mean(1) - v[:, f == f.min()].mean(1)
            return bm / np.abs(bk)

        eb, ea = ei(before)[0], ei(after)
        with np.errstate(invalid="ignore", divide="ignore"):
            rep = (eb - ea) / (eb - human.get(kind, 0.0))
        rows.extend({"cell": f"moral_to_{kind}", "draw": i, "ei_before": eb, "ei_after": e, "repair": r}
                    for i, (e, r) in enumerate(zip(ea, rep, strict=True)))
    return pd.DataFrame(rows)
