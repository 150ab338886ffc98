"""Self-checks recorded in every cache manifest: padding invariance, hook semantics, shared prefix = full prompt."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from entangle.engine.runner import Runner
from entangle.engine.tokens import collate
from entangle.interventions.hooks import ablate, random_unit_directions

TOLERANCE = 1e-4


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    g, r = torch.from_numpy(np.asarray(got, dtype=np.float32)), torch.from_numpy(np.asarray(ref, dtype=np.float32))
    return float(((g - r).norm(dim=-1) / r.norm(dim=-1).clamp_min(1e-12)).max())


def _nan_abs(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(np.nanmax(d)) if np.isfinite(d).any() else 0.0


def run_self_checks(runner: Runner, batches: list[list[int]], arrays: dict[str, np.ndarray], values: np.ndarray,
                    item_row: np.ndarray, n_sample: int = 4) -> dict[str, Any]:
    """Padding invariance (prompts run alone vs batched), hook semantics (bridge hooks vs HF hidden states) and
    shared prefix vs full prompt (activations and readouts, plain and under an ablation hook)."""
    padded = [b[-1] for b in batches if len(b) > 1 and len({len(runner.encoded[i].ids) for i in b}) > 1]
    sample = (padded or [b[-1] for b in batches])[:n_sample]
    worst = 0.0
    for i in sample:
        alone = runner.run([i], list(arrays))
        for p, arr in arrays.items():
            worst = max(worst, _rel(alone.acts[p][0], arr[i if p == "last" else item_row[i]]))
        worst = max(worst, abs(float(alone.readout[0]) - float(values[i, 0])) / max(1.0, abs(float(values[i, 0]))))
    hook_err = hook_semantics_error(runner, batches[0])
    shared = shared_prefix_error(runner, batches[0][: min(len(batches[0]), 12)], list(arrays))
    checks = {
        "padding_invariance": {"max_rel_error": worst, "n_prompts": len(sample), "tolerance": TOLERANCE,
                               "passed": worst <= TOLERANCE},
        "hook_semantics": {"max_rel_error": hook_err, "tolerance": TOLERANCE, "passed": hook_err <= TOLERANCE,
                           "compared": "blocks.l.hook_out vs HF hidden_states[l+1], l < n_layers - 1"},
        "shared_prefix": shared,
    }
    for name, c in checks.items():
        if not c["passed"]:
            warnings.warn(f"capture self-check {name} failed: {c}", stacklevel=2)
    return checks


def shared_prefix_error(runner: Runner, idx: Sequence[int], positions: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """Shared-prefix results against whole-prompt results on the same prompts, without and with an ablation hook:
    activations (max relative error) and readouts (max absolute error), each against its tolerance."""
    d = runner.model.info.d_model
    vec = torch.from_numpy(random_unit_directions(1, d, seed)[0]).float()
    layers = range(runner.model.info.n_layers + 1)
    out: dict[str, Any] = {"tolerance_acts_rel": TOLERANCE, "tolerance_readout_abs": TOLERANCE, "n_prompts": len(idx)}
    for name, ctx in (("plain", None), ("ablation", lambda: ablate(runner.model.bridge, {ly: vec for ly in layers}))):
        if ctx is None:
            a, b = runner.run(idx, positions, shared=True), runner.run(idx, positions, shared=False)
        else:
            with ctx():
                a, b = runner.run(idx, positions, shared=True), runner.run(idx, positions, shared=False)
        act = max(_rel(a.acts[p], b.acts[p]) for p in positions) if positions else 0.0
        read = max(_nan_abs(a.readout, b.readout), _nan_abs(a.logprob, b.logprob))
        out[name] = {"acts_max_rel_error": act, "readout_max_abs_error": read}
    out["passed"] = all(out[k]["acts_max_rel_error"] <= TOLERANCE and out[k]["readout_max_abs_error"] <= TOLERANCE
                        for k in ("plain", "ablation"))
    return out


@torch.inference_mode()
def hook_semantics_error(runner: Runner, idx: Sequence[int]) -> float:
    """Max relative difference between hook-captured layers and HF `output_hidden_states` on the same tokens."""
    model = runner.model
    n = model.info.n_layers
    ids, mask, pos, _ = collate([runner.encoded[i].ids for i in idx], runner.pad_id)
    ids, mask, pos = ids.to(runner.device), mask.to(runner.device), pos.to(runner.device)
    hf = model.hf_model(ids, attention_mask=mask, position_ids=pos, output_hidden_states=True, logits_to_keep=1)
    ours = runner.run(idx, ["last"], shared=False)
    err = 0.0
    for layer in range(n):  # hidden_states[n] has the final norm applied in HF; skip it
        ref = hf.hidden_states[layer][:, -1].float().cpu().numpy()
        err = max(err, _rel(ours.acts["last"][:, layer], ref))
    return err
