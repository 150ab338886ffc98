"""The valueflow study: value steering at calibrated intensity (issue 11).

directions (causal layer selection) -> responses under the activation arm (α grid), the prompt arm (levels -2..+2)
and composition settings -> intensities from the anchor-based evaluator (probe judge everywhere, pairwise judge
on a subset) -> dose-response, asymmetry, fluency, leakage, composition, evaluator validity -> run folder.

    >>> from entangle.studies.valueflow import Config, run
    >>> result = run(ctx, Config())            # doctest: +SKIP
    >>> result.save(ctx.folder)                # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from entangle.files import refuse
from entangle.models import LoadedModel
from entangle.studies.base import StudyContext, StudyResult, log
from entangle.studies.valueflow import arms
from entangle.studies.valueflow.composition import composition_table
from entangle.studies.valueflow.directions import (
    ActCache,
    ValueDirection,
    default_layers,
    fit_direction,
    query_sigma,
)
from entangle.studies.valueflow.evaluator import AnchorEvaluator
from entangle.studies.valueflow.export import export_directions
from entangle.studies.valueflow.importer import panel_for, read_valueflow_anchors
from entangle.studies.valueflow.judges import PairwiseJudge, ProbeJudge
from entangle.studies.valueflow.leakage import KINDS, leakage_table
from entangle.studies.valueflow.summary import asymmetry, dose_table, fluency_rows
from entangle.studies.valueflow.validity import validity_rows
from entangle.values import REPO_DATA, Value, load_queries, load_values

NAME = "valueflow"


@dataclass(frozen=True)
class Config:
    """What the study steers, how, and how much of it it scores with the costly pairwise judge."""

    values: tuple[str, ...] = ("care", "achievement")
    mix: tuple[str, ...] = ("care", "achievement", "hedonism", "security", "fairness")
    kinds: tuple[str, ...] = KINDS
    pair: tuple[str, str] = ("care", "achievement")
    n_queries: int = 12
    max_new_tokens: int = 24
    alphas: tuple[float, ...] = (-0.5, -0.25, 0.25, 0.5)
    levels: tuple[int, ...] = (-2, -1, 1, 2)
    comp_alpha: float = 0.25
    layers: tuple[int, ...] | None = None
    n_pairs: int = 48
    n_heldout: int = 12
    causal_alpha: float = 0.5
    pairwise_values: tuple[str, ...] = ("care",)
    pairwise_queries: int = 3
    pairwise_loao: int = 10
    pairwise_loao_m: int = 1
    n_neutral: int = 16
    k: int = 6
    m: int = 3
    repeats: int = 2
    temperature: float = 0.0
    anchors_file: str | None = None

    @classmethod
    def full(cls) -> Config:
        """The full design: twelve values, all 48 queries, longer responses, finer α grid, pairwise judge widely."""
        values = ("care", "fairness", "loyalty", "authority", "sanctity", "liberty", "benevolence", "achievement",
                  "hedonism", "conformity", "security", "self_direction")
        return cls(values=values, n_queries=48, max_new_tokens=40, alphas=(-0.75, -0.5, -0.25, 0.25, 0.5, 0.75),
                   pairwise_values=values, pairwise_queries=12, pairwise_loao=25, pairwise_loao_m=3, n_neutral=60,
                   repeats=3)

    def check(self) -> None:
        refuse(0.0 in self.alphas or 0 in self.levels, "alphas/levels",
               "leave 0 out: the base setting is every arm's dose 0")
        refuse(not set(self.pair) <= set(self.values), "pair",
               f"{self.pair} must be among the steered values {self.values}")
        refuse(self.comp_alpha not in self.alphas, "comp_alpha",
               f"{self.comp_alpha} must be on the α grid {self.alphas}")
        refuse(not set(self.pairwise_values) <= set(self.values), "pairwise_values",
               "must be among the steered values")
        refuse(len(self.alphas) < 2 or len(self.levels) < 2, "alphas/levels", "need at least two doses besides 0")


def load_study_values(cfg: Config) -> dict[str, Value]:
    """Every value the design needs (steered, mixed, read out), with the VALUEFLOW anchors where a file is given."""
    ids = list(dict.fromkeys([*cfg.values, *cfg.mix, *cfg.kinds]))
    vals = {v.id: replace(v, pairs=v.pairs[: cfg.n_pairs]) for v in load_values(ids)}
    if cfg.anchors_file:
        panels = read_valueflow_anchors(cfg.anchors_file)
        for vid, v in vals.items():
            panel = panel_for(v, panels, cfg.anchors_file)
            if panel is not None:
                vals[vid] = v.with_anchors(panel)
    return vals


def _settings(cfg: Config, vals: dict[str, Value]) -> list[dict]:
    """Every generation setting: base, activation (value × α), prompt (value × level), joint, 2:1 ratio, mix."""
    out = [{"arm": "base", "steered": "", "x": 0.0, "weights": {}, "system": None}]
    for v in cfg.values:
        out += [{"arm": "activation", "steered": v, "x": a, "weights": {v: 1.0}, "system": None} for a in cfg.alphas]
        out += [{"arm": "prompt", "steered": v, "x": float(lv), "weights": {},
                 "system": arms.level_system(vals[v], lv)} for lv in cfg.levels]
    a, b = cfg.pair
    out.append({"arm": "joint", "steered": f"{a}+{b}", "x": cfg.comp_alpha, "weights": {a: 1.0, b: 1.0},
                "system": None})
    out.append({"arm": "ratio", "steered": f"{a}+{b}", "x": cfg.comp_alpha, "weights": {a: 2.0, b: 1.0},
                "system": None})
    out.append({"arm": "mix", "steered": "+".join(cfg.mix), "x": cfg.comp_alpha,
                "weights": {v: 1.0 for v in cfg.mix}, "system": None})
    for s in out:
        s["setting"] = f"{s['arm']}:{s['steered']}:{s['x']:+g}"
    return out


def run(ctx: StudyContext, cfg: Config = Config(), judge: LoadedModel | None = None) -> StudyResult:
    """Run the study on ctx.model (judged by `judge`, default the same model) and return its metrics and tables."""
    cfg.check()
    t0, timings = time.perf_counter(), {}
    model, judge = ctx.model, judge or ctx.model
    vals = load_study_values(cfg)
    queries = load_queries()[: cfg.n_queries]
    neutral = [t for t in (REPO_DATA / "neutral" / "neutral_texts.txt").read_text().splitlines() if t.strip()]
    neutral = neutral[: cfg.n_neutral]
    qtexts = [q for _, q in queries]

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - t0 - sum(timings.values()), 1)
        log.info("valueflow: %s done (%.0f s)", name, timings[name])

    sigma = query_sigma(model, qtexts, ctx.batch_size)
    cands = list(cfg.layers) if cfg.layers else default_layers(model.info.n_layers)
    acts = ActCache(model, ctx.batch_size)
    steer_ids = list(dict.fromkeys([*cfg.values, *cfg.mix]))
    dirs: dict[str, ValueDirection] = {}
    for i, v in enumerate(steer_ids):
        causal = v in cfg.values  # the mix's other values are steered at the first value's layer, untested
        dirs[v] = fit_direction(model, vals[v], acts, sigma, cands if causal else [dirs[cfg.values[0]].layer],
                                n_heldout=cfg.n_heldout, alpha0=cfg.causal_alpha if causal else 0.0,
                                n_boot=ctx.n_boot, seed=ctx.seed + i, batch_size=ctx.batch_size)
    jacts, jdirs = (acts, dict(dirs)) if judge is model else (ActCache(judge, ctx.batch_size), {})
    jsigma = sigma if judge is model else query_sigma(judge, qtexts, ctx.batch_size)
    jcands = cands if judge is model else default_layers(judge.info.n_layers)
    readouts = list(dict.fromkeys([*steer_ids, *cfg.kinds]))
    for i, v in enumerate(readouts):  # readout-only values: read at the first value's layer (checked by LOAO)
        if v not in jdirs:
            causal = cfg.values[0] not in jdirs
            jdirs[v] = fit_direction(judge, vals[v], jacts, jsigma, jcands if causal else [jdirs[cfg.values[0]].layer],
                                     n_heldout=cfg.n_heldout, alpha0=cfg.causal_alpha if causal else 0.0,
                                     n_boot=ctx.n_boot, seed=ctx.seed + 100 + i, batch_size=ctx.batch_size)
    lap("directions")

    rows, losses = [], {}
    for s in _settings(cfg, vals):
        vec = arms.mix_vectors(dirs, s["weights"], s["x"], sigma) if s["weights"] else {}
        iv = arms.vectors_intervention(model, vec) if vec else None
        texts = arms.respond(model, qtexts, intervention=iv, system=s["system"], max_new_tokens=cfg.max_new_tokens,
                             batch_size=ctx.batch_size, seed=ctx.seed, temperature=cfg.temperature)
        if s["system"] is None and neutral:
            losses[s["setting"]] = arms.neutral_loss(model, neutral, iv, ctx.batch_size)
        rows += [{"setting": s["setting"], "arm": s["arm"], "steered": s["steered"], "x": s["x"], "query_id": qid,
                  "text": t} for (qid, _), t in zip(queries, texts, strict=True)]
    df = pd.DataFrame(rows)
    lap("generation")

    validity = []
    said = df.text.str.strip().ne("")  # an empty response has no intensity (NaN), it is not scored
    texts = list(df.text[said])
    for v in readouts:
        d = jdirs[v]
        ev = AnchorEvaluator(vals[v].anchors, ProbeJudge(jacts, d.unit, d.layer), cfg.k, cfg.m, ctx.seed)
        loao = ev.calibrate(n_boot=ctx.n_boot)
        df[f"I_probe_{v}"] = np.nan
        df.loc[said, f"I_probe_{v}"] = ev.score(texts).intensity
        validity.append({"value": v, "judge": "probe", "layer": d.layer, **{f"loao_{k}": x for k, x in loao.items()}})
    lap("probe judge")

    pw_parts = []
    for v in cfg.pairwise_values:
        ev = AnchorEvaluator(vals[v].anchors, PairwiseJudge(judge, vals[v], ctx.batch_size), cfg.k, cfg.m, ctx.seed)
        sub = df[said & (df.query_id.isin([q for q, _ in queries[: cfg.pairwise_queries]]))
                 & ((df.arm == "base") | ((df.steered == v) & df.arm.isin(["prompt", "activation"])
                                          & df.x.abs().eq(df[df.steered == v].x.abs().max())))]
        rows_v, sub_scores = validity_rows(ev, judge, vals[v], sub, cfg.pairwise_loao,
                                           cfg.pairwise_loao_m, cfg.repeats, ctx.n_boot, ctx.seed)
        validity += rows_v
        pw_parts.append(sub_scores)
    if pw_parts:
        pw = pd.concat(pw_parts)
        df = df.join(pw)
    lap("pairwise judge")

    tables = _summaries(df, losses, cfg, ctx, readouts)
    tables[f"{NAME}/layers"] = pd.concat([d.selection for d in dirs.values()], ignore_index=True)
    tables[f"{NAME}/validity"] = pd.DataFrame(validity)
    tables[f"{NAME}/responses"] = df
    export_directions(ctx.folder, model, {v: dirs[v] for v in cfg.values}, sigma, tables[f"{NAME}/dose"], cfg.alphas)
    lap("summaries")
    metrics = _metrics(cfg, model, judge, dirs, sigma, tables, timings, time.perf_counter() - t0)
    return StudyResult(NAME, {NAME: metrics}, tables, time.perf_counter() - t0)


def _summaries(df: pd.DataFrame, losses: dict, cfg: Config, ctx: StudyContext, readouts: list[str]
               ) -> dict[str, pd.DataFrame]:
    dose, asym = [], []
    judges = ["probe"] + (["pairwise"] if cfg.pairwise_values else [])
    for v in cfg.values:
        for arm in ("activation", "prompt"):
            for j in judges:
                col = f"I_{j}_{v}"
                if col in df and df[col].notna().any():
                    dose.append(dose_table(df, arm, v, col, ctx.n_boot, ctx.seed))
                    asym.append(asymmetry(df, arm, v, col, ctx.n_boot, ctx.seed) | {"judge": j})
    tables = {
        f"{NAME}/dose": pd.concat(dose, ignore_index=True),
        f"{NAME}/asymmetry": pd.DataFrame(asym),
        f"{NAME}/fluency": fluency_rows(df, losses, arms.distinct_n, arms.repetition, ctx.n_boot, ctx.seed),
        f"{NAME}/leakage": leakage_table(df, cfg.values, readouts, "probe", ctx.n_boot, ctx.seed),
        f"{NAME}/composition": composition_table(df, cfg.pair, cfg.mix, cfg.comp_alpha, "probe", ctx.n_boot,
                                                 ctx.seed),
    }
    return tables


def _metrics(cfg: Config, model: LoadedModel, judge: LoadedModel, dirs: dict[str, ValueDirection],
             sigma: np.ndarray, tables: dict[str, pd.DataFrame], timings: dict, wall: float) -> dict:
    asym = tables[f"{NAME}/asymmetry"]
    per_value = {}
    for v in cfg.values:
        sel = dirs[v].selection.set_index("layer").loc[dirs[v].layer]
        entry = {"layer": dirs[v].layer, "sigma": float(sigma[dirs[v].layer]),
                 "causal_effect": [float(sel.effect), float(sel.ci_low), float(sel.ci_high)]}
        for _, r in asym[asym.value == v].iterrows():
            entry[f"{r.arm}_{r.judge}"] = {k: r[k] for k in r.index if k not in ("value", "arm", "judge", "readout")
                                           and pd.notna(r[k])}
        per_value[v] = entry
    probe = asym[asym.judge == "probe"]
    flag = lambda col: probe[col].fillna(False).astype(bool) if col in probe else probe.arm.isna()
    flags = {arm: {f: sorted(probe[(probe.arm == arm) & flag(f)].value) for f in ("hard_to_steer", "asymmetric")}
             for arm in ("activation", "prompt")}
    return {"model": model.info.name, "judge_model": judge.info.name, "config": asdict(cfg),
            "values": per_value, "flags": flags, "wall_seconds": round(wall, 1), "timings": timings,
            "composition": tables[f"{NAME}/composition"].to_dict("records"),
            "validity": tables[f"{NAME}/validity"].to_dict("records")}
