#!/usr/bin/env python
"""Capture benchmarks: throughput against a plain HF forward, fp32 vs bf16, cold vs cached, peak memory.

Every timing is a ratio to a baseline measured in the same run, with baseline and measured repetitions interleaved
(batch by batch, the order rotated from batch to batch) and medians over repetitions, so a busy machine shifts both
sides alike. Absolute figures are printed for orientation only. See benchmarks/README.md.

    python benchmarks/capture.py                          # smollm2-135m, 4 frames, batch 36, 3 repeats, CPU
    python benchmarks/capture.py --device cuda --json bench.json
    python benchmarks/capture.py --quick --model DIR      # smoke run (the test suite uses it)
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchlib import (
    bench_config,
    common_args,
    fmt_table,
    interleave,
    load_for_bench,
    log,
    machine_line,
    median,
    parse_with_quick,
    publish,
    stimulus_prompts,
    sync,
    timed,
)
from memory import rss_bytes, section_memory
from transformers import AutoModelForCausalLM

from entangle.engine import Runner, capture, resolve_templates
from entangle.engine.tokens import collate, group_batches
from entangle.hookpoints import resid_hook
from entangle.models import LoadedModel, load_model
from entangle.stimuli import StimulusSet

QUICK = {"frames": 1, "batch_size": 18, "repeats": 1, "cache_repeats": 1, "max_batches": 2}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap, frames=4, batch_size=36, repeats=3)
    ap.add_argument("--cache-repeats", type=int, default=None,
                    help="cold/cached pairs in section 3 (default: --repeats); each cold one is a whole capture")
    ap.add_argument("--max-batches", type=int, default=None,
                    help="time only the first N batches (longest first) in the throughput and dtype sections")
    ap.add_argument("--no-pristine", action="store_true",
                    help="skip loading a second, unwrapped copy of the HF model for the 'pristine HF' row")
    args = parse_with_quick(ap, argv, QUICK)
    if args.cache_repeats is None:
        args.cache_repeats = args.repeats
    if min(args.repeats, args.frames, args.batch_size) < 1:
        ap.error("--repeats, --frames and --batch-size must be >= 1")
    return args


def load_pristine(model: LoadedModel, device: torch.device) -> Any:
    """The same weights as a plain transformers model, not wrapped by TransformerBridge (fp32)."""
    src = Path(model.info.source)
    if src.is_file():  # a registry model: its GGUF file
        hf = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32,
                                                  local_files_only=True)
    else:
        hf = AutoModelForCausalLM.from_pretrained(model.info.source, dtype=torch.float32, local_files_only=True)
    return hf.to(device).eval()


def store_hooks(n_layers: int, store: dict) -> list[tuple[str, Callable]]:
    """Hooks at every residual layer plus the final norm that keep the whole (detached) tensor."""
    def keep(key: Any) -> Callable:
        def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
            store[key] = t.detach()
            return t
        return hook
    return [(resid_hook(layer), keep(layer)) for layer in range(n_layers + 1)] + [("ln_final.hook_out", keep("normed"))]


def section_throughput(model: LoadedModel, pristine: Any, runner: Runner, batches: list[list[int]], repeats: int,
                       device: torch.device) -> dict[str, Any]:
    """Every variant on the same whole-prompt batches, interleaved; tokens/s counts the prompts' real tokens."""
    coll = []
    for idx in batches:
        ids, mask, pos, _ = collate([runner.encoded[i].ids for i in idx], runner.pad_id)
        coll.append((ids.to(device), mask.to(device), pos.to(device)))
    tokens = int(sum(int(m.sum()) for _, m, _ in coll))
    hf, bridge = model.hf_model, model.bridge
    hooks = store_hooks(model.info.n_layers, {})

    def call(m: Any, j: int, **kw: Any) -> Any:
        ids, mask, pos = coll[j]
        return m(ids, attention_mask=mask, position_ids=pos, **kw)

    def bridge_hooks(j: int) -> Any:
        with bridge.hooks(fwd_hooks=hooks):
            return call(bridge, j, logits_to_keep=1)

    variants: dict[str, Callable[[int], Any]] = {"hf_forward": lambda j: call(hf, j, output_hidden_states=True)}
    if pristine is not None:
        variants["hf_pristine"] = lambda j: call(pristine, j, output_hidden_states=True)
    variants.update({
        "hf_forward_keep1": lambda j: call(hf, j, output_hidden_states=True, logits_to_keep=1),
        "bridge_forward": lambda j: call(bridge, j, logits_to_keep=1),
        "bridge_hooks": bridge_hooks,
        "capture_unshared": lambda j: runner.run(batches[j], shared=False),
        "capture": lambda j: runner.run(batches[j]),
    })
    with torch.inference_mode():
        for fn in variants.values():  # warm-up on the shortest batch
            fn(len(batches) - 1)
        reps = interleave(variants, len(batches), repeats, device, "throughput")
    rows = {}
    for name in variants:
        ratios = [r["hf_forward"] / r[name] for r in reps]  # = variant tokens/s / baseline tokens/s (paired)
        rows[name] = {"seconds_median": median([r[name] for r in reps]),
                      "tokens_per_s_median": median([tokens / r[name] for r in reps]),
                      "ratio_to_baseline": median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}
    return {"baseline": "hf_forward", "tokens": tokens, "padded_tokens": int(sum(m.numel() for _, m, _ in coll)),
            "n_batches": len(batches), "n_prompts": sum(len(b) for b in batches), "repeats": repeats,
            "variants": rows, "capture_ratio": rows["capture"]["ratio_to_baseline"],
            "capture_unshared_ratio": rows["capture_unshared"]["ratio_to_baseline"], "goal": 0.95}


