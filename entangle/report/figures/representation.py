"""Figures of representations: probe accuracy by layer, cosines and cross-decoding per layer, moral leakage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from entangle.report import fmt
from entangle.report.figures.style import COLORS, band, heatmap_slider, kinds_in
from entangle.report.metrics import EntanglementRun


def primary_probe_rows(df: pd.DataFrame, kind: str, method: str | None) -> pd.DataFrame:
    """probes.csv rows of one kind for its primary method (the first method where `method` is not in the table)."""
    s = df[df["kind"] == kind]
    if "method" in s.columns and len(s):
        s = s[s["method"] == (method if method in set(s["method"]) else s["method"].iloc[0])]
    return s.sort_values("layer")


def probe_line(s: pd.DataFrame, color: str, name: str, group: str, **line: Any) -> list[go.Scatter]:
    """A probe's accuracy by layer, with its 95% CI band where probes.csv has one."""
    traces = []
    if {"acc_ci_low", "acc_ci_high"} <= set(s.columns):
        traces.append(band(s["layer"], s["acc_ci_low"], s["acc_ci_high"], color, f"{name} 95% CI", group))
    traces.append(go.Scatter(x=s["layer"], y=s["accuracy"], mode="lines", name=name, legendgroup=group,
                             line={"color": color, **line},
                             hovertemplate="layer %{x}<br>accuracy %{y:.3f}<extra>" + name + "</extra>"))
    return traces


def probe_accuracy(run: EntanglementRun) -> go.Figure | str:
    df = run.table("probes")
    if df is None:
        return "probes.csv is missing"
    if not {"layer", "kind", "accuracy"} <= set(df.columns):
        return "probes.csv lacks layer/kind/accuracy"
    kinds = kinds_in(df["kind"])
    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True, subplot_titles=kinds, horizontal_spacing=0.04)
    for j, k in enumerate(kinds, 1):
        probe = run.metrics.probes.get(k)
        color = COLORS.get(k, "#555")
        main = primary_probe_rows(df, k, probe.method if probe else None)
        meth = main["method"].iloc[0] if "method" in main.columns and len(main) else None
        for t in probe_line(main, color, f"{k} ({meth})" if meth else k, k, width=2):
            fig.add_trace(t, row=1, col=j)
        others = df[(df["kind"] == k) & (df["method"] != meth)] if meth else df.iloc[0:0]
        for other, s in others.groupby("method", sort=False):
            fig.add_trace(go.Scatter(x=s.sort_values("layer")["layer"], y=s.sort_values("layer")["accuracy"],
                                     mode="lines", name=f"{k} ({other})", legendgroup=k,
                                     line={"color": color, "dash": "dot", "width": 1.3}), row=1, col=j)
        if "shuffled_accuracy" in main.columns:
            fig.add_trace(go.Scatter(x=main["layer"], y=main["shuffled_accuracy"], mode="lines",
                                     name="shuffled labels", legendgroup="shuffled", showlegend=j == 1,
                                     line={"color": "#888", "dash": "dash", "width": 1.2}), row=1, col=j)
        best = main[main["layer"] == probe.best_layer] if probe and probe.best_layer is not None else (
            main[main["best"].astype(str).str.lower().isin(["true", "1"])] if "best" in main.columns else main[:0])
        if len(best):
            fig.add_trace(go.Scatter(x=best["layer"][:1], y=best["accuracy"][:1], mode="markers",
                                     marker={"symbol": "star", "size": 13, "color": color,
                                             "line": {"color": "black", "width": 1}},
                                     name=f"{k} best layer", showlegend=False,
                                     hovertemplate="best layer %{x}<br>accuracy %{y:.3f}<extra></extra>"),
                          row=1, col=j)
        fig.update_xaxes(title_text="layer", row=1, col=j)
    fig.update_yaxes(title_text="CV accuracy", row=1, col=1)
    fig.update_layout(height=420)
    return fig


