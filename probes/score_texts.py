#!/usr/bin/env python
"""Score a file of texts with an exported direction: projection per layer and every kind's judgement readout.

The prompt templates, read position and BOS policy come from the direction's metadata, so a text is scored as
the stimuli were when the direction was fitted (`entangle.score.score_texts`). The model defaults to the one
recorded in the direction. Texts: a CSV with a `text` column (or --column), or a plain file, one text per line.

    python probes/score_texts.py --direction runs/probe/directions/moral_logistic.safetensors \\
        --texts data/neutral/neutral_texts.txt --out scores.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from entangle.models import quiet_libraries


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--direction", "-d", type=Path, required=True,
                   help="a direction file with its metadata (.safetensors + sidecar, .npz, .pt or .gguf)")
    p.add_argument("--texts", "-t", type=Path, required=True, help="CSV with a text column, or one text per line")
    p.add_argument("--column", default=None, help="CSV column holding the texts (default: text)")
    p.add_argument("--out", "-o", type=Path, default=None, help="output CSV (default: only print)")
    p.add_argument("--layer", type=int, default=None,
                   help="layer whose projection is printed (default: the direction's best probe layer)")
    p.add_argument("--model", "-m", default=None, help="default: the model recorded in the direction")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per forward pass")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    import pandas as pd  # noqa: PLC0415

    from entangle.directions import DirectionError, load_direction  # noqa: PLC0415
    from entangle.files import atomic_write  # noqa: PLC0415
    from entangle.models import load_model  # noqa: PLC0415
    from entangle.score import TextsError, read_texts, score_texts  # noqa: PLC0415

    try:
        d = load_direction(args.direction)
        texts = read_texts(args.texts, args.column)
        lm = load_model(args.model or d.meta["model"], device=args.device)
        df = score_texts(lm, d, texts, batch_size=args.batch_size, readouts=True)
    except (DirectionError, TextsError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        atomic_write(args.out, lambda p: df.to_csv(p, index=False))
    layer = args.layer if args.layer is not None else (d.meta.get("best_layer") or d.layers[len(d.layers) // 2])
    if f"projection_L{layer}" not in df:
        print(f"error: layer {layer} not in the direction (layers {d.layers[0]}..{d.layers[-1]})", file=sys.stderr)
        return 2
    readouts = [c for c in df.columns if c.split("_", 1)[-1] in ("moral", "grammatical", "economic")
                and not c.startswith("projection")]
    show = df[["text", f"projection_L{layer}", *readouts]].copy()
    show["text"] = show["text"].str.slice(0, 60)
    with pd.option_context("display.width", 160, "display.max_colwidth", 60, "display.max_rows", 50):
        print(f"{d.kind} direction ({d.method}) of {d.meta.get('model')}; projection at layer {layer} "
              f"(positive = the good side for {d.kind} judgements); readouts: log-odds of the positive answer")
        print(show.round(3).to_string(index=False))
    if args.out:
        print(f"scored {len(df)} texts -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
