"""The entanglement study's three verdicts, as data: rules on metrics.json alone (no plotly, no HTML).

- entanglement: "yes" where the excess-EI 95% CI of moral→grammatical or moral→economic (judgement readout)
  excludes 0 (the sign is reported per cell), else "no evidence".
- repair: "yes" where the primary ablation's repair CI lies above 0 and the random-direction p < 0.05; "not beyond
  random" where the CI lies above 0 but p ≥ 0.05 (or none); "no" where the CI lies below 0 (the ablation increases
  entanglement); else "no evidence".
- cost: "small" where the grammatical and economic judgements keep ≥ 90% of their own effect and the neutral-text
  loss rises ≤ 0.05 nats; "large" where either keeps < 50% or the loss rises > 0.25 nats; else "moderate".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from entangle.report import fmt
from entangle.report.metrics import MORAL_CELLS, EntanglementMetrics
from entangle.runfolder import Block, RunFolder

ALPHA = 0.05
COST_SMALL_KEEP, COST_SMALL_LOSS = 0.90, 0.05
COST_LARGE_KEEP, COST_LARGE_LOSS = 0.50, 0.25
"""Cost thresholds: what the other judgements keep of their own effect, and the rise of the neutral-text loss."""

QUESTIONS: dict[str, str] = {
    "entanglement": "1. Does moral value leak into grammatical and economic judgements beyond human norms?",
    "repair": "2. Does ablating the moral direction repair it, beyond random directions?",
    "cost": "3. At what cost?",
}


@dataclass(frozen=True)
class Verdict:
    """One answer (e.g. "yes", "no evidence", "not measured"), the sentence that justifies it, and its numbers."""

    answer: str
    text: str
    facts: Mapping[str, Any] = field(default_factory=dict)


def verdicts(run: str | Path | RunFolder | Mapping[str, Any],
             selectivity: pd.DataFrame | None = None) -> dict[str, Verdict]:
    """The three verdicts {"entanglement", "repair", "cost"} of a run folder or a metrics dict.

    `selectivity` (selectivity.csv) gives the cost verdict its intervals where metrics.json has none."""
    if isinstance(run, Mapping):
        return judge(EntanglementMetrics.of(run), selectivity)
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    return judge(EntanglementMetrics.parse(Block.of(folder, folder.metrics())), selectivity)


def judge(m: EntanglementMetrics, selectivity: pd.DataFrame | None = None) -> dict[str, Verdict]:
    """The three verdicts of parsed metrics (see `verdicts`)."""
    ent = entanglement(m)
    return {"entanglement": ent, "repair": repair(m, ent), "cost": cost(m, selectivity)}


def entanglement(m: EntanglementMetrics) -> Verdict:
    """Verdict 1: moral value in the grammatical and economic judgements, beyond the norm."""
    ro, cells = m.judgement_readout, m.cells()
    facts: dict[str, Any] = {"readout": ro, "design_norm": m.design_norm, "cells": {}}
    yes, no = [], []
    for c in MORAL_CELLS:
        d = cells.get(c)
        if d is None:
            continue
        s = fmt.excludes_zero(d.excess_ci_low, d.excess_ci_high)
        facts["cells"][c] = {"sign": s, "excess": d.excess, "ci_low": d.excess_ci_low, "ci_high": d.excess_ci_high,
                             "ei": d.ei, "human_ei": d.human_ei}
        ci = fmt.ci(d.excess_ci_low, d.excess_ci_high, sign=True)
        by = fmt.num(d.excess, sign=True)
        if s > 0:
            yes.append(f"{fmt.cell_label(c)} EI exceeds the norm by {by} ({ci})")
        elif s < 0:
            yes.append(f"{fmt.cell_label(c)} EI lies below the norm by {by} ({ci}; negative sign: moral value "
                       "pushes this judgement the opposite way)")
        else:
            no.append(f"{fmt.cell_label(c)} (excess {by}, {ci}, includes 0)")
    if not facts["cells"]:
        return Verdict("not measured", f"Not measured: metrics.json has no moral→grammatical/economic cells for the "
                                       f"{ro} readout.", facts)
    if not yes:
        return Verdict("no evidence", f"No evidence. Against {m.norm_phrase}, the 95% CI of the excess includes 0 for "
                       + "; ".join(no) + ". The data neither show entanglement beyond the norm nor rule out one "
                       "smaller than the interval width.", facts)
    text = f"Yes. Measured against {m.norm_phrase}, moral value leaks into the model's {ro} judgements: " + \
        "; ".join(yes) + "."
    return Verdict("yes", text + (" No evidence for " + "; ".join(no) + "." if no else ""), facts)


def repair(m: EntanglementMetrics, ent: Verdict) -> Verdict:
    """Verdict 2: the primary ablation's repair, against random directions (`ent`: verdict 1, for its caveat)."""
    a = m.ablation.primary_method if m.ablation else None
    if a is None:
        return Verdict("not measured", "Not measured: metrics.json has no primary ablation.")
    p = fmt.finite(a.random_p_value)
    s = fmt.excludes_zero(a.ci_low, a.ci_high)
    rnd = m.ablation.random
    rnd_s = (f"{rnd.n if rnd.n is not None else '?'} random directions repair {fmt.pct(rnd.repair_fraction_mean)} ± "
             f"{fmt.pct(rnd.repair_fraction_sd)} (mean ± SD)") if rnd else "no random-direction summary"
    core = (f"the moral ablation {a.name} (rule {a.rule or 'n/a'}, {fmt.layers(a.layers)}) repairs "
            f"{fmt.pct(a.repair_fraction)} of the excess ({fmt.ci(a.ci_low, a.ci_high, as_pct=True)})")
    beats = p is not None and p < ALPHA
    if s > 0 and beats:
        answer, text = "yes", f"Yes: {core}, more than random directions ({fmt.p_value(p)}; {rnd_s})."
    elif s > 0:
        why = "no random-direction p-value was recorded" if p is None else fmt.p_value(p)
        answer, text = "not beyond random", f"Not beyond random directions: {core}, but {why}; {rnd_s}."
    elif s < 0:
        answer, text = "no", f"No: {core}, i.e. the ablation increases the entanglement ({fmt.p_value(p)})."
    else:
        extra = " It beats random directions on the point estimate, but the interval includes 0." if beats else ""
        answer = "no evidence"
        text = f"No evidence: {core}, an interval that includes 0 ({fmt.p_value(p)}; {rnd_s}).{extra}"
    if ent.answer == "no evidence":
        text += " With no clear excess to repair, the repair fraction is a ratio of small numbers; read it with caution."
    return Verdict(answer, text, {"method": a.name, "repair_fraction": a.repair_fraction, "ci_low": a.ci_low,
                                  "ci_high": a.ci_high, "random_p_value": p})


