"""The causal test: find a moral direction that carries the model's own moral judgement (positive control, held-out
frames), then ask whether projecting it out repairs the valid entanglement cells beyond matched nulls, at what cost.

Stages, each writing its table: candidates -> attribution pre-screen -> exact ablation on selection frames ->
positive control on held-out frames -> repair on valid cells with variance-matched and shuffled-label nulls ->
control directions, LEACE per position group, weight orthogonalisation (= the all-layer hook ablation).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from entangle.analysis.repair import mean_repair, repair
from entangle.engine import array_hash, measure, text_loss
from entangle.prompts import build_prompts, templates
from entangle.studies.entanglement.candidates import (
    Candidate,
    fit_candidates,
    fit_direction,
)
from entangle.studies.entanglement.effects import LOGPROB_VIOLATION, kept
from entangle.studies.entanglement.nulls import (
    cell_repair,
    p_value,
    readouts_per_direction,
    shuffled_dom,
    variance_matched,
)
from entangle.studies.entanglement.selection import (
    Filters,
    Screened,
    ablation_of,
    attribution_matrix,
    energy_share,
    estimated_kept,
    rank_agreement,
    screened_table,
)

if TYPE_CHECKING:
    from entangle.studies.entanglement.pipeline import Experiment

log = logging.getLogger("entangle")
TARGETS = ("grammatical", "economic")


def split_frames(frames: list[str], n_selection: int | None) -> tuple[list[str], list[str]]:
    """Selection frames (every k-th, so all stimulus kinds appear) and held-out frames (the rest); `None` selects on
    a quarter of the frames, at most 16."""
    if n_selection is None:
        n_selection = min(16, len(frames) // 4)
    n_selection = max(2, min(n_selection, len(frames) - 2))
    step = len(frames) / n_selection
    sel = [frames[int(i * step)] for i in range(n_selection)]
    return sel, [f for f in frames if f not in set(sel)]


class Causal:
    """The causal stages of one entanglement run (state shared with its Experiment)."""

    def __init__(self, ex: Experiment):
        self.ex, self.cfg, self.model = ex, ex.cfg, ex.model
        self.style = ex.acts.manifest["readout_style"]
        self.sel, self.held = split_frames(ex.stimuli.frames(), self.cfg.selection_frames)
        self.t1 = templates(self.style, per_kind=1)
        self.filters = Filters()

    # ------------------------------------------------------------------ helpers
    def items(self, frames: list[str], **levels: tuple[int, ...]) -> list:
        keep = set(frames)
        return [it for it in self.ex.stimuli.items
                if it.frame in keep and all(getattr(it, k) in v for k, v in levels.items())]

    def prompts(self, items: list, kinds: tuple[str, ...] | None = None) -> list:
        tm = [t for t in self.t1 if kinds is None or t.kind in kinds]
        return build_prompts(items, tm, self.model.tokenizer)

    def after(self, prompts: list, vector: np.ndarray, tag: str) -> pd.DataFrame:
        return measure(self.model, prompts, self.t1, batch_size=self.cfg.batch_size,
                       intervention=ablation_of(self.model, vector), cache_dir=self.cfg.cache_dir,
                       intervention_key=f"ablate-all:{tag}:{array_hash(vector)}", progress=self.cfg.progress,
                       desc=f"ablate {tag}")

    def loss_delta(self, vector: np.ndarray) -> float:
        """Change in mean per-token loss on neutral text when `vector` is projected out everywhere (cached)."""
        texts, cache, bs = self.ex.neutral_texts(), self.cfg.cache_dir, self.cfg.batch_size
        base = float(text_loss(self.model, texts, batch_size=bs, cache_dir=cache).mean())
        return float(text_loss(self.model, texts, batch_size=bs, intervention=ablation_of(self.model, vector),
                               cache_dir=cache, intervention_key=f"ablate-all:{array_hash(vector)}").mean()) - base

    def moral_rows(self, position: str) -> np.ndarray:
        """Cache rows of the moral prompts with a moral act on the selection frames (one row per item at sentence
        positions, which are the same under every template)."""
        pr = self.ex.acts.prompts
        rows = np.flatnonzero((pr["frame"].isin(self.sel) & (pr["moral"] != 0) & (pr["kind"] == "moral")).to_numpy())
        if position != "last":
            rows = rows[np.unique(pr["item_row"].to_numpy()[rows], return_index=True)[1]]
        return rows

    # ------------------------------------------------------------------ stages
    def candidates(self) -> list[Candidate]:
        acts, pr = self.ex.acts, self.ex.acts.prompts
        data = {}
        for position in acts.manifest["positions"]:
            rows = self.moral_rows(position)
            data[position] = (acts.at(position, rows), pr["moral"].to_numpy()[rows])
        t0 = time.perf_counter()
        cands = fit_candidates(data, range(1, self.model.info.n_layers + 1), self.cfg.methods)
        log.info("%d candidate directions in %.0f s", len(cands), time.perf_counter() - t0)
        return cands

    def screen(self, cands: list[Candidate]) -> list[Screened]:
        """Attribution estimate for all; exact ablation for the best few by that estimate, the best of each method,
        and per read position the difference-of-means direction that separates good from bad most (a candidate to
        test, not a selection: the choice is made on the exact causal effect)."""
        moral_items = self.items(self.sel, moral=(-1, 1))
        M, effect = attribution_matrix(self.model, self.prompts(moral_items, ("moral",)), self.t1,
                                       batch_size=max(4, self.cfg.batch_size // 4), cache_dir=self.cfg.cache_dir)
        est = estimated_kept(M, effect, cands)
        energy = self.energy(cands)
        order = [i for i in np.argsort(np.abs(est)) if energy[i] <= self.cfg.max_energy_share]
        order = order or list(np.argsort(energy)[: self.cfg.n_exact])  # none is light enough: try the lightest
        chosen = order[: self.cfg.n_exact]
        for method in self.cfg.methods:  # the best-estimated of each method, for the comparison
            best = next((i for i in order if cands[i].method == method), None)
            if best is not None and best not in chosen:
                chosen.append(best)
        for position in dict.fromkeys(c.position for c in cands):
            dom = [i for i in order if cands[i].method == "dom" and cands[i].position == position]
            if dom:
                best = max(dom, key=lambda i: cands[i].separation)
                if best not in chosen:
                    chosen.append(best)
        prompts = self.prompts(self.items(self.sel[: self.cfg.exact_frames], moral=(-1, 1), economic=(-1, 1)))
        before = self.ex.baseline(prompts)
        out = []
        for i in chosen:
            c = cands[i]
            k = kept(before, self.after(prompts, c.vector, c.label), n_boot=self.cfg.n_boot, seed=self.cfg.seed)
            loss = self.loss_delta(c.vector)
            econ, gram = k.get("economic"), k.get(LOGPROB_VIOLATION)
            out.append(Screened(c, float(est[i]), k["moral"], econ, gram, loss, self.filters.ok(econ, gram, loss)))
            log.info("exact %s: moral kept %.2f (estimated %.2f), loss %+.3f", c.label, k["moral"].kept, est[i], loss)
        table = pd.DataFrame([{"method": c.method, "position": c.position, "layer": c.layer, "estimated_kept": e,
                               "separation": c.separation, "energy_share": s,
                               "screened_out": s > self.cfg.max_energy_share}
                              for c, e, s in zip(cands, est, energy, strict=True)])
        self.ex.save_table("candidates", table)
        self.ex.save_table("selection", screened_table(out))
        self.rank_rho = rank_agreement([s.estimated_kept for s in out], [s.moral.kept for s in out])
        return out

    def energy(self, cands: list[Candidate]) -> np.ndarray:
        """Each candidate's largest share of residual energy over layers (selection frames, last token and sentence
        mean of the moral prompts, from the cache)."""
        pr, acts = self.ex.acts.prompts, self.ex.acts
        rows = np.flatnonzero((pr["frame"].isin(self.sel) & (pr["kind"] == "moral")).to_numpy())[:256]
        sample = [acts.at("last", rows)] + ([acts.at("judged_mean", rows)] if "judged_mean" in acts.acts else [])
        return energy_share(np.stack([c.vector for c in cands]), sample)

    def positive_control(self, chosen: Screened) -> dict[str, Any]:
        prompts = self.prompts(self.items(self.held))
        before = self.ex.baseline(prompts)
        after = self.after(prompts, chosen.candidate.vector, chosen.candidate.label)
        self.held_before, self.held_after = before, after
        k = kept(before, after, n_boot=self.cfg.n_boot, seed=self.cfg.seed)
        c = chosen.candidate
        passed = bool(chosen.passes_filters and np.isfinite(k["moral"].ci_high)
                      and abs(k["moral"].kept) <= self.cfg.kept_threshold
                      and k["moral"].ci_high <= self.cfg.kept_threshold)
        pc = {"method": c.method, "position": c.position, "layer": c.layer,
              "moral_effect_kept": k["moral"].kept, "ci_low": k["moral"].ci_low, "ci_high": k["moral"].ci_high,
              "moral_effect_before": k["moral"].before, "moral_effect_after": k["moral"].after,
              "passed": passed, "threshold": self.cfg.kept_threshold,
              "threshold_rule": "direction passes the collateral filters on the selection frames and the upper end "
                                "of the held-out interval of the moral effect kept is <= threshold",
              "passes_filters": chosen.passes_filters,
              "selection_frames": len(self.sel), "heldout_frames": len(self.held), "loss_delta": chosen.loss_delta,
              "selection_estimate_rank_spearman": self.rank_rho,
              "kept": {name: v.to_dict() for name, v in k.items()},
              "filters": {"max_loss_delta": self.filters.max_loss_delta,
                          "min_other_kept": self.filters.min_other_kept, "grammar_contrast": LOGPROB_VIOLATION}}
        pc.update(self.diagnostics(c))
        return pc

    def diagnostics(self, c: Candidate) -> dict[str, Any]:
        """Does the direction separate morally good from bad items on each kind's prompts? AUC of the projection of
        the last prompt token's activation at the direction's layer (held-out frames, read from the cache)."""
        from entangle.analysis.stats import auc  # noqa: PLC0415

        acts, pr = self.ex.acts, self.ex.acts.prompts
        out: dict[str, Any] = {"separates_on": {}}
        for kind in ("moral", "economic", "grammatical"):
            rows = np.flatnonzero((pr["frame"].isin(self.held) & (pr["kind"] == kind) & (pr["moral"] != 0)).to_numpy())
            out["separates_on"][kind] = auc(acts.at("last", rows, c.layer) @ c.vector, pr["moral"].to_numpy()[rows])
        return out

    def repair(self, chosen: Screened) -> tuple[dict[str, Any], list[str]]:
        """Repair on the valid cells of the held-out frames, raw b_m before and after beside every ratio."""
        ex = self.ex
        before = ex.ei_of(self.held_before)
        after = ex.ei_of(self.held_after)
        gate = ex.metrics["entanglement"]["validity"]["cells"]
        valid = [k for k in TARGETS if gate.get(f"{self.style}.moral_to_{k}", {}).get("valid")]
        human = ex.human_norm()
        cells: dict[str, Any] = {}
        if valid:
            rep = repair(before, after, human, cells=[("moral", k) for k in valid])
            bt, at = before.table().set_index(["from_factor", "to_kind"]), after.table().set_index(["from_factor", "to_kind"])
            for r in rep[rep.measure == "repair_fraction"].itertuples(index=False):
                key = (r.from_factor, r.to_kind)
                cells[f"moral_to_{r.to_kind}"] = {
                    "repair_fraction": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high,
                    "ei_before": r.before, "ei_after": r.after,
                    "b_from_before": float(bt.loc[key, "coef_raw"]), "b_from_after": float(at.loc[key, "coef_raw"]),
                    "b_from_before_ci": [float(bt.loc[key, "coef_raw_ci_low"]), float(bt.loc[key, "coef_raw_ci_high"])],
                    "b_from_after_ci": [float(at.loc[key, "coef_raw_ci_low"]), float(at.loc[key, "coef_raw_ci_high"])]}
        mean, lo, hi = mean_repair(before, after, human, valid)
        summary = {"repair_fraction": mean, "ci_low": lo, "ci_high": hi, "cells": cells,
                   "valid_cells": [f"moral_to_{k}" for k in valid], "readout": self.style,
                   "interval": "paired frame bootstrap of the mean over the valid cells"}
        return summary, valid

    def nulls(self, chosen: Screened, valid: list[str]) -> dict[str, Any]:
        """Repair by the chosen direction vs variance-matched and shuffled-label directions on the control subset."""
        cfg, c = self.cfg, chosen.candidate
        frames = self.held[: cfg.null_frames]
        prompts = []
        for kind in valid:
            other = {"economic": (0,), "grammatical": (1,)}
            levels = {"moral": (-1, 1), kind: (min(self.level(kind)), max(self.level(kind)))}
            levels.update({f: v for f, v in other.items() if f != kind})
            prompts += self.prompts(self.items(frames, **levels), (kind,))
        before = self.ex.baseline(prompts)["readout"].to_numpy(dtype=float)
        pr, acts = self.ex.acts.prompts, self.ex.acts
        rows = np.flatnonzero((pr["frame"].isin(self.sel) & (pr["kind"] == "moral") & (pr["moral"] != 0)).to_numpy())
        x = acts.at(c.position, rows, c.layer)
        y, fr = pr["moral"].to_numpy()[rows], pr["frame"].to_numpy()[rows]
        draws = {"variance_matched": variance_matched(x, cfg.n_null, cfg.seed + 1),
                 "shuffled_dom": shuffled_dom(x, y, fr, cfg.n_null, cfg.seed + 2)}
        human = {k: self.ex.human_norm().cell("moral", k) for k in valid}
        obs_after = readouts_per_direction(self.model, prompts, self.t1, c.vector[None], rows_per_pass=cfg.null_rows,
                                           cache_dir=cfg.cache_dir)
        observed = cell_repair(prompts, before, obs_after, valid, human).groupby("draw").repair.mean().iloc[0]
        out: dict[str, Any] = {"observed_repair": float(observed), "frames": len(frames), "n_prompts": len(prompts)}
        tables = []
        for name, dirs in draws.items():
            t0 = time.perf_counter()
            after = readouts_per_direction(self.model, prompts, self.t1, dirs, rows_per_pass=cfg.null_rows,
                                           progress=cfg.progress, cache_dir=cfg.cache_dir)
            rep = cell_repair(prompts, before, after, valid, human).assign(null=name)
            tables.append(rep)
            pooled = rep.groupby("draw").repair.mean().to_numpy()
            p, res = p_value(float(observed), pooled)
            out[name] = {"kind": name, "n": len(dirs), "p_value": p, "p_resolution": res,
                         "median_repair": float(np.nanmedian(pooled)), "seconds": round(time.perf_counter() - t0, 1)}
            log.info("null %s: p = %.3f (resolution %.3f)", name, p, res)
        self.ex.save_table("ablation_nulls", pd.concat(tables, ignore_index=True))
        return out

    def level(self, kind: str) -> tuple[int, ...]:
        from entangle.schema import FACTOR_LEVELS  # noqa: PLC0415

        return FACTOR_LEVELS[kind]

    def control_direction(self, chosen: Screened, kind: str) -> np.ndarray:
        """DoM direction of another kind's factor at the chosen layer (selection frames): at the chosen position when
        that factor varies there, else at the last token of the kind's own prompts (an act span, for instance, is
        the same under every economic level)."""
        pr, acts, c = self.ex.acts.prompts, self.ex.acts, chosen.candidate
        lo, hi = min(self.level(kind)), max(self.level(kind))
        for position, prompt_kind in ((c.position, kind if c.position == "last" else "moral"), ("last", kind)):
            rows = np.flatnonzero((pr["frame"].isin(self.sel) & (pr["kind"] == prompt_kind)
                                   & pr[kind].isin([lo, hi])).to_numpy())
            y = np.where(pr[kind].to_numpy()[rows] == hi, 1, -1)
            v = fit_direction(acts.at(position, rows, c.layer), y, "dom")
            if np.linalg.norm(v) > 0:
                return v.astype(np.float32)
        raise ValueError(f"no {kind} direction at layer {c.layer}: its levels do not differ in the activations")
