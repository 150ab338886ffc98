"""`compare_runs`: two run folders side by side (key metrics, verdicts, overlaid probe accuracy and EI)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from entangle.report import fmt, html
from entangle.report.build import write_page
from entangle.report.figures.behaviour import ei_cells
from entangle.report.figures.representation import primary_probe_rows, probe_line
from entangle.report.figures.style import COLORS, err, finish
from entangle.report.metrics import MORAL_CELLS, EntanglementRun
from entangle.report.verdicts import QUESTIONS, judge
from entangle.runfolder import RunFolder
from entangle.schema import KINDS

COMPARE_FIGURES: dict[str, tuple[str, str]] = {
    "compare_probe_accuracy": (
        "Probe accuracy by layer, both runs",
        "CV accuracy of each kind's probe by layer (primary probe method), run A solid, run B dashed, with 95% CI "
        "bands. Layers are the runs' own numbering (0 = embedding output).",
    ),
    "compare_ei": (
        "Entanglement of the two runs",
        "EI of every off-diagonal cell of each run's judgement readout and the logprob readout, with 95% CIs.",
    ),
}


def compare_runs(run_a: str | Path, run_b: str | Path, out: str | Path) -> Path:
    """Write a side-by-side HTML page of two runs to `out`; either folder not validating raises RunFolderError."""
    a, b = EntanglementRun.read(RunFolder(run_a)), EntanglementRun.read(RunFolder(run_b))
    figs = {name: html.figure(name, *COMPARE_FIGURES[name], _safe(build, name, a, b))
            for name, build in (("compare_probe_accuracy", _probes), ("compare_ei", _ei))}
    page = html.page("compare.html.j2", f"entangle: {a.label} vs {b.label}", plotly=True, a=a, b=b,
                     rows=_rows(a, b), figures=figs,
                     verdicts=[(tag, r.label, [(k, QUESTIONS[k], v) for k, v in judge(r.metrics).items()])
                               for tag, r in (("A", a), ("B", b))])
    return write_page(Path(out), page)


def _safe(build: Callable[[EntanglementRun, EntanglementRun], go.Figure | str], name: str, a: EntanglementRun,
          b: EntanglementRun) -> go.Figure | str:
    try:
        res = build(a, b)
    except Exception as exc:  # noqa: BLE001 - a malformed table drops its figure, not the page
        return f"could not be drawn ({type(exc).__name__}: {exc})"
    return finish(res, COMPARE_FIGURES[name][0]) if isinstance(res, go.Figure) else res


def _probes(a: EntanglementRun, b: EntanglementRun) -> go.Figure | str:
    if a.table("probes") is None and b.table("probes") is None:
        return "neither run has probes.csv"
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, subplot_titles=list(KINDS), horizontal_spacing=0.04)
    for run, dash, tag in ((a, "solid", "A"), (b, "dash", "B")):
        df = run.table("probes")
        for j, k in enumerate(KINDS, 1):
            probe = run.metrics.probes.get(k)
            s = primary_probe_rows(df, k, probe.method if probe else None) if df is not None else None
            if s is None or s.empty:
                continue
            for t in probe_line(s, COLORS[k], f"{tag}: {run.label} · {k}", f"{tag}{k}", dash=dash):
                fig.add_trace(t, row=1, col=j)
            fig.update_xaxes(title_text="layer", row=1, col=j)
    fig.update_yaxes(title_text="CV accuracy", row=1, col=1)
    return fig.update_layout(height=440, legend={"orientation": "h", "y": -0.25})


def _ei(a: EntanglementRun, b: EntanglementRun) -> go.Figure | str:
    fig = go.Figure()
    for run, tag, symbol in ((a, "A", "circle"), (b, "B", "square")):
        cells = ei_cells(run)
        labels, y, lo, hi = [], [], [], []
        for readout, name in ((run.metrics.judgement_readout, "judgement"), ("logprob", "logprob")):
            for c, d in cells.get(readout, {}).items():
                f, _, k = c.partition("_to_")
                if f != k and fmt.finite(d.ei) is not None:
                    labels.append(f"{name}: {fmt.cell_label(c)}")
                    y.append(d.ei)
                    lo.append(d.ei if d.ci_low is None else d.ci_low)
                    hi.append(d.ei if d.ci_high is None else d.ci_high)
        if labels:
            fig.add_trace(go.Scatter(x=y, y=labels, mode="markers", name=f"{tag}: {run.label}",
                                     marker={"symbol": symbol, "size": 9}, error_x=err(y, lo, hi)))
    if not fig.data:
        return "neither run has EI cells"
    fig.add_vline(x=0, line={"color": "#999", "dash": "dot"})
    return fig.update_layout(height=480, xaxis_title="EI", yaxis={"autorange": "reversed"}, scattermode="group")


def _null(r: EntanglementRun, kind: str) -> str:
    """p of the run's repair against one null kind with its resolution, or why there is none."""
    a = r.metrics.ablation.primary_method if r.metrics.ablation else None
    if a is None or not a.tested:
        return "untested"
    t = a.nulls.get(kind)
    return "n/a" if t is None else f"{fmt.p_value(t.p_value)} (resolution {fmt.num(t.p_resolution, 3)})"


