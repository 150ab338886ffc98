#!/usr/bin/env python
"""Capture benchmarks: throughput against a plain HF forward, fp32 vs bf16, cold vs cached, peak memory.

Every timing is reported as a ratio to a baseline measured in the same run, with baseline and measured
repetitions interleaved (at the granularity of one batch, the order rotated from batch to batch) and medians
over repetitions, so a busy or throttled machine shifts both sides alike. Absolute figures are printed too
but only the ratios are meant to be compared between machines.

    python benchmarks/capture.py                          # smollm2-135m, 4 frames, batch 32, 3 repeats, CPU
    python benchmarks/capture.py --device cuda --json bench.json
    python benchmarks/capture.py --quick --model DIR      # tiny smoke run (the test suite uses it)

See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

warnings.filterwarnings("ignore")

from entangle.engine.capture import (
    POSITIONS,
    Runner,
    capture,
    collate,
    make_batches,
    resolve_templates,
)
from entangle.hookpoints import resid_hook
from entangle.models import (
    REGISTRY,
    _gguf_path,
    _load_hf,
    _resolve_torch_dtype,
    load_model,
)
from entangle.prompts import build_prompts
from entangle.stimuli import load_stimuli

QUICK = {"frames": 1, "batch_size": 8, "repeats": 1, "cache_repeats": 1, "max_batches": 2}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="registry name, local HF directory or hub id")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--frames", type=int, default=4, help="stimulus frames to use (18 items x 9 cloze prompts each)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repetitions per comparison (medians reported)")
    ap.add_argument("--cache-repeats", type=int, default=None,
                    help="cold/cached pairs in section 3 (default: --repeats); each cold one is a whole capture")
    ap.add_argument("--max-batches", type=int, default=None,
                    help="time only the first N batches (longest first) in the throughput and dtype sections")
    ap.add_argument("--no-pristine", action="store_true",
                    help="skip loading a second, unwrapped copy of the HF model for the 'pristine HF' breakdown row")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--json", metavar="OUT", default=None, help="also write every figure as JSON")
    ap.add_argument("--quick", action="store_true",
                    help=f"tiny run for smoke tests: overrides {', '.join(f'{k}={v}' for k, v in QUICK.items())}")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    if args.cache_repeats is None:
        args.cache_repeats = args.repeats
    if args.repeats < 1 or args.frames < 1 or args.batch_size < 1:
        ap.error("--repeats, --frames and --batch-size must be >= 1")
    return args


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


# ----------------------------------------------------------------------------------------------------- memory

def rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakRSS:
    """Peak RSS inside a `with` block: the kernel's high-water mark (reset on entry via /proc/self/clear_refs) where
    Linux allows it, and a 2 ms sampling thread in any case; the larger of the two is reported."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self.method = interval, 0, "sampled"
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._hwm_ok = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self._hwm_ok = _vm_hwm() is not None
        except OSError:
            pass
        self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        hwm = _vm_hwm() if self._hwm_ok else None
        if hwm is not None:
            self.method = "VmHWM (reset via clear_refs) + 2 ms sampling"
            self.peak = max(self.peak, hwm)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------------- machine

def machine_info(device: torch.device) -> dict[str, Any]:
    import transformers

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    info: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "cpu_count": os.cpu_count(), "cpus_usable": affinity,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(), "transformers": transformers.__version__,
        "device": str(device), "gpu": None,
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        info["load_average"] = None
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            info["processor"] = names[0]
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# ----------------------------------------------------------------------------------------------------- sections

def store_hooks(n_layers: int, store: dict) -> list[tuple[str, Callable]]:
    """The same hooks Runner.run installs (every residual layer plus the final norm), storing detached tensors."""
    def keep(key: Any) -> Callable:
        def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
            store[key] = t.detach()
            return t
        return hook
    return [(resid_hook(layer), keep(layer)) for layer in range(n_layers + 1)] + [("ln_final.hook_out", keep("normed"))]