def rel_err(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """||a - ref|| / ||ref|| over the last axis."""
    a, ref = a.astype(np.float64), ref.astype(np.float64)
    return np.linalg.norm(a - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-12)


def section_dtype(runner32: Runner, args: argparse.Namespace, batches: list[list[int]],
                  device: torch.device) -> dict[str, Any]:
    """A bfloat16 copy of the model against the float32 one on the same batches: speed and activation error."""
    log("loading the bfloat16 copy")
    model16 = load_model(args.model, device=str(device), dtype="bfloat16")
    runner16 = Runner(model16, runner32.prompts, resolve_templates(model16, "cloze"))
    outs: dict[str, dict[int, Any]] = {"float32": {}, "bfloat16": {}}

    def run(name: str, r: Runner) -> Callable[[int], Any]:
        def fn(j: int) -> None:
            outs[name][j] = r.run(batches[j])
        return fn

    variants = {"float32": run("float32", runner32), "bfloat16": run("bfloat16", runner16)}
    with torch.inference_mode():
        for fn in variants.values():
            fn(len(batches) - 1)
        reps = interleave(variants, len(batches), args.repeats, device, "dtype")
    tokens = int(sum(len(runner32.encoded[i].ids) for b in batches for i in b))
    acts = {}
    for pos in outs["float32"][0].acts:
        err = rel_err(*(np.concatenate([outs[n][j].acts[pos] for j in range(len(batches))])
                        for n in ("bfloat16", "float32")))  # [prompts, layers]
        acts[pos] = {"median": float(np.median(err)), "max": float(err.max()),
                     "worst_layer_median": float(np.median(err, axis=0).max()),
                     "per_layer_median": np.median(err, axis=0).round(6).tolist(),
                     "per_layer_max": err.max(axis=0).round(6).tolist()}
    r32, r16 = (np.concatenate([outs[n][j].readout for j in range(len(batches))]) for n in ("float32", "bfloat16"))
    ok = np.isfinite(r32) & np.isfinite(r16)
    corr = float(np.corrcoef(r32[ok], r16[ok])[0, 1]) if ok.sum() > 2 and r32[ok].std() > 0 else math.nan
    return {
        "n_prompts": sum(len(b) for b in batches), "tokens": tokens, "repeats": args.repeats,
        "tokens_per_s_median": {n: median([tokens / r[n] for r in reps]) for n in variants},
        "speed_ratio_bf16_over_fp32": median([r["float32"] / r["bfloat16"] for r in reps]),
        "activations_rel_diff": acts,
        "readout_max_abs_diff": float(np.abs(r16[ok] - r32[ok]).max()) if ok.any() else math.nan,
        "readout_corr": corr,
    }


def section_cache(model: LoadedModel, stimuli: StimulusSet, args: argparse.Namespace, device: torch.device,
                  root: Path, first: tuple[float, Path]) -> dict[str, Any]:
    """Cold capture then the same call hitting the cache, in pairs; the first pair reuses the memory section's
    capture (the first after load, so its cold time includes the process warm-up)."""
    def run(cache: Path) -> Any:
        return capture(model, stimuli, batch_size=args.batch_size, cache_dir=cache, progress=False)

    reps = []
    for rep in range(args.cache_repeats):
        if rep == 0:
            t_cold, cache = first
        else:
            cache = Path(tempfile.mkdtemp(prefix=f"cold{rep}_", dir=root))
            t_cold = timed(lambda cache=cache: run(cache), device)
        t0 = time.perf_counter()
        aset = run(cache)
        sync(device)
        t_hit = time.perf_counter() - t0
        t0 = time.perf_counter()
        for arr in aset.acts.values():
            float(np.asarray(arr, dtype=np.float64).sum())  # touch every page of the memmaps
        t_read = time.perf_counter() - t0
        reps.append({"cold": t_cold, "cached": t_hit, "cached_plus_read": t_hit + t_read})
        log(f"cache repeat {rep + 1}/{args.cache_repeats}: cold {t_cold:.2f}s, cached {t_hit:.3f}s, read {t_read:.3f}s")
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "n_prompts": len(aset.prompts), "repeats": args.cache_repeats,
        "seconds_median": {k: median([r[k] for r in reps]) for k in reps[0]},
        "speedup_cold_over_cached": median([r["cold"] / r["cached"] for r in reps]),
        "speedup_cold_over_cached_plus_read": median([r["cold"] / r["cached_plus_read"] for r in reps]),
    }


