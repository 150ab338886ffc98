"""The social value orientation section: the SVO angle of every induction condition (biased, averaged over option
orders, debiased) with its interval against the category sectors, ideal angles and null baselines; the findings;
the conditions' table and the two-step personas. Rebuilt from metrics.json `svo` and the `svo/*` tables."""

from __future__ import annotations

import math
from html import escape
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from entangle.runfolder import RunFolder, RunFolderError

TITLE = "Social value orientation"
SECTORS = (("competitive", -45.0, -12.04, "#f4cccc"), ("individualistic", -12.04, 22.45, "#fff2cc"),
           ("prosocial", 22.45, 57.15, "#d9ead3"), ("altruistic", 57.15, 90.0, "#cfe2f3"))
READOUTS = (("debiased", "debiased (letter prior removed)", "circle", "#1f3b73"),
            ("averaged", "averaged over option orders", "circle-open", "#4a86c5"),
            ("biased", "biased (the measure's own order)", "x-thin-open", "#999999"))


def present(metrics: dict[str, Any]) -> bool:
    """True when the SVO study ran in this folder."""
    return isinstance(metrics.get("svo"), dict)


def _num(x: Any, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _ci(row: pd.Series, key: str, prefix: str = "angle") -> str:
    lo, hi = row.get(f"{'delta_ci_low' if prefix == 'delta' else 'ci_low'}_{key}"), \
        row.get(f"{'delta_ci_high' if prefix == 'delta' else 'ci_high'}_{key}")
    est = _num(row.get(f"{prefix}_{key}"))
    return est if lo is None or not math.isfinite(lo) else f"{est} [{_num(lo)}, {_num(hi)}]"


def figure(cond: pd.DataFrame, base: pd.DataFrame, unit: str) -> go.Figure:
    """Angle per condition (rows) against the category sectors, with ideal angles and null baselines as lines."""
    fig = go.Figure()
    lo = min(-20.0, float(cond.filter(like="ci_low_").min().min()) - 5)
    hi = max(65.0, float(cond.filter(like="ci_high_").max().max()) + 5)
    for name, a, b, colour in SECTORS:
        a, b = max(a, lo), min(b, hi)
        fig.add_vrect(x0=a, x1=b, fillcolor=colour, opacity=0.5, line_width=0, layer="below",
                      annotation_text=name, annotation_position="top", annotation_font_size=11)
    for r in base.itertuples():
        dash, colour = ("dash", "#b45f06") if r.kind == "null" else ("dot", "#38761d")
        fig.add_vline(x=r.angle, line_dash=dash, line_color=colour, line_width=1)
        fig.add_trace(go.Scatter(x=[r.angle], y=[None], mode="lines", line={"dash": dash, "color": colour},
                                 name=f"{r.kind}: {r.name.replace('_', ' ')} {r.angle:.2f}°", visible="legendonly"))
    y = cond["condition"].tolist()
    for key, label, symbol, colour in READOUTS:
        if f"angle_{key}" not in cond:
            continue
        err = {}
        if cond[f"ci_low_{key}"].notna().any():
            err = {"error_x": {"type": "data", "symmetric": False, "array": cond[f"ci_high_{key}"] - cond[f"angle_{key}"],
                               "arrayminus": cond[f"angle_{key}"] - cond[f"ci_low_{key}"], "color": colour}}
        fig.add_trace(go.Scatter(x=cond[f"angle_{key}"], y=y, mode="markers", name=label,
                                 marker={"symbol": symbol, "size": 10, "color": colour}, **err))
    fig.update_layout(title=f"SVO angle per condition (95% intervals: bootstrap over {unit})",
                      xaxis_title="SVO angle (degrees)", xaxis_range=[lo, hi], height=140 + 34 * len(y),
                      yaxis={"autorange": "reversed"}, margin={"l": 170}, legend={"orientation": "h", "y": -0.2})
    return fig


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='svo'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _contrast_text(c: dict[str, Any], key: str = "debiased") -> str:
    d = c.get(key, {})
    return (f"{_num(d.get('estimate'), 2)}° [{_num(d.get('ci_low'), 2)}, {_num(d.get('ci_high'), 2)}] "
            f"({'interval excludes 0' if d.get('moves') else 'interval includes 0'})")


def findings_html(s: dict[str, Any]) -> str:
    """The findings block as sentences, each with the interval it rests on."""
    f, items = s.get("findings", {}), []
    drift = f.get("hvae_drift")
    if drift:
        extreme = ", ".join(drift.get("extreme_conditions", [])) or "none"
        flat = ", ".join(drift.get("indistinguishable_from_uniform", [])) or "none"
        items.append(
            f"<b>HVAE finding (drift to neutral/prosocial, no extreme orientation): "
            f"{escape(str(drift.get('verdict', 'holds' if drift.get('holds') else 'does not hold')))}</b> "
            f"(category rule alone: {'holds' if drift.get('holds') else 'does not hold'}). Persona conditions span "
            f"{_num(drift.get('min_angle'))}° to {_num(drift.get('max_angle'))}° (debiased); altruistic or competitive: "
            f"{escape(extreme)}. Conditions whose interval holds the uniform chooser's angle "
            f"({_num(drift.get('uniform_angle'), 2)}°, a chooser without any preference): {escape(flat)}.")
    for form, c in f.get("persona_control", {}).items():
        items.append(f"Prompt arm, {escape(form.replace('_', '-'))} (positive control): altruistic − competitive persona "
                     f"= {escape(_contrast_text(c))}.")
    for name, c in f.get("steering", {}).items():
        a, b = c.get("conditions", ["", ""])
        items.append(f"Steering along the {escape(name)} direction: {escape(a)} − {escape(b)} = "
                     f"{escape(_contrast_text(c))}; averaged readout {escape(_contrast_text(c, 'averaged'))}.")
    return "<ul>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>" if items else ""


def render(folder: RunFolder, metrics: dict[str, Any]) -> str:
    """HTML fragment for metrics['svo'] and the svo/* tables."""
    s = metrics["svo"]
    cond, base = folder.table("svo/conditions"), folder.table("svo/baselines")
    for name, t in (("svo/conditions", cond), ("svo/baselines", base)):
        if t is None:
            raise RunFolderError(folder.path / f"{name}.csv", None, None, "missing: the SVO study writes it")
    unit = str(s.get("resampling_unit", "option orders within items"))
    intro = (f"<p>The SVO slider measure (six items, nine allocations each) asked as lettered options; the choice is "
             f"the option letters' next-token distribution under {int(s.get('n_perm', 0))} option orders per item "
             f"(order 1: the measure's own). <i>Debiased</i>: a letter prior shared by all prompts is fitted and "
             f"removed; <i>averaged</i>: the distribution averaged over orders; <i>biased</i>: the measure's own order "
             f"alone (no interval: nothing to resample). Steering: α × σ at layer "
             f"{escape(str(s.get('steering', {}).get('layer', '–')))} (σ = {_num(s.get('steering', {}).get('sigma'), 2)}, "
             f"the median residual norm there).</p>")
    parts = [intro, findings_html(s),
             figure(cond, base, unit).to_html(full_html=False, include_plotlyjs=False)]
    rows = [[r["condition"], _ci(r, "debiased"), str(r["category_debiased"]), _ci(r, "averaged"),
             _num(r["angle_biased"]), _ci(r, "debiased", "delta"),
             f"{_num(r.get('rationality'), 2)} (uniform {_num(r.get('rationality_uniform'), 2)})",
             _num(r.get("letter_mass"), 2), _num(r.get("neutral_loss_delta"), 2)] for _, r in cond.iterrows()]
    parts.append(_table(["condition", "debiased angle [95% CI]", "category", "averaged [95% CI]", "biased",
                         "Δ vs none (debiased)", "value rationality", "letter mass", "Δ neutral loss (nats)"], rows))
    parts.append("<p class='caption'>Value rationality: 1 − min(|θ − θ*|, 90)/90 against the persona's ideal angle θ* "
                 "(in brackets: what a chooser without preference, at 22.70°, scores). "
                 "Letter mass: probability that the answer starts with one of the nine letters. Δ neutral loss: "
                 "steering's fluency cost on neutral text. Ideal and null angles: "
                 + escape(", ".join(f"{r.name.replace('_', ' ')} {r.angle:.2f}°" for r in base.itertuples())) + ".</p>")
    personas = folder.table("svo/personas")
    if personas is not None and (personas["form"] == "two_step").any():
        two = personas[personas["form"] == "two_step"]
        parts.append("<h3>Two-step personas: the model's own descriptions</h3>")
        parts.append(_table(["persona", "description"], [[str(r.persona), str(r.description)] for r in two.itertuples()]))
    return "\n".join(parts)
