"""The entanglement study's four verdicts, as data: rules on metrics.json alone (no plotly, no HTML).

- entanglement: over the *valid* headline cells of the judgement readout (the kind's own effect has an interval
  excluding 0): "yes" where a cell's excess-EI interval excludes 0 and its Holm-adjusted p < 0.05; "no evidence"
  otherwise; "no valid cell" where the gate admits none (nothing can be concluded from readouts deaf to their own
  factor).
- direction (the positive control): "yes" where ablating the chosen direction keeps at most the threshold of the
  model's own moral effect on held-out frames (upper interval end ≤ threshold), else "no".
- repair: only where the direction passed and valid cells exist, else "untested" with the reason (never a
  negative). "yes" where the mean repair's interval lies above 0 and p < 0.05 against every matched null; "not
  beyond nulls" where the interval lies above 0 but a p ≥ 0.05 (or none); "no" where it lies below 0 (the ablation
  increases entanglement); else "no evidence".
- cost: from the other kinds' own effects kept on held-out frames and the neutral-text loss change: "small" where
  each kept share is within 10% of 1 and the loss rises ≤ 0.05 nats; "large" where one is off by more than 50% or
  the loss rises > 0.25 nats; else "moderate".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entangle.report import fmt
from entangle.report.metrics import MORAL_CELLS, EntanglementMetrics
from entangle.report.metrics_causal import NULL_KINDS, NULL_LABELS, Kept
from entangle.runfolder import Block, RunFolder

ALPHA = 0.05
COST_SMALL_DEV, COST_SMALL_LOSS = 0.10, 0.05
COST_LARGE_DEV, COST_LARGE_LOSS = 0.50, 0.25
"""Cost thresholds: |1 − kept| of the other kinds' own effects, and the rise of the neutral-text loss (nats)."""

QUESTIONS: dict[str, str] = {
    "entanglement": "1. Does moral value leak into grammatical and economic judgements beyond human norms "
                    "(valid cells only)?",
    "direction": "2. Found a causal moral direction? (its ablation removes the model's own moral effect on "
                 "held-out frames)",
    "repair": "3. Does ablating it repair the valid cells beyond matched nulls?",
    "cost": "4. At what cost?",
}


@dataclass(frozen=True)
class Verdict:
    """One answer (e.g. "yes", "untested", "not measured"), the sentence that justifies it, and its numbers."""

    answer: str
    text: str
    facts: Mapping[str, Any] = field(default_factory=dict)


def verdicts(run: str | Path | RunFolder | Mapping[str, Any]) -> dict[str, Verdict]:
    """The four verdicts {"entanglement", "direction", "repair", "cost"} of a run folder or a metrics dict."""
    if isinstance(run, Mapping):
        return judge(EntanglementMetrics.of(run))
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    return judge(EntanglementMetrics.parse(Block.of(folder, folder.metrics())))


def judge(m: EntanglementMetrics) -> dict[str, Verdict]:
    """The four verdicts of parsed metrics (see `verdicts`)."""
    return {"entanglement": entanglement(m), "direction": direction(m), "repair": repair(m), "cost": cost(m)}


def _b(x: float | None, ci: tuple[float | None, float | None]) -> str:
    return f"raw b_m {fmt.est(x, ci[0], ci[1], 3, sign=True)}"


