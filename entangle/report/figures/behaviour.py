"""Figures of behaviour: readouts by factor level, the EI matrix, and the model's EI against the human norm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from entangle.report import fmt
from entangle.report.figures.style import COLORS, err, kinds_in
from entangle.report.metrics import EICell, EntanglementRun
from entangle.schema import FACTORS, KINDS


def readout_order(names: list[str], judgement: str) -> list[str]:
    """The judgement readout first, the log-prob readout last."""
    return sorted(names, key=lambda r: (r != judgement, r == "logprob", r))


def ei_cells(run: EntanglementRun) -> dict[str, dict[str, EICell]]:
    """readout -> `<from>_to_<to>` -> cell, from metrics.json, or from ei.csv/excess.csv where it has none."""
    if run.metrics.behavioural:
        return {r: dict(c) for r, c in run.metrics.behavioural.items()}
    rows: dict[tuple[str, str], dict[str, float | None]] = {}
    ei, ex = run.table("ei"), run.table("excess")
    for r in ([] if ei is None else ei.itertuples(index=False)):
        rows.setdefault((str(r.readout), f"{r.from_factor}_to_{r.to_kind}"), {}).update(
            ei=r.ei, ci_low=r.ci_low, ci_high=r.ci_high, coef_p=getattr(r, "coef_p", None))
    for r in ([] if ex is None else ex.itertuples(index=False)):
        d = rows.setdefault((str(r.readout), f"{r.from_factor}_to_{r.to_kind}"), {})
        d.update(human_ei=r.ei_human, excess=r.excess, excess_ci_low=r.ci_low, excess_ci_high=r.ci_high)
        d.setdefault("ei", r.ei_model)
    out: dict[str, dict[str, EICell]] = {}
    for (readout, cell), d in rows.items():
        out.setdefault(readout, {})[cell] = EICell(*(None if pd.isna(v := d.get(k)) else float(v) for k in (
            "ei", "ci_low", "ci_high", "human_ei", "excess", "excess_ci_low", "excess_ci_high", "coef_p")))
    return out


def level_means(run: EntanglementRun) -> go.Figure | str:
    """Mean readout per factor level with frame-bootstrap intervals, one panel per readout × kind; a panel whose
    readout does not order its own factor's levels (monotonicity) says so in its title."""
    df = run.table("level_means")
    if df is None:
        return "level_means.csv is missing"
    need = {"readout", "kind", "factor", "level", "mean", "ci_low", "ci_high"}
    if not need <= set(df.columns):
        return f"level_means.csv lacks columns {sorted(need - set(df.columns))}"
    names = readout_order(list(df["readout"].astype(str).unique()), run.metrics.judgement_readout)
    kinds_of = {r: kinds_in(df.loc[df["readout"].astype(str) == r, "kind"]) for r in names}
    ncol = max(len(v) for v in kinds_of.values())
    mono = run.metrics.monotonicity

    def title(r: str, k: str) -> str:
        flag = mono.get(f"{r}.{k}")
        return f"{r} · {k} judgement" + (" · not monotone" if flag is False else "")

    titles = [title(r, kinds_of[r][j]) if j < len(kinds_of[r]) else "" for r in names for j in range(ncol)]
    fig = make_subplots(rows=len(names), cols=ncol, horizontal_spacing=0.07, vertical_spacing=0.16,
                        subplot_titles=titles)
    shown: set[str] = set()
    for i, r in enumerate(names, 1):
        for j in range(len(kinds_of[r]) + 1, ncol + 1):
            fig.update_xaxes(visible=False, row=i, col=j)
            fig.update_yaxes(visible=False, row=i, col=j)
        for j, k in enumerate(kinds_of[r], 1):
            sub = df[(df["readout"].astype(str) == r) & (df["kind"].astype(str) == k)]
            for f in FACTORS:
                s = sub[sub["factor"] == f].sort_values("level")
                if s.empty:
                    continue
                fig.add_trace(go.Scatter(
                    x=s["level"], y=s["mean"], mode="lines+markers", name=f"{f} factor", legendgroup=f,
                    showlegend=f not in shown, line={"color": COLORS.get(f), "width": 3 if f == k else 1.5},
                    error_y=err(s["mean"], s["ci_low"], s["ci_high"]),
                    hovertemplate=f"{f}=%{{x}}<br>mean %{{y:.3f}}<extra>{r} · {k}</extra>"), row=i, col=j)
                shown.add(f)
            fig.update_yaxes(title_text="mean readout" if j == 1 else None, row=i, col=j)
            fig.update_xaxes(title_text="factor level", tickvals=[-1, 0, 1], row=i, col=j)
    fig.update_layout(height=330 * len(names) + 60)
    return fig


