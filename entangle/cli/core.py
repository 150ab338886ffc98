"""Core commands: models, capture, probe, export, score, run, report, compare.

Each command checks every path, option value and input file (`entangle.validate`) before it loads a model, writes
run folders through `entangle.staging` and files through `entangle.files`; errors reach the user through the one
handler in `entangle.cli.app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from entangle import validate
from entangle.cli.app import (
    CacheOpt,
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    FramesOpt,
    ModelOpt,
    OverwriteOpt,
    StimuliOpt,
    app,
    console,
    quiet_hf,
    say,
)
from entangle.staging import check_target, staged


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
    stim = validate.stimuli(stimuli, frames)
    validate.readout(readout)
    validate.at_least("--batch-size", batch_size, 1)
    validate.writable_folder(cache_dir)
    validate.device(device)
    validate.dtype(dtype)
    quiet_hf()
    from entangle.engine.capture import capture as run_capture  # noqa: PLC0415
    from entangle.engine.capture import choose_style  # noqa: PLC0415
    from entangle.models import load_model  # noqa: PLC0415

    lm = load_model(model, device=device, dtype=dtype)
    style, evidence = choose_style(lm, stim, batch_size=batch_size) if readout == "auto" else (readout, {"reason": "set by --readout"})
    say(f"readout: {style} ({evidence['reason']})")
    acts = run_capture(lm, stim, style=style, cache_dir=cache_dir, batch_size=batch_size)
    m = acts.manifest
    say(f"cache: {acts.path}")
    say(f"prompts: {m['n_prompts']}  tokens: {m['tokens']}  "
        f"layers: {len(m['layers'])}  d_model: {m['model']['d_model']}  capture: {m['capture_seconds']} s")
    for name, c in m["self_checks"].items():
        say(f"self-check {name}: max relative error {c['max_rel_error']:.2e} -> "
            f"{'passed' if c['passed'] else 'FAILED'}")
    table = acts.readout_table()
    summary = table.groupby(["readout", "kind", "moral"]).value.mean().unstack("moral")
    say("mean readout by moral level (-1 bad, 0 neutral, +1 good):")
    say(summary.round(3).to_string())


def _config(**kw: object):
    from entangle.studies.entanglement.pipeline import RunConfig  # noqa: PLC0415

    return RunConfig(**{k: (str(v) if isinstance(v, Path) else v) for k, v in kw.items()})


def _check_run_inputs(*, out: Path, overwrite: bool, stimuli: Path | None, frames: int | None, readout: str,
                      position: str, cache_dir: Path, device: str, dtype: str):
    """The checks `probe` and `run` share; returns the stimulus set they will use."""
    check_target(out, overwrite=overwrite)
    validate.writable_folder(out)
    stim = validate.stimuli(stimuli, frames, min_frames=2)
    validate.readout(readout)
    validate.position(position)
    validate.writable_folder(cache_dir)
    validate.device(device)
    validate.dtype(dtype)
    return stim


def _record_final_out(folder: Path, out: Path) -> None:
    """config.json names the folder the run ends up in, not its staging folder."""
    from entangle.runfolder import RunFolder  # noqa: PLC0415

    rf = RunFolder(folder)
    rf.write_config({**rf.config(), "out": str(out)})


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
    overwrite: OverwriteOpt = False,
) -> None:
    """Cache -> per-layer probes for each kind -> directions/ + probes.csv, cosine.csv, cross_decoding.csv, leakage.csv."""
    _check_run_inputs(out=out, overwrite=overwrite, stimuli=stimuli, frames=frames, readout=readout,
                      position=position, cache_dir=cache_dir, device=device, dtype=dtype)
    quiet_hf()
    from entangle.studies.entanglement.pipeline import Experiment  # noqa: PLC0415

    with staged(out, overwrite=overwrite) as staging:
        ex = Experiment(_config(model=model, out=staging, stimuli=stimuli, frames=frames, position=position,
                                readout=readout, cache_dir=cache_dir, device=device, dtype=dtype))
        ex.run_capture()
        ex.run_probes()
    for kind, p in ex.metrics["probe"].items():
        say(f"{kind:12s} best layer {p['best_layer']:2d}  CV accuracy {p['cv_accuracy']:.3f} "
            f"[{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]  AUC {p['auc']:.3f}")
    say(f"directions and tables in {out}")


def _export_targets(out: Path, source: Path, force: bool) -> None:
    """Refuse an export that would overwrite its input, an existing file (without --force), or a file it did not
    write: the .json sidecar of a .safetensors output must be absent or a direction sidecar."""
    from entangle.directions import sidecar_path  # noqa: PLC0415
    from entangle.directions.direction import FORMATS  # noqa: PLC0415
    from entangle.files import InputError, read_json  # noqa: PLC0415

    validate.output_file(out, force=force, inputs=[source])
    if out.suffix.lower().lstrip(".") not in FORMATS:
        raise validate.OptionError("--out", f"the suffix picks the format: use {', '.join('.' + f for f in FORMATS)}"
                                            f" (got {out.suffix or 'none'!r})")
    if out.suffix.lower() != ".safetensors":
        return
    side = sidecar_path(out)
    inputs = [source, sidecar_path(source)] if source.suffix.lower() == ".safetensors" else [source]
    validate.output_file(side, force=True, inputs=inputs)
    if not side.exists():
        return
    if not out.exists():
        raise InputError(side, None, None, f"exists without {out.name}: exporting {out.name} would write its "
                                           f"sidecar over a file entangle did not create; choose another --out")
    try:
        meta = read_json(side)
    except InputError:
        meta = {}
    if not {"kind", "method", "layers"} <= set(meta):
        raise InputError(side, None, None, f"is not a direction sidecar; exporting {out.name} would overwrite it; "
                                           f"choose another --out")


@app.command()
def export(
    direction: Annotated[Path, typer.Argument(help="a direction file (.safetensors/.npz/.pt/.gguf)")],
    out: Annotated[Path, typer.Option(help="output file; the suffix picks the format")],
    layers: Annotated[str | None, typer.Option(help="comma-separated layers to keep (default: all)")] = None,
    force: ForceOpt = False,
) -> None:
    """Convert a direction to another format (safetensors+JSON, npz, pt, llama.cpp control-vector GGUF)."""
    import numpy as np  # noqa: PLC0415

    from entangle.directions import Direction, load_direction, save_direction  # noqa: PLC0415

    _export_targets(out, direction, force)
    d = load_direction(direction)
    if layers:
        keep = validate.layers("--layers", layers, d.layers)
        d = Direction(np.stack([d.at(layer) for layer in keep]), keep, d.kind, d.method,
                      {k: v for k, v in d.meta.items() if k not in ("layers", "hook_points", "norm", "cv_metrics")})
    written = save_direction(d, out)
    say("wrote " + ", ".join(str(p) for p in written))


@app.command()
def score(
    direction: Annotated[Path, typer.Option(help="a direction file with its metadata")],
    texts: Annotated[Path, typer.Option(help="CSV with a text column, or a file with one text per line")],
    out: Annotated[Path, typer.Option(help="output CSV")],
    column: Annotated[str | None, typer.Option(help="CSV column holding the texts (default: text)")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="default: the model recorded in the direction")] = None,
    device: DeviceOpt = "cpu",
    force: ForceOpt = False,
    readouts: Annotated[bool, typer.Option(help="also read every kind's judgement (runs all nine templates)")] = False,
) -> None:
    """Project texts onto a direction (per layer), as the stimuli were; --readouts adds every kind's judgement."""
    from entangle.directions import load_direction, sidecar_path  # noqa: PLC0415
    from entangle.files import InputError, atomic_write  # noqa: PLC0415

    validate.output_file(out, force=force, inputs=[texts, direction, sidecar_path(direction)])
    d = load_direction(direction)
    items = validate.texts(texts, column)
    validate.device(device)
    model = model or d.meta.get("model")
    if not model:
        raise InputError(direction, None, "model", "the direction does not record its model; pass --model")
    quiet_hf()
    from entangle.models import load_model  # noqa: PLC0415
    from entangle.score import score_texts  # noqa: PLC0415

    df = score_texts(load_model(model, device=device), d, items, readouts=readouts)
    atomic_write(out, lambda p: df.to_csv(p, index=False))
    say(f"scored {len(df)} texts -> {out}")


