#!/usr/bin/env python
"""Shared vs unshared forward passes on the same prompts in the same run: tokens, wall time, largest difference.

The shared-prefix engine runs each distinct prefix (BOS + judged sentence) once and the templates' suffixes against
its key/value cache; unshared runs every whole prompt. Both are timed on the same batches with the repetitions
interleaved, for `Runner.run` (capture: activations + readouts) and for `measure` under an all-layer ablation hook
(the intervention re-measurement). See benchmarks/README.md.

    python benchmarks/shared.py                       # smollm2-135m, 2 frames (324 prompts), batch 36, 3 repeats
    python benchmarks/shared.py --quick --model DIR   # smoke run (the test suite uses it)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from benchlib import (
    bench_config,
    common_args,
    fmt_table,
    interleave,
    load_for_bench,
    machine_line,
    median,
    paired_ratio,
    parse_with_quick,
    publish,
    stimulus_prompts,
)

from entangle.engine import Runner, measure
from entangle.engine.capture import available_positions
from entangle.engine.runner import BatchOutput
from entangle.engine.tokens import group_batches, shared_tokens
from entangle.interventions.hooks import ablate, random_unit_directions
from entangle.models import LoadedModel

QUICK = {"frames": 1, "batch_size": 18, "repeats": 1, "max_batches": 2}
TOLERANCE = 1e-4


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap, frames=2, batch_size=36, repeats=3)
    ap.add_argument("--max-batches", type=int, default=None, help="time only the first N batches (longest first)")
    args = parse_with_quick(ap, argv, QUICK)
    if min(args.repeats, args.frames, args.batch_size) < 1:
        ap.error("--repeats, --frames and --batch-size must be >= 1")
    return args


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    """Largest ||a - ref|| / ||ref|| over activation vectors (last axis)."""
    a64, r64 = a.astype(np.float64), ref.astype(np.float64)
    return float((np.linalg.norm(a64 - r64, axis=-1) / np.maximum(np.linalg.norm(r64, axis=-1), 1e-12)).max())


def _nan_abs(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference over entries finite in both (readouts are NaN where not measured)."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(np.nanmax(d)) if np.isfinite(d).any() else 0.0


def differences(shared: Sequence[BatchOutput], full: Sequence[BatchOutput]) -> dict[str, float]:
    """Largest shared-vs-full differences: activations (relative and absolute), readouts and log-probs (absolute)."""
    out = {"acts_max_rel": 0.0, "acts_max_abs": 0.0, "readout_max_abs": 0.0, "logprob_max_abs": 0.0}
    for s, f in zip(shared, full, strict=True):
        for p in s.acts:
            out["acts_max_rel"] = max(out["acts_max_rel"], _rel(s.acts[p], f.acts[p]))
            out["acts_max_abs"] = max(out["acts_max_abs"], float(np.abs(s.acts[p] - f.acts[p]).max()))
        out["readout_max_abs"] = max(out["readout_max_abs"], _nan_abs(s.readout, f.readout))
        out["logprob_max_abs"] = max(out["logprob_max_abs"], _nan_abs(s.logprob, f.logprob))
    return out


def section_runner(runner: Runner, batches: list[list[int]], positions: Sequence[str], repeats: int,
                   device: torch.device) -> dict[str, Any]:
    """`Runner.run(shared=True)` vs `shared=False` on the same batches, interleaved; tokens and differences."""
    outs: dict[bool, dict[int, BatchOutput]] = {True: {}, False: {}}

    def variant(shared: bool) -> Callable[[int], None]:
        def fn(j: int) -> None:
            outs[shared][j] = runner.run(batches[j], positions, shared=shared)
        return fn

    variants = {"shared": variant(True), "unshared": variant(False)}
    for fn in variants.values():  # warm-up on the shortest batch
        fn(len(batches) - 1)
    reps = interleave(variants, len(batches), repeats, device, "Runner.run")
    encs = [runner.encoded[i] for b in batches for i in b]
    tokens = {"shared": shared_tokens(encs), "unshared": sum(len(e.ids) for e in encs)}
    run_tokens = {"shared": sum(o.tokens for o in outs[True].values()),
                  "unshared": sum(o.tokens for o in outs[False].values())}
    n = len(batches)
    return {
        "n_prompts": len(encs), "n_batches": n, "n_prefixes": len({e.prefix for e in encs}), "repeats": repeats,
        "positions": list(positions), "tokens": tokens, "tokens_counted_by_runner": run_tokens,
        "token_ratio_unshared_over_shared": tokens["unshared"] / tokens["shared"],
        "seconds_median": {k: median([r[k] for r in reps]) for k in variants},
        "speedup_unshared_over_shared": paired_ratio(reps, "unshared", "shared"),
        "differences": differences([outs[True][j] for j in range(n)], [outs[False][j] for j in range(n)]),
    }


def section_measure(model: LoadedModel, prompts: list, tmpls: list, batch_size: int, repeats: int,
                    device: torch.device) -> dict[str, Any]:
    """`measure` under an all-layer ablation of one random direction, shared vs unshared, whole calls interleaved."""
    vec = torch.from_numpy(random_unit_directions(1, model.info.d_model, 0)[0]).float()
    layers = range(model.info.n_layers + 1)
    got: dict[str, Any] = {}

    def variant(name: str) -> Callable[[int], None]:
        def fn(_: int) -> None:
            got[name] = measure(model, prompts, tmpls, batch_size=batch_size, shared=name == "shared",
                                intervention=lambda: ablate(model.bridge, dict.fromkeys(layers, vec)))
        return fn

    variants = {"shared": variant("shared"), "unshared": variant("unshared")}
    reps = interleave(variants, 1, repeats, device, "measure (ablation)")  # the order alternates per repeat
    s, f = got["shared"], got["unshared"]
    return {
        "n_prompts": len(prompts), "repeats": repeats, "intervention": "ablate one random unit direction, all layers",
        "seconds_median": {k: median([r[k] for r in reps]) for k in variants},
        "speedup_unshared_over_shared": paired_ratio(reps, "unshared", "shared"),
        "differences": {"readout_max_abs": _nan_abs(s["readout"].to_numpy(), f["readout"].to_numpy()),
                        "logprob_max_abs": _nan_abs(s["sentence_logprob"].to_numpy(),
                                                    f["sentence_logprob"].to_numpy())},
    }


def _ratio(r: dict[str, float]) -> str:
    return f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})"


def report(res: dict[str, Any]) -> str:
    """The figures as printed text."""
    c, r, m = res["config"], res["runner"], res["measure"]
    t = r["tokens"]
    out = [
        "entangle shared-prefix benchmark", machine_line(res["machine"]),
        f"model {c['model']}; {c['frames']} frames, {c['n_prompts']} cloze prompts, batch size {c['batch_size']}",
        "",
        (f"1. Runner.run shared vs unshared ({r['n_prompts']} prompts, {r['n_prefixes']} distinct prefixes, "
        f"{r['n_batches']} batches, {r['repeats']} interleaved repeats; positions {', '.join(r['positions'])})"),
        fmt_table([
            ("", "shared", "unshared", "unshared / shared (min-max)"),
            ("tokens run", str(t["shared"]), str(t["unshared"]), f"{r['token_ratio_unshared_over_shared']:.2f}"),
            ("seconds (median)", f"{r['seconds_median']['shared']:.2f}", f"{r['seconds_median']['unshared']:.2f}",
             _ratio(r["speedup_unshared_over_shared"])),
        ]),
        f"token ratio unshared/shared: {r['token_ratio_unshared_over_shared']:.2f}",
        f"wall-time ratio unshared/shared: {_ratio(r['speedup_unshared_over_shared'])}",
        "largest difference shared vs unshared: activations {acts_max_rel:.2e} relative ({acts_max_abs:.2e} "
        "absolute), readout {readout_max_abs:.2e}, sentence log-prob {logprob_max_abs:.2e}".format(**r["differences"]),
        "",
        (f"2. measure() under an all-layer ablation hook, shared vs unshared ({m['n_prompts']} prompts, "
        f"{m['repeats']} interleaved repeats of the whole call)"),
        f"seconds (median): shared {m['seconds_median']['shared']:.2f}, unshared {m['seconds_median']['unshared']:.2f}",
        f"wall-time ratio unshared/shared: {_ratio(m['speedup_unshared_over_shared'])}",
        "largest difference shared vs unshared: readout {readout_max_abs:.2e}, sentence log-prob "
        "{logprob_max_abs:.2e}".format(**m["differences"]),
        "",
        f"within tolerance {TOLERANCE:g}: {res['within_tolerance']}",
        f"total benchmark wall time: {res['wall_seconds']:.0f} s",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    device, machine, model = load_for_bench(args)
    stimuli, tmpls, prompts = stimulus_prompts(model, args.frames)
    runner = Runner(model, prompts, tmpls)
    batches = group_batches(runner.encoded, args.batch_size)[: args.max_batches]
    with torch.inference_mode():
        runner_res = section_runner(runner, batches, available_positions(stimuli), args.repeats, device)
    chosen = [prompts[i] for b in batches for i in b]
    measure_res = section_measure(model, chosen, tmpls, args.batch_size, args.repeats, device)
    rd, md = runner_res["differences"], measure_res["differences"]
    worst = max(rd["acts_max_rel"], rd["readout_max_abs"], rd["logprob_max_abs"], *md.values())
    res = {
        "machine": machine,
        "config": bench_config(args, device, len(stimuli.frames()), len(prompts)),
        "runner": runner_res, "measure": measure_res, "tolerance": TOLERANCE,
        "within_tolerance": bool(worst <= TOLERANCE),
        "wall_seconds": time.perf_counter() - t_start,
    }
    return publish(report(res), res, args.json)


if __name__ == "__main__":
    main()