DESCRIBE = {
    "hf_forward": "plain HF forward, output_hidden_states (BASELINE)",
    "hf_pristine": "same, on an unwrapped transformers copy",
    "hf_forward_keep1": "HF forward, hidden states, logits_to_keep=1",
    "bridge_forward": "bridge forward, no hooks, logits_to_keep=1",
    "bridge_hooks": "bridge + store hooks at every layer",
    "capture_unshared": "Runner.run(shared=False): whole prompts, reads, readouts",
    "capture": "Runner.run (shared prefix once + suffixes; the engine's default)",
}


def report(res: dict[str, Any]) -> str:
    """The figures as printed text."""
    c, t, d, k, mm = res["config"], res["throughput"], res["dtype"], res["cache"], res["memory"]
    out = ["entangle capture benchmark", machine_line(res["machine"]),
           (f"model {c['model']}; {c['frames']} frames, {c['n_prompts']} cloze prompts, batch size {c['batch_size']}, "
           f"{c['repeats']} interleaved repeats (medians); all ratios are paired within one run"), "",
           (f"1. Capture throughput vs plain HF forward ({t['n_prompts']} prompts in {t['n_batches']} batches, "
           f"{t['tokens']} prompt tokens, {t['padded_tokens']} with padding)")]
    rows = [("variant", "what", "tokens/s", "ratio to baseline", "(min-max)")]
    rows += [(name, DESCRIBE[name], f"{v['tokens_per_s_median']:.1f}", f"{v['ratio_to_baseline']:.3f}",
              f"({v['ratio_min']:.3f}-{v['ratio_max']:.3f})") for name, v in t["variants"].items()]
    out.append(fmt_table(rows))
    verdict = "meets" if t["capture_ratio"] >= t["goal"] else "BELOW"
    out.append(f"capture throughput ratio: {t['capture_ratio']:.3f} (goal >= {t['goal']}: {verdict}); whole prompts "
               f"(shared=False): {t['capture_unshared_ratio']:.3f}")
    out += ["", f"2. fp32 vs bf16 ({d['n_prompts']} prompts, {d['tokens']} tokens)",
            (f"tokens/s: float32 {d['tokens_per_s_median']['float32']:.1f}, "
            f"bfloat16 {d['tokens_per_s_median']['bfloat16']:.1f}"),
            f"speed ratio bf16/fp32: {d['speed_ratio_bf16_over_fp32']:.3f}",
            "activation relative difference ||a_bf16 - a_fp32|| / ||a_fp32|| (over prompts x layers):"]
    rows = [("position", "median rel diff", "worst-layer median", "max rel diff")]
    rows += [(pos, f"{a['median']:.4f}", f"{a['worst_layer_median']:.4f}", f"{a['max']:.4f}")
             for pos, a in d["activations_rel_diff"].items()]
    out.append(fmt_table(rows))
    out.append(f"readout (cloze log-odds): max abs diff {d['readout_max_abs_diff']:.4f}, "
               f"correlation {d['readout_corr']:.4f}")
    s, man = k["seconds_median"], mm["manifest"]
    out += ["", (f"3. Cold vs cached capture() ({k['n_prompts']} prompts, {k['repeats']} cold/cached pairs, the first "
            "cold one being the first capture after load)"),
            (f"cold capture: {s['cold']:.3f} s; cached: {s['cached']:.4f} s; cached + read all activations: "
            f"{s['cached_plus_read']:.4f} s"),
            (f"cold/cached speedup: {k['speedup_cold_over_cached']:.1f}x "
            f"(cold/(cached + read): {k['speedup_cold_over_cached_plus_read']:.1f}x)"),
            (f"manifest of the first capture: capture_seconds {man['capture_seconds']}, tokens {man['tokens']}, "
            f"tokens_shared_prefix {man['tokens_shared_prefix']}"),
            "", f"4. Peak memory (first capture after load, {mm['n_prompts']} prompts; {mm['method']})",
            (f"RSS after model load: {mm['rss_after_load_mb']:.0f} MB; peak RSS during capture: "
            f"{mm['peak_rss_during_capture_mb']:.0f} MB (x{mm['peak_over_loaded']:.2f}, "
            f"+{mm['peak_minus_loaded_mb']:.0f} MB); lifetime peak incl. load: {mm['lifetime_peak_rss_mb']:.0f} MB"),
            f"cache on disk: {mm['cache_disk_mb']:.1f} MB"]
    if mm["cuda_max_allocated_during_capture_mb"] is not None:
        out.append(f"CUDA allocated after load: {mm['cuda_allocated_after_load_mb']:.0f} MB; "
                   f"max allocated during capture: {mm['cuda_max_allocated_during_capture_mb']:.0f} MB")
    else:
        out.append("CUDA max allocated: n/a (no GPU used)")
    out.append(f"total benchmark wall time: {res['wall_seconds']:.0f} s")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    device, machine, model = load_for_bench(args)
    rss_loaded = rss_bytes()
    stimuli, tmpls, prompts = stimulus_prompts(model, args.frames)
    root = Path(tempfile.mkdtemp(prefix="entangle_bench_"))
    try:
        log("memory: first capture after load")
        memory, first_cache = section_memory(model, stimuli, args.batch_size, device, root, rss_loaded)
        log("cold vs cached")
        cache = section_cache(model, stimuli, args, device, root, (memory["first_capture_seconds"], first_cache))
        runner = Runner(model, prompts, tmpls)
        batches = group_batches(runner.encoded, args.batch_size)[: args.max_batches]
        pristine = None if args.no_pristine else load_pristine(model, device)
        log("throughput")
        throughput = section_throughput(model, pristine, runner, batches, args.repeats, device)
        del pristine
        log("fp32 vs bf16")
        dtype = section_dtype(runner, args, batches, device)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res = {
        "machine": machine,
        "config": bench_config(args, device, len(stimuli.frames()), len(prompts), cache_repeats=args.cache_repeats,
                               pristine=not args.no_pristine),
        "throughput": throughput, "dtype": dtype, "cache": cache, "memory": memory,
        "wall_seconds": time.perf_counter() - t_start,
    }
    return publish(report(res), res, args.json)


if __name__ == "__main__":
    main()
