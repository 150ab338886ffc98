"""Command-line options the probes/ scripts share, and the RunConfig fields they fill (one place for both)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_run_args(p: argparse.ArgumentParser, out: str, batch_size: int) -> argparse.ArgumentParser:
    """Model, stimuli, readout, resampling and device options of a study run (`out`: the default run folder)."""
    p.add_argument("--model", "-m", default="smollm2-135m", help="registry name, local HF directory or hub id")
    p.add_argument("--out", type=Path, default=Path(out), help=f"output folder (default: {out})")
    p.add_argument("--stimuli", type=Path, default=None, help="stimulus JSONL/CSV (default: the shipped v2 set)")
    p.add_argument("--frames", type=int, default=None, help="use only the first N frames (default: all 64)")
    p.add_argument("--readout", default="auto", choices=["auto", "cloze", "likert"], help="judgement readout")
    p.add_argument("--n-boot", type=int, default=1000, help="frame-bootstrap resamples for the CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=batch_size, help="prompts per forward pass")
    p.add_argument("--cache-dir", type=Path, default=Path(".entangle_cache"), help="activation cache folder")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--dtype", default="float32", help="float32 (default) or bfloat16")
    return p


def run_config_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig keyword arguments the shared options give."""
    return dict(model=args.model, out=str(args.out), stimuli=str(args.stimuli) if args.stimuli else None,
                frames=args.frames, readout=args.readout, n_boot=args.n_boot, seed=args.seed,
                batch_size=args.batch_size, cache_dir=str(args.cache_dir), device=args.device, dtype=args.dtype,
                progress=sys.stderr.isatty())
