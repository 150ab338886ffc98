"""The entanglement study's section of the report: a short paper (summary with the four verdicts, methods, results
with figures and tables, caveats, self-checks), rebuilt from the run folder alone."""

from __future__ import annotations

from typing import Any

from entangle.files import dumps
from entangle.report import fmt, html
from entangle.report.figures import FIGURES, draw
from entangle.report.metrics import EntanglementRun
from entangle.report.sections import entanglement_tables as tables
from entangle.report.verdicts import (
    ALPHA,
    COST_LARGE_DEV,
    COST_LARGE_LOSS,
    COST_SMALL_DEV,
    COST_SMALL_LOSS,
    QUESTIONS,
    judge,
)
from entangle.runfolder import RunFolder

TITLE = "Entanglement: does the model keep moral, grammatical and economic good apart?"
KEYS = ("readout", "probe", "entanglement", "ablation", "steering")
"""The top-level metrics.json keys this study writes."""


def present(metrics: dict[str, Any]) -> bool:
    """Whether any stage of the entanglement study (readout choice, probes, EI, causal test) ran in this folder."""
    return any(k in metrics for k in KEYS)


def render(folder: RunFolder, metrics: dict[str, Any]) -> str:
    """The section's HTML; RunFolderError where metrics.json, config.json or a table does not validate."""
    run = EntanglementRun.read(folder, metrics)
    m, st = run.metrics, run.settings
    figs, notes = draw(run)
    v = judge(m)
    a = m.ablation.primary_method if m.ablation else None
    null_n = sorted({t.n for t in a.nulls.values() if t.n is not None}) if a else []
    return html.render(
        "entanglement.html.j2",
        model=run.model_name, m=m, settings=st, stimuli=st.stimuli, readout=m.judgement_readout,
        reason=m.readout_evidence.get("reason"),
        evidence_rows=[[k, x if isinstance(x, str | int | float | bool) or x is None else dumps(x, indent=None)]
                       for k, x in m.readout_evidence.items() if k != "reason"],
        verdicts=[(k, QUESTIONS[k], v[k]) for k in QUESTIONS],
        probe_bits=[f"{p.kind} {fmt.num(p.cv_accuracy)} (layer {_or(p.best_layer)})" for p in m.probes.values()],
        probe_methods=sorted({p.method for p in m.probes.values() if p.method}),
        pc=m.positive_control, repair=a, null_n=" and ".join(map(str, null_n)) or "n/a",
        p_resolution=fmt.num(1 / (1 + min(null_n)), 3) if null_n else "n/a",
        rules={"alpha": ALPHA, "small_dev": f"{COST_SMALL_DEV:.0%}", "small_loss": COST_SMALL_LOSS,
               "large_dev": f"{COST_LARGE_DEV:.0%}", "large_loss": COST_LARGE_LOSS},
        figures={name: html.figure(name, *FIGURES[name], figs.get(name) or notes[name]) for name in FIGURES},
        ei_rows=tables.ei_rows(m.cells()), logprob_rows=tables.ei_rows(m.cells("logprob")),
        validity_rows=tables.validity_rows(run.table("validity")),
        mp=m.minimal_pair, not_monotone=[k for k, ok in m.monotonicity.items() if ok is False],
        probe_rows=[[p.kind, _or(p.method), _or(p.best_layer), fmt.est(p.cv_accuracy, p.ci_low, p.ci_high, 3),
                     fmt.num(p.auc, 3), fmt.num(p.selectivity, 3)] for p in m.probes.values()],
        representational_rows=[[r.name, _or(r.layer, "?"), fmt.est(r.value, r.ci_low, r.ci_high)
                                if r.name.startswith("leakage.") else fmt.num(r.value)] for r in m.representational],
        selection_rows=tables.selection_rows(run.table("selection")), kept_rows=tables.kept_rows(m),
        repair_rows=tables.repair_rows(m), null_rows=tables.null_rows(m), condition_rows=tables.condition_rows(m),
        steering_rows=tables.steering_rows(m), caveats=_caveats(run),
        patching_rows=tables.patching_peaks(run.table(m.patching.table_name) if m.patching else None), self_checks=m.self_checks, fmt=fmt,
    )


def _or(x: Any, default: str = "n/a") -> Any:
    return default if x is None else x


def _caveats(run: EntanglementRun) -> dict[str, Any]:
    """Which conditional caveats apply: a small model, quantised weights, cells the validity gate drops."""
    st, name = run.settings, run.model_name
    small = (st.d_model is not None and st.d_model < 2048) or any(s in name.lower() for s in ("135m", "270m", "360m"))
    src = f"{st.source or ''} {name}".lower()
    gate = run.metrics.validity
    dropped = [k for k, ok in (gate.cells.items() if gate else ()) if ok is False]
    return {"small_model": small or not st.model_info,
            "quantised": "gguf" in src or "q4" in src or name in ("smollm2-135m", "gemma3-270m"), "dropped": dropped}