def _repair(r: EntanglementRun) -> str:
    """The mean repair of the valid cells with its interval, or "untested"."""
    a = r.metrics.ablation.primary_method if r.metrics.ablation else None
    pc = r.metrics.positive_control
    if a is None or not a.tested or (pc is not None and not pc.passed):
        return "untested"
    return fmt.est_pct(a.repair_fraction, a.ci_low, a.ci_high)


def _kept(r: EntanglementRun, contrast: str) -> str:
    pc = r.metrics.positive_control
    k = pc.kept.get(contrast) if pc else None
    return "n/a" if k is None else fmt.est(k.kept, k.ci_low, k.ci_high)


def _steer(r: EntanglementRun, kind: str) -> str:
    e = r.metrics.steering.interventional_ei.get(kind) if r.metrics.steering else None
    return "n/a" if e is None else fmt.est(e.estimate, e.ci_low, e.ci_high)


def _ei_cell(cell: str, readout: str | None = None) -> Callable[[EntanglementRun], str]:
    """EI [CI] of one cell, marked where the validity gate drops it."""
    def get(r: EntanglementRun) -> str:
        d = r.metrics.cells(readout).get(cell)
        if d is None:
            return "n/a"
        return fmt.est(d.ei, d.ci_low, d.ci_high) + (" (not valid)" if d.valid is False else "")
    return get


def _rows(a: EntanglementRun, b: EntanglementRun) -> list[tuple[str, str, str]]:
    """(measure, A, B) rows of the key-metrics table."""
    measures: list[tuple[str, Callable[[EntanglementRun], str]]] = [
        ("model", lambda r: r.model_name),
        ("weights hash", lambda r: str(r.settings.model_info.get("weights_hash", "n/a"))[:16]),
        ("judgement readout", lambda r: r.metrics.judgement_readout),
        ("human norm", lambda r: r.metrics.norm_source),
        ("stimuli sha256", lambda r: str(r.settings.stimuli.get("sha256", "n/a"))[:16]),
    ]
    for k in KINDS:
        measures.append((f"probe accuracy: {k}", lambda r, k=k: (
            "n/a" if (p := r.metrics.probes.get(k)) is None else
            f"{fmt.est(p.cv_accuracy, p.ci_low, p.ci_high, 3)} at layer {p.best_layer if p.best_layer is not None else '?'}")))
    for cell in MORAL_CELLS:
        label = fmt.cell_label(cell)
        measures.append((f"EI {label} (judgement)", _ei_cell(cell)))
        measures.append((f"excess {label}", lambda r, c=cell: (
            "n/a" if (d := r.metrics.cells().get(c)) is None else
            fmt.est(d.excess, d.excess_ci_low, d.excess_ci_high, sign=True))))
    measures += [
        ("EI moral→grammatical (logprob)", _ei_cell("moral_to_grammatical", "logprob")),
        ("causal moral direction", lambda r: r.metrics.positive_control.label if r.metrics.positive_control else "n/a"),
        ("moral effect kept (held out)", lambda r: _kept(r, "moral")),
        ("positive control", lambda r: "n/a" if (pc := r.metrics.positive_control) is None else
         ("passed" if pc.passed else "failed")),
        ("repair of the valid cells", _repair),
        ("p vs variance-matched null", lambda r: _null(r, "variance_matched")),
        ("p vs shuffled-label null", lambda r: _null(r, "shuffled_dom")),
        ("economic own effect kept", lambda r: _kept(r, "economic")),
        ("grammatical own effect kept", lambda r: _kept(r, r.metrics.grammar_contrast)),
        ("interventional EI economic", lambda r: _steer(r, "economic")),
        ("interventional EI grammatical", lambda r: _steer(r, "grammatical")),
    ]
    rows = [(label, fn(a), fn(b)) for label, fn in measures]
    va, vb = judge(a.metrics), judge(b.metrics)
    return rows + [(f"verdict: {k}", va[k].answer, vb[k].answer) for k in QUESTIONS]
