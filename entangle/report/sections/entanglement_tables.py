"""The entanglement section's tables as rows of formatted strings (EI with the gate, the positive control, repair,
nulls, controls, steering), so the template only lays them out."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from entangle.report import fmt
from entangle.report.figures.causal import CONTRASTS
from entangle.report.metrics import EICell, EntanglementMetrics
from entangle.report.metrics_causal import NULL_KINDS, NULL_LABELS
from entangle.schema import FACTORS, KINDS

Rows = list[list[str]]


def _flag(x: bool | None) -> str:
    return "n/a" if x is None else "valid" if x else "not valid"


def ei_rows(cells: Mapping[str, EICell]) -> Rows:
    """One row per factor → kind cell: EI [CI], raw b_from [CI], EI_human, excess [CI], p, gate and Holm p."""
    rows = []
    for f in FACTORS:
        for k in KINDS:
            d = cells.get(f"{f}_to_{k}")
            if d is not None:
                rows.append([f"{f}→{k}", fmt.est(d.ei, d.ci_low, d.ci_high), fmt.est(d.b_from, *d.b_from_ci, 3),
                             fmt.num(d.human_ei), fmt.est(d.excess, d.excess_ci_low, d.excess_ci_high, sign=True),
                             fmt.p_value(d.coef_p).removeprefix("p = "),
                             _flag(d.valid) if d.valid is not None else "—",
                             fmt.p_value(d.p_holm).removeprefix("p = ") if d.p_holm is not None else "—"])
    return rows


def validity_rows(df: pd.DataFrame | None) -> Rows:
    """validity.csv: per headline cell, the kind's own effect with its interval and the gate's decision."""
    if df is None:
        return []
    return [[str(r.readout), fmt.cell_label(f"{r.from_factor}_to_{r.to_kind}"),
             fmt.est(r.own_effect, r.own_ci_low, r.own_ci_high, 3, sign=True), _flag(bool(r.valid)),
             fmt.est(r.b_from, r.b_from_ci_low, r.b_from_ci_high, 3, sign=True),
             fmt.p_value(None if pd.isna(r.p_holm) else float(r.p_holm)).removeprefix("p = ")]
            for r in df.itertuples(index=False)]


def selection_rows(df: pd.DataFrame | None, limit: int = 12) -> Rows:
    """selection.csv: the exactly ablated candidates, strongest first."""
    if df is None:
        return []
    return [[str(r.label), fmt.num(r.estimated_kept), fmt.est(r.moral_kept, r.moral_kept_ci_low, r.moral_kept_ci_high),
             fmt.num(fmt.finite(r.economic_kept)), fmt.num(fmt.finite(r.grammatical_kept)),
             fmt.num(r.loss_delta, 3, sign=True), "yes" if bool(r.passes_filters) else "no"]
            for r in df.sort_values("moral_kept").head(limit).itertuples(index=False)]


def kept_rows(m: EntanglementMetrics) -> Rows:
    """Effects kept (before, after, after/before [CI]) under the chosen direction and every control condition."""
    conds = [("chosen direction", m.positive_control.kept if m.positive_control else {})]
    conds += [(n.replace("_", " "), c.kept) for n, c in (m.ablation.controls.items() if m.ablation else ())]
    rows = []
    for name, kept in conds:
        for key, label in CONTRASTS:
            if (k := kept.get(key)) is not None:
                rows.append([name, label, fmt.num(k.before, 4, sign=True), fmt.num(k.after, 4, sign=True),
                             fmt.est(k.kept, k.ci_low, k.ci_high), str(k.n_frames or "?")])
    return rows


def repair_rows(m: EntanglementMetrics) -> Rows:
    """Per valid cell: repair [CI], EI before → after, raw b_m before and after with intervals."""
    a = m.ablation.primary_method if m.ablation else None
    if a is None:
        return []
    return [[fmt.cell_label(c), fmt.est_pct(d.repair_fraction, d.ci_low, d.ci_high),
             f"{fmt.num(d.ei_before)} → {fmt.num(d.ei_after)}", fmt.est(d.b_from_before, *d.b_from_before_ci, 3),
             fmt.est(d.b_from_after, *d.b_from_after_ci, 3)] for c, d in a.cells.items()]


def null_rows(m: EntanglementMetrics) -> Rows:
    """Per null kind: draws, p, its resolution, and the null's median repair."""
    a = m.ablation.primary_method if m.ablation else None
    if a is None:
        return []
    return [[NULL_LABELS.get(k, k), str(t.n if t.n is not None else "?"), fmt.p_value(t.p_value),
             fmt.num(t.p_resolution, 3), fmt.num(t.median_repair), fmt.num(a.observed_repair)]
            for k in NULL_KINDS if (t := a.nulls.get(k)) is not None]


def condition_rows(m: EntanglementMetrics) -> Rows:
    """Loss change on neutral text of each ablation condition (and the weights check)."""
    if not m.ablation:
        return []
    rows = [[n.replace("_", " "), fmt.num(c.loss_delta, 3, sign=True), c.note or ""]
            for n, c in m.ablation.controls.items()]
    if (w := m.ablation.weights) is not None:
        rows.append(["orthogonalised weights", fmt.num(w.loss_delta, 3, sign=True), w.describe()])
    return rows


def steering_rows(m: EntanglementMetrics) -> Rows:
    """Interventional EI per kind: Δr_K / Δr_moral [CI], the raw mean changes."""
    st = m.steering
    if st is None:
        return []
    return [[k, fmt.est(e.estimate, e.ci_low, e.ci_high), fmt.num(e.numerator, 3, sign=True),
             fmt.num(e.moral_change, 3, sign=True)] for k, e in st.interventional_ei.items()]


def patching_peaks(df: pd.DataFrame | None) -> Rows:
    """Per patching readout, the layer × position group that restores most of the moral difference."""
    if df is None or not {"readout", "layer", "group", "restored"} <= set(df.columns) or df["restored"].isna().all():
        return []
    rows = []
    for readout, s in df.dropna(subset=["restored"]).groupby("readout", sort=False):
        r = s.loc[s["restored"].idxmax()]
        lo, hi = (fmt.finite(float(r[c])) if c in r else None for c in ("restored_ci_low", "restored_ci_high"))
        rows.append([str(readout), str(int(r["layer"])), str(r["group"]), fmt.est(float(r["restored"]), lo, hi)])
    return rows
