"""The trade-offs section: interference heatmaps per layer, positive controls and own-value efficacy per
decorrelation method, cross-effects, the steering frontier per method with the unsteered point (and the moral
ablation), and the hypervolume table with intervals; rebuilt from metrics.json's `tradeoffs` block and the
`tradeoffs/*` tables."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from entangle.report.fmt import est, num
from entangle.runfolder import RunFolder, RunFolderError

TITLE = "Multi-value trade-offs"
REQUIRED = ("frontier", "layer", "alpha", "positive_control", "efficacy", "hypervolume", "comparisons")
HEAT = (("cosine", "DoM cosine", "RdBu", -1, 1), ("angle_first", "first principal angle (°)", "Viridis", 0, 90),
        ("cka", "linear CKA", "Viridis", 0, 1), ("hsic_rbf", "HSIC (RBF, median σ)", "Viridis", None, None))


def present(metrics: dict[str, Any]) -> bool:
    """True when the trade-offs study wrote its block."""
    return isinstance(metrics.get("tradeoffs"), dict)


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='tradeoffs'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _fig(fig: go.Figure, title: str) -> str:
    fig.update_layout(title={"text": title}, template="plotly_white", margin={"l": 60, "r": 30, "t": 80, "b": 60})
    return fig.to_html(full_html=False, include_plotlyjs=False)


def err(y: Any, lo: Any, hi: Any) -> dict[str, Any]:
    """Asymmetric error bars from an estimate and its interval."""
    y, lo, hi = (np.asarray(v, dtype=float) for v in (y, lo, hi))
    return {"type": "data", "symmetric": False, "array": np.maximum(hi - y, 0), "arrayminus": np.maximum(y - lo, 0),
            "thickness": 1.2, "width": 4}


def interference_figure(inter: pd.DataFrame) -> go.Figure:
    """One heatmap per measure: layers (rows) × value pairs (columns, self = split-half), hover with the interval."""
    fig = make_subplots(rows=1, cols=len(HEAT), subplot_titles=[h[1] for h in HEAT], horizontal_spacing=0.06)
    df = inter.assign(pair=inter["value_a"] + "·" + inter["value_b"])
    for i, (m, _, scale, lo, hi) in enumerate(HEAT, 1):
        d = df[df["measure"] == m]
        if d.empty:
            continue
        z = d.pivot(index="layer", columns="pair", values="estimate")
        text = d.assign(t=[f"{e:.3f} [{a:.3f}, {b:.3f}]" for e, a, b in zip(d.estimate, d.ci_low, d.ci_high,
                                                                            strict=True)]
                        ).pivot(index="layer", columns="pair", values="t").loc[z.index, z.columns]
        fig.add_trace(go.Heatmap(z=z.values, x=list(z.columns), y=list(z.index), colorscale=scale, zmin=lo, zmax=hi,
                                 text=text.values, hovertemplate="layer %{y}, %{x}: %{text}<extra></extra>",
                                 showscale=False), row=1, col=i)
    fig.update_yaxes(title_text="layer", row=1, col=1)
    return fig.update_layout(height=420)


def frontier_figure(points: pd.DataFrame, frontier: list[str], methods: list[str]) -> go.Figure:
    """Gain on the first two frontier values per method (colour: neutral-loss increase), Pareto points of the
    method's largest grid ringed, the unsteered point at the origin and the moral ablation where measured."""
    a, b = frontier[0], frontier[1] if len(frontier) > 1 else frontier[0]
    fig = make_subplots(rows=1, cols=len(methods), subplot_titles=methods, shared_yaxes=True)
    base = points[points["method"] == "unsteered"]
    abl = points[points["method"] == "moral_ablation"]
    pareto_cols = [c for c in points.columns if c.startswith("pareto_")]
    for i, m in enumerate(methods, 1):
        d = points[points["method"] == m]
        if d.empty:
            continue
        labels = [", ".join(f"ω_{v}={r[f'w_{v}']:g}" for v in frontier) + f"; Δloss {r['loss_increase']:.3f}"
                  for _, r in d.iterrows()]
        fig.add_trace(go.Scatter(x=d[f"gain_{a}"], y=d[f"gain_{b}"], mode="markers", name=m, text=labels,
                                 error_x=err(d[f"gain_{a}"], d[f"gain_{a}_low"], d[f"gain_{a}_high"]),
                                 error_y=err(d[f"gain_{b}"], d[f"gain_{b}_low"], d[f"gain_{b}_high"]),
                                 marker={"color": d["loss_increase"], "colorscale": "Reds", "cmin": 0,
                                         "size": 9, "showscale": i == len(methods),
                                         "colorbar": {"title": "Δloss"}},
                                 hovertemplate="%{text}<extra></extra>", showlegend=False), row=1, col=i)
        cols = [c for c in pareto_cols if d[c].notna().any()]
        if cols:
            on = d[d[cols[-1]].fillna(False).astype(bool)]
            fig.add_trace(go.Scatter(x=on[f"gain_{a}"], y=on[f"gain_{b}"], mode="markers", name="Pareto",
                                     marker={"size": 15, "color": "rgba(0,0,0,0)", "line": {"width": 1.5}},
                                     hoverinfo="skip", showlegend=i == 1), row=1, col=i)
        fig.add_trace(go.Scatter(x=base[f"gain_{a}"], y=base[f"gain_{b}"], mode="markers", name="unsteered",
                                 marker={"symbol": "x", "size": 12, "color": "black"}, showlegend=i == 1),
                      row=1, col=i)
        if not abl.empty:
            fig.add_trace(go.Scatter(x=abl[f"gain_{a}"], y=abl[f"gain_{b}"], mode="markers",
                                     name="moral ablation (ω_moral = 0)",
                                     error_x=err(abl[f"gain_{a}"], abl[f"gain_{a}_low"], abl[f"gain_{a}_high"]),
                                     error_y=err(abl[f"gain_{b}"], abl[f"gain_{b}_low"], abl[f"gain_{b}_high"]),
                                     marker={"symbol": "diamond", "size": 11, "color": "#7d3c98"},
                                     showlegend=i == 1), row=1, col=i)
        fig.update_xaxes(title_text=f"gain on {a}", row=1, col=i)
    fig.update_yaxes(title_text=f"gain on {b}", row=1, col=1)
    return fig.update_layout(height=480, legend={"orientation": "h", "y": -0.25, "x": 0})


