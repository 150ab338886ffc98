"""`entangle tradeoff`: interference between value directions, decorrelation, and the multi-value steering frontier
(the trade-offs study) into a run folder + report."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from entangle import validate
from entangle.cli.app import CacheOpt, DeviceOpt, ModelOpt, app, quiet_hf, say


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _floats(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in _names(text))
    except ValueError:
        raise validate.OptionError(option, f"expected comma-separated numbers, got {text!r}") from None


@app.command()
def tradeoff(
    model: ModelOpt = "smollm2-135m",
    out: Annotated[Path, typer.Option(help="run folder (created; an existing run folder gains this study)")] = Path(
        "runs/tradeoff"),
    values: Annotated[str | None, typer.Option(help="comma-separated values (default: economic,care,moral)")] = None,
    frontier: Annotated[str | None, typer.Option(help="values spanning the steering grid (default: the first two)")
                        ] = None,
    layer: Annotated[int | None, typer.Option(help="steering layer (default 10)")] = None,
    alpha: Annotated[float | None, typer.Option(help="push of one unit of ω, in units of σ_l (default 0.25)")] = None,
    extrapolate: Annotated[str | None, typer.Option(help="extrapolation bounds C, e.g. 1.5,2")] = None,
    methods: Annotated[str | None, typer.Option(help="decorrelation methods: none,gram_schmidt,leace,hsic")] = None,
    fine: Annotated[bool, typer.Option(help="the finer grid (step 0.25, extrapolation for every method, 24 held-out "
                                            "pairs, every layer): several times slower")] = False,
    heldout: Annotated[int | None, typer.Option(help="held-out pairs per value for the readouts")] = None,
    fluency_budget: Annotated[float | None, typer.Option(help="loss increase (nats/token) where the hypervolume's "
                                                              "fluency axis ends")] = None,
    moral_direction: Annotated[Path | None, typer.Option(
        help="direction file ablated for the ω_moral = 0 point (default: this study's moral DoM direction)")] = None,
    n_boot: Annotated[int | None, typer.Option(help="resamples over held-out pairs and neutral texts")] = None,
    seed: int = 0,
    batch_size: int = 32,
    cache_dir: CacheOpt = Path(".entangle_cache"),
    device: DeviceOpt = "cpu",
) -> None:
    """Value subspaces and their interference per layer (cosines, principal angles, CKA, HSIC), decorrelated
    directions (Gram–Schmidt, LEACE, HSIC-penalised probes), multi-value steering over convex, box and extrapolated
    grids, Pareto sets and hypervolume against the unsteered model (MVA's claims in activation space)."""
    from entangle.studies.tradeoffs.config import Config, load_neutral, load_value_texts

    cfg = Config.fine() if fine else Config()
    over: dict = {}
    if values is not None:
        over["values"] = _names(values)
    if frontier is not None:
        over["frontier"] = _names(frontier)
    if methods is not None:
        over["methods"] = _names(methods)
    if extrapolate is not None:
        over["extrapolate"] = _floats("--extrapolate", extrapolate)
    for key, val in (("layer", layer), ("alpha", alpha), ("n_heldout", heldout), ("fluency_budget", fluency_budget),
                     ("n_boot", n_boot)):
        if val is not None:
            over[key] = val
    if moral_direction is not None:
        validate.input_file(moral_direction, "moral direction file")
        over["moral_direction"] = str(moral_direction)
    cfg = replace(cfg, **over).check()
    for v in cfg.values:  # every input file is checked before a model loads
        load_value_texts(v, cfg.n_train, cfg.n_heldout, cfg.values_dir)
    load_neutral(cfg.n_neutral, cfg.neutral_path)
    validate.at_least("--batch-size", batch_size, 1)
    validate.writable_folder(out)
    validate.device(device)
    quiet_hf()
    _run(cfg, model, out, seed, batch_size, cache_dir, device)


def _run(cfg, model: str, out: Path, seed: int, batch_size: int, cache_dir: Path, device: str) -> None:
    from entangle.models import load_model
    from entangle.report import build_report
    from entangle.runfolder import RunFolder
    from entangle.studies.base import StudyContext
    from entangle.studies.tradeoffs import run

    t0 = time.perf_counter()
    lm = load_model(model, device=device)
    if not 0 <= cfg.layer <= lm.info.n_layers:
        raise validate.OptionError("--layer", f"must be in 0..{lm.info.n_layers} for {lm.info.name}")
    folder = RunFolder(out)
    folder.path.mkdir(parents=True, exist_ok=True)
    if not folder.has("config.json"):
        folder.write_config({"model": model, "model_info": lm.info.to_dict(), "study": "tradeoffs"})
    ctx = StudyContext(lm, folder, cache_dir, seed=seed, batch_size=batch_size, n_boot=cfg.n_boot)
    result = run(ctx, cfg)
    result.save(folder)
    build_report(out)
    m = result.metrics["tradeoffs"]
    for v, c in m["positive_control"].items():
        say(f"positive control {v:12s} Δreadout {c['delta']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] "
            f"{'passes' if c['passes'] else 'FAILS'}")
    for r in m["hypervolume"]:
        say(f"hypervolume {r['method']:12s} {r['grid']:8s} {r['hv']:.4g} [{r['ci_low']:.4g}, {r['ci_high']:.4g}]")
    say(f"study {m['seconds']:.0f} s, total {time.perf_counter() - t0:.0f} s; report: {out / 'report.html'}")
