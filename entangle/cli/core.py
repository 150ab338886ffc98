"""Core commands: models, capture, probe, export, score, run, report, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from entangle.cli.app import (
    CacheOpt,
    DeviceOpt,
    DtypeOpt,
    FramesOpt,
    ModelOpt,
    StimuliOpt,
    _fail,
    app,
    console,
)
from entangle.models import quiet_libraries


@app.command()
def models() -> None:
    """List the model registry and what is installed."""
    from entangle.models import DEFAULT_MODEL, REGISTRY, installed  # noqa: PLC0415

    have = installed()
    table = Table("name", "installed", "chat", "licence", "description", "install")
    for name, e in REGISTRY.items():
        table.add_row(name + (" (default)" if name == DEFAULT_MODEL else ""), "yes" if have[name] else "no",
                      "yes" if e.chat else "no", e.licence, e.description, escape(e.install))
    console.print(table)
    console.print("Any Hugging Face model id or local model directory also works with --model.")


@app.command()
def capture(
    model: ModelOpt = "smollm2-135m",
    stimuli: StimuliOpt = None,
    frames: FramesOpt = None,
    readout: Annotated[str, typer.Option(help="auto | cloze | likert")] = "auto",
    cache_dir: CacheOpt = Path(".entangle_cache"),
    batch_size: Annotated[int, typer.Option(help="prompts per forward pass")] = 32,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
) -> None:
    """Stimuli -> judgement prompts -> residual-stream activations and readouts in the disk cache."""
    quiet_libraries()
    from entangle.engine.capture import capture as run_capture  # noqa: PLC0415
    from entangle.engine.capture import choose_style  # noqa: PLC0415
    from entangle.models import load_model  # noqa: PLC0415
    from entangle.stimuli import load_stimuli  # noqa: PLC0415

    try:
        stim = load_stimuli(stimuli)
        stim = stim.subset(frames) if frames else stim
        lm = load_model(model, device=device, dtype=dtype)
    except (ValueError, RuntimeError) as exc:
        _fail(exc)
    style, evidence = choose_style(lm, stim, batch_size=batch_size) if readout == "auto" else (readout, {"reason": "set by --readout"})
    console.print(f"readout: [bold]{style}[/bold] ({evidence['reason']})")
    acts = run_capture(lm, stim, style=style, cache_dir=cache_dir, batch_size=batch_size)
    m = acts.manifest
    console.print(f"cache: {acts.path}\nprompts: {m['n_prompts']}  tokens: {m['tokens']}  "
                  f"layers: {len(m['layers'])}  d_model: {m['model']['d_model']}  capture: {m['capture_seconds']} s")
    for name, c in m["self_checks"].items():
        console.print(f"self-check {name}: max relative error {c['max_rel_error']:.2e} -> "
                      f"{'passed' if c['passed'] else '[red]FAILED[/red]'}")
    table = acts.readout_table()
    summary = table.groupby(["readout", "kind", "moral"]).value.mean().unstack("moral")
    console.print("mean readout by moral level (-1 bad, 0 neutral, +1 good):")
    console.print(summary.round(3).to_string())


def _config(**kw: object):
    from entangle.studies.entanglement.pipeline import RunConfig  # noqa: PLC0415

    return RunConfig(**{k: (str(v) if isinstance(v, Path) else v) for k, v in kw.items()})


@app.command()
def probe(
    model: ModelOpt = "smollm2-135m",
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/probe"),
    stimuli: StimuliOpt = None,
    frames: FramesOpt = None,
    position: Annotated[str, typer.Option(help="last | judged_mean")] = "last",
    readout: Annotated[str, typer.Option(help="auto | cloze | likert")] = "auto",
    cache_dir: CacheOpt = Path(".entangle_cache"),
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
) -> None:
    """Cache -> per-layer probes for each kind -> directions/ + probes.csv, cosine.csv, cross_decoding.csv, leakage.csv."""
    quiet_libraries()
    from entangle.studies.entanglement.pipeline import Experiment  # noqa: PLC0415

    ex = Experiment(_config(model=model, out=out, stimuli=stimuli, frames=frames, position=position,
                            readout=readout, cache_dir=cache_dir, device=device, dtype=dtype))
    ex.run_capture()
    ex.run_probes()
    for kind, p in ex.metrics["probe"].items():
        console.print(f"{kind:12s} best layer {p['best_layer']:2d}  CV accuracy {p['cv_accuracy']:.3f} "
                      f"[{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]  AUC {p['auc']:.3f}")
    console.print(f"directions and tables in {out}")


@app.command()
def export(
    direction: Annotated[Path, typer.Argument(help="a direction file (.safetensors/.npz/.pt/.gguf)")],
    out: Annotated[Path, typer.Option(help="output file; the suffix picks the format")],
    layers: Annotated[str | None, typer.Option(help="comma-separated layers to keep (default: all)")] = None,
) -> None:
    """Convert a direction to another format (safetensors+JSON, npz, pt, llama.cpp control-vector GGUF)."""
    import numpy as np  # noqa: PLC0415

    from entangle.directions import (  # noqa: PLC0415
        Direction,
        DirectionError,
        load_direction,
        save_direction,
    )

    try:
        d = load_direction(direction)
        if layers:
            keep = [int(x) for x in layers.split(",")]
            d = Direction(np.stack([d.at(layer) for layer in keep]), keep, d.kind, d.method,
                          {k: v for k, v in d.meta.items() if k not in ("layers", "hook_points", "norm", "cv_metrics")})
        written = save_direction(d, out)
    except (DirectionError, KeyError, ValueError) as exc:
        _fail(exc)
    console.print("wrote " + ", ".join(str(p) for p in written))


@app.command()
def score(
    direction: Annotated[Path, typer.Option(help="a direction file with its metadata")],
    texts: Annotated[Path, typer.Option(help="CSV with a text column, or a file with one text per line")],
    out: Annotated[Path, typer.Option(help="output CSV")],
    column: Annotated[str | None, typer.Option(help="CSV column holding the texts (default: text)")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="default: the model recorded in the direction")] = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Project texts onto a direction (per layer) and read out every kind's judgement, as the stimuli were."""
    quiet_libraries()
    from entangle.directions import DirectionError, load_direction  # noqa: PLC0415
    from entangle.files import atomic_write  # noqa: PLC0415
    from entangle.models import load_model  # noqa: PLC0415
    from entangle.score import TextsError, read_texts, score_texts  # noqa: PLC0415

    try:
        d = load_direction(direction)
        items = read_texts(texts, column)
        lm = load_model(model or d.meta["model"], device=device)
        df = score_texts(lm, d, items)
    except (DirectionError, TextsError, ValueError, RuntimeError) as exc:
        _fail(exc)
    atomic_write(out, lambda p: df.to_csv(p, index=False))
    console.print(f"scored {len(df)} texts -> {out}")


