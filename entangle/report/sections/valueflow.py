"""The value-steering section (valueflow study): dose-response curves with intervals, asymmetry bars, fluency cost,
the leakage matrix, the composition table and the evaluator's validity, all rebuilt from the run folder alone."""

from __future__ import annotations

import math
from html import escape
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from entangle.report import fmt
from entangle.runfolder import RunFolder, RunFolderError

TITLE = "Value steering at calibrated intensity"
KEY = "valueflow"


def present(metrics: dict[str, Any]) -> bool:
    """True when the valueflow study wrote its block."""
    return isinstance(metrics.get(KEY), dict)


def _fig(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False)


def _caption(text: str) -> str:
    return f"<p class='caption'>{escape(text)}</p>"


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='valueflow'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _est(r: pd.Series, key: str, nd: int = 2) -> str:
    g = lambda k: None if k not in r or pd.isna(r[k]) else float(r[k])
    return fmt.est(g(key), g(f"{key}_ci_low"), g(f"{key}_ci_high"), nd=nd, sign=True)


def _dose_figure(dose: pd.DataFrame) -> go.Figure:
    values = list(dict.fromkeys(dose.value))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("activation arm (α)", "prompt arm (level)"))
    for i, v in enumerate(values):
        for c, arm in enumerate(("activation", "prompt"), start=1):
            for judge, dash in (("probe", "solid"), ("pairwise", "dot")):
                s = dose[(dose.value == v) & (dose.arm == arm) & (dose.readout == f"I_{judge}_{v}")].sort_values("x")
                if s.empty:
                    continue
                fig.add_trace(go.Scatter(
                    x=s.x, y=s["mean"], mode="lines+markers", name=f"{v} ({judge})", legendgroup=f"{v}{judge}",
                    showlegend=c == 1, line={"dash": dash, "color": _color(i)},
                    error_y={"type": "data", "symmetric": False, "array": s.ci_high - s["mean"],
                             "arrayminus": s["mean"] - s.ci_low}), row=1, col=c)
    fig.update_yaxes(title_text="intensity [-10, 10]", range=[-10.5, 10.5])
    fig.update_layout(height=420, margin={"t": 40})
    return fig


def _color(i: int) -> str:
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
    return palette[i % len(palette)]


def _asym_figure(asym: pd.DataFrame) -> go.Figure:
    s = asym[asym.judge == "probe"].dropna(subset=["d_plus"])
    fig = go.Figure()
    for key, name in (("d_plus", "Δ+ = I(top) − I(0)"), ("d_minus", "Δ− = I(0) − I(bottom)")):
        fig.add_trace(go.Bar(x=[f"{v} · {a}" for v, a in zip(s.value, s.arm, strict=True)], y=s[key], name=name,
                             error_y={"type": "data", "symmetric": False, "array": s[f"{key}_ci_high"] - s[key],
                                      "arrayminus": s[key] - s[f"{key}_ci_low"]}))
    fig.update_layout(barmode="group", height=360, yaxis_title="intensity change", margin={"t": 20})
    return fig


def _leak_figure(leak: pd.DataFrame) -> go.Figure:
    m = leak.pivot(index="steered", columns="readout", values="slope")
    lo = leak.pivot(index="steered", columns="readout", values="ci_low")
    hi = leak.pivot(index="steered", columns="readout", values="ci_high")
    text = [[f"{m.iloc[i, j]:+.1f}<br>[{lo.iloc[i, j]:+.1f}, {hi.iloc[i, j]:+.1f}]" for j in range(m.shape[1])]
            for i in range(m.shape[0])]
    lim = float(max(1e-9, m.abs().max().max()))
    fig = go.Figure(go.Heatmap(z=m.to_numpy(), x=list(m.columns), y=list(m.index), text=text,
                               texttemplate="%{text}", colorscale="RdBu", zmin=-lim, zmax=lim,
                               colorbar={"title": "dI/dα"}))
    fig.update_layout(height=120 + 60 * len(m), xaxis_title="readout value (probe judge)",
                      yaxis_title="steered value", margin={"t": 20})
    return fig


