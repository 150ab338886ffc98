#!/usr/bin/env python
"""Ablate the moral "good" direction and ask whether the model's other judgements stop leaning on morality.

Runs the `entangle.pipeline.Experiment` stages capture -> probes -> behavioural EI -> ablation (moral direction
under each layer rule, the other kinds' directions, LEACE, and random-direction controls), writes the run folder
(metrics.json, ablation.csv, ablation_random.csv, selectivity.csv, ...; `entangle report <out>` renders it) and
prints, per ablation, the repair fraction (EI_before - EI_after) / (EI_before - EI_human) with its 95% frame-
bootstrap CI, and the random-direction p-value of the headline ablation.

    python probes/ablate_moral.py --frames 12 --n-random 20 --rule all --out runs/ablate-smollm2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from entangle.models import quiet_libraries

RULES = ("best", "band", "all")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python probes/ablate_moral.py --frames 12 --n-random 20 --rule all")
    p.add_argument("--model", "-m", default="smollm2-135m", help="registry name, local HF directory or hub id")
    p.add_argument("--out", type=Path, default=Path("runs/ablate"), help="output folder (default: runs/ablate)")
    p.add_argument("--stimuli", type=Path, default=None, help="stimulus JSONL/CSV (default: the shipped set)")
    p.add_argument("--frames", type=int, default=None, help="use only the first N frames (default: all 48)")
    p.add_argument("--norms", type=Path, default=None, help="human ratings CSV (default: the design norm, EI = 0)")
    p.add_argument("--rule", default="all", choices=RULES,
                   help="layer rule of the headline ablation: the best probe layer, a band around it, or all layers")
    p.add_argument("--band", type=int, default=2, help="half-width of the band rule (layers)")
    p.add_argument("--no-sweep", action="store_true", help="run only --rule for the moral direction, not all rules")
    p.add_argument("--no-leace", action="store_true", help="skip the LEACE eraser")
    p.add_argument("--n-random", type=int, default=20, help="random-direction controls (>= 20 for a usable p-value)")
    p.add_argument("--control-frames", type=int, default=24, help="frames used for the random controls")
    p.add_argument("--readout", default="auto", choices=["auto", "cloze", "likert"], help="judgement readout")
    p.add_argument("--n-boot", type=int, default=1000, help="frame-bootstrap resamples for the CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32, help="prompts per forward pass")
    p.add_argument("--cache-dir", type=Path, default=Path(".entangle_cache"), help="activation cache folder")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--dtype", default="float32", help="float32 (default) or bfloat16")
    return p.parse_args(argv)


def _ci(lo: float | None, hi: float | None) -> str:
    return "[n/a]" if lo is None or hi is None else f"[{lo:+.3f}, {hi:+.3f}]"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    from entangle.runfolder import RunFolder  # noqa: PLC0415
    from entangle.studies.entanglement.pipeline import Experiment, RunConfig  # noqa: PLC0415

    cfg = RunConfig(model=args.model, out=str(args.out), stimuli=str(args.stimuli) if args.stimuli else None,
                    frames=args.frames, norms=str(args.norms) if args.norms else None, readout=args.readout,
                    layer_rules=(args.rule,) if args.no_sweep else RULES, primary_rule=args.rule, band=args.band,
                    n_random=args.n_random, control_frames=args.control_frames, leace=not args.no_leace,
                    n_boot=args.n_boot, seed=args.seed, batch_size=args.batch_size, cache_dir=str(args.cache_dir),
                    device=args.device, dtype=args.dtype, progress=sys.stderr.isatty())
    ex = Experiment(cfg)
    folder = RunFolder(args.out)
    folder.write_config(ex.config_record())
    for stage in (ex.run_capture, ex.run_probes, ex.run_behavioural, ex.run_ablation):
        stage()
    folder.write_metrics(ex.metrics)
    metrics = folder.metrics()  # as written: strict JSON, NaN as None

    style = metrics["readout"]["style"]
    print(f"model {ex.model.info.name}: {len(ex.stimuli.frames())} frames, readout {style}, "
          f"human norm: {metrics['entanglement']['human_norm']['source']}")
    print(f"moral probe: best layer {metrics['probe']['moral']['best_layer']}, "
          f"CV accuracy {metrics['probe']['moral']['cv_accuracy']:.3f}")
    for cell in ("moral_to_grammatical", "moral_to_economic"):
        c = metrics["entanglement"]["behavioural"][style][cell]
        print(f"EI({cell.replace('_to_', ' -> ')}) = {c['ei']:+.3f} {_ci(c['ci_low'], c['ci_high'])}")
    abl = metrics["ablation"]
    primary = abl["primary"]
    print("\nrepair fraction (1 = back to the norm, 0 = unchanged), mean over the two moral cells, 95% CI:")
    for name, a in abl.items():
        if not isinstance(a, dict) or "repair_fraction" not in a or name == "random":
            continue
        rf = a["repair_fraction"]
        mark = "  <- headline" if name == primary else ""
        lay = a['layers']
        where = str(lay[0]) if len(lay) == 1 else f"{lay[0]}-{lay[-1]}"
        print(f"  {name:18s} layers {where:6s} repair "
              f"{'n/a' if rf is None else f'{rf:+.3f}'} {_ci(a['ci_low'], a['ci_high'])}  "
              f"loss delta {a['loss_delta']:+.4f} nats{mark}")
    for name, why in abl.get("skipped", {}).items():
        print(f"  {name:18s} skipped: {why}")
    r = abl["random"]
    p = abl[primary]["random_p_value"]
    print(f"\nrandom directions ({r['n']} on {r['control_frames']} frames, rule {r['rule']}): repair "
          f"{r['repair_fraction_mean']:+.3f} ± {r['repair_fraction_sd']:.3f} (mean ± SD)")
    print(f"random-direction p-value of {primary}: {'n/a' if p is None else f'{p:.3f}'}"
          + ("  (fewer than 20 random directions: p cannot go below 0.05)" if r["n"] < 20 else ""))
    print(f"run folder: {args.out}  (render with: entangle report {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
