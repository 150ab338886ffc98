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

from run_args import add_run_args, run_config_fields

from entangle.models import quiet_libraries


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python probes/ablate_moral.py --frames 16 --out runs/causal")
    add_run_args(p, out="runs/causal", batch_size=64)
    p.add_argument("--norms", type=Path, default=None, help="human ratings CSV (default: the design norm, EI = 0)")
    p.add_argument("--selection-frames", type=int, default=None,
                   help="frames the direction is selected on (default: a quarter of the frames, at most 16)")
    p.add_argument("--n-null", type=int, default=99, help="draws per null (>= 99: p can reach 0.01)")
    p.add_argument("--null-frames", type=int, default=4, help="held-out frames of the null control subset")
    p.add_argument("--threshold", type=float, default=0.5, help="positive control: upper end of moral effect kept")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    from entangle.studies.entanglement.pipeline import RunConfig, run  # noqa: PLC0415
    from entangle.studies.entanglement.summary import summary_lines  # noqa: PLC0415

    cfg = RunConfig(**run_config_fields(args), norms=str(args.norms) if args.norms else None,
                    selection_frames=args.selection_frames, n_null=args.n_null, null_frames=args.null_frames,
                    kept_threshold=args.threshold)
    folder = run(cfg)
    for line in summary_lines(folder):
        print(line)
    print(f"run folder: {folder}  (report: {folder / 'report.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