def render(folder: RunFolder, metrics: dict[str, Any]) -> str:
    """HTML fragment for the valueflow block and its tables."""
    m = metrics[KEY]
    for key in ("values", "flags", "config"):
        if key not in m:
            raise RunFolderError(folder.metrics_path, None, f"{KEY}.{key}", "missing")
    cfg = m["config"]
    parts = [f"<p>Steered model <code>{escape(str(m.get('model')))}</code>, judged by "
             f"<code>{escape(str(m.get('judge_model')))}</code>: {len(m['values'])} value(s) steered by activation "
             f"(α·σ_ℓ·d at the causally selected layer, α ∈ {escape(str(cfg.get('alphas')))}) and by prompt (levels "
             f"{escape(str(cfg.get('levels')))} with the value's definition); {int(cfg.get('n_queries', 0))} queries, "
             f"responses of at most {int(cfg.get('max_new_tokens', 0))} tokens, greedy. Intensity: anchor-based "
             f"evaluator (K = {cfg.get('k')}, M = {cfg.get('m')} bucket-sampled windows, Plackett–Luce MAP, isotonic "
             f"calibration, guards). Study wall time {fmt.num(m.get('wall_seconds'), 0)} s.</p>"]
    rows = []
    for v, e in m["values"].items():
        ce = e.get("causal_effect", [None, None, None])
        act, pr = e.get("activation_probe", {}), e.get("prompt_probe", {})
        f = lambda d, k: fmt.est(d.get(k), d.get(k + "_ci_low"), d.get(k + "_ci_high"), sign=True)
        rows.append([v, str(e.get("layer")), fmt.est(*ce, nd=3, sign=True), f(act, "spearman"), f(act, "d_plus"),
                     f(act, "d_minus"), f(pr, "spearman"), f(pr, "d_plus"), f(pr, "d_minus")])
    parts.append(_table(["value", "layer", "causal effect (nats/α)", "act. Spearman", "act. Δ+", "act. Δ−",
                         "prompt Spearman", "prompt Δ+", "prompt Δ−"], rows))
    parts.append(_caption("Causal effect: change of the held-out pairs' log-likelihood margin (expressing − "
                          "rejecting) per unit α when steering at the layer (interval over held-out pairs; the "
                          "positive control for the direction). Spearman(dose, intensity), Δ+ and Δ− from the probe "
                          "judge, 95% intervals over queries."))
    for arm, fl in m["flags"].items():
        parts.append(f"<p>{escape(arm)} arm — hard to steer: {escape(', '.join(fl['hard_to_steer']) or 'none')}; "
                     f"polarity-asymmetric: {escape(', '.join(fl['asymmetric']) or 'none')}.</p>")
    dose = folder.table(f"{KEY}/dose")
    if dose is not None:
        parts.append("<h3>Dose–response</h3>" + _fig(_dose_figure(dose)))
        parts.append(_caption("Mean intensity per dose (solid: probe judge, dotted: pairwise judge where scored), "
                              "95% percentile intervals from a bootstrap over queries; dose 0 is the unsteered base."))
    asym = folder.table(f"{KEY}/asymmetry")
    if asym is not None and "d_plus" in asym:
        parts.append("<h3>Polarity asymmetry</h3>" + _fig(_asym_figure(asym)))
        parts.append(_caption("Δ+ and Δ− per value and arm (probe judge), 95% intervals over queries. A value is "
                              "flagged asymmetric when the interval of Δ+ − Δ− excludes 0, hard to steer when the "
                              "Spearman interval reaches 0 or the top-to-bottom span is under 1 point."))
    flu = folder.table(f"{KEY}/fluency")
    if flu is not None:
        rows = [[str(r.setting), fmt.est(*(None if pd.isna(r.get(k)) else float(r.get(k)) for k in
                                           ("neutral_loss", "neutral_loss_ci_low", "neutral_loss_ci_high")), nd=3),
                 fmt.num(r.distinct2, 2), fmt.est(r.repetition, r.repetition_ci_low, r.repetition_ci_high)]
                for _, r in flu.iterrows()]
        parts.append("<h3>Fluency cost</h3>" + _table(["setting", "neutral-text NLL (nats/token)", "distinct-2",
                                                        "3-gram repetition"], rows))
        parts.append(_caption("NLL of neutral texts under the setting's intervention (interval over texts; the prompt "
                              "arm leaves it unchanged and is not measured), distinct-2 over the setting's responses, "
                              "repeated 3-grams within a response (interval over queries)."))
    leak = folder.table(f"{KEY}/leakage")
    if leak is not None and not leak.empty:
        parts.append("<h3>Leakage under steering</h3>" + _fig(_leak_figure(leak)))
        parts.append(_caption("Slope of each readout value's intensity over the steered value's α grid (probe judges), "
                              "95% intervals over queries; the moral, grammatical and economic columns are the "
                              "entanglement study's three kinds of good. Ratios to the steered value's own slope are "
                              "in valueflow/leakage.csv."))
    comp = folder.table(f"{KEY}/composition")
    if comp is not None and not comp.empty:
        rows = [[str(r.measure), str(r.get("pair", "")), "" if pd.isna(r.get("readout")) else str(r.readout),
                 fmt.est(r.estimate, r.ci_low, r.ci_high, sign=True)] for _, r in comp.iterrows()]
        parts.append("<h3>Composition</h3>" + _table(["measure", "values", "readout", "estimate [95% CI]"], rows))
        parts.append(_caption("Additivity error ΔI(a+b) − ΔI(a) − ΔI(b); slope ratio of 2·a + b (intended 2); "
                              "dominance index (R_a − R_b)/(|R_a| + |R_b|) with R the share of the solo effect kept; "
                              "the five-value mix's ΔI per value. Intervals: bootstrap over queries."))
    val = folder.table(f"{KEY}/validity")
    if val is not None and not val.empty:
        rows = []
        for _, r in val.iterrows():
            cmp = ""
            if r.judge == "pairwise" and "anchor_variance" in r:
                cmp = (f"variance {_est(r, 'anchor_variance')} vs direct {_est(r, 'direct_variance')}; sign flips "
                       f"{fmt.pct(r.anchor_sign_flips)} vs {fmt.pct(r.direct_sign_flips)}")
            g = lambda k, r=r: None if k not in r or pd.isna(r[k]) else float(r[k])  # noqa: E731
            loao = fmt.est(g("loao_spearman"), g("loao_ci_low"), g("loao_ci_high"), sign=True)
            rows.append([str(r.value), str(r.judge), f"{loao} (n = {fmt.num(g('loao_n_anchors'), 0)})", cmp])
        parts.append("<h3>Evaluator validity</h3>" + _table(["value", "judge", "leave-one-anchor-out Spearman",
                                                             "anchor-based vs direct scoring"], rows))
        parts.append(_caption("Leave-one-anchor-out: each anchor scored against windows of the others, rank "
                              "correlation with its known intensity (interval over anchors). Variance across repeated "
                              "evaluations and sign-flip rate on the same responses: anchor-based (fresh windows) vs "
                              "direct 0–9 rating (prompt wordings); intervals over responses."))
    if not math.isfinite(float(m.get("wall_seconds") or math.nan)):
        parts.append("<p class='note'>Wall time not recorded.</p>")
    return "\n".join(parts)
