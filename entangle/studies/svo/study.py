"""The SVO study: induce an orientation (persona prompts in one or two steps; steering along the prosocial and the
moral direction), measure the angle the model's choices reveal, biased and debiased, against ideal and null patterns.

    >>> from entangle.studies.svo import Config, run
    >>> result = run(ctx, Config(n_perm=4))          # doctest: +SKIP
    >>> result.save(ctx.folder)                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from entangle.analysis.stats import percentile_ci
from entangle.engine import text_activations, text_loss
from entangle.interventions import residual_scale, steer
from entangle.studies.base import StudyContext, StudyResult
from entangle.studies.svo import bootstrap, choice, induction
from entangle.studies.svo.findings import findings
from entangle.studies.svo.measure import (
    ITEMS_PATH,
    RationalityFn,
    category,
    ideal_patterns,
    load_items,
    null_patterns,
    svo_angle,
    value_rationality,
)

log = logging.getLogger("entangle")
NEUTRAL = induction.ROOT / "data" / "neutral" / "neutral_texts.txt"
PROSOCIAL_PAIRS = induction.DirectionSource("data/svo/prosocial_pairs.jsonl", "prosocial", "proself")
MORAL_PAIRS = induction.DirectionSource("data/values/moral/pairs.jsonl")
"""Default direction sources; the moral one may be a saved direction file (e.g. the entanglement study's)."""


@dataclass(frozen=True)
class Config:
    """What the SVO study runs. Defaults: 3 option orders, personas in both forms, steering at the middle layer."""

    items: str = str(ITEMS_PATH)
    n_perm: int = 3
    personas: tuple[str, ...] = tuple(induction.PERSONAS)
    one_step: bool = True
    two_step: bool = True
    goal: bool = False
    describe_tokens: int = 60
    prosocial: induction.DirectionSource = PROSOCIAL_PAIRS
    moral: induction.DirectionSource = MORAL_PAIRS
    layer: int | None = None
    alphas: tuple[float, ...] = (-0.5, 0.5)
    resample: str = "permutations"
    n_neutral: int = 16
    rationality: RationalityFn = field(default=value_rationality, compare=False)

    def record(self) -> dict:
        """The config as JSON (the rationality function by name)."""
        d = asdict(self)
        d["rationality"] = getattr(self.rationality, "__name__", repr(self.rationality))
        return d


@dataclass(frozen=True)
class Condition:
    """One induction condition: its arm, the orientation it aims at, and what is active while the model answers."""

    name: str
    arm: str
    persona: str | None = None
    system: str | None = None
    goal: str | None = None
    direction: str | None = None
    alpha: float = 0.0


def prompt_conditions(ctx: StudyContext, cfg: Config) -> tuple[list[Condition], pd.DataFrame]:
    """The baseline and the persona conditions, and a table of the persona texts (two-step: the model's own)."""
    conds, rows = [Condition("none", "baseline")], []
    goal = (lambda p: induction.GOALS[p]) if cfg.goal else (lambda p: None)
    if cfg.one_step:
        for p in cfg.personas:
            conds.append(Condition(f"one_step:{p}", "prompt_one_step", p, induction.one_step_system(p), goal(p)))
            rows.append({"persona": p, "form": "one_step", "description": "", "system": conds[-1].system})
    if cfg.two_step and cfg.personas:
        for p, (desc, system) in induction.two_step_systems(ctx.model, cfg.personas,
                                                           max_new_tokens=cfg.describe_tokens).items():
            conds.append(Condition(f"two_step:{p}", "prompt_two_step", p, system, goal(p)))
            rows.append({"persona": p, "form": "two_step", "description": desc, "system": system})
    return conds, pd.DataFrame(rows, columns=["persona", "form", "description", "system"])


def steering_setup(ctx: StudyContext, cfg: Config
                   ) -> tuple[dict[int, float], dict[str, tuple[int, np.ndarray]], dict]:
    """σ per steering layer (median last-token residual norm of neutral texts), each direction's (layer, vector),
    and the directions' record (cosine between moral and prosocial). A direction is steered at the study's layer;
    a saved direction read at one other layer only (e.g. the entanglement study's `moral_causal`) at its own."""
    m = ctx.model
    layer = m.info.n_layers // 2 if cfg.layer is None else cfg.layer
    dirs = {name: induction.contrast_direction(m, src, batch_size=ctx.batch_size)
            for name, src in (("prosocial", cfg.prosocial), ("moral", cfg.moral)) if cfg.alphas}
    at: dict[str, tuple[int, np.ndarray]] = {}
    for name, d in dirs.items():
        own = layer if layer in d else next(iter(d)) if len(d) == 1 else None
        if own is None:
            raise ValueError(f"the {name} direction has no vector at layer {layer} (it has {sorted(d)})")
        at[name] = (own, d[own])
    layers = sorted({layer} | {lay for lay, _ in at.values()})
    neutral = [t for t in NEUTRAL.read_text(encoding="utf-8").splitlines() if t.strip()][: cfg.n_neutral]
    scale = residual_scale(text_activations(m, neutral, position="last", layers=layers))
    sigmas = {lay: float(s) for lay, s in zip(layers, scale, strict=True)}
    record = {"layer": layer, "sigma": sigmas[layer], "layers": {n: lay for n, (lay, _) in at.items()},
              "sigmas": {str(lay): s for lay, s in sigmas.items()},
              "sources": {"prosocial": asdict(cfg.prosocial), "moral": asdict(cfg.moral)}}
    if len(at) == 2:
        shared = sorted(set(dirs["prosocial"]) & set(dirs["moral"]))
        record["cosine_moral_prosocial"] = {str(layer_): induction.cosine(dirs["moral"][layer_],
                                                                          dirs["prosocial"][layer_])
                                            for layer_ in shared}
    return sigmas, at, record


def run(ctx: StudyContext, cfg: Config = Config()) -> StudyResult:
    """Every condition's choice distributions -> angles with intervals, categories, value rationality, findings."""
    if cfg.n_perm < 2:
        raise ValueError(f"n_perm must be >= 2 (the letter prior is estimated across option orders), got {cfg.n_perm}")
    t0 = time.perf_counter()
    m, items = ctx.model, load_items(cfg.items)
    perms = choice.permutations(cfg.n_perm, ctx.seed)
    conds, personas = prompt_conditions(ctx, cfg)
    steer_rec, neutral_loss = {}, {}
    if cfg.alphas:
        sigmas, dirs, steer_rec = steering_setup(ctx, cfg)
        for name in dirs:
            for a in cfg.alphas:
                conds.append(Condition(f"steer:{name}:{a:+g}", f"steer_{name}", "prosocial" if name == "prosocial"
                                       and a > 0 else None, direction=name, alpha=a))
        neutral = [t for t in NEUTRAL.read_text(encoding="utf-8").splitlines() if t.strip()][: cfg.n_neutral]

    def intervention(c: Condition):
        if c.direction is None:
            return None
        lay, vec = dirs[c.direction]
        return lambda: steer(m.bridge, {lay: vec}, c.alpha, {lay: sigmas[lay]})

    lps: dict[str, np.ndarray] = {}
    for c in conds:
        ts = time.perf_counter()
        lps[c.name] = choice.choice_logprobs(m, items, perms, system=c.system, goal=c.goal,
                                             intervention=intervention(c), batch_size=ctx.batch_size)
        if cfg.alphas and (c.direction is not None or c.name == "none"):
            neutral_loss[c.name] = float(text_loss(m, neutral, intervention=intervention(c)).mean())
        log.info("svo %s: %d prompts in %.0f s", c.name, len(items) * len(perms), time.perf_counter() - ts)

    draws = bootstrap.draw(len(items), len(perms), ctx.n_boot, ctx.seed, cfg.resample)
    boots = {c.name: bootstrap.boot_angles(items, lps[c.name], perms, draws) for c in conds}
    dists = {c.name: distributions(lps[c.name], perms) for c in conds}
    points = {name: {key: svo_angle(items, dd) for key, dd in d.items() if key != "log_prior"}
              for name, d in dists.items()}
    targets = {p: svo_angle(items, ideal_patterns(items)[p]) for p in induction.PERSONAS}
    uniform = svo_angle(items, null_patterns(items)["uniform_random"])
    rows, choices, letters = [], [], []
    for c in conds:
        row = {"condition": c.name, "arm": c.arm, "persona": c.persona, "direction": c.direction, "alpha": c.alpha}
        for key, theta in points[c.name].items():
            lo, hi = percentile_ci(boots[c.name][key])
            fixed = cfg.resample == "permutations" and key == "biased"  # one order: nothing to resample
            row |= {f"angle_{key}": theta, f"ci_low_{key}": np.nan if fixed else float(lo),
                    f"ci_high_{key}": np.nan if fixed else float(hi), f"category_{key}": category(theta)}
            dlo, dhi = percentile_ci(boots[c.name][key] - boots["none"][key])
            row |= {f"delta_{key}": theta - points["none"][key], f"delta_ci_low_{key}": np.nan if fixed else float(dlo),
                    f"delta_ci_high_{key}": np.nan if fixed else float(dhi)}
        target = targets.get(c.persona) if c.persona else None
        lp = lps[c.name]
        row |= {"target": target,
                "rationality": cfg.rationality(row["angle_debiased"], target) if target is not None else np.nan,
                "rationality_uniform": cfg.rationality(uniform, target) if target is not None else np.nan,
                "letter_mass": float(choice.letter_mass(lp).mean()),
                "neutral_loss": neutral_loss.get(c.name, np.nan),
                "neutral_loss_delta": neutral_loss[c.name] - neutral_loss["none"] if c.name in neutral_loss else np.nan}
        rows.append(row)
        for i, it in enumerate(items):
            for k, (s, o) in enumerate(it.options):
                choices.append({"condition": c.name, "item": it.id, "option": k + 1, "self": s, "other": o,
                                **{f"p_{key}": float(dd[i, k]) for key, dd in dists[c.name].items()
                                   if key != "log_prior"}})
        p_letter = np.exp(lp - np.log(np.exp(lp).sum(-1, keepdims=True)))
        prior = dists[c.name]["log_prior"]
        letters += [{"condition": c.name, "letter": letter, "p_mean": float(p_letter[..., j].mean()),
                     "log_prior": float(prior[j])}
                    for j, letter in enumerate(choice.LETTERS)]
    table = pd.DataFrame(rows)
    base = [{"name": n, "kind": kind, "angle": svo_angle(items, d), "category": category(svo_angle(items, d))}
            for kind, pats in (("null", null_patterns(items)), ("ideal", ideal_patterns(items))) for n, d in pats.items()]
    metrics = {
        "n_items": len(items), "n_perm": len(perms), "n_boot": ctx.n_boot,
        "resampling_unit": bootstrap.UNITS[cfg.resample], "rationality": cfg.record()["rationality"],
        "steering": steer_rec, "alphas": list(cfg.alphas),
        "conditions": {r["condition"]: {k: v for k, v in r.items() if k != "condition"} for r in rows},
        "baselines": {b["name"]: b["angle"] for b in base if b["kind"] == "null"},
        "ideal": {b["name"]: b["angle"] for b in base if b["kind"] == "ideal"},
        "findings": findings(table, boots, cfg.alphas, uniform),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    tables = {"svo/conditions": table, "svo/choices": pd.DataFrame(choices), "svo/letters": pd.DataFrame(letters),
              "svo/baselines": pd.DataFrame(base), "svo/personas": personas}
    return StudyResult("svo", {"svo": metrics}, tables, seconds=metrics["seconds"])


def distributions(lp: np.ndarray, perms: np.ndarray) -> dict[str, np.ndarray]:
    """[item, option] choice distributions: 'biased' (the measure's own order), 'averaged' (over orders) and, where
    'debiased' (the letter prior removed; 'log_prior' is that prior over letters)."""
    alloc = choice.allocation_probs(lp, perms)
    out = {"biased": alloc[:, 0], "averaged": choice.debias_average(alloc)}
    out["debiased"], out["log_prior"] = choice.prior_corrected(lp, perms)
    return out