def entanglement(m: EntanglementMetrics) -> Verdict:
    """Verdict 1: moral value in the grammatical and economic judgements beyond the norm, on valid cells only."""
    ro, cells = m.judgement_readout, m.cells()
    facts: dict[str, Any] = {"readout": ro, "design_norm": m.design_norm, "cells": {}, "invalid": []}
    yes, no, invalid = [], [], []
    for c in MORAL_CELLS:
        d = cells.get(c)
        if d is None:
            continue
        if d.valid is False:
            invalid.append(fmt.cell_label(c))
            facts["invalid"].append(c)
            continue
        s = fmt.excludes_zero(d.excess_ci_low, d.excess_ci_high)
        p = fmt.finite(d.p_holm)
        facts["cells"][c] = {"sign": s, "ei": d.ei, "ci_low": d.ci_low, "ci_high": d.ci_high, "excess": d.excess,
                             "excess_ci_low": d.excess_ci_low, "excess_ci_high": d.excess_ci_high,
                             "b_from": d.b_from, "b_from_ci": d.b_from_ci, "p_holm": p, "human_ei": d.human_ei}
        desc = (f"{fmt.cell_label(c)} EI {fmt.est(d.ei, d.ci_low, d.ci_high, sign=True)} against a norm of "
                f"{fmt.num(d.human_ei, sign=True)} ({_b(d.b_from, d.b_from_ci)}, Holm "
                f"{fmt.p_value(p)})")
        if s != 0 and p is not None and p < ALPHA:
            side = "above" if s > 0 else "below (moral value pushes this judgement the opposite way)"
            yes.append(f"{desc}: {side} the norm, excess {fmt.est(d.excess, d.excess_ci_low, d.excess_ci_high, sign=True)}")
        else:
            no.append(f"{desc}, excess {fmt.est(d.excess, d.excess_ci_low, d.excess_ci_high, sign=True)}")
    gate = (f" Not valid on this readout (its kind's own effect has an interval including 0, so the ratio is "
            f"meaningless): {', '.join(invalid)}.") if invalid else ""
    if not facts["cells"] and not invalid:
        return Verdict("not measured", f"Not measured: metrics.json has no moral→grammatical/economic cells for the "
                                       f"{ro} readout.", facts)
    if not facts["cells"]:
        return Verdict("no valid cell", f"No valid cell: neither target judgement of the {ro} readout responds to its "
                       f"own factor, so entanglement cannot be measured on it.{gate}", facts)
    norm = f"Against {m.norm_phrase}"
    if not yes:
        return Verdict("no evidence", f"No evidence. {norm}: " + "; ".join(no) + ". The data neither show "
                       "entanglement beyond the norm nor rule out one smaller than the interval width." + gate, facts)
    text = f"Yes. {norm}, moral value leaks into the model's {ro} judgements: " + "; ".join(yes) + "."
    return Verdict("yes", text + (" No evidence for " + "; ".join(no) + "." if no else "") + gate, facts)


def direction(m: EntanglementMetrics) -> Verdict:
    """Verdict 2: the positive control — does projecting the chosen direction out remove the moral judgement?"""
    pc = m.positive_control
    if pc is None:
        return Verdict("not measured", "Not measured: metrics.json has no entanglement.positive_control.")
    facts = {"method": pc.method, "position": pc.position, "layer": pc.layer, "kept": pc.moral_effect_kept,
             "ci_low": pc.ci_low, "ci_high": pc.ci_high, "threshold": pc.threshold, "passed": pc.passed}
    core = (f"projecting the chosen direction ({pc.label}) out at every layer and position keeps "
            f"{fmt.est(pc.moral_effect_kept, pc.ci_low, pc.ci_high)} of the model's own moral effect on "
            f"{pc.heldout_frames if pc.heldout_frames is not None else '?'} held-out frames (selected on "
            f"{pc.selection_frames if pc.selection_frames is not None else '?'} other frames); it passes when the "
            f"{(pc.threshold_rule or 'upper interval end <= threshold').replace('<=', '≤')} (threshold "
            f"{fmt.num(pc.threshold)})")
    sep = ", ".join(f"{k} {fmt.num(v)}" for k, v in pc.separates_on.items())
    extra = f". It separates good from bad items on each kind's prompts with AUC {sep}" if sep else ""
    if pc.passed:
        return Verdict("yes", f"Yes: {core}{extra}.", facts)
    return Verdict("no", f"No causal moral direction found: {core}. The best candidates are shown in the candidate "
                   f"screen{extra}.", facts)


