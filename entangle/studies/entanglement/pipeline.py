"""The entanglement study behind `entangle run`: a RunConfig in, one results folder out.

capture (cached, shared-prefix) -> probes per kind and layer -> behavioural entanglement vs the human norm with the
validity gate -> the causal test (entangle.studies.entanglement.causal: candidates, positive control, repair against
matched nulls, controls, steering) -> exports and the HTML report. Baselines are read from the capture cache.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from entangle import __version__
from entangle.analysis.entanglement import EIResult, behavioural_ei
from entangle.analysis.geometry import cosine_by_layer, leakage
from entangle.analysis.norms import design_norm, human_ei, load_norms
from entangle.analysis.probing import (
    ProbeResult,
    cross_decoding,
    fit_probes,
    kind_labels,
)
from entangle.analysis.repair import excess_ei
from entangle.analysis.validity import level_means, minimal_pair_logprob, validity_gate
from entangle.directions import Direction, direction_meta, save_direction
from entangle.engine import ActivationSet, capture, choose_style, readout_table
from entangle.engine.cache import DEFAULT_CACHE
from entangle.files import atomic_write
from entangle.models import LoadedModel, load_model
from entangle.runfolder import RunFolder
from entangle.schema import DATA_DIR
from entangle.stimuli import KINDS, StimulusSet, load_stimuli
from entangle.studies import study_config, study_module
from entangle.studies.base import StudyContext
from entangle.studies.entanglement.candidates import METHODS, Candidate
from entangle.studies.entanglement.amnesic import amnesic_check
from entangle.studies.entanglement.causal import Causal
from entangle.studies.entanglement.conditions import control_conditions, steering
from entangle.studies.entanglement.localisation import embedding_level, patching
from entangle.studies.entanglement.selection import select

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
    probe_methods: tuple[str, ...] = ("diff_means",)  # decodability per layer (reported); add "logistic" for both
    n_splits: int = 5
    n_boot: int = 1000
    seed: int = 0
    methods: tuple[str, ...] = METHODS   # candidate direction methods for the causal selection
    selection_frames: int | None = None  # frames the candidates are fitted and selected on (every k-th frame);
    #                                      None: a quarter of the frames, at most 16, so most frames stay held out
    n_exact: int = 4                    # candidates confirmed by exact ablation (plus the best of each method)
    max_energy_share: float = 0.05      # pre-screen: candidates carrying more of the residual energy are not tried
    exact_frames: int = 8               # selection frames the exact ablations of candidates run on
    kept_threshold: float = 0.5         # positive control: held-out moral effect kept, upper interval end <= this
    n_null: int = 99                    # draws per null (variance-matched, shuffled-label): p can reach 0.01
    null_frames: int = 4                # held-out frames of the null control subset
    null_rows: int = 256                # prompt rows per forward pass in the null draws
    control_frames: int = 8             # held-out frames for the control directions, LEACE and steering
    steer_alphas: tuple[float, ...] = (-1.0, -0.5, 0.5, 1.0)
    patch_frames: int = 4               # held-out frames whose good/bad pairs are patched (6 pairs each)
    patch_layer_step: int = 3           # patching map: every k-th layer
    patch_exact_pairs: int = 4          # pairs patched exactly, to check the attribution map
    studies: tuple[str, ...] = ("entanglement",)  # add "valueflow", "svo", "tradeoffs" to run them into the folder
    batch_size: int = 64                # prompts per forward pass (whole items: their prefix is shared)
    cache_dir: str = str(DEFAULT_CACHE)
    device: str = "cpu"
    dtype: str = "float32"
    device_map: str | None = None
    progress: bool = True


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
            style, evidence = choose_style(self.model, self.stimuli, batch_size=cfg.batch_size, cache_dir=cfg.cache_dir)
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
            for method in cfg.probe_methods:
                res = fit_probes(x, labels, meta["frame"].to_numpy(), kind, method=method, n_splits=cfg.n_splits,
                                 n_boot=cfg.n_boot, seed=cfg.seed)
                tables.append(res.table())
                self._export(res)
                if method == cfg.probe_methods[0]:
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
        # a layer where the read position carries no information (layer 0 at the last prompt token is the same
        # embedding for every item of a template) has no direction: it is left out rather than exported as zeros
        keep = [i for i, v in enumerate(res.directions) if np.linalg.norm(v) > 0]
        layers = [res.layers[i] for i in keep]
        cv = {"accuracy": res.accuracy[keep], "auc": res.auc[keep], "selectivity": res.selectivity[keep]}
        meta = direction_meta(
            self.model.info, kind=res.kind, method=res.method, layers=layers,
            position="last_prompt_token" if self.cfg.position == "last" else "judged_sentence_mean",
            stimuli_sha256=self.stimuli.sha256,
            cv_metrics=cv,
            templates=[t["id"] for t in self.acts.manifest["templates"] if t["kind"] == res.kind],
            extra={"best_layer": int(res.best_layer), "readout_style": self.acts.manifest["readout_style"],
                   "prompt_style": self.acts.manifest["readout_style"]},
        )
        direction = Direction(res.directions[keep].astype(np.float32), layers, res.kind, res.method, meta)
        save_direction(direction, self.out / "directions" / f"{res.kind}_{res.method}.safetensors")

    # ---------------------------------------------------------------- behavioural entanglement
    def human_norm(self) -> EIResult:
        """The human-norm baseline: imported ratings if configured, else the design norm (EI_human = 0)."""
        if self.human is None:
            stim_df = self.stimuli.to_frame().rename(columns={"id": "item_id"})
            if self.cfg.norms:
                imported = load_norms(self.cfg.norms, stim_df, n_boot=self.cfg.n_boot, seed=self.cfg.seed)
                self.human = human_ei(imported.ratings, stim_df, n_boot=self.cfg.n_boot, seed=self.cfg.seed,
                                      control_tokens=False)
                self.metrics["norms"] = imported.to_metrics(self.human)
            else:
                self.human = design_norm(stim_df)
        return self.human

    def run_behavioural(self) -> None:
        """EI matrix per readout vs the human norm (effect-coded, frame-bootstrap intervals), the validity gate with
        Holm control over the headline cells, level means with monotonicity, and the minimal-pair log-prob readout."""
        assert self.acts is not None
        human = self.human_norm()
        table = self.acts.readout_table()
        eis, excesses, gates, out = [], [], [], {}
        validity: dict[str, Any] = {}
        for readout, df in table.groupby("readout", sort=False):
            res = behavioural_ei(df, n_boot=self.cfg.n_boot, seed=self.cfg.seed)
            ex = excess_ei(res, human)
            eis.append(res.table().assign(readout=readout))
            excesses.append(ex.assign(readout=readout))
            cells = [("moral", k) for k in TARGETS if k in res.kinds] if readout != "logprob" else []
            gate = validity_gate(res, readout, cells) if cells else pd.DataFrame()
            gates.append(gate)
            g = gate.set_index("to_kind") if len(gate) else None
            for r in ex.itertuples(index=False):
                cell = res.table().set_index(["from_factor", "to_kind"]).loc[(r.from_factor, r.to_kind)]
                entry = {
                    "ei": r.ei_model, "ci_low": float(cell.ci_low), "ci_high": float(cell.ci_high),
                    "human_ei": r.ei_human, "excess": r.excess, "excess_ci_low": r.ci_low,
                    "excess_ci_high": r.ci_high, "coef_p": float(cell.coef_p), "b_from": float(cell.coef_raw),
                    "b_from_ci": [float(cell.coef_raw_ci_low), float(cell.coef_raw_ci_high)],
                }
                if g is not None and r.from_factor == "moral" and r.to_kind in g.index:
                    entry.update(valid=bool(g.loc[r.to_kind, "valid"]), p_holm=float(g.loc[r.to_kind, "p_holm"]))
                    validity[f"{readout}.moral_to_{r.to_kind}"] = {"valid": entry["valid"],
                                                                   "own_effect": float(g.loc[r.to_kind, "own_effect"])}
                out.setdefault(readout, {})[f"{r.from_factor}_to_{r.to_kind}"] = entry
        style = self.acts.manifest["readout_style"]
        self.save_table("ei", pd.concat(eis, ignore_index=True))
        self.save_table("excess", pd.concat(excesses, ignore_index=True))
        self.save_table("validity", pd.concat(gates, ignore_index=True))
        levels = level_means(table, n_boot=self.cfg.n_boot, seed=self.cfg.seed)
        self.save_table("level_means", levels)
        ent = self.metrics.setdefault("entanglement", {})
        ent["behavioural"] = out
        ent["validity"] = {"cells": validity, "grammatical_cloze_valid": bool(
            validity.get(f"{style}.moral_to_grammatical", {}).get("valid")),
            "rule": "a cell is valid when its kind's own effect on that readout has a frame-bootstrap interval "
                    "excluding 0; Holm correction over the valid headline cells"}
        mono = levels.dropna(subset=["monotone"]) if "monotone" in levels else levels.iloc[0:0]
        ent["monotonicity"] = {f"{r.readout}.{r.kind}": bool(r.monotone)
                               for r in mono.drop_duplicates(["readout", "kind"]).itertuples(index=False)}
        ent["logprob_minimal_pair"] = minimal_pair_logprob(self.acts.prompts, n_boot=self.cfg.n_boot,
                                                           seed=self.cfg.seed)
        ent["human_norm"] = {
            "source": human.source,
            "note": "design norm: a rater whose K judgement depends only on K's own factor (EI_human = 0); "
                    "no human ratings were supplied" if human.source == "design" else "imported human ratings",
        }

    def baseline(self, prompts: list) -> pd.DataFrame:
        """Readouts of `prompts` without intervention, read from the capture cache (no model run)."""
        assert self.acts is not None
        cached = self.acts.prompts.set_index(["item_id", "template_id"])
        keys = pd.MultiIndex.from_tuples([(p.item_id, p.template_id) for p in prompts])
        return cached.loc[keys].reset_index()

    def ei_of(self, prompts_df: pd.DataFrame, readout: str | None = None) -> EIResult:
        """EI from per-prompt readouts: the judgement readout by default, or "logprob" (grammatical only)."""
        style = self.acts.manifest["readout_style"]
        df = readout_table(prompts_df, style)
        return behavioural_ei(df[df.readout == (readout or style)], n_boot=self.cfg.n_boot, seed=self.cfg.seed)

    def neutral_texts(self) -> list[str]:
        """Unremarkable sentences whose loss measures an intervention's collateral damage."""
        return [t for t in NEUTRAL_TEXTS.read_text(encoding="utf-8").splitlines() if t.strip()]

    def save_table(self, name: str, df: pd.DataFrame) -> None:
        RunFolder(self.out).write_table(name, df)

    # ---------------------------------------------------------------- the causal test
    def run_causal(self) -> None:
        """Positive control first: find a direction that carries the moral judgement (selected on selection frames,
        reported on held-out frames); only if it passes, test repair of the valid cells against matched nulls."""
        cz = Causal(self)
        chosen = select(cz.screen(cz.candidates()))
        pc = {**cz.positive_control(chosen), "amnesic": amnesic_check(cz, chosen)}
        ent = self.metrics.setdefault("entanglement", {})
        ent["positive_control"] = pc
        name = f"moral_{chosen.candidate.method}"
        abl: dict[str, Any] = {"primary": name}
        if not pc["passed"]:
            abl[name] = {"tested": False, "reason": (
                f"no causal moral direction: the best candidate keeps {pc['moral_effect_kept']:.2f} of the moral "
                f"effect on held-out frames (interval up to {pc['ci_high']:.2f}, threshold {pc['threshold']}); "
                "repair is untested")}
        else:
            summary, valid = cz.repair(chosen)
            summary["tested"] = bool(valid)
            if valid:
                summary["null"] = cz.nulls(chosen, valid)
            else:
                summary["reason"] = "no valid cell: no target readout responds to its own factor"
            summary["loss_delta"] = chosen.loss_delta
            abl[name] = summary
        abl["controls"] = control_conditions(cz, chosen)
        self.metrics["ablation"] = abl
        self.metrics["steering"] = {"moral": steering(cz, chosen)}
        self.save_direction_of(chosen.candidate)
        self.metrics["patching"] = patching(self, cz.held[: self.cfg.patch_frames])
        self.metrics["entanglement"]["embedding"] = embedding_level(self)

    def save_direction_of(self, c: Candidate) -> None:
        """Export the selected causal moral direction with its provenance."""
        meta = direction_meta(
            self.model.info, kind="moral", method=f"causal_{c.method}", layers=[c.layer], position=c.position,
            stimuli_sha256=self.stimuli.sha256, cv_metrics={},
            templates=[t["id"] for t in self.acts.manifest["templates"] if t["kind"] == "moral"],
            extra={"best_layer": int(c.layer), "selected_by": "causal effect on selection frames (positive control)",
                   "readout_style": self.acts.manifest["readout_style"],
                   "prompt_style": self.acts.manifest["readout_style"]})
        save_direction(Direction(c.vector[None].astype(np.float32), [c.layer], "moral", f"causal_{c.method}", meta),
                       self.out / "directions" / "moral_causal.safetensors")

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
            for stage in (self.run_capture, self.run_probes, self.run_behavioural, self.run_causal):
                ts = time.perf_counter()
                stage()
                log.info("%s done in %.0f s", stage.__name__, time.perf_counter() - ts)
            self.metrics["run"] = {"entangle_version": __version__, "started": started.isoformat(),
                                   "finished": datetime.now(UTC).isoformat(),
                                   "wall_seconds": round(time.perf_counter() - t0, 1),
                                   "model": self.model.info.name, "device": self.model.info.device}
            folder.write_metrics(self.metrics)
            self.run_other_studies(folder)
            build_report(self.out)
            log.info("report written: %s", self.out / "report.html")
        return self.metrics

    def run_other_studies(self, folder: RunFolder) -> None:
        """The configured studies beyond this one, on the same model, into the same folder (metrics merged)."""
        ctx = StudyContext(model=self.model, folder=folder, cache_dir=Path(self.cfg.cache_dir), seed=self.cfg.seed,
                           batch_size=self.cfg.batch_size, n_boot=self.cfg.n_boot, progress=self.cfg.progress)
        for name in self.cfg.studies:
            if name == "entanglement":
                continue
            ts = time.perf_counter()
            mod = study_module(name)
            mod.run(ctx, study_config(name, folder.path)).save(folder)
            log.info("study %s done in %.0f s", name, time.perf_counter() - ts)

    def config_record(self) -> dict[str, Any]:
        return {**asdict(self.cfg), "model_info": self.model.info.to_dict(),
                "stimuli": {"source": self.stimuli.source, "sha256": self.stimuli.sha256,
                            "n_items": len(self.stimuli), "n_frames": len(self.stimuli.frames())}}


def _row(df: pd.DataFrame, cols: list[str]) -> dict[str, Any]:
    return {c: (int(df.iloc[0][c]) if c == "layer" else float(df.iloc[0][c])) for c in cols} if len(df) else {}


def run(cfg: RunConfig, model: LoadedModel | None = None) -> Path:
    """Run the whole experiment into `cfg.out`; returns the folder."""
    Experiment(cfg, model).run()
    return Path(cfg.out)


