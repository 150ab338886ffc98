"""The end-to-end experiment behind `entangle run`: a RunConfig in, one results folder out.

capture (cached) -> probes per kind and layer -> behavioural and representational entanglement vs the human norm
-> ablation of the moral direction (layer-rule sweep, other kinds' directions, LEACE, random controls)
-> exports and the HTML report. The ablation baseline is read from the capture cache, not recomputed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from entangle import __version__
from entangle.analysis.entanglement import EIResult, behavioural_ei, excess_ei, repair
from entangle.analysis.geometry import cosine_by_layer, leakage
from entangle.analysis.norms import design_norm, human_ei, load_ratings
from entangle.analysis.probing import (
    ProbeResult,
    cross_decoding,
    fit_probes,
    kind_labels,
)
from entangle.analysis.stats import empirical_p_value, percentile_ci
from entangle.directions import Direction, direction_meta, save_direction
from entangle.engine.cache import DEFAULT_CACHE
from entangle.engine.capture import (
    ActivationSet,
    capture,
    choose_style,
    measure,
    readout_table,
)
from entangle.files import atomic_write
from entangle.interventions import ablate, fit_leace, leace, random_unit_directions
from entangle.models import LoadedModel, load_model
from entangle.prompts import (
    TEXT_TEMPLATE,
    Template,
    build_prompts,
    templates,
    text_prompts,
)
from entangle.runfolder import Block, RunFolder
from entangle.schema import DATA_DIR
from entangle.stimuli import KINDS, StimulusSet, load_stimuli

LAYER_RULES = ("best", "band", "all")
TARGETS = ("grammatical", "economic")  # kinds the moral factor should not move
NEUTRAL_TEXTS = DATA_DIR / "neutral" / "neutral_texts.txt"
log = logging.getLogger("entangle")


@dataclass
class RunConfig:
    """Everything a run depends on; saved as config.json so a run can be repeated."""

    model: str = "smollm2-135m"
    out: str = "runs/smollm2-135m"
    stimuli: str | None = None          # None: the shipped factorial set
    frames: int | None = None           # use only the first n frames (quick runs, tests)
    norms: str | None = None            # human ratings CSV; None: the design norm (EI_human = 0)
    readout: str = "auto"               # auto | cloze | likert
    position: str = "last"              # last | judged_mean: where probes read the residual stream
    probe_method: str = "logistic"      # logistic | diff_means: the method whose directions are ablated
    n_splits: int = 5
    n_boot: int = 1000
    seed: int = 0
    layer_rules: tuple[str, ...] = LAYER_RULES
    primary_rule: str = "all"
    band: int = 2                       # the band rule ablates best_layer +- band
    n_random: int = 20
    control_frames: int | None = 24     # random controls run on the first n frames, moral good/bad items only
    ablation_templates: int = 1         # templates per kind re-measured under each intervention
    leace: bool = True
    batch_size: int = 32
    cache_dir: str = str(DEFAULT_CACHE)
    device: str = "cpu"
    dtype: str = "float32"
    device_map: str | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _layers_for(rule: str, best: int, n_layers: int, band: int) -> list[int]:
    """Residual layers an ablation touches: the best probe layer, a band around it, or every layer."""
    if rule == "best":
        return [best]
    if rule == "band":
        return list(range(max(0, best - band), min(n_layers, best + band) + 1))
    if rule == "all":
        return list(range(n_layers + 1))
    raise ValueError(f"layer rule must be one of {LAYER_RULES}, got {rule!r}")


def _layer_label(layers: list[int]) -> str:
    return str(layers[0]) if len(layers) == 1 else f"{layers[0]}-{layers[-1]}"


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()


def _save_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda p: df.to_csv(p, index=False))


class Experiment:
    """One run's state: the model, stimuli, cached capture and the results so far (used by the CLI and notebooks)."""

    def __init__(self, cfg: RunConfig, model: LoadedModel | None = None):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.model = model or load_model(cfg.model, device=cfg.device, dtype=cfg.dtype, device_map=cfg.device_map)
        stim = load_stimuli(cfg.stimuli)
        self.stimuli: StimulusSet = stim.subset(cfg.frames) if cfg.frames else stim
        self.metrics: dict[str, Any] = {}
        self.acts: ActivationSet | None = None
        self.probes: dict[str, ProbeResult] = {}
        self.human: EIResult | None = None

    # ---------------------------------------------------------------- capture
    def run_capture(self) -> ActivationSet:
        """Choose the readout that works on this model, then capture (or read from the cache)."""
        cfg = self.cfg
        if cfg.readout == "auto":
            style, evidence = choose_style(self.model, self.stimuli, batch_size=cfg.batch_size)
        else:
            style, evidence = cfg.readout, {"reason": f"set by the user (--readout {cfg.readout})"}
        log.info("readout: %s (%s)", style, evidence.get("reason"))
        self.acts = capture(self.model, self.stimuli, style=style, batch_size=cfg.batch_size,
                            cache_dir=cfg.cache_dir, progress=cfg.progress)
        self.metrics["readout"] = {"style": style, "evidence": evidence}
        self.metrics["self_checks"] = self.acts.manifest["self_checks"]
        self.metrics["capture"] = {"cache": str(self.acts.path), "seconds": self.acts.manifest["capture_seconds"],
                                   "n_prompts": self.acts.manifest["n_prompts"], "tokens": self.acts.manifest["tokens"]}
        _save_csv(self.acts.readout_table(), self.out / "readouts.csv")
        return self.acts

    # ---------------------------------------------------------------- probes
    def kind_data(self, kind: str) -> tuple[np.ndarray, pd.DataFrame]:
        """Activations at the configured position and the prompt rows of one kind's judgement prompts."""
        assert self.acts is not None
        rows = self.acts.rows(kind)
        return np.asarray(self.acts.acts[self.cfg.position][rows]), self.acts.prompts.iloc[rows].reset_index(drop=True)

    def run_probes(self) -> dict[str, ProbeResult]:
        """Per-layer probes for each kind, both methods; directions of each exported; cross-decoding and cosines."""
        cfg = self.cfg
        tables, data = [], {}
        for kind in KINDS:
            x, meta = self.kind_data(kind)
            labels = kind_labels(meta, kind)
            data[kind] = (x, meta, labels)
            for method in ("logistic", "diff_means"):
                res = fit_probes(x, labels, meta["frame"].to_numpy(), kind, method=method, n_splits=cfg.n_splits,
                                 n_boot=cfg.n_boot, seed=cfg.seed)
                tables.append(res.table())
                self._export(res)
                if method == cfg.probe_method:
                    self.probes[kind] = res
            log.info("probe %s: best layer %d, CV accuracy %.3f", kind, self.probes[kind].best_layer,
                     self.probes[kind].accuracy[self.probes[kind].best_layer])
        _save_csv(pd.concat(tables, ignore_index=True), self.out / "probes.csv")
        dirs = {k: p.directions for k, p in self.probes.items()}
        _save_csv(cosine_by_layer(dirs), self.out / "cosine.csv")
        cross = cross_decoding(dirs, {k: v[0] for k, v in data.items()}, {k: v[2] for k, v in data.items()},
                               {k: v[1]["frame"].to_numpy() for k, v in data.items()}, n_boot=cfg.n_boot, seed=cfg.seed)
        _save_csv(cross, self.out / "cross_decoding.csv")
        leak = pd.concat([leakage(data[k][0], data[k][1], dirs, k, n_boot=cfg.n_boot, seed=cfg.seed) for k in TARGETS],
                         ignore_index=True)
        _save_csv(leak, self.out / "leakage.csv")
        self.metrics["probe"] = {
            k: {"best_layer": int(p.best_layer), "cv_accuracy": float(p.accuracy[p.best_layer]),
                "ci": [float(p.acc_ci_low[p.best_layer]), float(p.acc_ci_high[p.best_layer])],
                "auc": float(p.auc[p.best_layer]), "selectivity": float(p.selectivity[p.best_layer]),
                "method": p.method, "position": cfg.position}
            for k, p in self.probes.items()
        }
        best_m = self.probes["moral"].best_layer
        cos = cosine_by_layer(dirs)
        self.metrics.setdefault("entanglement", {})["representational"] = {
            **{f"leakage.moral_to_{k}": _row(leak[(leak.to_kind == k) & (leak.layer == best_m)],
                                            ["layer", "leakage", "ci_low", "ci_high"]) for k in TARGETS},
            **{f"cosine.{a}_{b}": {"layer": best_m, "cosine": float(c)}
               for a, b, c in cos[cos.layer == best_m][["kind_a", "kind_b", "cosine"]].itertuples(index=False)},
            "position": cfg.position, "resampling_unit": "frame",
        }
        return self.probes

    def _export(self, res: ProbeResult) -> None:
        assert self.acts is not None
        meta = direction_meta(
            self.model.info, kind=res.kind, method=res.method, layers=res.layers,
            position="last_prompt_token" if self.cfg.position == "last" else "judged_sentence_mean",
            stimuli_sha256=self.stimuli.sha256,
            cv_metrics={"accuracy": res.accuracy, "auc": res.auc, "selectivity": res.selectivity},
            templates=[t["id"] for t in self.acts.manifest["templates"] if t["kind"] == res.kind],
            extra={"best_layer": int(res.best_layer), "readout_style": self.acts.manifest["readout_style"],
                   "prompt_style": self.acts.manifest["readout_style"]},
        )
        direction = Direction(res.directions.astype(np.float32), list(res.layers), res.kind, res.method, meta)
        save_direction(direction, self.out / "directions" / f"{res.kind}_{res.method}.safetensors")

    # ---------------------------------------------------------------- behavioural entanglement
    def human_norm(self) -> EIResult:
        """The human-norm baseline: imported ratings if configured, else the design norm (EI_human = 0)."""
        if self.human is None:
            stim_df = self.stimuli.to_frame().rename(columns={"id": "item_id"})
            if self.cfg.norms:
                self.human = human_ei(load_ratings(self.cfg.norms, stim_df), stim_df, n_boot=self.cfg.n_boot,
                                      seed=self.cfg.seed, control_tokens=False)
            else:
                self.human = design_norm(stim_df)
        return self.human

    def run_behavioural(self) -> None:
        """EI matrix per readout vs the human norm, with frame-bootstrap intervals."""
        assert self.acts is not None
        human = self.human_norm()
        table = self.acts.readout_table()
        eis, excesses, out = [], [], {}
        for readout, df in table.groupby("readout", sort=False):
            res = behavioural_ei(df, n_boot=self.cfg.n_boot, seed=self.cfg.seed)
            ex = excess_ei(res, human)
            eis.append(res.table().assign(readout=readout))
            excesses.append(ex.assign(readout=readout))
            for r in ex.itertuples(index=False):
                cell = res.table().set_index(["from_factor", "to_kind"]).loc[(r.from_factor, r.to_kind)]
                out.setdefault(readout, {})[f"{r.from_factor}_to_{r.to_kind}"] = {
                    "ei": r.ei_model, "ci_low": float(cell.ci_low), "ci_high": float(cell.ci_high),
                    "human_ei": r.ei_human, "excess": r.excess, "excess_ci_low": r.ci_low,
                    "excess_ci_high": r.ci_high, "coef_p": float(cell.coef_p),
                }
        _save_csv(pd.concat(eis, ignore_index=True), self.out / "ei.csv")
        _save_csv(pd.concat(excesses, ignore_index=True), self.out / "excess.csv")
        ent = self.metrics.setdefault("entanglement", {})
        ent["behavioural"] = out
        ent["human_norm"] = {
            "source": human.source,
            "note": "design norm: a rater whose K judgement depends only on K's own factor (EI_human = 0); "
                    "no human ratings were supplied" if human.source == "design" else "imported human ratings",
        }

    # ---------------------------------------------------------------- ablation
    def ablation_prompts(self, frames: int | None = None, moral_levels: tuple[int, ...] = (-1, 0, 1),
                         kinds: tuple[str, ...] = KINDS) -> tuple[list, list[Template]]:
        """The prompts re-measured under interventions: the first template(s) of each kind."""
        tmpls = templates(self.acts.manifest["readout_style"], kinds, self.cfg.ablation_templates)
        stim = self.stimuli.subset(frames) if frames else self.stimuli
        items = [it for it in stim.items if it.moral in moral_levels]
        return build_prompts(items, tmpls, self.model.tokenizer), tmpls

    def baseline(self, prompts: list) -> pd.DataFrame:
        """Readouts of `prompts` without intervention, read from the capture cache (no model run)."""
        assert self.acts is not None
        cached = self.acts.prompts.set_index(["item_id", "template_id"])
        keys = pd.MultiIndex.from_tuples([(p.item_id, p.template_id) for p in prompts])
        return cached.loc[keys].reset_index()

    def _ei(self, prompts_df: pd.DataFrame, readout: str | None = None) -> EIResult:
        """EI from per-prompt readouts: the judgement readout by default, or "logprob" (grammatical only)."""
        style = self.acts.manifest["readout_style"]
        df = readout_table(prompts_df, style)
        return behavioural_ei(df[df.readout == (readout or style)], n_boot=self.cfg.n_boot, seed=self.cfg.seed)

    def run_ablation(self) -> None:
        """Ablate the moral direction (layer-rule sweep), the other kinds' directions, LEACE and random controls."""
        assert self.acts is not None and self.probes
        cfg, n_layers = self.cfg, self.model.info.n_layers
        human = self.human_norm()
        prompts, tmpls = self.ablation_prompts()
        before_df = self.baseline(prompts)
        before = self._ei(before_df)
        before_lp = self._ei(before_df, "logprob")
        neutral = text_prompts(NEUTRAL_TEXTS.read_text(encoding="utf-8").splitlines())
        base_loss = self._neutral_loss(neutral, None)
        rows, sel_rows, summary, readouts_after = [], [], {}, []
        before_readout = self.acts.manifest["readout_style"]
        conditions: list[tuple[str, str, str, list[int], Callable[[], contextlib.AbstractContextManager]]] = []
        skipped = {}
        for kind, rules in (("moral", cfg.layer_rules), *((k, (cfg.primary_rule,)) for k in TARGETS)):
            for rule in rules:
                layers, ctx = self._projection(kind, rule)
                if ctx is None:  # e.g. the last-token embedding is constant across items: nothing to project
                    skipped[f"{kind}_{rule}"] = "degenerate (zero) probe direction at an ablated layer"
                    log.warning("ablation %s_%s skipped: degenerate probe direction", kind, rule)
                    continue
                conditions.append((f"{kind}_{rule}", rule, kind, layers, ctx))
        if cfg.leace:
            layers = _layers_for(cfg.primary_rule, self.probes["moral"].best_layer, n_layers, cfg.band)
            conditions.append((f"leace_{cfg.primary_rule}", cfg.primary_rule, "moral", layers, self._leace(layers)))
        after_dfs: dict[str, pd.DataFrame] = {}
        for name, rule, dkind, layers, ctx in conditions:
            t0 = time.perf_counter()
            after_df = measure(self.model, prompts, tmpls, batch_size=cfg.batch_size, intervention=ctx,
                               progress=cfg.progress, desc=name)
            after_dfs[name] = after_df
            after = self._ei(after_df)
            rep = repair(before, after, human, cells=[("moral", k) for k in TARGETS])
            loss_delta = self._neutral_loss(neutral, ctx) - base_loss
            summary[name] = self._summarise(rule, layers, before, after, human, rep, loss_delta)
            # the grammaticality readout that does respond to grammar: the judged sentence's log-prob
            after_lp = self._ei(after_df, "logprob")
            rep_lp = repair(before_lp, after_lp, human, cells=[("moral", "grammatical")])
            lp = rep_lp[rep_lp.measure == "repair_fraction"].iloc[0]
            summary[name]["logprob"] = {"moral_to_grammatical": {
                "ei_before": lp.before, "ei_after": lp.after, "repair_fraction": lp.estimate,
                "ci_low": lp.ci_low, "ci_high": lp.ci_high}}
            bt = before.table().set_index(["from_factor", "to_kind"])
            at = after.table().set_index(["from_factor", "to_kind"])
            for r in rep[rep.measure == "repair_fraction"].itertuples(index=False):
                cell = (r.from_factor, r.to_kind)
                rows.append({"method": name, "readout": before_readout, "rule": rule, "direction_kind": dkind,
                             "layers": _layer_label(layers),
                             "from_factor": r.from_factor, "to_kind": r.to_kind, "ei_before": r.before,
                             "ei_before_ci_low": bt.loc[cell, "ci_low"], "ei_before_ci_high": bt.loc[cell, "ci_high"],
                             "ei_after": r.after, "ei_after_ci_low": at.loc[cell, "ci_low"],
                             "ei_after_ci_high": at.loc[cell, "ci_high"], "repair_fraction": r.estimate,
                             "ci_low": r.ci_low, "ci_high": r.ci_high, "loss_delta": loss_delta})
            blt = before_lp.table().set_index(["from_factor", "to_kind"]).loc[("moral", "grammatical")]
            alt = after_lp.table().set_index(["from_factor", "to_kind"]).loc[("moral", "grammatical")]
            rows.append({"method": name, "readout": "logprob", "rule": rule, "direction_kind": dkind,
                         "layers": _layer_label(layers), "from_factor": "moral", "to_kind": "grammatical",
                         "ei_before": lp.before, "ei_before_ci_low": blt.ci_low, "ei_before_ci_high": blt.ci_high,
                         "ei_after": lp.after, "ei_after_ci_low": alt.ci_low, "ei_after_ci_high": alt.ci_high,
                         "repair_fraction": lp.estimate, "ci_low": lp.ci_low, "ci_high": lp.ci_high,
                         "loss_delta": loss_delta})
            readouts_after.append(after_df[["item_id", "template_id", "kind", "readout", "sentence_logprob"]]
                                  .assign(method=name))
            for r in rep[rep.measure == "selectivity"].itertuples(index=False):
                sel_rows.append({"method": name, "kind": r.from_factor, "estimate": r.estimate,
                                 "ci_low": r.ci_low, "ci_high": r.ci_high})
            log.info("ablation %s (%s, layers %s): repair %.3f, %.0f s", name, rule, _layer_label(layers),
                     summary[name]["repair_fraction"], time.perf_counter() - t0)
        primary = f"moral_{cfg.primary_rule}"
        if primary not in after_dfs:
            raise RuntimeError(f"the primary ablation {primary} could not run: {skipped.get(primary)}")
        rand_rows, p_values = self._random_controls(before_df, after_dfs[primary])
        for name in summary:
            summary[name]["random_p_value"] = None  # random controls exist for the primary ablation only
        for row in rows:
            primary_cloze = row["method"] == primary and row["readout"] == before_readout
            row["random_p_value"] = p_values.get(f"moral_to_{row['to_kind']}") if primary_cloze else None
        summary[primary]["random_p_value"] = p_values.get("pooled")
        summary[primary]["random_p_value_cells"] = {k: v for k, v in p_values.items() if k != "pooled"}
        _save_csv(pd.DataFrame(rows), self.out / "ablation.csv")
        _save_csv(pd.concat(readouts_after, ignore_index=True), self.out / "ablation_readouts.csv")
        _save_csv(pd.DataFrame(sel_rows), self.out / "selectivity.csv")
        _save_csv(rand_rows, self.out / "ablation_random.csv")
        pooled = rand_rows.groupby("index").repair_fraction.mean()
        summary["random"] = {"n": int(cfg.n_random), "repair_fraction_mean": float(pooled.mean()),
                             "repair_fraction_sd": float(pooled.std(ddof=1)) if len(pooled) > 1 else 0.0,
                             "control_frames": int(self._control_frames()), "rule": cfg.primary_rule}
        summary["primary"] = primary
        summary["skipped"] = skipped
        summary["baseline_neutral_loss"] = base_loss
        self.metrics["ablation"] = summary

    def _control_frames(self) -> int:
        n = len(self.stimuli.frames())
        return min(n, self.cfg.control_frames) if self.cfg.control_frames else n

    def _projection(self, kind: str, rule: str) -> tuple[list[int], Callable[[], contextlib.AbstractContextManager] | None]:
        """Layers and hook factory projecting `kind`'s direction out: each layer's own direction for best/band,
        the best layer's direction at every layer for `all` (a single direction, as weight orthogonalisation).
        The factory is None when a direction is degenerate (zero), which happens where activations are constant."""
        probe = self.probes[kind]
        layers = _layers_for(rule, probe.best_layer, self.model.info.n_layers, self.cfg.band)
        vecs = {layer: torch.from_numpy(probe.direction(probe.best_layer if rule == "all" else layer)).float()
                for layer in layers}
        if any(float(v.norm()) < 0.5 for v in vecs.values()):
            return layers, None
        return layers, lambda: ablate(self.model.bridge, vecs)

    def _leace(self, layers: list[int]) -> Callable[[], contextlib.AbstractContextManager]:
        """LEACE erasers fitted per layer on the moral prompts' activations with moral good/neutral/bad labels."""
        x, meta = self.kind_data("moral")
        labels = meta["moral"].to_numpy() + 1  # three classes 0/1/2
        erasers = {layer: fit_leace(x[:, layer], labels) for layer in layers}
        return lambda: leace(self.model.bridge, erasers)

    def _neutral_loss(self, prompts: list, ctx: Callable[[], contextlib.AbstractContextManager] | None) -> float:
        """Mean per-token loss (nats) on the neutral texts, with an intervention if given."""
        df = measure(self.model, prompts, [TEXT_TEMPLATE], batch_size=self.cfg.batch_size, intervention=ctx)
        return float(-df["sentence_logprob"].mean())

    def _random_controls(self, before_df: pd.DataFrame, moral_after: pd.DataFrame
                         ) -> tuple[pd.DataFrame, dict[str, float]]:
        """Repair by >= 20 seeded random unit directions under the primary rule, on a control subset of frames
        (moral good/bad items, grammatical and economic prompts); the moral repair on the same subset is the
        observed value for the empirical p-value."""
        cfg = self.cfg
        prompts, tmpls = self.ablation_prompts(self._control_frames(), (-1, 1), TARGETS)
        keep = {(p.item_id, p.template_id) for p in prompts}

        def subset(df: pd.DataFrame) -> pd.DataFrame:
            return df[np.array([(i, t) in keep for i, t in zip(df.item_id, df.template_id, strict=True)])]

        human = self.human_norm()
        before = self._ei(subset(before_df))
        moral = repair(before, self._ei(subset(moral_after)), human, cells=[("moral", k) for k in TARGETS])
        observed = moral[moral.measure == "repair_fraction"].set_index("to_kind").estimate
        d_model, n_layers = self.model.info.d_model, self.model.info.n_layers
        layers = _layers_for(cfg.primary_rule, self.probes["moral"].best_layer, n_layers, cfg.band)
        rows = []
        for i, vec in enumerate(random_unit_directions(cfg.n_random, d_model, cfg.seed + 1000)):
            v = torch.from_numpy(vec).float()
            ctx = lambda v=v: ablate(self.model.bridge, {layer: v for layer in layers})  # noqa: E731
            after = self._ei(measure(self.model, prompts, tmpls, batch_size=cfg.batch_size, intervention=ctx,
                                     progress=False))
            rep = repair(before, after, human, cells=[("moral", k) for k in TARGETS])
            for r in rep[rep.measure == "repair_fraction"].itertuples(index=False):
                rows.append({"index": i, "to_kind": r.to_kind, "repair_fraction": r.estimate,
                             "moral_repair_fraction_same_subset": float(observed[r.to_kind])})
            log.info("random control %d/%d done", i + 1, cfg.n_random)
        df = pd.DataFrame(rows)
        p = {f"moral_to_{k}": empirical_p_value(float(observed[k]), df[df.to_kind == k].repair_fraction.to_numpy())
             for k in TARGETS}
        p["pooled"] = empirical_p_value(float(observed.mean()), df.groupby("index").repair_fraction.mean().to_numpy())
        return df, p

    @staticmethod
    def _summarise(rule: str, layers: list[int], before: EIResult, after: EIResult, human: EIResult,
                   rep: pd.DataFrame, loss_delta: float) -> dict[str, Any]:
        """metrics.json entry for one ablation; the headline repair is the mean over the two target cells."""
        rf = rep[rep.measure == "repair_fraction"]
        sel = rep[rep.measure == "selectivity"].set_index("from_factor")
        pooled = _pooled_repair(before, after, human, TARGETS)
        return {
            "rule": rule, "layers": layers, "repair_fraction": pooled[0], "ci_low": pooled[1], "ci_high": pooled[2],
            "cells": {f"moral_to_{r.to_kind}": {"ei_before": r.before, "ei_after": r.after,
                                                "repair_fraction": r.estimate, "ci_low": r.ci_low,
                                                "ci_high": r.ci_high} for r in rf.itertuples(index=False)},
            "selectivity": {k: float(sel.loc[k, "estimate"]) for k in sel.index},
            "selectivity_ci": {k: [float(sel.loc[k, "ci_low"]), float(sel.loc[k, "ci_high"])] for k in sel.index},
            "loss_delta": loss_delta,
        }

    # ---------------------------------------------------------------- all of it
    def run(self) -> dict[str, Any]:
        """capture -> probes -> behavioural EI -> ablation -> metrics.json, config.json, report.html."""
        from entangle.report import build_report  # noqa: PLC0415

        folder = RunFolder(self.out)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        with _logging_to(self.out / "run.log"):
            log.info("entangle %s: model %s, %d items in %d frames", __version__, self.model.info.name,
                     len(self.stimuli), len(self.stimuli.frames()))
            folder.write_config(self.config_record())
            for stage in (self.run_capture, self.run_probes, self.run_behavioural, self.run_ablation):
                ts = time.perf_counter()
                stage()
                log.info("%s done in %.0f s", stage.__name__, time.perf_counter() - ts)
            self.metrics["run"] = {"entangle_version": __version__, "started": started.isoformat(),
                                   "finished": datetime.now(UTC).isoformat(),
                                   "wall_seconds": round(time.perf_counter() - t0, 1),
                                   "model": self.model.info.name, "device": self.model.info.device}
            folder.write_metrics(self.metrics)
            build_report(self.out)
            log.info("report written: %s", self.out / "report.html")
        return self.metrics

    def config_record(self) -> dict[str, Any]:
        return {**asdict(self.cfg), "model_info": self.model.info.to_dict(),
                "stimuli": {"source": self.stimuli.source, "sha256": self.stimuli.sha256,
                            "n_items": len(self.stimuli), "n_frames": len(self.stimuli.frames())}}