def _active_layer(layers: list[Any], run: EntanglementRun) -> int:
    probe = run.metrics.probes.get("moral")
    return layers.index(probe.best_layer) if probe and probe.best_layer in layers else 0


def _per_layer(run: EntanglementRun, name: str) -> pd.DataFrame | str:
    """A per-layer table for a layer-slider figure, or why there is none."""
    df = run.table(name)
    if df is None:
        return f"{name}.csv is missing"
    return f"{name}.csv is empty" if df.empty else df


def cosine(run: EntanglementRun) -> go.Figure | str:
    df = _per_layer(run, "cosine")
    if isinstance(df, str):
        return df
    kinds = kinds_in(pd.concat([df["kind_a"], df["kind_b"]]))
    idx = {k: i for i, k in enumerate(kinds)}
    layers = sorted(df["layer"].unique().tolist())
    frames = []
    for layer in layers:
        z = np.eye(len(kinds))
        for r in df[df["layer"] == layer].itertuples(index=False):
            z[idx[r.kind_a], idx[r.kind_b]] = z[idx[r.kind_b], idx[r.kind_a]] = r.cosine
        frames.append((layer, z, np.vectorize(fmt.num, otypes=[object])(z)))
    return heatmap_slider(frames, kinds, kinds, zrange=(-1, 1), colorbar="cosine", active=_active_layer(layers, run))


def cross_decoding(run: EntanglementRun) -> go.Figure | str:
    df = _per_layer(run, "cross_decoding")
    if isinstance(df, str):
        return df
    dks, pks = kinds_in(df["direction_kind"]), kinds_in(df["prompt_kind"])
    layers = sorted(df["layer"].unique().tolist())
    has_ci = {"ci_low", "ci_high"} <= set(df.columns)
    frames = []
    for layer in layers:
        sub = df[df["layer"] == layer].set_index(["direction_kind", "prompt_kind"])
        z = np.full((len(dks), len(pks)), np.nan)
        text = np.full(z.shape, "", dtype=object)
        for i, dk in enumerate(dks):
            for j, pk in enumerate(pks):
                if (dk, pk) in sub.index:
                    r = sub.loc[(dk, pk)]
                    z[i, j] = r["auc"]
                    text[i, j] = fmt.num(r["auc"]) + (f"<br>[{fmt.num(r['ci_low'])}, {fmt.num(r['ci_high'])}]"
                                                     if has_ci else "")
        frames.append((layer, z, text))
    return heatmap_slider(frames, [f"{k} prompts" for k in pks], [f"{k} direction" for k in dks], zrange=(0, 1),
                          colorbar="AUC", active=_active_layer(layers, run), zmid=0.5)


def leakage(run: EntanglementRun) -> go.Figure | str:
    df = run.table("leakage")
    if df is None:
        return "leakage.csv is missing"
    fig = go.Figure()
    for k in kinds_in(df["to_kind"]):
        s = df[df["to_kind"] == k].sort_values("layer")
        color = COLORS.get(k, "#555")
        if {"ci_low", "ci_high"} <= set(s.columns):
            fig.add_trace(band(s["layer"], s["ci_low"], s["ci_high"], color, f"moral→{k} 95% CI", k))
        fig.add_trace(go.Scatter(x=s["layer"], y=s["leakage"], mode="lines+markers", name=f"moral→{k}",
                                 legendgroup=k, line={"color": color}, marker={"size": 4}))
    fig.add_hline(y=0, line={"color": "#999", "dash": "dot"})
    probe = run.metrics.probes.get("moral")
    if probe and probe.best_layer is not None:
        fig.add_vline(x=probe.best_layer, line={"color": COLORS["moral"], "dash": "dot"},
                      annotation_text=f"moral best layer {probe.best_layer}", annotation_position="top left")
    fig.update_layout(height=420, xaxis_title="layer", yaxis_title="leakage L(m→K)")
    return fig