@app.command()
def run(
    model: ModelOpt = "smollm2-135m",
    out: Annotated[Path | None, typer.Option(help="results folder (default: runs/<model>)")] = None,
    stimuli: StimuliOpt = None,
    frames: FramesOpt = None,
    norms: Annotated[Path | None, typer.Option(help="human ratings CSV (default: the design norm)")] = None,
    readout: Annotated[str, typer.Option(help="auto | cloze | likert")] = "auto",
    position: Annotated[str, typer.Option(help="last | judged_mean")] = "last",
    n_null: Annotated[int, typer.Option(help="draws per null control (99: p can reach 0.01)")] = 99,
    control_frames: Annotated[int, typer.Option(help="held-out frames for the control directions and steering")] = 8,
    selection_frames: Annotated[int | None, typer.Option(
        help="frames the causal direction is selected on (default: a quarter of the frames, at most 16)")] = None,
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples over frames")] = 1000,
    seed: int = 0,
    batch_size: Annotated[int, typer.Option(help="prompts per forward pass")] = 64,
    cache_dir: CacheOpt = Path(".entangle_cache"),
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    device_map: Annotated[str | None, typer.Option(help="e.g. auto: spread a large model over GPUs")] = None,
    overwrite: OverwriteOpt = False,
    studies: Annotated[str, typer.Option(help="comma-separated studies to run into the folder: entanglement "
                                              "(always first), valueflow, svo, tradeoffs; `all` for every one")]
    = "entanglement",
) -> None:
    """The main job: the entanglement study (capture -> probes -> entanglement vs norms -> the causal test), then
    any other --studies on the same model, into one folder with one report.

    The run is written into a staging folder beside --out and moved into place only when complete; an existing
    --out holding results is refused unless --overwrite (then replaced only after the new run has finished).
    """
    out = out or Path("runs") / Path(model).name
    stim = _check_run_inputs(out=out, overwrite=overwrite, stimuli=stimuli, frames=frames, readout=readout,
                             position=position, cache_dir=cache_dir, device=device, dtype=dtype)
    if norms is not None:
        validate.ratings(norms, stim)
    validate.at_least("--n-null", n_null, 1)
    validate.at_least("--control-frames", control_frames, 1)
    if selection_frames is not None:
        validate.at_least("--selection-frames", selection_frames, 2)
    validate.at_least("--n-boot", n_boot, 1)
    validate.at_least("--batch-size", batch_size, 1)
    validate.device_map(device_map)
    chosen = validate.studies(studies)
    from entangle.studies.entanglement.pipeline import run as run_pipeline  # noqa: PLC0415
    from entangle.studies.entanglement.summary import summary_lines  # noqa: PLC0415

    quiet_hf()
    with staged(out, overwrite=overwrite) as staging:
        cfg = _config(model=model, out=staging, stimuli=stimuli, frames=frames, norms=norms, readout=readout,
                      position=position, n_null=n_null, control_frames=control_frames,
                      selection_frames=selection_frames, n_boot=n_boot, seed=seed, batch_size=batch_size,
                      cache_dir=cache_dir, device=device, dtype=dtype, device_map=device_map, studies=chosen)
        run_pipeline(cfg)
        _record_final_out(staging, out)
    from entangle.report import build_report  # noqa: PLC0415

    build_report(out)  # again, so the page names the folder and settings it ends up with
    for line in summary_lines(out):
        say(line)
    say(f"report: {out / 'report.html'}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a folder written by `entangle run`")]) -> None:
    """Rebuild report.html from a run folder (no model needed)."""
    from entangle.report import build_report  # noqa: PLC0415

    validate.input_folder(run_dir, "run folder")
    say(f"wrote {build_report(run_dir)}")


