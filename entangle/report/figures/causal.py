"""Figures of the causal test: the candidate screen, effects kept under the chosen ablation and its controls, the
matched nulls against the observed repair, steering dose–response, and the activation-patching map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from entangle.report import fmt
from entangle.report.figures.style import COLORS, band, err
from entangle.report.metrics import EntanglementRun
from entangle.report.metrics_causal import NULL_KINDS, NULL_LABELS, Kept

METHOD_COLORS: dict[str, str] = {"dom": "#c0392b", "logistic": "#7d3c98", "lda": "#d68910"}
CONTRASTS: tuple[tuple[str, str], ...] = (
    ("moral", "moral own effect"), ("economic", "economic own effect"), ("grammatical", "grammatical own (cloze)"),
    ("grammatical_logprob", "grammatical own (log-prob)"), ("moral_to_economic", "moral→economic"),
    ("moral_to_grammatical", "moral→grammatical"),
)
"""Contrasts of the effects-kept figure, in order, with their axis labels."""


def candidate_screen(run: EntanglementRun) -> go.Figure | str:
    """Left: the first-order estimate of the moral effect kept for every candidate by layer; right: estimate against
    the exact ablation for the candidates confirmed exactly (95% frame-bootstrap interval, selection frames)."""
    cand, sel = run.table("candidates"), run.table("selection")
    if cand is None and sel is None:
        return "candidates.csv and selection.csv are missing"
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=[
        "first-order estimate, every candidate", "estimate vs exact ablation (selection frames)"])
    if cand is not None:
        for (method, position), s in cand.sort_values("layer").groupby(["method", "position"], sort=False):
            fig.add_trace(go.Scatter(x=s["layer"], y=s["estimated_kept"], mode="lines+markers",
                                     name=f"{method} @ {position}", legendgroup=str(method),
                                     line={"color": METHOD_COLORS.get(str(method), "#555"),
                                           "dash": "solid" if position == "last" else "dot"}), row=1, col=1)
        fig.update_xaxes(title_text="layer", row=1, col=1)
        fig.update_yaxes(title_text="moral effect kept (estimate)", row=1, col=1)
    if sel is not None:
        pc = run.metrics.positive_control
        for passes, symbol in ((True, "circle"), (False, "x")):
            s = sel[sel["passes_filters"].astype(bool) == passes]
            if s.empty:
                continue
            chosen = [pc is not None and (r.method, r.position, r.layer) == (pc.method, pc.position, pc.layer)
                      for r in s.itertuples(index=False)]
            fig.add_trace(go.Scatter(
                x=s["estimated_kept"], y=s["moral_kept"], mode="markers",
                name="passes the filters" if passes else "fails a filter", text=s["label"],
                marker={"symbol": symbol, "size": [16 if c else 10 for c in chosen],
                        "color": [METHOD_COLORS.get(str(m), "#555") for m in s["method"]],
                        "line": {"width": [3 if c else 0 for c in chosen], "color": "black"}},
                error_y=err(s["moral_kept"], s["moral_kept_ci_low"], s["moral_kept_ci_high"]),
                hovertemplate="%{text}<br>estimate %{x:.2f}, exact %{y:.2f}<extra></extra>"), row=1, col=2)
        lo = float(np.nanmin([sel["estimated_kept"].min(), sel["moral_kept"].min(), 0.0]))
        hi = float(np.nanmax([sel["estimated_kept"].max(), sel["moral_kept"].max(), 1.0]))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="estimate = exact",
                                 line={"color": "#999", "dash": "dash"}), row=1, col=2)
        fig.update_xaxes(title_text="estimated kept", row=1, col=2)
        fig.update_yaxes(title_text="exact kept (95% CI)", row=1, col=2)
    return fig.update_layout(height=440, legend={"orientation": "h", "y": -0.2})


def _kept_conditions(run: EntanglementRun) -> list[tuple[str, dict[str, Kept]]]:
    """(label, contrast -> Kept) for the chosen direction (held-out frames) and each control condition."""
    m = run.metrics
    out = []
    if m.positive_control and m.positive_control.kept:
        out.append((f"chosen: {m.positive_control.label}", dict(m.positive_control.kept)))
    for name, c in (m.ablation.controls.items() if m.ablation else ()):
        out.append((name.replace("_", " "), dict(c.kept)))
    return out


def effects_kept(run: EntanglementRun) -> go.Figure | str:
    """Effect after / before for each contrast under each ablation, with the frame-bootstrap interval."""
    conds = _kept_conditions(run)
    if not conds:
        return "metrics.json has no positive_control.kept or ablation.controls"
    present = [(k, label) for k, label in CONTRASTS if any(k in kept for _, kept in conds)]
    fig = go.Figure()
    palette = ["#000000", COLORS["economic"], COLORS["grammatical"], "#8e44ad"]
    ests = []
    for i, (label, kept) in enumerate(conds):
        rows = [kept.get(k) for k, _ in present]
        y = np.array([r.kept if r else None for r in rows], dtype=float)
        ests.extend(y[np.isfinite(y)])
        fig.add_trace(go.Scatter(x=[lab for _, lab in present], y=y, mode="markers", name=label,
                                 marker={"size": 10, "color": palette[i % len(palette)]},
                                 error_y=err(y, [r.ci_low if r else None for r in rows],
                                             [r.ci_high if r else None for r in rows])))
    pc = run.metrics.positive_control
    if pc and pc.threshold is not None:
        fig.add_hline(y=pc.threshold, line={"color": COLORS["moral"], "dash": "dot"},
                      annotation_text=f"moral threshold {fmt.num(pc.threshold)}", annotation_position="top left")
    fig.add_hline(y=1, line={"color": "#999", "dash": "dash"}, annotation_text="untouched",
                  annotation_position="bottom right")
    fig.add_hline(y=0, line={"color": "#999", "dash": "dot"})
    top = max([1.5, *[e + 0.25 for e in ests]]) if ests else 1.5
    bottom = min([-0.5, *[e - 0.25 for e in ests]]) if ests else -0.5
    return fig.update_layout(height=460, scattermode="group", yaxis={"title": "effect kept (after / before)",
                                                                     "range": [max(bottom, -3), min(top, 3)]},
                             legend={"orientation": "h", "y": -0.25})


def amnesic(run: EntanglementRun) -> go.Figure | str:
    """Left: the share of the moral good − bad activation difference the chosen ablation removes, per layer; right:
    a fresh logistic probe's moral accuracy before and after it (frame-grouped CV); frame-bootstrap intervals."""
    df = run.table("amnesic")
    if df is None:
        return "amnesic.csv is missing (the amnesic check ran from entangle 0.1.0's 2026-11-25 version on)"
    df, moral = df.sort_values("layer"), COLORS["moral"]
    x = df["layer"]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=[
        "share of the good − bad difference removed", "moral probe accuracy, frame-grouped CV"])
    fig.add_trace(band(x, df["removed_ci_low"], df["removed_ci_high"], moral, "removed, 95% CI", "removed"), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=df["removed_share"], mode="lines+markers", name="share removed",
                             legendgroup="removed", line={"color": moral}), row=1, col=1)
    for tag, color, dash in (("before", "#555555", "dot"), ("after", moral, "solid")):
        fig.add_trace(band(x, df[f"accuracy_{tag}_ci_low"], df[f"accuracy_{tag}_ci_high"], color, tag, tag), 1, 2)
        fig.add_trace(go.Scatter(x=x, y=df[f"accuracy_{tag}"], mode="lines", name=f"probe accuracy {tag} ablation",
                                 legendgroup=tag, line={"color": color, "dash": dash}), row=1, col=2)
    fig.add_hline(y=0.5, line={"color": "#999", "dash": "dash"}, row=1, col=2)
    pc = run.metrics.positive_control
    if pc is not None and pc.layer is not None:
        fig.add_vline(x=pc.layer, line={"color": "#999", "dash": "dot"})
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="1 − ‖Δμ after‖ / ‖Δμ before‖", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", row=1, col=2)
    return fig.update_layout(height=420, legend={"orientation": "h", "y": -0.2})


