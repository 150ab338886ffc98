"""`entangle steer`: value steering at calibrated intensity (the valueflow study) into a run folder + report."""

from __future__ import annotations

import resource
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from entangle import validate
from entangle.cli.app import CacheOpt, DeviceOpt, ModelOpt, app, quiet_hf, say


def _floats(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise validate.OptionError(option, f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(x.strip() for x in text.split(",") if x.strip())


@app.command()
def steer(
    model: ModelOpt = "smollm2-135m",
    out: Annotated[Path, typer.Option(help="run folder (created; an existing run folder gains this study)")] = Path(
        "runs/steer"),
    judge_model: Annotated[str | None, typer.Option(help="evaluating model (default: the steered model)")] = None,
    values: Annotated[str | None, typer.Option(help="comma-separated values to steer (default: care,achievement,"
                                                    "hedonism)")] = None,
    mix: Annotated[str | None, typer.Option(help="the five-value mix (comma-separated)")] = None,
    pair: Annotated[str | None, typer.Option(help="the composition pair a,b (among --values)")] = None,
    alphas: Annotated[str | None, typer.Option(help="α grid without 0, e.g. -1,-0.5,0.5,1")] = None,
    layers: Annotated[str | None, typer.Option(help="candidate steering layers (default: 3 at 30-60%% depth)")] = None,
    queries: Annotated[int | None, typer.Option(help="queries answered per setting")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="response length cap in tokens")] = None,
    pairwise_values: Annotated[str | None, typer.Option(help="values also scored by the pairwise judge ('' for "
                                                             "none)")] = None,
    valueflow_anchors: Annotated[Path | None, typer.Option(
        help="a VALUEFLOW few-shot anchor JSON file; matching values use its anchors instead of ours")] = None,
    full: Annotated[bool, typer.Option(help="the full design: 12 values, 48 queries, 40 tokens, pairwise widely")] = False,
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples over queries")] = 1000,
    seed: int = 0,
    batch_size: int = 32,
    cache_dir: CacheOpt = Path(".entangle_cache"),
    device: DeviceOpt = "cpu",
) -> None:
    """Steer values by activation (α·σ·d) and by prompt (levels -2..+2), score intensity with the anchor-based
    evaluator, and report dose-response, asymmetry, fluency, leakage and composition."""
    from entangle.studies.valueflow import Config  # noqa: PLC0415

    cfg = Config.full() if full else Config()
    over: dict = {}
    if values is not None:
        over["values"] = _names(values)
        if pair is None:
            over["pair"] = tuple(over["values"][:2])
        if pairwise_values is None:
            over["pairwise_values"] = tuple(over["values"][:1])
    for key, text in (("mix", mix), ("pair", pair), ("pairwise_values", pairwise_values)):
        if text is not None:
            over[key] = _names(text)
    if alphas is not None:
        over["alphas"] = _floats("--alphas", alphas)
        over["comp_alpha"] = min((a for a in over["alphas"] if a > 0), default=cfg.comp_alpha)
    if layers is not None:
        over["layers"] = tuple(int(x) for x in _floats("--layers", layers))
    if queries is not None:
        validate.at_least("--queries", queries, 2)
        over["n_queries"] = queries
    if max_new_tokens is not None:
        validate.at_least("--max-new-tokens", max_new_tokens, 1)
        over["max_new_tokens"] = max_new_tokens
    if valueflow_anchors is not None:
        validate.input_file(valueflow_anchors, "VALUEFLOW anchor file")
        over["anchors_file"] = str(valueflow_anchors)
    cfg = replace(cfg, **over)
    from entangle.studies.valueflow.study import load_study_values  # noqa: PLC0415

    load_study_values(cfg)  # every value folder and the anchor file are checked before a model loads
    if len(cfg.pair) != 2:
        raise validate.OptionError("--pair", f"needs two values, got {cfg.pair}")
    cfg.check()
    validate.at_least("--n-boot", n_boot, 1)
    validate.at_least("--batch-size", batch_size, 1)
    validate.writable_folder(out)
    validate.device(device)
    quiet_hf()
    _run(cfg, model, judge_model, out, n_boot, seed, batch_size, cache_dir, device)


def _run(cfg, model: str, judge_model: str | None, out: Path, n_boot: int, seed: int, batch_size: int,
         cache_dir: Path, device: str) -> None:
    from entangle import __version__  # noqa: PLC0415
    from entangle.models import load_model  # noqa: PLC0415
    from entangle.report import build_report  # noqa: PLC0415
    from entangle.runfolder import RunFolder  # noqa: PLC0415
    from entangle.studies.base import StudyContext  # noqa: PLC0415
    from entangle.studies.valueflow import run  # noqa: PLC0415

    started, t0 = datetime.now(UTC), time.perf_counter()
    lm = load_model(model, device=device)
    judge = load_model(judge_model, device=device) if judge_model and judge_model != model else None
    folder = RunFolder(out)
    folder.path.mkdir(parents=True, exist_ok=True)
    if not folder.has("config.json"):
        folder.write_config({"model": model, "model_info": lm.info.to_dict(),
                             "study": "valueflow"})
    ctx = StudyContext(lm, folder, cache_dir, seed=seed, batch_size=batch_size, n_boot=n_boot)
    result = run(ctx, cfg, judge)
    result.save(folder)
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    if "run" not in folder.metrics():
        folder.update_metrics("run", {"entangle_version": __version__, "started": started.isoformat(timespec="seconds"),
                                      "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                                      "wall_seconds": round(time.perf_counter() - t0, 1), "model": lm.info.name,
                                      "device": device, "cpu_seconds": round(cpu, 1)})
    build_report(out)
    m = result.metrics["valueflow"]
    for v, e in m["values"].items():
        act, pr = e.get("activation_probe", {}), e.get("prompt_probe", {})
        say(f"{v:14s} layer {e['layer']:2d}  activation Spearman {act.get('spearman', float('nan')):+.2f} "
            f"[{act.get('spearman_ci_low', float('nan')):+.2f}, {act.get('spearman_ci_high', float('nan')):+.2f}]  "
            f"prompt Spearman {pr.get('spearman', float('nan')):+.2f} "
            f"[{pr.get('spearman_ci_low', float('nan')):+.2f}, {pr.get('spearman_ci_high', float('nan')):+.2f}]")
    say(f"study wall time {m['wall_seconds']:.0f} s; report: {out / 'report.html'}")