def ei_matrix(run: EntanglementRun) -> go.Figure | str:
    cells = ei_cells(run)
    if not cells:
        return "metrics.json has no entanglement.behavioural section (and ei.csv is missing)"
    names = readout_order(list(cells), run.metrics.judgement_readout)
    cols_of = {}
    for r in names:
        tos = {c.split("_to_", 1)[1] for c in cells[r] if "_to_" in c}
        cols_of[r] = [k for k in KINDS if k in tos] + sorted(tos - set(KINDS))
    fig = make_subplots(rows=1, cols=len(names), column_widths=[max(len(cols_of[r]), 1) for r in names],
                        subplot_titles=[f"{r} readout" for r in names], horizontal_spacing=0.12)
    for j, r in enumerate(names, 1):
        cols = cols_of[r]
        z = np.full((len(FACTORS), len(cols)), np.nan)
        text = np.full(z.shape, "", dtype=object)
        for i, f in enumerate(FACTORS):
            for c, k in enumerate(cols):
                d = cells[r].get(f"{f}_to_{k}")
                if d is not None:
                    z[i, c] = np.nan if fmt.finite(d.ei) is None else d.ei
                    text[i, c] = f"{fmt.num(d.ei)}<br>[{fmt.num(d.ci_low)}, {fmt.num(d.ci_high)}]"
        fig.add_trace(go.Heatmap(z=z, x=[f"{k} judgement" for k in cols], y=[f"{f} factor" for f in FACTORS],
                                 text=text, texttemplate="%{text}", zmin=-1, zmax=1, zmid=0, colorscale="RdBu_r",
                                 showscale=j == len(names), colorbar={"title": {"text": "EI"}},
                                 hovertemplate="%{y} → %{x}<br>EI %{text}<extra>" + r + "</extra>"), row=1, col=j)
        fig.update_yaxes(autorange="reversed", showticklabels=j == 1, row=1, col=j)
    fig.update_layout(height=420)
    return fig


def excess(run: EntanglementRun) -> go.Figure | str:
    cells = ei_cells(run)
    rows = []
    for r in readout_order(list(cells), run.metrics.judgement_readout):
        for c, d in cells[r].items():
            f, _, k = c.partition("_to_")
            if f != k and fmt.finite(d.ei) is not None:
                rows.append({"label": f"{r}: {fmt.cell_label(c)}", "moral": f == "moral", "ei": d.ei,
                             "ci_low": d.ci_low, "ci_high": d.ci_high, "human_ei": d.human_ei, "excess": d.excess,
                             "excess_ci_low": d.excess_ci_low, "excess_ci_high": d.excess_ci_high})
    if not rows:
        return "no off-diagonal EI cells in metrics.json"
    t = pd.DataFrame(rows).iloc[::-1].astype({k: float for k in rows[0] if k not in ("label", "moral")})
    t["excess"] = t["excess"].fillna(t["ei"] - t["human_ei"].fillna(0))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=["EI: model vs human norm", "excess = EI_model − EI_human"])
    colors = [COLORS["moral"] if m else "#555" for m in t["moral"]]
    fig.add_trace(go.Scatter(x=t["ei"], y=t["label"], mode="markers", name="model EI (95% CI)",
                             marker={"color": colors, "size": 9},
                             error_x=err(t["ei"], t["ci_low"].fillna(t["ei"]), t["ci_high"].fillna(t["ei"]))),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=t["human_ei"].fillna(0), y=t["label"], mode="markers", name="human norm",
                             marker={"symbol": "diamond-open", "size": 11, "color": "black"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=t["excess"], y=t["label"], mode="markers", name="excess (95% CI)",
                             marker={"color": colors, "size": 9, "symbol": "square"},
                             error_x=err(t["excess"], t["excess_ci_low"].fillna(t["excess"]),
                                         t["excess_ci_high"].fillna(t["excess"]))), row=1, col=2)
    for col in (1, 2):
        fig.add_vline(x=0, line={"color": "#999", "dash": "dot"}, row=1, col=col)
    fig.update_layout(height=max(320, 34 * len(t) + 140), legend={"orientation": "h", "y": -0.15})
    return fig
