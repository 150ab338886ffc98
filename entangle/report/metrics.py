"""The run folder as the report reads it: metrics.json and config.json as typed blocks, validated once on read.

A block that is absent reads as None ("not measured" for that block only); a block of the wrong shape raises
`RunFolderError` naming the field, so the report refuses the folder instead of printing a half-read one. Unknown
keys are ignored. Layout and meaning of every key: docs/RUN_FOLDER.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from entangle.report.metrics_causal import (
    Ablation,
    Patching,
    PositiveControl,
    Steering,
    pair,
)
from entangle.runfolder import Block, RunFolder, RunFolderError
from entangle.schema import KINDS

TABLES: tuple[str, ...] = (
    "probes", "cosine", "cross_decoding", "leakage", "ei", "excess", "validity", "level_means", "candidates",
    "selection", "ablation_nulls", "steering_moral", "amnesic",
)
"""The entanglement study's tables the report reads (top level of the run folder, `<name>.csv`); the patching
table is read where `metrics.patching.file` names it."""

MORAL_CELLS: tuple[str, ...] = ("moral_to_grammatical", "moral_to_economic")


@dataclass(frozen=True)
class RunInfo:
    """metrics.json `run`: which entangle, when, how long, on what."""

    entangle_version: str | None
    started: str | None
    finished: str | None
    wall_seconds: float | None
    model: str | None
    device: str | None

    @classmethod
    def parse(cls, b: Block | None) -> RunInfo:
        """The `run` block; all None where it is absent."""
        return (b or Block({})).scalars(cls)


@dataclass(frozen=True)
class Settings:
    """The parts of config.json the report prints: the model's record (`model_info`) and the stimuli."""

    model: str | None
    model_info: Mapping[str, Any]
    name: str | None
    source: str | None
    dtype: str | None
    n_layers: int | None
    d_model: int | None
    stimuli: Mapping[str, Any]

    @classmethod
    def read(cls, folder: RunFolder) -> Settings:
        """config.json of `folder` ({} when absent); RunFolderError where it does not validate."""
        b = Block(folder.config(), "", folder.path / "config.json")
        mi, st = b.block("model_info") or Block({}), b.block("stimuli")
        return mi.scalars(cls, model=b.text("model"), model_info=dict(mi.data), stimuli=dict(st.data) if st else {})


def model_name(settings: Settings, run: RunInfo) -> str:
    """The model's name: config.json `model_info.name`, else metrics.json `run.model`, else config.json `model`."""
    return settings.name or run.model or settings.model or "unknown model"


@dataclass(frozen=True)
class SelfCheck:
    """One entry of `self_checks`: the worst relative error, its tolerance, whether it passed, and any detail.

    `shared_prefix` nests its errors per pass (`plain`, `ablation`): the worst activation error is its relative
    error, and the worst readout error goes into `detail`."""

    name: str
    max_rel_error: float | None
    tolerance: float | None
    passed: bool
    detail: str | None

    @classmethod
    def parse(cls, name: str, b: Block) -> SelfCheck:
        passes = [x for k, x in b.blocks().items() if "acts_max_rel_error" in x.data]
        if not passes:
            return b.scalars(cls, name=name, passed=bool(b.flag("passed")), detail=b.text("compared"))
        acts = [v for x in passes if (v := x.number("acts_max_rel_error")) is not None]
        reads = [v for x in passes if (v := x.number("readout_max_abs_error")) is not None]
        tol = b.number("tolerance_readout_abs")
        detail = (f"readout max abs error {max(reads):.1e}" + (f" (tolerance {tol:.0e})" if tol is not None else "")
                  + f" over the {', '.join(k for k, x in b.blocks().items() if x in passes)} passes") if reads else None
        return cls(name, max(acts) if acts else None, b.number("tolerance_acts_rel"), bool(b.flag("passed")), detail)