def null_distributions(run: EntanglementRun) -> go.Figure | str:
    """Repair by each null direction (mean over the valid cells) with the observed repair and p."""
    a = run.metrics.ablation.primary_method if run.metrics.ablation else None
    if a is None or not a.tested:
        return "repair was not tested (" + ((a.reason if a else None) or "no primary ablation") + ")"
    df = run.table("ablation_nulls")
    if df is None:
        return "ablation_nulls.csv is missing (no null draws were run)"
    kinds = [k for k in NULL_KINDS if k in set(df["null"])]

    def title(kind: str) -> str:
        t = a.nulls.get(kind)
        p = f": {fmt.p_value(t.p_value)} (resolution {fmt.num(t.p_resolution, 3)})" if t else ""
        return f"{NULL_LABELS.get(kind, kind)} directions{p}"

    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=[title(k) for k in kinds])
    for j, kind in enumerate(kinds, 1):
        pooled = df[df["null"] == kind].groupby("draw")["repair"].mean().to_numpy(dtype=float)
        pooled = pooled[np.isfinite(pooled)]
        fig.add_trace(go.Histogram(x=pooled, nbinsx=max(10, min(40, len(pooled) // 3)), name=kind,
                                   marker={"color": "#999", "line": {"color": "white", "width": 1}},
                                   showlegend=False), row=1, col=j)
        if len(pooled):
            lo, hi = np.percentile(pooled, [2.5, 97.5])
            fig.add_vrect(x0=lo, x1=hi, fillcolor="#bbb", opacity=0.25, line_width=0, row=1, col=j)
        if a.observed_repair is not None:
            fig.add_vline(x=a.observed_repair, line={"color": COLORS["moral"], "width": 3}, row=1, col=j,
                          annotation_text=f"observed {fmt.num(a.observed_repair)}", annotation_position="bottom left")
        fig.update_xaxes(title_text="repair fraction (mean over valid cells)", row=1, col=j)
    fig.update_yaxes(title_text="null directions", row=1, col=1)
    return fig.update_layout(height=400, bargap=0.05)


def steering(run: EntanglementRun) -> go.Figure | str:
    """Mean readout change per kind against the steering coefficient α, with frame-bootstrap intervals."""
    df = run.table("steering_moral")
    if df is None:
        return "steering_moral.csv is missing"
    fig = go.Figure()
    for kind, s in df.sort_values("alpha").groupby("kind", sort=False):
        s = pd.concat([s, pd.DataFrame([{"alpha": 0.0, "delta": 0.0, "ci_low": 0.0, "ci_high": 0.0}])])
        s = s.sort_values("alpha")
        fig.add_trace(go.Scatter(x=s["alpha"], y=s["delta"], mode="lines+markers", name=f"{kind} readout",
                                 line={"color": COLORS.get(str(kind), "#555")},
                                 error_y=err(s["delta"], s["ci_low"], s["ci_high"])))
    st = run.metrics.steering
    title = f"steering at layer {st.layer}, σ = {fmt.num(st.sigma, 3)}" if st and st.layer is not None else None
    fig.add_hline(y=0, line={"color": "#999", "dash": "dot"})
    return fig.update_layout(height=420, xaxis_title="α (multiples of σ along d_moral)",
                             yaxis_title="readout change vs unsteered", legend_title_text=title)


def patching(run: EntanglementRun) -> go.Figure | str:
    """Restored fraction of the good−bad readout difference per layer × position group, one heatmap per readout."""
    p = run.metrics.patching
    if p is None:
        return "metrics.json has no patching block (activation patching was not run)"
    df = run.table(p.table_name)
    if df is None:
        return f"{p.file} is missing"
    readouts = list(pd.unique(df["readout"])) if "readout" in df.columns else [None]
    groups = list(p.position_groups) or list(pd.unique(df["group"]))
    fig = make_subplots(rows=1, cols=len(readouts), shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=[f"{r} readout" if r else "" for r in readouts])
    for j, r in enumerate(readouts, 1):
        s = df if r is None else df[df["readout"] == r]
        layers = sorted(set(s["layer"]))
        z = np.full((len(layers), len(groups)), np.nan)
        text = np.full(z.shape, "", dtype=object)
        for row in s.itertuples(index=False):
            if row.group in groups:
                i, c = layers.index(row.layer), groups.index(row.group)
                z[i, c] = row.restored
                lo, hi = getattr(row, "restored_ci_low", None), getattr(row, "restored_ci_high", None)
                text[i, c] = f"{fmt.num(row.restored)} [{fmt.num(lo)}, {fmt.num(hi)}]"
        fig.add_trace(go.Heatmap(z=z, x=groups, y=[str(x) for x in layers], text=text, zmin=-1, zmax=1, zmid=0,
                                 texttemplate="%{text}" if len(layers) <= 16 else None, textfont={"size": 9},
                                 colorscale="RdBu_r", showscale=j == len(readouts),
                                 colorbar={"title": {"text": "restored"}},
                                 hovertemplate="layer %{y} · %{x}<br>%{text}<extra></extra>"), row=1, col=j)
        fig.update_xaxes(title_text="position group", row=1, col=j)
    fig.update_yaxes(title_text="layer", autorange="reversed", row=1, col=1)
    return fig.update_layout(height=max(380, 22 * len(p.layers or [0]) + 160))