def interleave(variants: dict[str, Callable[[int], Any]], n_batches: int, repeats: int,
               device: torch.device, label: str) -> list[dict[str, float]]:
    """Per repetition, the summed seconds of each variant over all batches; variants alternate batch by batch."""
    names = list(variants)
    reps = []
    for rep in range(repeats):
        secs = dict.fromkeys(names, 0.0)
        for j in range(n_batches):
            k = (j + rep) % len(names)
            for name in names[k:] + names[:k]:  # rotate the order: no variant always runs first or last
                secs[name] += timed(lambda name=name, j=j: variants[name](j), device)
        reps.append(secs)
        log(f"{label} repeat {rep + 1}/{repeats}: " + ", ".join(f"{n} {s:.2f}s" for n, s in secs.items()))
    return reps


def section_throughput(model: Any, pristine: Any, runner: Runner, batches: list[list[int]], args: argparse.Namespace,
                       device: torch.device) -> dict[str, Any]:
    coll = []
    for idx in batches:
        ids, mask, pos, _ = collate([runner.encoded[i] for i in idx], runner.pad_id)
        coll.append((ids.to(device), mask.to(device), pos.to(device)))
    tokens = int(sum(int(m.sum()) for _, m, _ in coll))
    padded = int(sum(m.numel() for _, m, _ in coll))
    hf, bridge, n = model.hf_model, model.bridge, model.info.n_layers
    store: dict = {}
    hooks = store_hooks(n, store)

    def bridge_hooks(j: int) -> Any:
        ids, mask, pos = coll[j]
        with bridge.hooks(fwd_hooks=hooks):
            return bridge(ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)

    variants: dict[str, Callable[[int], Any]] = {
        "hf_forward": lambda j: hf(coll[j][0], attention_mask=coll[j][1], position_ids=coll[j][2], output_hidden_states=True),
    }
    if pristine is not None:
        variants["hf_pristine"] = lambda j: pristine(coll[j][0], attention_mask=coll[j][1], position_ids=coll[j][2],
                                                     output_hidden_states=True)
    variants.update({
        "hf_forward_keep1": lambda j: hf(coll[j][0], attention_mask=coll[j][1], position_ids=coll[j][2],
                                         output_hidden_states=True, logits_to_keep=1),
        "bridge_forward": lambda j: bridge(coll[j][0], attention_mask=coll[j][1], position_ids=coll[j][2], logits_to_keep=1),
        "bridge_hooks": bridge_hooks,
        "capture": lambda j: runner.run(batches[j]),
    })
    with torch.inference_mode():
        for fn in variants.values():  # warm-up on the shortest batch
            fn(len(batches) - 1)
        reps = interleave(variants, len(batches), args.repeats, device, "throughput")
    rows = {}
    for name in variants:
        secs = [r[name] for r in reps]
        rows[name] = {
            "seconds_median": median(secs), "tokens_per_s_median": median([tokens / s for s in secs]),
            # paired per repetition: baseline seconds / variant seconds = variant tokens/s / baseline tokens/s
            "ratio_to_baseline": median([r["hf_forward"] / r[name] for r in reps]),
            "ratio_min": min(r["hf_forward"] / r[name] for r in reps),
            "ratio_max": max(r["hf_forward"] / r[name] for r in reps),
        }
    return {"baseline": "hf_forward", "tokens": tokens, "padded_tokens": padded, "n_batches": len(batches),
            "n_prompts": sum(len(b) for b in batches), "repeats": args.repeats, "variants": rows,
            "capture_ratio": rows["capture"]["ratio_to_baseline"], "goal": 0.95}


