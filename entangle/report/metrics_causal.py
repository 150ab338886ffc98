"""The causal blocks of metrics.json as typed values: the positive control, repair against matched nulls, the
control conditions, steering and activation patching (docs/RUN_FOLDER.md, issue 8 §7 keys).

Like `metrics.py`: an absent block reads as None ("not measured"), a block of the wrong shape raises
`RunFolderError` naming the dotted field, unknown keys are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from entangle.runfolder import Block, RunFolderError

NULL_KINDS: tuple[str, ...] = ("variance_matched", "shuffled_dom")
"""The matched nulls of the repair test, in report order."""
NULL_LABELS: dict[str, str] = {"variance_matched": "variance-matched random", "shuffled_dom": "shuffled-label DoM"}
"""How the report names each null."""
CONTROL_CONDITIONS: tuple[str, ...] = ("economic_direction", "grammatical_direction", "moral_subspace",
                                       "leace_groups", "leace_last_token")
"""Ablation control conditions that report effects kept (orthogonalised weights is a check, read separately);
`leace_last_token` is read from run folders written before LEACE was fitted per position group."""


def pair(b: Block, key: str) -> tuple[float | None, float | None]:
    """A `[low, high]` list as a pair; (None, None) when absent; RunFolderError when not two numbers."""
    v = b.numbers(key)
    if v is None:
        return None, None
    if len(v) != 2:
        raise RunFolderError(b.path, None, b.field(key), "expected [low, high]")
    return v[0], v[1]


@dataclass(frozen=True)
class Kept:
    """Share of one contrast kept after an intervention (after / before), paired frame-bootstrap interval."""

    name: str
    kept: float | None
    ci_low: float | None
    ci_high: float | None
    before: float | None
    after: float | None
    n_frames: int | None


@dataclass(frozen=True)
class Filters:
    """Collateral limits a candidate must respect to be selected."""

    max_loss_delta: float | None
    min_other_kept: float | None
    grammar_contrast: str | None  # the grammatical own-effect contrast the filter read (absent in older runs)


@dataclass(frozen=True)
class Amnesic:
    """`positive_control.amnesic`: what the chosen ablation leaves of the moral difference, and a fresh probe on it."""

    layer: int | None
    n_prompts: int | None
    removed_share: float | None
    removed_ci: tuple[float | None, float | None]
    accuracy_before: float | None
    accuracy_after: float | None
    accuracy_after_ci: tuple[float | None, float | None]
    best_layer_after: int | None
    best_accuracy_after: float | None
    best_accuracy_after_ci: tuple[float | None, float | None]

    @classmethod
    def parse(cls, b: Block) -> Amnesic:
        return b.scalars(cls, **{k: pair(b, k) for k in ("removed_ci", "accuracy_after_ci", "best_accuracy_after_ci")})


@dataclass(frozen=True)
class PositiveControl:
    """`entanglement.positive_control`: the chosen direction and the moral effect its ablation keeps (held out)."""

    method: str | None
    position: str | None
    layer: int | None
    moral_effect_kept: float | None
    ci_low: float | None
    ci_high: float | None
    moral_effect_before: float | None
    moral_effect_after: float | None
    passed: bool
    threshold: float | None
    threshold_rule: str | None
    selection_frames: int | None
    heldout_frames: int | None
    selection_estimate_rank_spearman: float | None
    loss_delta: float | None
    kept: Mapping[str, Kept]
    separates_on: Mapping[str, float | None]
    filters: Filters | None
    amnesic: Amnesic | None

    @classmethod
    def parse(cls, b: Block) -> PositiveControl:
        kept, sep, filt, am = b.block("kept"), b.block("separates_on"), b.block("filters"), b.block("amnesic")
        return b.scalars(cls, passed=bool(b.flag("passed")),
                         kept={k: x.scalars(Kept, name=k) for k, x in (kept.blocks() if kept else {}).items()},
                         separates_on={k: sep.number(k) for k in sep.data} if sep else {},
                         filters=filt.scalars(Filters) if filt else None, amnesic=Amnesic.parse(am) if am else None)

    @property
    def label(self) -> str:
        """ "dom at judged_mean, layer 3"."""
        return f"{self.method or '?'} at {self.position or '?'}, layer {self.layer if self.layer is not None else '?'}"


@dataclass(frozen=True)
class RepairCell:
    """`ablation.<primary>.cells.<cell>`: repair with its interval, EI and raw b_m before and after."""

    repair_fraction: float | None
    ci_low: float | None
    ci_high: float | None
    ei_before: float | None
    ei_after: float | None
    b_from_before: float | None
    b_from_after: float | None
    b_from_before_ci: tuple[float | None, float | None]
    b_from_after_ci: tuple[float | None, float | None]

    @classmethod
    def parse(cls, b: Block) -> RepairCell:
        return b.scalars(cls, b_from_before_ci=pair(b, "b_from_before_ci"), b_from_after_ci=pair(b, "b_from_after_ci"))


@dataclass(frozen=True)
class NullTest:
    """`ablation.<primary>.null.<kind>`: the observed repair against n null directions of one kind."""

    kind: str
    n: int | None
    p_value: float | None
    p_resolution: float | None
    median_repair: float | None


@dataclass(frozen=True)
class Repair:
    """`ablation.<primary>`: whether repair was tested (and why not), per-cell repair, and the null tests."""

    name: str
    tested: bool
    reason: str | None
    repair_fraction: float | None
    ci_low: float | None
    ci_high: float | None
    loss_delta: float | None
    valid_cells: tuple[str, ...]
    cells: Mapping[str, RepairCell]
    nulls: Mapping[str, NullTest]
    observed_repair: float | None
    null_frames: int | None

    @classmethod
    def parse(cls, name: str, b: Block) -> Repair:
        cells, null = b.block("cells"), b.block("null")
        valid = b.raw("valid_cells") or []
        if not isinstance(valid, list) or not all(isinstance(c, str) for c in valid):
            raise RunFolderError(b.path, None, b.field("valid_cells"), "expected a list of cell names")
        return cls(name=name, tested=bool(b.flag("tested")), reason=b.text("reason"),
                   repair_fraction=b.number("repair_fraction"), ci_low=b.number("ci_low"),
                   ci_high=b.number("ci_high"), loss_delta=b.number("loss_delta"), valid_cells=tuple(valid),
                   cells={c: RepairCell.parse(x) for c, x in (cells.blocks() if cells else {}).items()},
                   nulls={k: x.scalars(NullTest, kind=k) for k, x in (null.blocks(NULL_KINDS) if null else {}).items()},
                   observed_repair=null.number("observed_repair") if null else None,
                   null_frames=null.integer("frames") if null else None)


@dataclass(frozen=True)
class Condition:
    """`ablation.controls.<name>`: effects kept under a control ablation and its neutral-text loss change."""

    name: str
    kept: Mapping[str, Kept]
    loss_delta: float | None
    note: str | None

    @classmethod
    def parse(cls, name: str, b: Block) -> Condition:
        kept = {(n := k.removesuffix("_kept")): x.scalars(Kept, name=n)
                for k, x in b.blocks().items() if k.endswith("_kept")}
        return cls(name, kept, b.number("loss_delta"), b.text("note"))


@dataclass(frozen=True)
class WeightsCheck:
    """`ablation.controls.orthogonalized_weights`: the weight-edited model against the all-layer hook ablation."""

    max_abs_diff_vs_hooks: float | None
    equal: bool | None
    n_prompts: int | None
    loss_delta: float | None
    skipped: str | None  # why the model's weights cannot be orthogonalised exactly (e.g. Gemma's post-norms)

    def describe(self) -> str:
        """ "equal to the all-layer hook ablation (max |Δ readout| 1.0e-05 over 36 prompts)", or why not run."""
        if self.skipped:
            return f"not run: {self.skipped}"
        diff = "n/a" if self.max_abs_diff_vs_hooks is None else f"{self.max_abs_diff_vs_hooks:.1e}"
        n = self.n_prompts if self.n_prompts is not None else "?"
        same = "equal to" if self.equal else "DIFFERENT from"
        return f"{same} the all-layer hook ablation (max |Δ readout| {diff} over {n} prompts)"


@dataclass(frozen=True)
class Ablation:
    """metrics.json `ablation`: the primary (chosen-direction) repair test and the control conditions."""

    primary: str | None
    repairs: Mapping[str, Repair]
    controls: Mapping[str, Condition]
    weights: WeightsCheck | None

    @property
    def primary_method(self) -> Repair | None:
        return self.repairs.get(self.primary) if self.primary else None

    @classmethod
    def parse(cls, b: Block) -> Ablation:
        ctl = b.block("controls")
        w = ctl.block("orthogonalized_weights") if ctl else None
        return cls(b.text("primary"),
                   {k: Repair.parse(k, x) for k, x in b.blocks().items() if k != "controls" and "tested" in x.data},
                   {k: Condition.parse(k, x) for k, x in (ctl.blocks(CONTROL_CONDITIONS) if ctl else {}).items()},
                   w.scalars(WeightsCheck) if w else None)


@dataclass(frozen=True)
class InterventionalEI:
    """`steering.moral.interventional_ei.<kind>`: Δr_K / Δr_moral under steering, pooled over signed α."""

    kind: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    numerator: float | None
    moral_change: float | None


@dataclass(frozen=True)
class Steering:
    """`steering.moral`: ±α·σ·d at one layer; the moral readout's response and the other kinds' per unit of it."""

    alphas: tuple[float, ...]
    layer: int | None
    sigma: float | None
    moral_monotone: bool | None
    interventional_ei: Mapping[str, InterventionalEI]

    @classmethod
    def parse(cls, b: Block) -> Steering:
        iei = b.block("interventional_ei")
        return cls(tuple(x for x in (b.numbers("alphas") or ()) if x is not None), b.integer("layer"),
                   b.number("sigma"), b.flag("moral_monotone"),
                   {k: x.scalars(InterventionalEI, kind=k) for k, x in (iei.blocks() if iei else {}).items()})


@dataclass(frozen=True)
class Patching:
    """metrics.json `patching`: which layers and position groups were patched, and the table that holds them."""

    layers: tuple[int, ...]
    position_groups: tuple[str, ...]
    file: str
    method: str | None
    n_pairs: int | None
    unavailable: Mapping[str, str]

    @classmethod
    def parse(cls, b: Block) -> Patching:
        groups = b.raw("position_groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise RunFolderError(b.path, None, b.field("position_groups"), "expected a list of group names")
        missing = b.block("unavailable")
        return cls(b.numbers("layers", integers=True) or (), tuple(groups), b.text("file") or "patching.csv",
                   b.text("method"), b.integer("n_pairs"),
                   {g: missing.text(g) or "" for g in missing.data} if missing else {})

    @property
    def table_name(self) -> str:
        """The table's name for `RunFolder.table` (the file without `.csv`)."""
        return self.file.removesuffix(".csv")
