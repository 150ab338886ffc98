#!/usr/bin/env python
"""Capture + per-layer probes for one model: the "good" direction of each kind, with tables.

A thin composition of `entangle.pipeline.Experiment` (the same stages as `entangle probe`): choose the readout,
capture (or read the activation cache), fit a probe per kind and layer with frame-grouped CV, and write

    <out>/directions/<kind>_<method>.safetensors (+ .json sidecar)   one unit direction per residual layer
    <out>/probes.csv, cosine.csv, cross_decoding.csv, leakage.csv, readouts.csv
    <out>/metrics.json, config.json                                  partial run folder (probes only)

then print each kind's best layer and its cross-validated accuracy.

    python probes/probe_directions.py --model smollm2-135m --frames 8 --out runs/probe-smollm2
"""

from __future__ import annotations

import argparse
import sys

from run_args import add_run_args, run_config_fields

from entangle.models import quiet_libraries


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python probes/probe_directions.py --frames 8 --out runs/probe-smollm2")
    add_run_args(p, out="runs/probe", batch_size=32)
    p.add_argument("--position", default="last", choices=["last", "judged_mean"],
                   help="where probes read the residual stream")
    p.add_argument("--method", default="logistic", choices=["logistic", "diff_means"],
                   help="probe method reported as primary (both are always exported)")
    p.add_argument("--n-splits", type=int, default=5, help="frame-grouped CV folds")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    from entangle.runfolder import RunFolder  # noqa: PLC0415
    from entangle.studies.entanglement.pipeline import Experiment, RunConfig  # noqa: PLC0415

    cfg = RunConfig(**run_config_fields(args), position=args.position, n_splits=args.n_splits,
                    probe_methods=(args.method, *(m for m in ("logistic", "diff_means") if m != args.method)))
    ex = Experiment(cfg)
    ex.run_capture()
    ex.run_probes()
    folder = RunFolder(args.out)
    folder.write_config(ex.config_record())
    folder.write_metrics(ex.metrics)
    print(f"model {ex.model.info.name}: {len(ex.stimuli)} items in {len(ex.stimuli.frames())} frames, "
          f"readout {ex.metrics['readout']['style']}, probes read at '{cfg.position}' ({cfg.probe_methods[0]})")
    for kind, p in ex.metrics["probe"].items():
        print(f"{kind:12s} best layer {p['best_layer']:2d}  CV accuracy {p['cv_accuracy']:.3f} "
              f"[{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]  AUC {p['auc']:.3f}")
    print(f"directions: {args.out / 'directions'}  tables: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