def rel_err(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """||a - ref|| / ||ref|| over the last axis."""
    a, ref = a.astype(np.float64), ref.astype(np.float64)
    return np.linalg.norm(a - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-12)


def section_dtype(model32: Any, runner32: Runner, prompts: list, tmpls: list, batches: list[list[int]],
                  args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    log("loading the bfloat16 copy")
    model16 = load_model(args.model, device=str(device), dtype="bfloat16")
    runner16 = Runner(model16, prompts, tmpls)
    outs: dict[str, dict[int, Any]] = {"float32": {}, "bfloat16": {}}

    def run(name: str, r: Runner) -> Callable[[int], Any]:
        def fn(j: int) -> Any:
            outs[name][j] = r.run(batches[j])
        return fn

    variants = {"float32": run("float32", runner32), "bfloat16": run("bfloat16", runner16)}
    with torch.inference_mode():
        for fn in variants.values():
            fn(len(batches) - 1)
        reps = interleave(variants, len(batches), args.repeats, device, "dtype")
    tokens = int(sum(len(runner32.encoded[i].ids) for b in batches for i in b))
    idx = np.concatenate([batches[j] for j in range(len(batches))])
    acts = {}
    for pos in POSITIONS:
        a32 = np.concatenate([outs["float32"][j].acts[pos] for j in range(len(batches))])
        a16 = np.concatenate([outs["bfloat16"][j].acts[pos] for j in range(len(batches))])
        err = rel_err(a16, a32)  # [prompts, layers]
        acts[pos] = {
            "median": float(np.median(err)), "max": float(err.max()),
            "worst_layer_median": float(np.median(err, axis=0).max()),
            "per_layer_median": np.median(err, axis=0).round(6).tolist(),
            "per_layer_max": err.max(axis=0).round(6).tolist(),
        }
    r32 = np.concatenate([outs["float32"][j].readout for j in range(len(batches))])
    r16 = np.concatenate([outs["bfloat16"][j].readout for j in range(len(batches))])
    ok = np.isfinite(r32) & np.isfinite(r16)
    corr = float(np.corrcoef(r32[ok], r16[ok])[0, 1]) if ok.sum() > 2 and r32[ok].std() > 0 else math.nan
    del model16, runner16
    return {
        "n_prompts": len(idx), "tokens": tokens, "repeats": args.repeats,
        "tokens_per_s_median": {n: median([tokens / r[n] for r in reps]) for n in variants},
        "speed_ratio_bf16_over_fp32": median([r["float32"] / r["bfloat16"] for r in reps]),
        "activations_rel_diff": acts,
        "readout_max_abs_diff": float(np.abs(r16[ok] - r32[ok]).max()) if ok.any() else math.nan,
        "readout_corr": corr,
    }


def section_cache(model: Any, stimuli: Any, args: argparse.Namespace, device: torch.device, root: Path,
                  first: tuple[float, Path]) -> dict[str, Any]:
    """Cold capture then the same call hitting the cache, in pairs; the first pair reuses the memory section's
    capture (the first after load, so its cold time includes the process warm-up)."""
    def hit(cache: Path) -> tuple[float, float, Any]:
        box: dict = {}
        t_hit = timed(lambda: box.setdefault("a", capture(model, stimuli, batch_size=args.batch_size, cache_dir=cache,
                                                           progress=False)), device)
        t0 = time.perf_counter()
        for arr in box["a"].acts.values():
            float(np.asarray(arr, dtype=np.float64).sum())  # touch every page of the memmaps
        return t_hit, time.perf_counter() - t0, box["a"]

    reps = []
    for rep in range(args.cache_repeats):
        if rep == 0:
            t_cold, cache = first
        else:
            cache = Path(tempfile.mkdtemp(prefix=f"cold{rep}_", dir=root))
            t_cold = timed(lambda cache=cache: capture(model, stimuli, batch_size=args.batch_size, cache_dir=cache,
                                                       progress=False), device)
        t_hit, t_read, aset = hit(cache)
        reps.append({"cold": t_cold, "cached": t_hit, "cached_plus_read": t_hit + t_read})
        log(f"cache repeat {rep + 1}/{args.cache_repeats}: cold {t_cold:.2f}s, cached {t_hit:.3f}s, read {t_read:.3f}s")
        n_prompts = len(aset.prompts)
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "n_prompts": n_prompts, "repeats": args.cache_repeats, "first_cold_is_first_capture_after_load": True,
        "seconds_median": {k: median([r[k] for r in reps]) for k in reps[0]},
        "speedup_cold_over_cached": median([r["cold"] / r["cached"] for r in reps]),
        "speedup_cold_over_cached_plus_read": median([r["cold"] / r["cached_plus_read"] for r in reps]),
    }


def section_memory(model: Any, stimuli: Any, args: argparse.Namespace, device: torch.device, root: Path,
                   rss_loaded: int) -> tuple[dict[str, Any], Path]:
    """The first capture after the model load (it also warms the process up for the timed sections)."""
    cache = Path(tempfile.mkdtemp(prefix="mem_", dir=root))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        cuda_loaded = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = rss_bytes()
    with PeakRSS() as peak:
        t0 = time.perf_counter()
        aset = capture(model, stimuli, batch_size=args.batch_size, cache_dir=cache, progress=False)
        sync(device)
        secs = time.perf_counter() - t0
    out: dict[str, Any] = {
        "rss_after_load_mb": rss_loaded / 2**20, "rss_before_capture_mb": rss_before / 2**20,
        "peak_rss_during_capture_mb": peak.peak / 2**20, "peak_over_loaded": peak.peak / rss_loaded,
        "peak_minus_loaded_mb": (peak.peak - rss_loaded) / 2**20, "method": peak.method,
        "lifetime_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # includes the load
        "cache_disk_mb": dir_bytes(cache) / 2**20, "n_prompts": len(aset.prompts), "first_capture_seconds": secs,
        "capture_self_checks_passed": all(c.get("passed", False) for c in aset.manifest["self_checks"].values()),
        "cuda_allocated_after_load_mb": None, "cuda_max_allocated_during_capture_mb": None,
    }
    if device.type == "cuda":
        out["cuda_allocated_after_load_mb"] = cuda_loaded / 2**20
        out["cuda_max_allocated_during_capture_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out, cache


def load_pristine(name: str, device: torch.device) -> Any:
    """The same weights as a plain transformers model, not wrapped by TransformerBridge."""
    dtype = _resolve_torch_dtype("float32")
    if name in REGISTRY:
        gguf = _gguf_path(name)
        hf, _ = _load_hf(str(gguf.parent), gguf.name, dtype, None)
    else:
        local = Path(name).expanduser()
        hf, _ = _load_hf(str(local) if local.is_dir() else name, None, dtype, None)
    return hf.to(device).eval()


# ----------------------------------------------------------------------------------------------------- report

def fmt_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


DESCRIBE = {
    "hf_forward": "plain HF forward, output_hidden_states (BASELINE)",
    "hf_pristine": "same, on an unwrapped transformers copy",
    "hf_forward_keep1": "HF forward, hidden states, logits_to_keep=1",
    "bridge_forward": "bridge forward, no hooks, logits_to_keep=1",
    "bridge_hooks": "bridge + store hooks at every layer",
    "capture": "Runner.run (hooks, both positions, readouts, log-prob)",
}


def report(res: dict[str, Any]) -> str:
    m, c = res["machine"], res["config"]
    out = [
        "entangle capture benchmark",
        f"date {m['date']}; {m['processor']}; {m['cpu_count']} CPUs ({m['cpus_usable']} usable), "
        f"load average {m['load_average']}; torch {m['torch']} ({m['torch_threads']} threads), "
        f"transformers {m['transformers']}; device {m['device']}" + (f" ({m['gpu']})" if m["gpu"] else ""),
        (f"model {c['model']}; {c['frames']} frames, {c['n_prompts']} cloze prompts, batch size {c['batch_size']}, "
         f"{c['repeats']} interleaved repeats (medians); all ratios are paired within one run"),
        "",
    ]
    t = res["throughput"]
    out.append(f"1. Capture throughput vs plain HF forward ({t['n_prompts']} prompts in {t['n_batches']} batches, "
               f"{t['tokens']} tokens, {t['padded_tokens']} with padding)")
    rows = [("variant", "what", "tokens/s", "ratio to baseline", "(min-max)")]
    for name, v in t["variants"].items():
        rows.append((name, DESCRIBE[name], f"{v['tokens_per_s_median']:.1f}", f"{v['ratio_to_baseline']:.3f}",
                     f"({v['ratio_min']:.3f}-{v['ratio_max']:.3f})"))
    out.append(fmt_table(rows))
    verdict = "meets" if t["capture_ratio"] >= t["goal"] else "BELOW"
    out.append(f"capture throughput ratio: {t['capture_ratio']:.3f} (goal >= {t['goal']}: {verdict})")
    out.append("")
    d = res["dtype"]
    out.append(f"2. fp32 vs bf16 ({d['n_prompts']} prompts, {d['tokens']} tokens)")
    out.append(f"tokens/s: float32 {d['tokens_per_s_median']['float32']:.1f}, bfloat16 {d['tokens_per_s_median']['bfloat16']:.1f}")
    out.append(f"speed ratio bf16/fp32: {d['speed_ratio_bf16_over_fp32']:.3f}")
    rows = [("position", "median rel diff", "worst-layer median", "max rel diff")]
    for pos, a in d["activations_rel_diff"].items():
        rows.append((pos, f"{a['median']:.4f}", f"{a['worst_layer_median']:.4f}", f"{a['max']:.4f}"))
    out.append("activation relative difference ||a_bf16 - a_fp32|| / ||a_fp32|| (over prompts x layers):")
    out.append(fmt_table(rows))
    out.append(f"readout (cloze log-odds): max abs diff {d['readout_max_abs_diff']:.4f}, "
               f"correlation {d['readout_corr']:.4f}")
    out.append("")
    k = res["cache"]
    s = k["seconds_median"]
    out.append(f"3. Cold vs cached capture() ({k['n_prompts']} prompts, {k['repeats']} cold/cached pairs, the first cold "
               "one being the first capture after load)")
    out.append(f"cold capture: {s['cold']:.3f} s; cached: {s['cached']:.4f} s; cached + read all activations: "
               f"{s['cached_plus_read']:.4f} s")
    out.append(f"cold/cached speedup: {k['speedup_cold_over_cached']:.1f}x "
               f"(cold/(cached + read): {k['speedup_cold_over_cached_plus_read']:.1f}x)")
    out.append("")
    mm = res["memory"]
    out.append(f"4. Peak memory (first capture after load, {mm['n_prompts']} prompts; {mm['method']})")
    out.append(f"RSS after model load: {mm['rss_after_load_mb']:.0f} MB; peak RSS during capture: "
               f"{mm['peak_rss_during_capture_mb']:.0f} MB (x{mm['peak_over_loaded']:.2f}, "
               f"+{mm['peak_minus_loaded_mb']:.0f} MB); lifetime peak incl. load: {mm['lifetime_peak_rss_mb']:.0f} MB")
    out.append(f"cache on disk: {mm['cache_disk_mb']:.1f} MB")
    if mm["cuda_max_allocated_during_capture_mb"] is not None:
        out.append(f"CUDA allocated after load: {mm['cuda_allocated_after_load_mb']:.0f} MB; "
                   f"max allocated during capture: {mm['cuda_max_allocated_during_capture_mb']:.0f} MB")
    else:
        out.append("CUDA max allocated: n/a (no GPU used)")
    out.append(f"total benchmark wall time: {res['wall_seconds']:.0f} s")
    return "\n".join(out)


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda given but torch sees no GPU")
    machine = machine_info(device)
    log(f"loading {args.model} (float32) on {device}")
    model = load_model(args.model, device=str(device), dtype="float32")
    rss_loaded = rss_bytes()
    stimuli = load_stimuli().subset(min(args.frames, len(load_stimuli().frames())))
    tmpls = resolve_templates(model, "cloze")
    prompts = build_prompts(stimuli.items, tmpls, model.tokenizer)
    root = Path(tempfile.mkdtemp(prefix="entangle_bench_"))
    try:
        log("memory: first capture after load")
        memory, first_cache = section_memory(model, stimuli, args, device, root, rss_loaded)
        log("cold vs cached")
        cache = section_cache(model, stimuli, args, device, root, (memory["first_capture_seconds"], first_cache))
        runner = Runner(model, prompts, tmpls)
        batches = make_batches(runner.lengths(), args.batch_size)[: args.max_batches]
        pristine = None if args.no_pristine else load_pristine(args.model, device)
        log("throughput")
        throughput = section_throughput(model, pristine, runner, batches, args, device)
        del pristine
        log("fp32 vs bf16")
        dtype = section_dtype(model, runner, prompts, tmpls, batches, args, device)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res = {
        "machine": machine,
        "config": {"model": args.model, "device": str(device), "frames": len(stimuli.frames()),
                   "n_prompts": len(prompts), "batch_size": args.batch_size, "repeats": args.repeats,
                   "cache_repeats": args.cache_repeats, "max_batches": args.max_batches, "quick": args.quick, "pristine": not args.no_pristine},
        "throughput": throughput, "dtype": dtype, "cache": cache, "memory": memory,
        "wall_seconds": time.perf_counter() - t_start,
    }
    print(report(res), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(_finite(res), indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