def _compare_target(out: Path, runs: tuple[Path, Path], force: bool) -> None:
    """Refuse a compare page over a file of either run folder (its results, even with --force) or over an existing
    file that is not a page `compare` wrote (without --force); an earlier compare page is replaced."""
    from entangle.files import InputError  # noqa: PLC0415

    inputs = [p for r in runs for p in r.rglob("*") if p.is_file() and p.suffix.lower() != ".html"]
    validate.output_file(out, force=True, inputs=inputs)
    if out.exists() and not force:
        page = out.read_bytes()
        if not (page.lstrip()[:15].lower() == b"<!doctype html>" and b'id="compare-table"' in page):
            raise InputError(out, None, None, "already exists and is not a page `entangle compare` wrote; pass "
                                              "--force to replace it, or choose another --out")


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="first run folder")],
    run_b: Annotated[Path, typer.Argument(help="second run folder")],
    out: Annotated[Path, typer.Option(help="output HTML")] = Path("compare.html"),
    force: Annotated[bool, typer.Option(help="replace an existing --out that is not an earlier compare page")] = False,
) -> None:
    """Set two runs side by side (e.g. SmolLM2 vs Gemma-3) in one HTML page."""
    from entangle.report import compare_runs  # noqa: PLC0415

    validate.input_folder(run_a, "run folder")
    validate.input_folder(run_b, "run folder")
    _compare_target(out, (run_a, run_b), force)
    say(f"wrote {compare_runs(run_a, run_b, out)}")