def _pooled_repair(before: EIResult, after: EIResult, human: EIResult, targets: tuple[str, ...]
                   ) -> tuple[float, float, float]:
    """Mean repair fraction over the target cells, (EI_b - EI_a) / (EI_b - EI_human), with a paired bootstrap CI.

    The human EI enters as its point value (the design norm has no draws; imported ratings' own uncertainty is
    in the per-cell intervals of `metrics.repair`)."""
    est, draws = [], []
    for k in targets:
        eb, ea, eh = before.cell("moral", k), after.cell("moral", k), human.cell("moral", k)
        db, da = before.boot_cell("moral", k), after.boot_cell("moral", k)
        with np.errstate(invalid="ignore", divide="ignore"):
            est.append((eb - ea) / (eb - eh))
            draws.append((db - da) / (db - eh))
    d = np.nanmean(np.vstack(draws), axis=0)
    lo, hi = percentile_ci(d[np.isfinite(d)])
    return float(np.nanmean(est)), float(lo), float(hi)


def _row(df: pd.DataFrame, cols: list[str]) -> dict[str, Any]:
    return {c: (int(df.iloc[0][c]) if c == "layer" else float(df.iloc[0][c])) for c in cols} if len(df) else {}


def summary_lines(run_dir: str | Path) -> list[str]:
    """The headline figures of a finished run, one line each (printed by `entangle run`); n/a: not measured."""
    from entangle.report import fmt  # noqa: PLC0415
    from entangle.report.metrics import EntanglementMetrics  # noqa: PLC0415

    folder = RunFolder(run_dir)
    m = EntanglementMetrics.parse(Block.of(folder, folder.metrics()))
    lines = [f"readout: {m.judgement_readout} ({m.readout_evidence.get('reason', '')})"]
    for p in m.probes.values():
        lines.append(f"probe {p.kind}: best layer {p.best_layer}, CV accuracy "
                     f"{fmt.est(p.cv_accuracy, p.ci_low, p.ci_high, 3)}")
    for k in TARGETS:
        if (c := m.cells().get(f"moral_to_{k}")) is not None:
            lines.append(f"EI(moral -> {k}) = {fmt.est(c.ei, c.ci_low, c.ci_high, 3)}, "
                         f"human {fmt.num(c.human_ei, 3)}, "
                         f"excess CI [{fmt.num(c.excess_ci_low, 3)}, {fmt.num(c.excess_ci_high, 3)}]")
    if (a := m.ablation.primary_method if m.ablation else None) is not None:
        lines.append(f"ablation {a.name}: repair {fmt.est(a.repair_fraction, a.ci_low, a.ci_high, 3)}, "
                     f"random-direction {fmt.p_value(a.random_p_value)}")
    lines.append(f"wall time: {fmt.num(m.run.wall_seconds, 0)} s")
    return lines


def run(cfg: RunConfig, model: LoadedModel | None = None) -> Path:
    """Run the whole experiment into `cfg.out`; returns the folder."""
    Experiment(cfg, model).run()
    return Path(cfg.out)


