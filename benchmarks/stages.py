#!/usr/bin/env python
"""The main job's stage times, cold and warm, read from the `run.log` of `entangle run` folders.

Each stage logs `<stage> done in N s`; the steps inside a stage (the readout choice, each probe, the causal test's
candidates, exact ablations and nulls) log a line when they finish, so the time since the previous line is that
step's time. `--run-dir` reads existing folders; `--run` runs a reduced pipeline twice on one cache directory
(cold: empty cache, then warm: every capture and re-measurement cached) and reports both. See benchmarks/README.md.

    python benchmarks/stages.py --run-dir runs/smollm2-135m              # one folder's stages
    python benchmarks/stages.py --run-dir COLD --run-dir WARM            # side by side
    python benchmarks/stages.py --run --frames 8                         # reduced run on smollm2-135m, cold + warm
    python benchmarks/stages.py --run --quick --model DIR                # smoke run (the test suite uses it)
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from benchlib import (
    fmt_table,
    log,
    machine_info,
    machine_line,
    parse_with_quick,
    publish,
)

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ (.*)$")
DONE = re.compile(r"^(\w+) done in ([\d.]+) s$")
REPORT = "report written"
QUICK = {"frames": 4, "n_boot": 50, "n_null": 3}


@dataclass(frozen=True)
class Step:
    """One timed row: a stage (`step` empty) or a step inside it, with its seconds from the log's timestamps."""

    stage: str
    step: str
    seconds: float
    logged_seconds: float | None = None  # the stage's own `done in N s` figure (whole seconds)


def read_log(path: Path) -> list[tuple[datetime, str]]:
    """Timestamped messages of a run.log (continuation lines of a multi-line message are dropped)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := LINE.match(line):
            out.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"), m.group(2)))
    if not out:
        raise ValueError(f"{path}: no timestamped log lines (is it an entangle run.log?)")
    return out


def _label(msg: str) -> str:
    """A step's name: the message up to its first colon, numbers replaced by '#' (same name cold and warm)."""
    return re.sub(r"\b\d+(\.\d+)?\b", "#", msg.split(":", 1)[0]).strip()


def stage_times(lines: Sequence[tuple[datetime, str]]) -> list[Step]:
    """Stage rows, each followed by its steps (time since the previous line) and the rest of the stage after its
    last step; the report (metrics.json + report.html) is the last stage; `total` spans the whole log."""
    rows: list[Step] = []
    stage_start = prev = lines[0][0]
    pending: list[Step] = []
    for t, msg in lines[1:]:
        done = DONE.match(msg)
        if done or msg.startswith(REPORT):
            name = done.group(1) if done else "report"
            rest = (t - prev).total_seconds()
            rows.append(Step(name, "", (t - stage_start).total_seconds(), float(done.group(2)) if done else None))
            rows += [Step(name, s.step, s.seconds) for s in pending]
            if pending:
                rows.append(Step(name, "(rest of the stage)", rest))
            pending, stage_start = [], t
        else:
            pending.append(Step("", _label(msg), (t - prev).total_seconds()))
        prev = t
    rows.append(Step("total", "", (lines[-1][0] - lines[0][0]).total_seconds()))
    return rows


def table(runs: dict[str, list[Step]]) -> str:
    """Stage and step rows of one or more runs side by side (matched by stage, step name and occurrence)."""
    keys: list[tuple[str, str, int]] = []
    cols: dict[str, dict[tuple[str, str, int], float]] = {}
    for name, steps in runs.items():
        seen: dict[tuple[str, str], int] = {}
        cols[name] = {}
        for s in steps:
            n = seen[(s.stage, s.step)] = seen.get((s.stage, s.step), -1) + 1
            key = (s.stage, s.step, n)
            cols[name][key] = s.seconds
            if key not in keys:
                keys.append(key)
    rows = [("stage", "step", *(f"{n} s" for n in runs))]
    for key in keys:
        stage, step, _ = key
        vals = [cols[n].get(key) for n in runs]
        rows.append((stage if not step else "", f"  {step}" if step else "",
                     *("-" if v is None else f"{v:.1f}" for v in vals)))
    return fmt_table(rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", action="append", default=[], help="an entangle run folder (repeatable)")
    ap.add_argument("--run", action="store_true", help="run a reduced pipeline twice (cold, then warm) and report")
    ap.add_argument("--model", default="smollm2-135m", help="registry name, local HF directory or hub id (--run)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ... (--run)")
    ap.add_argument("--frames", type=int, default=8, help="stimulus frames of the reduced run")
    ap.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples of the reduced run")
    ap.add_argument("--n-null", type=int, default=19, help="draws per null distribution of the reduced run")
    ap.add_argument("--keep", metavar="DIR", default=None, help="keep the two run folders and the cache under DIR")
    ap.add_argument("--json", metavar="OUT", default=None, help="also write every figure as JSON")
    args = parse_with_quick(ap, argv, QUICK)
    if not args.run and not args.run_dir:
        ap.error("give --run-dir DIR (read existing folders) or --run (run the reduced pipeline cold and warm)")
    return args


def run_twice(args: argparse.Namespace, root: Path) -> dict[str, Path]:
    """The reduced pipeline into root/cold (empty cache) then root/warm (the same cache): their folders."""
    from entangle.models import load_model
    from entangle.studies.entanglement.pipeline import RunConfig, run

    model = load_model(args.model, device=args.device)
    folders = {}
    for name in ("cold", "warm"):
        cfg = RunConfig(model=args.model, out=str(root / name), frames=args.frames, n_boot=args.n_boot,
                        n_splits=3, n_null=args.n_null, cache_dir=str(root / "cache"), device=args.device,
                        progress=False)
        log(f"{name} run into {cfg.out}")
        t0 = time.perf_counter()
        folders[name] = run(cfg, model=model)
        log(f"{name} run: {time.perf_counter() - t0:.0f} s")
    return folders


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    folders = {Path(d).name or d: Path(d) for d in args.run_dir}
    config: dict[str, Any] = {"run_dirs": [str(p) for p in folders.values()]}
    if args.run:
        root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="entangle_stages_"))
        folders.update(run_twice(args, root))
        config.update(model=args.model, device=args.device, frames=args.frames, n_boot=args.n_boot,
                      n_null=args.n_null, root=str(root))
    missing = [str(p) for p in folders.values() if not (p / "run.log").is_file()]
    if missing:
        raise SystemExit(f"no run.log in {', '.join(missing)} (not an entangle run folder?)")
    steps = {name: stage_times(read_log(path / "run.log")) for name, path in folders.items()}
    res = {"machine": machine_info(torch.device(args.device)), "config": config,
           "runs": {n: [s.__dict__ for s in st] for n, st in steps.items()}}
    totals = ", ".join(f"{n} {st[-1].seconds:.0f} s" for n, st in steps.items())
    return publish("\n".join(["entangle main job: stage times from run.log", machine_line(res["machine"]),
                               f"runs: {', '.join(f'{n} = {p}' for n, p in folders.items())}", "", table(steps), "",
                               f"total wall time: {totals}"]), res, args.json)


if __name__ == "__main__":
    main()