def cost(m: EntanglementMetrics, selectivity: pd.DataFrame | None = None) -> Verdict:
    """Verdict 3: what the primary ablation costs the other judgements and neutral text."""
    a = m.ablation.primary_method if m.ablation else None
    if a is None:
        return Verdict("not measured", "Not measured: metrics.json has no primary ablation.")
    mo, g, e = (fmt.finite(a.selectivity.get(k)) for k in ("moral", "grammatical", "economic"))
    loss = fmt.finite(a.loss_delta)
    keeps = [v for v in (g, e) if v is not None]
    if not keeps and loss is None:
        return Verdict("not measured", "Not measured: the primary ablation has no selectivity or loss.")
    keep = min(keeps) if keeps else None
    if (keep is not None and keep < COST_LARGE_KEEP) or (loss is not None and loss > COST_LARGE_LOSS):
        answer = "large"
    elif (keep is None or keep >= COST_SMALL_KEEP) and (loss is None or loss <= COST_SMALL_LOSS):
        answer = "small"
    else:
        answer = "moderate"

    def ci_of(kind: str) -> str:
        lo, hi = _selectivity_ci(a.name, kind, a.selectivity_ci, selectivity)
        return f" ({fmt.ci(lo, hi, as_pct=True)})" if lo is not None or hi is not None else ""

    parts = [f"the grammatical judgement keeps {fmt.pct(g)} of its own effect{ci_of('grammatical')} and the "
             f"economic judgement {fmt.pct(e)}{ci_of('economic')}"]
    if mo is not None:
        parts.append(f"the moral judgement keeps {fmt.pct(mo)} of its own effect{ci_of('moral')} (it loses "
                     f"{fmt.pct(1 - mo)}, the intended target)")
    parts.append(f"the mean per-token loss on neutral text changes by {fmt.num(loss, 3, sign=True)} nats")
    return Verdict(answer, f"{answer.capitalize()} cost for {a.name}: " + "; ".join(parts) + ".",
                   {"method": a.name, "selectivity": {"moral": mo, "grammatical": g, "economic": e},
                    "loss_delta": loss})


def _selectivity_ci(method: str, kind: str, from_metrics: Mapping[str, tuple[float | None, ...]],
                    table: pd.DataFrame | None) -> tuple[float | None, float | None]:
    """A kind's selectivity interval: selectivity.csv where it has one, else metrics.json `selectivity_ci`."""
    if table is not None and {"method", "kind", "ci_low", "ci_high"} <= set(table.columns):
        r = table[(table["method"] == method) & (table["kind"] == kind)]
        return (float(r["ci_low"].iloc[0]), float(r["ci_high"].iloc[0])) if len(r) else (None, None)
    c = from_metrics.get(kind)
    return (c[0], c[1]) if c is not None and len(c) == 2 else (None, None)