def render(folder: RunFolder, metrics: dict[str, Any]) -> str:
    """HTML fragment for metrics['tradeoffs']; a block missing a required key raises RunFolderError."""
    t = metrics["tradeoffs"]
    for key in REQUIRED:
        if key not in t:
            raise RunFolderError(folder.metrics_path, None, f"tradeoffs.{key}", "missing")
    frontier, methods = list(t["frontier"]), list(t["efficacy"])
    parts = [(f"<p>Steering at layer {int(t['layer'])} with Σ ω<sub>i</sub>·α·σ·d<sub>i</sub> (α = "
             f"{escape(num(t['alpha']))}, σ = {escape(num(t.get('sigma')))}); frontier values: "
             f"{escape(', '.join(frontier))}. Readout: {escape(str(t.get('readout')))}. Intervals: "
             f"{escape(str(t.get('n_boot')))} resamples of {escape(str(t.get('resampling_unit')))}.</p>")]
    pc = t["positive_control"]
    parts.append("<h3>Positive control and own-value efficacy</h3>")
    if not t.get("positive_control_passes"):
        failed = [v for v, c in pc.items() if not c.get("passes")]
        parts.append(f"<p class='caveat'>The readout of {escape(', '.join(failed))} does not move with its own raw "
                     "direction (interval includes 0 or is negative): gains and cross-effects on it test nothing.</p>")
    rows = [[m, v, est(e["delta"], e["ci_low"], e["ci_high"], 3, True), num(e.get("ratio_to_raw")),
             num(e.get("raw_delta"), 3, True)] for m, ev in t["efficacy"].items() for v, e in ev.items()]
    parts.append(_table(["method", "value", "Δ own readout [95% CI]", "÷ raw", "raw Δ"], rows))
    inter = folder.table("tradeoffs/interference")
    if inter is not None:
        parts.append("<h3>Interference per layer</h3>")
        parts.append(_fig(interference_figure(inter), "Interference between value subspaces (hover: 95% CI)"))
        parts.append("<p class='caption'>Columns a·a are split-half agreement of a value with itself (the ceiling). "
                     "CKA and HSIC compare the coordinates of all values' training texts in each value's rank-k "
                     "subspace; intervals resample training pairs.</p>")
    fx = folder.table("tradeoffs/cross_effects")
    if fx is not None:
        raw = fx[fx["method"] == "none"]
        parts.append("<h3>Behavioural cross-effects (raw directions, ω = 1)</h3>")
        parts.append(_table(["steered", "readout", "Δ readout [95% CI]"],
                            [[r.steered, r.readout, est(r.estimate, r.ci_low, r.ci_high, 3, True)]
                             for r in raw.itertuples()]))
    pts = folder.table("tradeoffs/points")
    if pts is not None:
        parts.append("<h3>Steering frontier per method</h3>")
        parts.append(_fig(frontier_figure(pts, frontier, methods), "Gains over the unsteered model (95% CI)"))
    parts.append("<h3>Hypervolume against the unsteered model</h3>")
    parts.append(_table(["method", "grid", "points", "Pareto", "hypervolume [95% CI]"],
                        [[r["method"], r["grid"], str(r["n_points"]), str(r["n_pareto"]),
                          est(r["hv"], r["ci_low"], r["ci_high"], 5)] for r in t["hypervolume"]]))
    parts.append(_table(["comparison", "a", "b", "HV a", "HV b", "a − b [95% CI]", "share of draws ≤ 0"],
                        [[c["comparison"], c["a"], c["b"], num(c["hv_a"], 5), num(c["hv_b"], 5),
                          est(c["estimate"], c["ci_low"], c["ci_high"], 5, True), num(c["share_draws_le_0"])]
                         for c in t["comparisons"]]))
    parts.append("<p class='caption'>Objectives: each frontier value's readout gain and minus the neutral-loss "
                 "increase; reference point: the unsteered model, with the fluency axis ending at a loss increase "
                 f"of {escape(num(t.get('config', {}).get('fluency_budget')))} nats/token. Grids nest (convex ⊂ box "
                 "⊂ extrapolated boxes), so a larger grid's hypervolume is never smaller; the question is by how "
                 "much.</p>")
    return "\n".join(parts)
