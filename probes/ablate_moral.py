#!/usr/bin/env python
"""The causal test of the entanglement study: is there a moral direction, and does removing it repair the rest?

Runs the `entangle.studies.entanglement.pipeline.Experiment` stages capture -> probes -> behavioural EI (validity
gate) -> the causal test (candidates, attribution pre-screen, exact ablation on selection frames, positive control on
held-out frames; repair on valid cells against variance-matched and shuffled-label nulls only if the control passes;
control directions, LEACE, orthogonalised weights, moral steering), writes the run folder (`entangle report <out>`
renders it) and prints the headline lines.

    python probes/ablate_moral.py --frames 16 --n-null 99 --out runs/causal-smollm2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from entangle.models import quiet_libraries


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python probes/ablate_moral.py --frames 16 --out runs/causal")
    p.add_argument("--model", "-m", default="smollm2-135m", help="registry name, local HF directory or hub id")
    p.add_argument("--out", type=Path, default=Path("runs/causal"), help="output folder (default: runs/causal)")
    p.add_argument("--stimuli", type=Path, default=None, help="stimulus JSONL/CSV (default: the shipped v2 set)")
    p.add_argument("--frames", type=int, default=None, help="use only the first N frames (default: all 64)")
    p.add_argument("--norms", type=Path, default=None, help="human ratings CSV (default: the design norm, EI = 0)")
    p.add_argument("--selection-frames", type=int, default=16, help="frames the direction is selected on")
    p.add_argument("--n-null", type=int, default=99, help="draws per null (>= 99: p can reach 0.01)")
    p.add_argument("--null-frames", type=int, default=4, help="held-out frames of the null control subset")
    p.add_argument("--threshold", type=float, default=0.5, help="positive control: upper end of moral effect kept")
    p.add_argument("--readout", default="auto", choices=["auto", "cloze", "likert"], help="judgement readout")
    p.add_argument("--n-boot", type=int, default=1000, help="frame-bootstrap resamples for the CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64, help="prompts per forward pass")
    p.add_argument("--cache-dir", type=Path, default=Path(".entangle_cache"), help="activation cache folder")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--dtype", default="float32", help="float32 (default) or bfloat16")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    from entangle.studies.entanglement.pipeline import RunConfig, run  # noqa: PLC0415
    from entangle.studies.entanglement.summary import summary_lines  # noqa: PLC0415

    cfg = RunConfig(model=args.model, out=str(args.out), stimuli=str(args.stimuli) if args.stimuli else None,
                    frames=args.frames, norms=str(args.norms) if args.norms else None, readout=args.readout,
                    selection_frames=args.selection_frames, n_null=args.n_null, null_frames=args.null_frames,
                    kept_threshold=args.threshold, n_boot=args.n_boot, seed=args.seed, batch_size=args.batch_size,
                    cache_dir=str(args.cache_dir), device=args.device, dtype=args.dtype, progress=sys.stderr.isatty())
    folder = run(cfg)
    for line in summary_lines(folder):
        print(line)
    print(f"run folder: {folder}  (report: {folder / 'report.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
