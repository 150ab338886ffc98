"""Figures of the ablations: EI before/after, repair by method and by layer rule, random controls, selectivity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from entangle.report import fmt
from entangle.report.figures.style import COLORS, err, kinds_in
from entangle.report.metrics import MORAL_CELLS, AblationMethod, EntanglementRun


def _methods(run: EntanglementRun) -> dict[str, AblationMethod]:
    return dict(run.metrics.ablation.methods) if run.metrics.ablation else {}


def _judgement_rows(run: EntanglementRun) -> pd.DataFrame | None:
    """ablation.csv rows of the judgement readout (the file also holds log-prob rows for moral→grammatical)."""
    csv = run.table("ablation")
    if csv is not None and "readout" in csv.columns:
        csv = csv[csv["readout"] == run.metrics.judgement_readout]
    return csv


def _csv_interval(csv: pd.DataFrame | None, method: str, to: str, col: str) -> tuple[float | None, float | None]:
    """(`col`_ci_low, `col`_ci_high) of one method and cell from ablation.csv, or (None, None)."""
    lo, hi = f"{col}_ci_low", f"{col}_ci_high"
    if csv is None or not {lo, hi} <= set(csv.columns):
        return None, None
    r = csv[(csv["method"] == method) & (csv["to_kind"] == to)]
    return (fmt.finite(float(r[lo].iloc[0])), fmt.finite(float(r[hi].iloc[0]))) if len(r) else (None, None)


def ablation_cells(run: EntanglementRun) -> go.Figure | str:
    meths = _methods(run)
    if not meths:
        return "metrics.json has no ablation section"
    beh = run.metrics.cells()
    csv = _judgement_rows(run)
    names = list(meths)
    xs = np.arange(len(names))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=[fmt.cell_label(c) for c in MORAL_CELLS],
                        horizontal_spacing=0.05)
    for j, cell in enumerate(MORAL_CELLS, 1):
        to = cell.split("_to_")[1]
        cells = [meths[n].cells.get(cell) for n in names]
        before = np.array([c.ei_before if c else None for c in cells], dtype=float)
        after = np.array([c.ei_after if c else None for c in cells], dtype=float)
        after_ci = [(c.ei_after_ci_low, c.ei_after_ci_high) if c and None not in (c.ei_after_ci_low, c.ei_after_ci_high)
                    else _csv_interval(csv, n, to, "ei_after") for n, c in zip(names, cells, strict=True)]
        before_ci = [_csv_interval(csv, n, to, "ei_before") for n in names]
        ref = beh.get(cell)
        if any(None not in ci for ci in before_ci):
            berr = err(before, [lo for lo, _ in before_ci], [hi for _, hi in before_ci])
        elif ref and None not in (ref.ei, ref.ci_low, ref.ci_high):
            # the run's behavioural interval, shifted to the ablation prompts' EI
            berr = err(before, before - (ref.ei - ref.ci_low), before + (ref.ci_high - ref.ei))
        else:
            berr = None
        aerr = err(after, [lo for lo, _ in after_ci], [hi for _, hi in after_ci]) if all(
            None not in ci for ci in after_ci) else None
        fig.add_trace(go.Scatter(x=xs - 0.12, y=before, mode="markers", name="before (95% CI)", legendgroup="before",
                                 showlegend=j == 1, marker={"color": "#888", "size": 10}, error_y=berr), row=1, col=j)
        fig.add_trace(go.Scatter(x=xs + 0.12, y=after, mode="markers", name="after" + (" (95% CI)" if aerr else ""),
                                 legendgroup="after", showlegend=j == 1,
                                 marker={"color": COLORS[to], "size": 11, "symbol": "diamond"}, error_y=aerr),
                      row=1, col=j)
        human = ref.human_ei if ref and ref.human_ei is not None else 0.0
        fig.add_hline(y=human, line={"color": "black", "dash": "dash"}, row=1, col=j,
                      annotation_text="human norm", annotation_position="bottom right")
        fig.update_xaxes(tickvals=list(xs), ticktext=names, row=1, col=j)
    fig.update_yaxes(title_text="EI", row=1, col=1)
    fig.update_layout(height=430)
    return fig


def repair_by_method(run: EntanglementRun, names: list[str] | None = None,
                     x_labels: list[str] | None = None) -> go.Figure | str:
    meths = _methods(run)
    if not meths:
        return "metrics.json has no ablation section"
    names = list(meths) if names is None else names
    chosen = [meths[n] for n in names]
    xs = np.arange(len(names))
    fig = go.Figure()
    rnd = run.metrics.ablation.random
    if rnd and rnd.repair_fraction_mean is not None and rnd.repair_fraction_sd is not None:
        mu, sd = rnd.repair_fraction_mean, rnd.repair_fraction_sd
        fig.add_hrect(y0=mu - sd, y1=mu + sd, fillcolor="#bbb", opacity=0.3, line_width=0,
                      annotation_text=f"random directions (n={rnd.n if rnd.n is not None else '?'}) mean ± SD",
                      annotation_position="top left")
    for off, cell in zip((-0.15, 0.15), MORAL_CELLS, strict=True):
        cells = [m.cells.get(cell) for m in chosen]
        y = np.array([c.repair_fraction if c else None for c in cells], dtype=float)
        fig.add_trace(go.Scatter(x=xs + off, y=y, mode="markers", name=fmt.cell_label(cell),
                                 marker={"color": COLORS[cell.split("_to_")[1]], "size": 7, "opacity": 0.75},
                                 error_y=err(y, [c.ci_low if c else None for c in cells],
                                             [c.ci_high if c else None for c in cells])))
    y = np.array([m.repair_fraction for m in chosen], dtype=float)
    fig.add_trace(go.Scatter(x=xs, y=y, mode="markers+text", name="mean of the two cells",
                             text=[fmt.p_value(m.random_p_value) if m.random_p_value is not None else "" for m in chosen],
                             textposition="top right", textfont={"size": 10}, marker={"color": "black", "size": 10},
                             error_y=err(y, [m.ci_low for m in chosen], [m.ci_high for m in chosen])))
    fig.add_hline(y=0, line={"color": "#999", "dash": "dot"})
    fig.add_hline(y=1, line={"color": "#999", "dash": "dot"}, annotation_text="full repair",
                  annotation_position="bottom left")
    fig.update_layout(height=430, yaxis_title="repair fraction",
                      xaxis={"tickvals": list(xs), "ticktext": x_labels or names, "title": "ablation"})
    return fig


def random_controls(run: EntanglementRun) -> go.Figure | str:
    df = run.table("ablation_random")
    if df is None:
        return "ablation_random.csv is missing"
    if df.empty or "repair_fraction" not in df.columns:
        return "ablation_random.csv has no repair fractions"
    per = df.groupby("index")["repair_fraction"].mean() if "index" in df.columns else df["repair_fraction"]
    fig = go.Figure(go.Histogram(x=per, nbinsx=max(10, min(40, len(per) // 2)), name="random directions",
                                 marker={"color": "#999", "line": {"color": "white", "width": 1}}))
    abl = run.metrics.ablation
    primary = abl.primary_method if abl else None
    name = primary.name if primary else "moral"
    if "moral_repair_fraction_same_subset" in df.columns:
        same = df.groupby("to_kind")["moral_repair_fraction_same_subset"].mean() if "to_kind" in df.columns else \
            df["moral_repair_fraction_same_subset"]
        moral = fmt.finite(float(same.mean()))
        label = f"{name} on the same subset"
    else:
        moral, label = (primary.repair_fraction if primary else None), name
    if moral is not None:
        p = primary.random_p_value if primary else None
        fig.add_vline(x=moral, line={"color": COLORS["moral"], "width": 3},
                      annotation_text=f"{label}: {fmt.num(moral)} ({fmt.p_value(p)})", annotation_position="top")
    fig.update_layout(height=380, xaxis_title="repair fraction (mean over the two moral cells)",
                      yaxis_title="random directions", showlegend=False, bargap=0.05)
    return fig


def layer_sweep(run: EntanglementRun) -> go.Figure | str:
    meths = _methods(run)
    csv = _judgement_rows(run)
    if csv is not None and {"method", "direction_kind"} <= set(csv.columns):
        moral = set(csv.loc[csv["direction_kind"] == "moral", "method"])
        names = [n for n in meths if n in moral and "leace" not in n.lower()]
    else:
        names = [n for n in meths if n.startswith("moral_")]
    if not names:
        return "no moral-direction ablations with a layer rule"
    labels = [f"{meths[n].rule or n}<br>({fmt.layers(meths[n].layers)})" for n in names]
    fig = repair_by_method(run, names, labels)
    return fig.update_layout(xaxis_title="layer rule") if isinstance(fig, go.Figure) else fig


def selectivity(run: EntanglementRun) -> go.Figure | str:
    df = run.table("selectivity")
    if df is None:
        rows = [{"method": n, "kind": k, "estimate": v, "ci_low": None, "ci_high": None}
                for n, m in _methods(run).items() for k, v in m.selectivity.items()]
        if not rows:
            return "selectivity.csv is missing and metrics.json has no selectivity"
        df = pd.DataFrame(rows)
    methods = list(pd.unique(df["method"]))
    fig = go.Figure()
    for k in kinds_in(df["kind"]):
        s = df[df["kind"] == k].set_index("method").reindex(methods)
        y = s["estimate"].astype(float)
        has_ci = {"ci_low", "ci_high"} <= set(s.columns) and s["ci_low"].notna().all()
        fig.add_trace(go.Bar(x=methods, y=y, name=f"{k} own effect", marker_color=COLORS.get(k),
                             error_y=err(y, s["ci_low"].astype(float), s["ci_high"].astype(float)) if has_ci else None))
    fig.add_hline(y=1, line={"color": "black", "dash": "dash"}, annotation_text="untouched",
                  annotation_position="top left")
    fig.update_layout(barmode="group", height=420, yaxis_title="own effect after / before", xaxis_title="ablation")
    return fig
