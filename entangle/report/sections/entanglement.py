"""The entanglement study's section of the report: a short paper (summary with the three verdicts, methods,
results with figures and tables, caveats, self-checks), rebuilt from the run folder alone."""

from __future__ import annotations

from typing import Any

from entangle.files import dumps
from entangle.report import fmt, html
from entangle.report.figures import FIGURES, draw
from entangle.report.metrics import MORAL_CELLS, EICell, EntanglementMetrics, EntanglementRun
from entangle.report.verdicts import (
    ALPHA,
    COST_LARGE_KEEP,
    COST_LARGE_LOSS,
    COST_SMALL_KEEP,
    COST_SMALL_LOSS,
    QUESTIONS,
    judge,
)
from entangle.runfolder import RunFolder
from entangle.schema import FACTORS, KINDS

TITLE = "Entanglement: does the model keep moral, grammatical and economic good apart?"
KEYS = ("readout", "probe", "entanglement", "ablation")
"""The top-level metrics.json keys this study writes."""


def present(metrics: dict[str, Any]) -> bool:
    """Whether any stage of the entanglement study (readout choice, probes, EI, ablation) ran in this folder."""
    return any(k in metrics for k in KEYS)


def render(folder: RunFolder, metrics: dict[str, Any]) -> str:
    """The section's HTML; RunFolderError where metrics.json, config.json or a table does not validate."""
    run = EntanglementRun.read(folder, metrics)
    m, st = run.metrics, run.settings
    figs, notes = draw(run)
    v = judge(m, run.table("selectivity"))
    abl = m.ablation
    rnd = abl.random if abl else None
    return html.render(
        "entanglement.html.j2",
        model=run.model_name, m=m, settings=st, stimuli=st.stimuli, readout=m.judgement_readout,
        reason=m.readout_evidence.get("reason"),
        evidence_rows=[[k, x if isinstance(x, str | int | float | bool) or x is None else dumps(x, indent=None)]
                       for k, x in m.readout_evidence.items() if k != "reason"],
        verdicts=[(k, QUESTIONS[k], v[k]) for k in QUESTIONS],
        probe_bits=[f"{p.kind} {fmt.num(p.cv_accuracy)} (layer {_or(p.best_layer)})" for p in m.probes.values()],
        probe_methods=sorted({p.method for p in m.probes.values() if p.method}),
        n_random=_or(rnd.n if rnd else None, "≥20"),
        control_frames=_or(rnd.control_frames if rnd else None, "a subset of"),
        rules={"alpha": ALPHA, "small_keep": f"{COST_SMALL_KEEP:.0%}", "small_loss": COST_SMALL_LOSS,
               "large_keep": f"{COST_LARGE_KEEP:.0%}", "large_loss": COST_LARGE_LOSS},
        figures={name: html.figure(name, *FIGURES[name], figs.get(name) or notes[name]) for name in FIGURES},
        ei_rows=_ei_rows(m.cells()), logprob_rows=_ei_rows(m.cells("logprob")),
        probe_rows=[[p.kind, _or(p.method), _or(p.best_layer), fmt.est(p.cv_accuracy, p.ci_low, p.ci_high, 3),
                     fmt.num(p.auc, 3), fmt.num(p.selectivity, 3)] for p in m.probes.values()],
        representational_rows=[[r.name, _or(r.layer, "?"), fmt.est(r.value, r.ci_low, r.ci_high)
                                if r.name.startswith("leakage.") else fmt.num(r.value)] for r in m.representational],
        primary=abl.primary if abl else None, ablation_rows=_ablation_rows(m),
        skipped="; ".join(f"{k}: {x}" for k, x in abl.skipped.items()) if abl else "",
        caveats=_caveats(run), self_checks=m.self_checks,
    )


def _or(x: Any, default: str = "n/a") -> Any:
    return default if x is None else x


def _ei_rows(cells: dict[str, EICell]) -> list[list[str]]:
    """One row per factor → kind cell: EI [CI], the human EI, the excess [CI] and the coefficient's p."""
    rows = []
    for f in FACTORS:
        for k in KINDS:
            d = cells.get(f"{f}_to_{k}")
            if d is not None:
                rows.append([f"{f}→{k}", fmt.est(d.ei, d.ci_low, d.ci_high), fmt.num(d.human_ei),
                             fmt.est(d.excess, d.excess_ci_low, d.excess_ci_high, sign=True),
                             fmt.p_value(d.coef_p).removeprefix("p = ") if d.coef_p is not None else "n/a"])
    return rows


def _ablation_rows(m: EntanglementMetrics) -> list[list[str]]:
    rows = []
    for a in (m.ablation.methods.values() if m.ablation else ()):
        before_after = [f"{fmt.num(c.ei_before if c else None)} → {fmt.num(c.ei_after if c else None)}"
                        for c in (a.cells.get(cell) for cell in MORAL_CELLS)]
        rows.append([a.name, _or(a.rule), fmt.layers(a.layers).removeprefix("layers ").removeprefix("layer "),
                     fmt.est_pct(a.repair_fraction, a.ci_low, a.ci_high), *before_after,
                     fmt.p_value(a.random_p_value) if a.random_p_value is not None else "—",
                     " / ".join(fmt.num(a.selectivity.get(k)) for k in KINDS), fmt.num(a.loss_delta, 3, sign=True)])
    return rows


def _caveats(run: EntanglementRun) -> dict[str, Any]:
    """Which conditional caveats apply: a small model, quantised weights, readouts deaf to their own factor."""
    st, name = run.settings, run.model_name
    small = (st.d_model is not None and st.d_model < 2048) or any(s in name.lower() for s in ("135m", "270m", "360m"))
    src = f"{st.source or ''} {name}".lower()
    deaf = [(r, k, c.coef_p) for r, cells in run.metrics.behavioural.items() for k in KINDS
            if (c := cells.get(f"{k}_to_{k}")) is not None and c.coef_p is not None and c.coef_p >= ALPHA]
    return {"small_model": small or not st.model_info,
            "quantised": "gguf" in src or "q4" in src or name in ("smollm2-135m", "gemma3-270m"), "deaf": deaf}