def repair(m: EntanglementMetrics) -> Verdict:
    """Verdict 3: repair of the valid cells by the chosen direction, against the matched nulls."""
    pc, a = m.positive_control, m.ablation.primary_method if m.ablation else None
    if pc is None and a is None:
        return Verdict("not measured", "Not measured: metrics.json has no positive control and no primary ablation.")
    if pc is not None and not pc.passed:
        return Verdict("untested", "Untested: no causal moral direction was found (verdict 2), so a lack of repair "
                       "would say nothing; repair is tested only after the positive control passes.",
                       {"reason": "positive control failed"})
    if a is None or not a.tested:
        reason = (a.reason if a else None) or "no valid cell"
        return Verdict("untested", f"Untested: {reason}.", {"reason": reason})
    parts = []
    for c, d in a.cells.items():
        parts.append(f"{fmt.cell_label(c)} repairs {fmt.est_pct(d.repair_fraction, d.ci_low, d.ci_high)} (EI "
                     f"{fmt.num(d.ei_before)} → {fmt.num(d.ei_after)}; raw b_m "
                     f"{fmt.est(d.b_from_before, *d.b_from_before_ci, nd=3, sign=True)} → "
                     f"{fmt.est(d.b_from_after, *d.b_from_after_ci, nd=3, sign=True)})")
    nulls = [a.nulls[k] for k in NULL_KINDS if k in a.nulls]
    ps = [fmt.finite(t.p_value) for t in nulls]
    vs = "; ".join(f"against {t.n if t.n is not None else '?'} {NULL_LABELS.get(t.kind, t.kind)} directions "
                   f"{fmt.p_value(t.p_value)} (resolution {fmt.num(t.p_resolution, 3)}, null median "
                   f"{fmt.num(t.median_repair)})" for t in nulls) or "no null draws were recorded"
    s = fmt.excludes_zero(a.ci_low, a.ci_high)
    beats = bool(ps) and all(p is not None and p < ALPHA for p in ps)
    core = (f"on the valid cells ({', '.join(fmt.cell_label(c) for c in a.valid_cells)}), mean repair "
            f"{fmt.pct(a.repair_fraction)} ({fmt.ci(a.ci_low, a.ci_high, as_pct=True)}): " + "; ".join(parts)
            + f". Observed repair on the null subset {fmt.num(a.observed_repair)}, {vs}")
    if s > 0 and beats:
        answer = "yes"
    elif s > 0:
        answer = "not beyond nulls"
    elif s < 0:
        answer = "no"
    else:
        answer = "no evidence"
    lead = {"yes": "Yes", "not beyond nulls": "Not beyond matched nulls", "no": "No (the ablation increases "
            "entanglement)", "no evidence": "No evidence (the interval includes 0)"}[answer]
    return Verdict(answer, f"{lead}: {core}.", {"repair_fraction": a.repair_fraction, "ci_low": a.ci_low,
                                                "ci_high": a.ci_high, "p_values": dict(zip(
                                                    [t.kind for t in nulls], ps, strict=True))})


def _kept_text(k: Kept | None, label: str) -> str:
    return f"{label} keeps n/a" if k is None else f"{label} keeps {fmt.est(k.kept, k.ci_low, k.ci_high)}"


def cost(m: EntanglementMetrics) -> Verdict:
    """Verdict 4: what the chosen ablation costs the other judgements and neutral text (held-out frames)."""
    pc = m.positive_control
    if pc is None or not pc.kept:
        return Verdict("not measured", "Not measured: metrics.json has no effects kept for the chosen direction.")
    others = {"economic": pc.kept.get("economic"), "grammatical": pc.kept.get(m.grammar_contrast)}
    a = m.ablation.primary_method if m.ablation else None
    w = m.ablation.weights if m.ablation else None
    loss = next((x for x in (pc.loss_delta, a.loss_delta if a else None, w.loss_delta if w else None)
                 if fmt.finite(x) is not None), None)
    devs = [abs(1 - k.kept) for k in others.values() if k is not None and fmt.finite(k.kept) is not None]
    if not devs and loss is None:
        return Verdict("not measured", "Not measured: neither the other kinds' effects kept nor a loss change.")
    dev = max(devs) if devs else None
    if (dev is not None and dev > COST_LARGE_DEV) or (loss is not None and loss > COST_LARGE_LOSS):
        answer = "large"
    elif (dev is None or dev <= COST_SMALL_DEV) and (loss is None or loss <= COST_SMALL_LOSS):
        answer = "small"
    else:
        answer = "moderate"
    gname = "grammatical (cloze)" if m.grammar_contrast == "grammatical" else "grammatical (sentence log-prob)"
    parts = [_kept_text(others["economic"], "the economic own effect"),
             _kept_text(others["grammatical"], f"the {gname} own effect"),
             f"the mean per-token loss on neutral text changes by {fmt.num(loss, 3, sign=True)} nats"]
    if w is not None:
        parts.append(f"orthogonalised weights {w.describe()}")
    who = pc.label + ("" if pc.passed else ", the best candidate, which did not pass the positive control")
    return Verdict(answer, f"{answer.capitalize()} cost for {who}: " + "; ".join(parts) + ".",
                   {"kept": {k: (v.kept if v else None) for k, v in others.items()}, "loss_delta": loss,
                    "weights_equal": w.equal if w else None})