@dataclass(frozen=True)
class Probe:
    """`probe.<kind>`: the probe at its best layer."""

    kind: str
    best_layer: int | None
    cv_accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    auc: float | None
    selectivity: float | None
    method: str | None

    @classmethod
    def parse(cls, kind: str, b: Block) -> Probe:
        ci = b.numbers("ci") or (None, None)
        if len(ci) != 2:
            raise RunFolderError(b.path, None, b.field("ci"), "expected [low, high]")
        return b.scalars(cls, kind=kind, ci_low=ci[0], ci_high=ci[1])


@dataclass(frozen=True)
class EICell:
    """`entanglement.behavioural.<readout>.<from>_to_<to>`: EI with its interval, the norm, the excess, the raw
    coefficient b_from with its interval, and (headline cells only) the validity gate and Holm-adjusted p."""

    ei: float | None
    ci_low: float | None
    ci_high: float | None
    human_ei: float | None
    excess: float | None
    excess_ci_low: float | None
    excess_ci_high: float | None
    coef_p: float | None
    b_from: float | None = None
    b_from_ci: tuple[float | None, float | None] = (None, None)
    valid: bool | None = None
    p_holm: float | None = None

    @classmethod
    def parse(cls, b: Block) -> EICell:
        return b.scalars(cls, b_from_ci=pair(b, "b_from_ci"))


@dataclass(frozen=True)
class MinimalPair:
    """`entanglement.logprob_minimal_pair`: the violation effect on the sentence log-prob within minimal pairs, and
    its moral interaction (the only log-prob grammaticality leak)."""

    violation_effect: float | None
    violation_ci_low: float | None
    violation_ci_high: float | None
    moral_interaction: float | None
    moral_interaction_ci_low: float | None
    moral_interaction_ci_high: float | None
    ratio_to_violation: float | None
    n_pairs: int | None
    valid: bool | None


@dataclass(frozen=True)
class Validity:
    """`entanglement.validity`: per `<readout>.<cell>`, whether the kind's own effect on that readout is non-null."""

    cells: Mapping[str, bool | None]
    grammatical_cloze_valid: bool | None

    @classmethod
    def parse(cls, b: Block) -> Validity:
        cells = (b.block("cells") or Block({})).blocks()
        return cls({k: x.flag("valid") for k, x in cells.items()}, b.flag("grammatical_cloze_valid"))


@dataclass(frozen=True)
class Representational:
    """`entanglement.representational."leakage.moral_to_<to>"` or `"cosine.<a>_<b>"` at the moral best layer."""

    name: str
    layer: int | None
    value: float | None
    ci_low: float | None
    ci_high: float | None

    @classmethod
    def parse(cls, name: str, b: Block) -> Representational:
        return b.scalars(cls, name=name, value=b.number("leakage" if name.startswith("leakage.") else "cosine"))


