"""Shared helpers of the benchmark scripts: interleaved timing, paired ratios, machine facts, tables, JSON.

Every benchmark reports ratios to a baseline measured in the same run with the repetitions interleaved, so a
busy machine slows both sides alike; these helpers are the one implementation of that protocol.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch


def log(msg: str) -> None:
    """Progress to stderr (the figures go to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def common_args(ap: argparse.ArgumentParser, frames: int, batch_size: int, repeats: int) -> None:
    """The options every model benchmark shares."""
    ap.add_argument("--model", default="smollm2-135m", help="registry name, local HF directory or hub id")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--frames", type=int, default=frames, help="stimulus frames (18 items x 9 cloze prompts each)")
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--repeats", type=int, default=repeats, help="interleaved repetitions (medians reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--json", metavar="OUT", default=None, help="also write every figure as JSON")


def parse_with_quick(ap: argparse.ArgumentParser, argv: Sequence[str] | None, quick: dict[str, Any]
                     ) -> argparse.Namespace:
    """Parse with a --quick option that overrides `quick`'s settings (a smoke run for the test suite)."""
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: overrides {', '.join(f'{k}={v}' for k, v in quick.items())}")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in quick.items():
            setattr(args, k, v)
    return args


def load_for_bench(args: argparse.Namespace, dtype: str = "float32") -> tuple[torch.device, dict[str, Any], Any]:
    """The device (threads set), the machine's facts and the model every model benchmark starts from."""
    from entangle.models import load_model  # noqa: PLC0415

    device = device_of(args)
    log(f"loading {args.model} ({dtype}) on {device}")
    return device, machine_info(device), load_model(args.model, device=str(device), dtype=dtype)


def bench_config(args: argparse.Namespace, device: torch.device, n_frames: int, n_prompts: int,
                 **extra: Any) -> dict[str, Any]:
    """The settings a model benchmark records with its figures (the shared options plus `extra`)."""
    return {"model": args.model, "device": str(device), "frames": n_frames, "n_prompts": n_prompts,
            "batch_size": args.batch_size, "repeats": args.repeats, "max_batches": args.max_batches,
            "quick": args.quick, **extra}


def stimulus_prompts(model: Any, frames: int) -> tuple[Any, Any, list[Any]]:
    """The first `frames` frames of the shipped stimuli, the model's cloze templates and their prompts."""
    from entangle.engine import resolve_templates  # noqa: PLC0415
    from entangle.prompts import build_prompts  # noqa: PLC0415
    from entangle.stimuli import load_stimuli  # noqa: PLC0415

    stimuli = load_stimuli()
    stimuli = stimuli.subset(min(frames, len(stimuli.frames())))
    tmpls = resolve_templates(model, "cloze")
    return stimuli, tmpls, build_prompts(stimuli.items, tmpls, model.tokenizer)


def device_of(args: argparse.Namespace) -> torch.device:
    """The requested device, with threads set; a clear exit when CUDA is asked for but absent."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda given but torch sees no GPU")
    return device


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call takes (GPU work included)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def interleave(variants: dict[str, Callable[[int], Any]], n_units: int, repeats: int, device: torch.device,
               label: str) -> list[dict[str, float]]:
    """Per repetition, each variant's summed seconds over all units (batches); variants alternate unit by unit and
    the order rotates from one unit to the next, so no variant always runs first or last."""
    names = list(variants)
    reps = []
    for rep in range(repeats):
        secs = dict.fromkeys(names, 0.0)
        for j in range(n_units):
            k = (j + rep) % len(names)
            for name in names[k:] + names[:k]:
                secs[name] += timed(lambda name=name, j=j: variants[name](j), device)
        reps.append(secs)
        log(f"{label} repeat {rep + 1}/{repeats}: " + ", ".join(f"{n} {s:.2f}s" for n, s in secs.items()))
    return reps


def paired_ratio(reps: Sequence[dict[str, float]], num: str, den: str) -> dict[str, float]:
    """Median, min and max over repetitions of seconds[num] / seconds[den] (paired within each repetition)."""
    r = [rep[num] / rep[den] for rep in reps]
    return {"median": median(r), "min": min(r), "max": max(r)}


def machine_info(device: torch.device) -> dict[str, Any]:
    """Date, CPU, load average, library versions and device: what a figure was measured on."""
    import transformers

    info: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
        "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["processor"] = names[0] if names else info["processor"]
    except OSError:
        pass
    return info


def machine_line(m: dict[str, Any]) -> str:
    """One line naming the machine, its load and the library versions."""
    return (f"date {m['date']}; {m['processor']}; {m['cpu_count']} CPUs ({m['cpus_usable']} usable), load average "
            f"{m['load_average']}; torch {m['torch']} ({m['torch_threads']} threads), transformers "
            f"{m['transformers']}; device {m['device']}" + (f" ({m['gpu']})" if m["gpu"] else ""))


def fmt_table(rows: list[tuple[str, ...]]) -> str:
    """Plain-text table with a rule under the header row."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def publish(text: str, res: dict[str, Any], path: str | None) -> dict[str, Any]:
    """Print the benchmark's report and, when a path is given, write every figure as strict JSON (non-finite
    numbers as null); returns the figures."""
    print(text, flush=True)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(_finite(res), indent=2) + "\n")
    return res
