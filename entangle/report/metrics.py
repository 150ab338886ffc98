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

from entangle.runfolder import Block, RunFolder, RunFolderError
from entangle.schema import KINDS

TABLES: tuple[str, ...] = (
    "probes", "cosine", "cross_decoding", "leakage", "readouts", "ei", "excess", "ablation", "ablation_random",
    "selectivity",
)
"""The entanglement study's tables (top level of the run folder, `<name>.csv`)."""

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
    """One entry of `self_checks`: the worst relative error, its tolerance, and whether it passed."""

    name: str
    max_rel_error: float | None
    tolerance: float | None
    passed: bool

    @classmethod
    def parse(cls, name: str, b: Block) -> SelfCheck:
        return b.scalars(cls, name=name, passed=bool(b.flag("passed")))


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
    """`entanglement.behavioural.<readout>.<from>_to_<to>`: EI with its interval, the norm and the excess."""

    ei: float | None
    ci_low: float | None
    ci_high: float | None
    human_ei: float | None
    excess: float | None
    excess_ci_low: float | None
    excess_ci_high: float | None
    coef_p: float | None


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
class RepairCell:
    """`ablation.<method>.cells.<cell>`: EI before and after, and the repair fraction with its interval."""

    ei_before: float | None
    ei_after: float | None
    repair_fraction: float | None
    ci_low: float | None
    ci_high: float | None
    ei_after_ci_low: float | None
    ei_after_ci_high: float | None


@dataclass(frozen=True)
class AblationMethod:
    """`ablation.<method>`: one ablation's repair (mean of the two moral cells), per-cell repair and its cost."""

    name: str
    rule: str | None
    layers: tuple[int, ...] | str
    repair_fraction: float | None
    ci_low: float | None
    ci_high: float | None
    cells: Mapping[str, RepairCell]
    selectivity: Mapping[str, float | None]
    selectivity_ci: Mapping[str, tuple[float | None, ...]]
    random_p_value: float | None
    loss_delta: float | None

    @classmethod
    def parse(cls, name: str, b: Block) -> AblationMethod:
        layers = b.text("layers") if isinstance(b.raw("layers"), str) else b.numbers("layers", integers=True)
        cells, sel, sel_ci = (b.block(k) or Block({}) for k in ("cells", "selectivity", "selectivity_ci"))
        return b.scalars(cls, name=name, layers=layers or (),
                         cells={c: x.scalars(RepairCell) for c, x in cells.blocks().items()},
                         selectivity={k: sel.number(k) for k in sel.data},
                         selectivity_ci={k: sel_ci.numbers(k) or (None, None) for k in sel_ci.data})


@dataclass(frozen=True)
class RandomControls:
    """`ablation.random`: repair of the primary rule along random directions."""

    n: int | None
    repair_fraction_mean: float | None
    repair_fraction_sd: float | None
    control_frames: int | None


@dataclass(frozen=True)
class Ablation:
    """metrics.json `ablation`: every method, the headline (primary) one, the random controls, what was skipped."""

    methods: Mapping[str, AblationMethod]
    primary: str | None
    random: RandomControls | None
    skipped: Mapping[str, Any]

    @property
    def primary_method(self) -> AblationMethod | None:
        return self.methods.get(self.primary) if self.primary else None

    @classmethod
    def parse(cls, b: Block) -> Ablation:
        methods = {k: AblationMethod.parse(k, x) for k, x in b.blocks().items()
                   if k != "random" and ("repair_fraction" in x.data or "cells" in x.data)}
        rnd, skipped = b.block("random"), b.block("skipped")
        return cls(methods, b.text("primary"), rnd.scalars(RandomControls) if rnd else None,
                   dict(skipped.data) if skipped else {})


@dataclass(frozen=True)
class EntanglementMetrics:
    """The entanglement study's blocks of metrics.json (`readout`, `self_checks`, `probe`, `entanglement`,
    `ablation`) and the run record."""

    run: RunInfo
    readout_style: str | None
    readout_evidence: Mapping[str, Any]
    self_checks: tuple[SelfCheck, ...] | None
    probes: Mapping[str, Probe]
    behavioural: Mapping[str, Mapping[str, EICell]]
    norm_source: str
    representational: tuple[Representational, ...]
    ablation: Ablation | None

    @classmethod
    def parse(cls, root: Block) -> EntanglementMetrics:
        run, ro, sc, pr = (root.block(k) for k in ("run", "readout", "self_checks", "probe"))
        ent = root.block("entanglement")
        beh, norm, rep = ((ent.block(k) if ent else None) for k in ("behavioural", "human_norm", "representational"))
        abl = root.block("ablation")
        evidence = ro.block("evidence") if ro else None
        if evidence:
            evidence.text("reason")
        return cls(
            run=RunInfo.parse(run),
            readout_style=ro.text("style") if ro else None,
            readout_evidence=dict(evidence.data) if evidence else {},
            self_checks=tuple(SelfCheck.parse(k, b) for k, b in sc.blocks().items()) if sc else None,
            probes={k: Probe.parse(k, b) for k, b in (pr.blocks(KINDS) if pr else {}).items()},
            behavioural={r: {c: x.scalars(EICell) for c, x in cells.blocks().items()}
                         for r, cells in (beh.blocks() if beh else {}).items()},
            norm_source=(norm.text("source") if norm else None) or "design",
            representational=tuple(Representational.parse(k, b) for k, b in (rep.blocks() if rep else {}).items()),
            ablation=Ablation.parse(abl) if abl else None,
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
        return cls(folder, EntanglementMetrics.parse(Block.of(folder, m)), Settings.read(folder),
                   {name: folder.table(name) for name in TABLES})

    def table(self, name: str) -> pd.DataFrame | None:
        return self.tables.get(name)

    @property
    def model_name(self) -> str:
        return model_name(self.settings, self.metrics.run)

    @property
    def label(self) -> str:
        return f"{self.folder.path.name} ({self.model_name})"
