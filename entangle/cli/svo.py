"""`entangle svo`: the social value orientation study (SVO slider measure; persona prompts and steering)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from entangle import validate
from entangle.cli.app import CacheOpt, DeviceOpt, ModelOpt, app, quiet_hf, say
from entangle.files import InputError


def _alphas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(a) for a in text.split(",") if a.strip())
    except ValueError:
        raise InputError(None, None, "--alphas", f"expected comma-separated numbers, got {text!r}") from None


@app.command()
def svo(
    out: Annotated[Path, typer.Option(help="run folder (created; an existing one gains the svo results)")] = Path("runs/svo"),
    model: ModelOpt = "smollm2-135m",
    n_perm: Annotated[int, typer.Option(help="option orders per item (>= 2; the first is the measure's own)")] = 3,
    personas: Annotated[str, typer.Option(help="comma-separated persona orientations ('' for none)")] =
        "altruistic,prosocial,individualistic,competitive",
    one_step: Annotated[bool, typer.Option(help="persona as a system prompt")] = True,
    two_step: Annotated[bool, typer.Option(help="HVAE's two steps: the model describes the values, then acts on them")] = True,
    goal: Annotated[bool, typer.Option(help="append the persona's goal to each question")] = False,
    alphas: Annotated[str, typer.Option(help="steering strengths in units of σ ('' for no steering arm)")] = "-0.5,0.5",
    layer: Annotated[int | None, typer.Option(help="steering layer (default: the middle layer)")] = None,
    moral_direction: Annotated[str, typer.Option(
        help="moral direction: contrast pairs JSONL (expressing/rejecting) or a direction file "
             "(.safetensors/.npz/.pt/.gguf, e.g. the entanglement study's)")] = "data/values/moral/pairs.jsonl",
    prosocial_pairs: Annotated[str, typer.Option(help="prosocial/proself contrast pairs JSONL")] =
        "data/svo/prosocial_pairs.jsonl",
    resample: Annotated[str, typer.Option(help="bootstrap unit: permutations | items | both")] = "permutations",
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples")] = 1000,
    seed: int = 0,
    batch_size: Annotated[int, typer.Option(help="prompts per forward pass")] = 32,
    cache_dir: CacheOpt = Path(".entangle_cache"),
    device: DeviceOpt = "cpu",
) -> None:
    """Measure the SVO angle the model's choices reveal under persona prompts and steering, with intervals.

    Example: entangle svo --out runs/svo --n-perm 3
    """
    quiet_hf()
    import time
    from datetime import UTC, datetime

    from entangle import __version__
    from entangle.models import load_model
    from entangle.report import build_report
    from entangle.runfolder import RunFolder
    from entangle.studies.base import StudyContext
    from entangle.studies.svo import Config, run
    from entangle.studies.svo.induction import PERSONAS, DirectionSource

    started, t0 = datetime.now(UTC), time.perf_counter()
    chosen = tuple(p.strip() for p in personas.split(",") if p.strip())
    unknown = sorted(set(chosen) - set(PERSONAS))
    if unknown:
        raise InputError(None, None, "--personas", f"unknown {unknown}; known: {', '.join(PERSONAS)}")
    if resample not in ("permutations", "items", "both"):
        raise InputError(None, None, "--resample", f"expected permutations, items or both, got {resample!r}")
    if n_perm < 2:
        raise InputError(None, None, "--n-perm", f"must be >= 2, got {n_perm}")
    cfg = Config(n_perm=n_perm, personas=chosen, one_step=one_step, two_step=two_step, goal=goal,
                 alphas=_alphas(alphas), layer=layer, resample=resample,
                 prosocial=DirectionSource(prosocial_pairs, "prosocial", "proself"),
                 moral=DirectionSource(moral_direction))
    for src in (cfg.prosocial, cfg.moral):
        if cfg.alphas and not src.resolve().is_file():
            raise InputError(src.path, None, None, "no such direction source")
    validate.at_least("--n-boot", n_boot, 1)
    validate.at_least("--batch-size", batch_size, 1)
    validate.writable_folder(out)
    validate.writable_folder(cache_dir)
    validate.device(device)
    lm = load_model(model, device=device)
    folder = RunFolder(out)
    ctx = StudyContext(lm, folder, cache_dir, seed=seed, batch_size=batch_size, n_boot=n_boot)
    result = run(ctx, cfg)
    if not folder.has("config.json"):
        folder.write_config({"model": model, "model_info": lm.info.to_dict(), "svo": cfg.record()})
    result.save(folder)
    if "run" not in folder.metrics():
        folder.update_metrics("run", {"entangle_version": __version__, "started": started.isoformat(),
                                      "finished": datetime.now(UTC).isoformat(),
                                      "wall_seconds": round(time.perf_counter() - t0, 1), "model": lm.info.name,
                                      "device": lm.info.device})
    s = result.metrics["svo"]
    for name, c in s["conditions"].items():
        say(f"{name:24s} debiased {c['angle_debiased']:6.1f}° [{c['ci_low_debiased']:6.1f}, "
            f"{c['ci_high_debiased']:6.1f}]  {c['category_debiased']:15s} averaged {c['angle_averaged']:6.1f}°  "
            f"biased {c['angle_biased']:6.1f}°")
    drift = s["findings"].get("hvae_drift")
    if drift:
        say(f"HVAE drift to neutral/prosocial: {drift['verdict']} (category rule alone: "
            f"{'holds' if drift['holds'] else 'does not hold'})")
    say(f"study {s['seconds']:.0f} s; report: {build_report(out)}")