@app.command()
def run(
    model: ModelOpt = "smollm2-135m",
    out: Annotated[Path | None, typer.Option(help="results folder (default: runs/<model>)")] = None,
    stimuli: StimuliOpt = None,
    frames: FramesOpt = None,
    norms: Annotated[Path | None, typer.Option(help="human ratings CSV (default: the design norm)")] = None,
    readout: Annotated[str, typer.Option(help="auto | cloze | likert")] = "auto",
    position: Annotated[str, typer.Option(help="last | judged_mean")] = "last",
    n_random: Annotated[int, typer.Option(help="random-direction controls (>= 20 for a p-value)")] = 20,
    control_frames: Annotated[int, typer.Option(help="frames used for the random controls")] = 24,
    primary_rule: Annotated[str, typer.Option(help="layer rule of the headline ablation: best | band | all")] = "all",
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples over frames")] = 1000,
    seed: int = 0,
    batch_size: int = 32,
    cache_dir: CacheOpt = Path(".entangle_cache"),
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    device_map: Annotated[str | None, typer.Option(help="e.g. auto: spread a large model over GPUs")] = None,
) -> None:
    """The whole experiment: capture -> probes -> entanglement vs norms -> ablation with controls -> report."""
    quiet_libraries()
    from entangle.studies.entanglement.pipeline import run as run_pipeline  # noqa: PLC0415

    out = out or Path("runs") / Path(model).name
    cfg = _config(model=model, out=out, stimuli=stimuli, frames=frames, norms=norms, readout=readout,
                  position=position, n_random=n_random, control_frames=control_frames, primary_rule=primary_rule,
                  n_boot=n_boot, seed=seed, batch_size=batch_size, cache_dir=cache_dir, device=device, dtype=dtype,
                  device_map=device_map)
    try:
        folder = run_pipeline(cfg)
    except (ValueError, RuntimeError) as exc:
        _fail(exc)
    from entangle.studies.entanglement.pipeline import summary_lines  # noqa: PLC0415

    for line in summary_lines(folder):
        console.print(line)
    console.print(f"report: {folder / 'report.html'}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a folder written by `entangle run`")]) -> None:
    """Rebuild report.html from a run folder (no model needed)."""
    from entangle.report import build_report  # noqa: PLC0415

    console.print(f"wrote {build_report(run_dir)}")


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="first run folder")],
    run_b: Annotated[Path, typer.Argument(help="second run folder")],
    out: Annotated[Path, typer.Option(help="output HTML")] = Path("compare.html"),
) -> None:
    """Set two runs side by side (e.g. SmolLM2 vs Gemma-3) in one HTML page."""
    from entangle.report import compare_runs  # noqa: PLC0415

    console.print(f"wrote {compare_runs(run_a, run_b, out)}")