@dataclass(frozen=True)
class EntanglementMetrics:
    """The entanglement study's blocks of metrics.json (`readout`, `self_checks`, `probe`, `entanglement`,
    `ablation`, `steering`, `patching`) and the run record."""

    run: RunInfo
    readout_style: str | None
    readout_evidence: Mapping[str, Any]
    self_checks: tuple[SelfCheck, ...] | None
    probes: Mapping[str, Probe]
    behavioural: Mapping[str, Mapping[str, EICell]]
    norm_source: str
    representational: tuple[Representational, ...]
    validity: Validity | None
    minimal_pair: MinimalPair | None
    monotonicity: Mapping[str, bool | None]
    positive_control: PositiveControl | None
    ablation: Ablation | None
    steering: Steering | None
    patching: Patching | None

    @classmethod
    def parse(cls, root: Block) -> EntanglementMetrics:
        run, ro, sc, pr = (root.block(k) for k in ("run", "readout", "self_checks", "probe"))
        ent = root.block("entanglement") or Block({}, "entanglement", root.path)
        beh, norm, rep, val, mp, mono, pc = (ent.block(k) for k in (
            "behavioural", "human_norm", "representational", "validity", "logprob_minimal_pair", "monotonicity",
            "positive_control"))
        abl, steer, patch = root.block("ablation"), root.block("steering"), root.block("patching")
        steer_m = steer.block("moral") if steer else None
        evidence = ro.block("evidence") if ro else None
        if evidence:
            evidence.text("reason")
        return cls(
            run=RunInfo.parse(run),
            readout_style=ro.text("style") if ro else None,
            readout_evidence=dict(evidence.data) if evidence else {},
            self_checks=tuple(SelfCheck.parse(k, b) for k, b in sc.blocks().items()) if sc else None,
            probes={k: Probe.parse(k, b) for k, b in (pr.blocks(KINDS) if pr else {}).items()},
            behavioural={r: {c: EICell.parse(x) for c, x in cells.blocks().items()}
                         for r, cells in (beh.blocks() if beh else {}).items()},
            norm_source=(norm.text("source") if norm else None) or "design",
            representational=tuple(Representational.parse(k, b) for k, b in (rep.blocks() if rep else {}).items()),
            validity=Validity.parse(val) if val else None,
            minimal_pair=mp.scalars(MinimalPair) if mp else None,
            monotonicity={k: mono.flag(k) for k in mono.data} if mono else {},
            positive_control=PositiveControl.parse(pc) if pc else None,
            ablation=Ablation.parse(abl) if abl else None,
            steering=Steering.parse(steer_m) if steer_m else None,
            patching=Patching.parse(patch) if patch else None,
        )

    @classmethod
    def of(cls, metrics: Mapping[str, Any]) -> EntanglementMetrics:
        """Parse a metrics dict that is not tied to a folder (e.g. built in a notebook)."""
        return cls.parse(Block(metrics))

    @property
    def judgement_readout(self) -> str:
        """The judgement readout (cloze or likert): `readout.style`, else the first non-logprob readout."""
        if self.readout_style:
            return self.readout_style
        return next((r for r in self.behavioural if r != "logprob"), "cloze")

    @property
    def design_norm(self) -> bool:
        return self.norm_source == "design"

    @property
    def norm_phrase(self) -> str:
        if self.design_norm:
            return "the design norm (EI_human = 0: no human ratings were used)"
        return f"human ratings ({self.norm_source.removeprefix('ratings:')})"

    def cells(self, readout: str | None = None) -> Mapping[str, EICell]:
        """The EI cells of `readout` (default: the judgement readout)."""
        return self.behavioural.get(readout or self.judgement_readout, {})

    @property
    def grammar_contrast(self) -> str:
        """The grammatical own-effect contrast the study's filter read (recorded with the filters; runs before it was
        recorded used the cloze one where the validity gate admitted it, else the sentence log-prob)."""
        pc = self.positive_control
        if pc and pc.filters and pc.filters.grammar_contrast:
            return pc.filters.grammar_contrast
        return "grammatical" if self.validity and self.validity.grammatical_cloze_valid else "grammatical_logprob"


@dataclass(frozen=True)
class EntanglementRun:
    """A run folder read for the entanglement section: typed metrics and settings, and its tables."""

    folder: RunFolder
    metrics: EntanglementMetrics
    settings: Settings
    tables: Mapping[str, pd.DataFrame | None]

    @classmethod
    def read(cls, folder: RunFolder, metrics: Mapping[str, Any] | None = None) -> EntanglementRun:
        """Validate the folder's metrics.json, config.json and tables; RunFolderError if any does not."""
        m = folder.metrics() if metrics is None else metrics
        parsed = EntanglementMetrics.parse(Block.of(folder, m))
        names = TABLES + ((parsed.patching.table_name,) if parsed.patching else ())
        return cls(folder, parsed, Settings.read(folder), {name: folder.table(name) for name in names})

    def table(self, name: str) -> pd.DataFrame | None:
        return self.tables.get(name)

    @property
    def model_name(self) -> str:
        return model_name(self.settings, self.metrics.run)

    @property
    def label(self) -> str:
        return f"{self.folder.path.name} ({self.model_name})"
