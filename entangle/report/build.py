"""The HTML report of a run folder: a short paper with verdicts, methods, plotly figures, caveats and self-checks.

Everything is rebuilt from the files `entangle run` writes (docs/RUN_FOLDER.md); no model is loaded. The HTML is
self-contained and opens offline: plotly.js is inlined exactly once (with the first figure) and every later
figure reuses it. Optional files that are missing drop their figure and leave a note in its place.

    build_report(run_dir, out=None) -> Path      # run_dir/report.html by default
    compare_runs(run_a, run_b, out) -> Path      # side-by-side report of two runs
    figures(run_dir) -> dict[str, go.Figure]     # every figure by name (for notebooks)
    verdicts(run_dir_or_metrics) -> dict          # the three verdicts as data (answer + sentence)
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["FIGURES", "build_report", "compare_runs", "figures", "load_run", "verdicts"]

KINDS: tuple[str, ...] = ("moral", "grammatical", "economic")
FACTORS: tuple[str, ...] = ("moral", "economic", "grammatical")
MORAL_CELLS: tuple[str, ...] = ("moral_to_grammatical", "moral_to_economic")
COLORS: dict[str, str] = {"moral": "#c0392b", "grammatical": "#2471a3", "economic": "#1e8449"}
TEMPLATE = "plotly_white"
ALPHA = 0.05

# cost thresholds (verdict 3): what the other judgements keep of their own effect, and the neutral-text loss
COST_SMALL_KEEP, COST_SMALL_LOSS = 0.90, 0.05
COST_LARGE_KEEP, COST_LARGE_LOSS = 0.50, 0.25

CSV_FILES: tuple[str, ...] = (
    "probes.csv", "cosine.csv", "cross_decoding.csv", "leakage.csv", "readouts.csv", "ei.csv", "excess.csv",
    "ablation.csv", "ablation_random.csv", "selectivity.csv",
)

# name -> (title, caption); the order is the order of the report
FIGURES: dict[str, tuple[str, str]] = {
    "readouts": (
        "Behavioural readout by factor level",
        "Mean readout at each level of each factor (other factors averaged out), ± 95% CI over frames "
        "(t interval on per-frame means), one panel per readout and kind of judgement. A judgement should "
        "move only with its own factor; a slope of another factor is entanglement.",
    ),
    "ei_matrix": (
        "Entanglement index matrix",
        "EI(f→K) = b_f / |b_K| for each factor f (rows) and kind of judgement K (columns), with 95% frame "
        "bootstrap intervals. The diagonal is ±1 by definition; off-diagonal cells are leaks.",
    ),
    "excess": (
        "Model vs human norm",
        "Left: the model's EI (95% CI) and the human norm for every off-diagonal cell. Right: excess "
        "entanglement EI_model − EI_human with its 95% CI; an interval that excludes 0 is entanglement beyond "
        "the norm.",
    ),
    "probe_accuracy": (
        "Probe accuracy by layer",
        "Frame-grouped cross-validated accuracy of the linear probe for each kind by layer (layer 0 = "
        "embedding output), 95% CI band, and the shuffled-label baseline (grey, dashed). The star marks the "
        "best layer; other probe methods are dotted.",
    ),
    "cosine": (
        "Cosine between kind directions by layer",
        "cos(d_a, d_b) between the probe directions of the three kinds; move the slider to change layer.",
    ),
    "cross_decoding": (
        "Cross-decoding AUC by layer",
        "AUC of a kind's direction (rows) at separating the good and bad items of another kind's prompts "
        "(columns), with 95% CI; 0.5 = no information. Move the slider to change layer.",
    ),
    "leakage": (
        "Representational leakage of moral value by layer",
        "L(m→K, ℓ): the projection difference onto d_K between moral-good and moral-bad items (K's own factor "
        "fixed), in units of the difference K's own factor produces, with 95% CI. The dotted line marks the "
        "moral probe's best layer.",
    ),
    "ablation_cells": (
        "EI before and after ablation",
        "EI of the two moral cells before (grey) and after each ablation, on the ablation's prompts; the grey "
        "interval is the width of the run's behavioural 95% CI for that cell. The dashed line is the human norm "
        "that full repair would reach.",
    ),
    "repair_by_method": (
        "Repair fraction by ablation method",
        "Repair fraction (EI_before − EI_after)/(EI_before − EI_human), mean over the two moral cells "
        "(black, 95% CI) and per cell; the grey band is the mean ± 1 SD of random-direction ablations; "
        "p = the random-direction p-value.",
    ),
    "random_controls": (
        "Random-direction controls",
        "Repair fractions of ablations along random unit directions (mean over the two moral cells), with the "
        "moral ablation's repair on the same control subset marked.",
    ),
    "layer_sweep": (
        "Layer-rule sweep",
        "Repair fraction of the moral-direction ablation by layer rule (which layers are ablated), mean over "
        "the two moral cells with 95% CI and per cell.",
    ),
    "selectivity": (
        "Selectivity of each ablation",
        "Own-factor effect after / before the ablation for each kind (1 = untouched, 0 = erased), 95% CI. A "
        "selective moral ablation lowers the moral bar and leaves the other two near 1.",
    ),
}


# ----------------------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """A run folder read into memory: config, metrics, the CSV tables present, and what is missing."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame | None]
    directions: list[str] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def table(self, name: str) -> pd.DataFrame | None:
        return self.tables.get(name)

    @property
    def label(self) -> str:
        return f"{self.path.name} ({model_name(self)})"


def _read_json(p: Path, problems: list[str]) -> dict[str, Any]:
    if not p.exists():
        problems.append(f"{p.name} is missing")
        return {}
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"{p.name} could not be read ({exc})")
        return {}
    return data if isinstance(data, dict) else {}


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder; missing or unreadable optional files are recorded in `Run.problems`, not raised."""
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder not found: {path}")
    problems: list[str] = []
    if not (path / "metrics.json").exists():
        raise FileNotFoundError(f"{path} has no metrics.json; is it a folder written by `entangle run`?")
    metrics = _read_json(path / "metrics.json", problems)
    config = _read_json(path / "config.json", problems)
    tables: dict[str, pd.DataFrame | None] = {}
    for name in CSV_FILES:
        p = path / name
        if not p.exists():
            tables[name] = None
            continue
        try:
            tables[name] = pd.read_csv(p)
        except (OSError, ValueError) as exc:
            tables[name] = None
            problems.append(f"{name} could not be read ({exc})")
    ddir = path / "directions"
    directions = sorted(str(p.relative_to(ddir)) for p in ddir.rglob("*") if p.is_file()) if ddir.is_dir() else []
    log = path / "run.log"
    tail = log.read_text(errors="replace").splitlines()[-40:] if log.exists() else []
    return Run(path, config, metrics, tables, directions, tail, problems)


def _as_run(x: str | Path | Run) -> Run:
    return x if isinstance(x, Run) else load_run(x)


# ----------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------


def _get(d: Any, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return default
        d = d[k]
    return d


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _f(x: Any, nd: int = 2, sign: bool = False) -> str:
    v = _num(x)
    if v is None:
        return "n/a"
    s = f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"
    return s.replace("-", "−")


def _pct(x: Any, nd: int = 0) -> str:
    v = _num(x)
    return "n/a" if v is None else f"{100 * v:.{nd}f}%".replace("-", "−")


def _ci(lo: Any, hi: Any, nd: int = 2, sign: bool = False, pct: bool = False) -> str:
    if _num(lo) is None or _num(hi) is None:
        return "CI n/a"
    if pct:
        return f"95% CI {_pct(lo)} to {_pct(hi)}"
    return f"95% CI {_f(lo, nd, sign)} to {_f(hi, nd, sign)}"


def _p(x: Any) -> str:
    v = _num(x)
    if v is None:
        return "p n/a"
    return "p < 0.001" if v < 0.001 else f"p = {v:.3f}"


def _excludes_zero(lo: Any, hi: Any) -> int:
    """+1 if the interval lies above 0, −1 if below, 0 if it includes 0 or is unknown."""
    lo, hi = _num(lo), _num(hi)
    if lo is None or hi is None:
        return 0
    return 1 if lo > 0 else -1 if hi < 0 else 0


def _cell_label(cell: str) -> str:
    return cell.replace("_to_", "→")


def _e(x: Any) -> str:
    return html.escape(str(x))


def model_name(run: Run) -> str:
    return str(_get(run.config, "model_info", "name") or _get(run.metrics, "run", "model") or
               run.config.get("model") or "unknown model")


def judgement_readout(metrics: Mapping[str, Any]) -> str:
    """The judgement readout's name (cloze or likert): metrics.readout.style, else the first non-logprob readout."""
    style = _get(metrics, "readout", "style")
    if style:
        return str(style)
    beh = _get(metrics, "entanglement", "behavioural", default={}) or {}
    others = [k for k in beh if k != "logprob"]
    return others[0] if others else "cloze"


def _norm_is_design(metrics: Mapping[str, Any]) -> bool:
    src = str(_get(metrics, "entanglement", "human_norm", "source", default="design") or "design")
    return src == "design"


def _norm_phrase(metrics: Mapping[str, Any]) -> str:
    src = str(_get(metrics, "entanglement", "human_norm", "source", default="design") or "design")
    if src == "design":
        return "the design norm (EI_human = 0: no human ratings were used)"
    return f"human ratings ({src.removeprefix('ratings:')})"


# ----------------------------------------------------------------------------------------------------------
# verdicts
# ----------------------------------------------------------------------------------------------------------


def verdicts(run: str | Path | Run | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The three verdicts from metrics.json: {"entanglement"|"repair"|"cost": {"answer", "text", ...}}.

    - entanglement: "yes" if the excess-EI 95% CI of moral→grammatical or moral→economic (judgement readout)
      excludes 0 (the sign is reported per cell), else "no evidence".
    - repair: "yes" if the primary ablation's repair-fraction CI lies above 0 and the random-direction p-value is
      < 0.05; "not beyond random" if the CI lies above 0 but p ≥ 0.05 (or none); "no" if the CI lies below 0
      (the ablation increases entanglement); else "no evidence".
    - cost: "small" if the grammatical and economic judgements keep ≥ 90% of their own effect and the neutral-text
      loss rises by ≤ 0.05 nats; "large" if either keeps < 50% or the loss rises by > 0.25 nats; else "moderate".
    """
    if isinstance(run, Mapping):
        metrics = run
    else:
        metrics = _as_run(run).metrics
    return {"entanglement": _verdict_entanglement(metrics), "repair": _verdict_repair(metrics),
            "cost": _verdict_cost(metrics)}


def _verdict_entanglement(m: Mapping[str, Any]) -> dict[str, Any]:
    ro = judgement_readout(m)
    cells = _get(m, "entanglement", "behavioural", ro, default={}) or {}
    cells = cells if isinstance(cells, Mapping) else {}
    norm = _norm_phrase(m)
    per: dict[str, dict[str, Any]] = {}
    yes, no = [], []
    for c in MORAL_CELLS:
        d = cells.get(c)
        if not isinstance(d, Mapping):
            continue
        s = _excludes_zero(d.get("excess_ci_low"), d.get("excess_ci_high"))
        per[c] = dict(sign=s, excess=_num(d.get("excess")), ci_low=_num(d.get("excess_ci_low")),
                      ci_high=_num(d.get("excess_ci_high")), ei=_num(d.get("ei")), human_ei=_num(d.get("human_ei")))
        ci = _ci(d.get("excess_ci_low"), d.get("excess_ci_high"), sign=True)
        if s > 0:
            yes.append(f"{_cell_label(c)} EI exceeds the norm by {_f(d.get('excess'), sign=True)} ({ci})")
        elif s < 0:
            yes.append(f"{_cell_label(c)} EI lies below the norm by {_f(d.get('excess'), sign=True)} ({ci}; "
                       f"negative sign: moral value pushes this judgement the opposite way)")
        else:
            no.append(f"{_cell_label(c)} (excess {_f(d.get('excess'), sign=True)}, {ci}, includes 0)")
    if not per:
        return dict(answer="not measured", cells=per, readout=ro, design_norm=_norm_is_design(m),
                    text=f"Not measured: metrics.json has no moral→grammatical/economic cells for the {ro} readout.")
    if yes:
        text = (f"Yes. Measured against {norm}, moral value leaks into the model's {ro} judgements: "
                + "; ".join(yes) + ".")
        if no:
            text += " No evidence for " + "; ".join(no) + "."
        answer = "yes"
    else:
        text = (f"No evidence. Against {norm}, the 95% CI of the excess includes 0 for "
                + "; ".join(no) + ". The data neither show entanglement beyond the norm nor rule out one "
                "smaller than the interval width.")
        answer = "no evidence"
    return dict(answer=answer, cells=per, readout=ro, design_norm=_norm_is_design(m), text=text)


def _verdict_repair(m: Mapping[str, Any]) -> dict[str, Any]:
    abl = _get(m, "ablation", default={}) or {}
    abl = abl if isinstance(abl, Mapping) else {}
    primary = abl.get("primary")
    d = abl.get(primary) if primary else None
    if not isinstance(d, Mapping):
        return dict(answer="not measured", method=primary, text="Not measured: metrics.json has no primary ablation.")
    rf, lo, hi, p = d.get("repair_fraction"), d.get("ci_low"), d.get("ci_high"), _num(d.get("random_p_value"))
    s = _excludes_zero(lo, hi)
    layers = d.get("layers") or []
    where = f"{primary} (rule {d.get('rule', 'n/a')}, {_layers_str(layers)})"
    rnd = abl.get("random") or {}
    rnd_s = (f"{rnd.get('n', '?')} random directions repair {_pct(rnd.get('repair_fraction_mean'))} ± "
             f"{_pct(rnd.get('repair_fraction_sd'))} (mean ± SD)") if rnd else "no random-direction summary"
    core = f"the moral ablation {where} repairs {_pct(rf)} of the excess ({_ci(lo, hi, pct=True)})"
    beats = p is not None and p < ALPHA
    if s > 0 and beats:
        answer, text = "yes", f"Yes: {core}, more than random directions ({_p(p)}; {rnd_s})."
    elif s > 0:
        why = "no random-direction p-value was recorded" if p is None else f"{_p(p)}"
        answer, text = "not beyond random", (f"Not beyond random directions: {core}, but {why}; {rnd_s}.")
    elif s < 0:
        answer, text = "no", f"No: {core}, i.e. the ablation increases the entanglement ({_p(p)})."
    else:
        extra = " It beats random directions on the point estimate, but the interval includes 0." if beats else ""
        answer, text = "no evidence", f"No evidence: {core}, an interval that includes 0 ({_p(p)}; {rnd_s}).{extra}"
    ent = _verdict_entanglement(m)
    if ent["answer"] == "no evidence":
        text += (" With no clear excess to repair, the repair fraction is a ratio of small numbers; read it with "
                 "caution.")
    return dict(answer=answer, method=primary, repair_fraction=_num(rf), ci_low=_num(lo), ci_high=_num(hi),
                random_p_value=p, text=text)


def _verdict_cost(m: Mapping[str, Any], selectivity: pd.DataFrame | None = None) -> dict[str, Any]:
    abl = _get(m, "ablation", default={}) or {}
    abl = abl if isinstance(abl, Mapping) else {}
    primary = abl.get("primary")
    d = abl.get(primary) if primary else None
    if not isinstance(d, Mapping):
        return dict(answer="not measured", text="Not measured: metrics.json has no primary ablation.")
    sel = d.get("selectivity") or {}
    g, e, mo = _num(sel.get("grammatical")), _num(sel.get("economic")), _num(sel.get("moral"))
    loss = _num(d.get("loss_delta"))

    sel_ci = d.get("selectivity_ci") or {}

    def ci_of(kind: str) -> str:
        if selectivity is None or not {"method", "kind", "ci_low", "ci_high"} <= set(selectivity.columns):
            c = sel_ci.get(kind) if isinstance(sel_ci, Mapping) else None
            if isinstance(c, (list, tuple)) and len(c) == 2:
                return f" ({_ci(c[0], c[1], pct=True)})"
            return ""
        r = selectivity[(selectivity["method"] == primary) & (selectivity["kind"] == kind)]
        return f" ({_ci(r['ci_low'].iloc[0], r['ci_high'].iloc[0], pct=True)})" if len(r) else ""

    keeps = [v for v in (g, e) if v is not None]
    if not keeps and loss is None:
        return dict(answer="not measured", text="Not measured: the primary ablation has no selectivity or loss.")
    keep = min(keeps) if keeps else None
    if (keep is not None and keep < COST_LARGE_KEEP) or (loss is not None and loss > COST_LARGE_LOSS):
        answer = "large"
    elif (keep is None or keep >= COST_SMALL_KEEP) and (loss is None or loss <= COST_SMALL_LOSS):
        answer = "small"
    else:
        answer = "moderate"
    parts = [
        f"the grammatical judgement keeps {_pct(g)} of its own effect{ci_of('grammatical')} and the economic "
        f"judgement {_pct(e)}{ci_of('economic')}",
    ]
    if mo is not None:
        parts.append(f"the moral judgement keeps {_pct(mo)} of its own effect{ci_of('moral')} (it loses "
                     f"{_pct(1 - mo)}, the intended target)")
    parts.append(f"the mean per-token loss on neutral text changes by {_f(loss, 3, sign=True)} nats")
    text = f"{answer.capitalize()} cost for {primary}: " + "; ".join(parts) + "."
    return dict(answer=answer, method=primary, selectivity=dict(moral=mo, grammatical=g, economic=e),
                loss_delta=loss, text=text)


def _layers_str(layers: Any) -> str:
    if isinstance(layers, str):
        return f"layers {layers}"
    try:
        ls = sorted(int(x) for x in layers)
    except (TypeError, ValueError):
        return f"layers {layers}"
    if not ls:
        return "no layers"
    if len(ls) == 1:
        return f"layer {ls[0]}"
    if ls == list(range(ls[0], ls[-1] + 1)):
        return f"layers {ls[0]}–{ls[-1]}"
    return "layers " + ", ".join(map(str, ls))


# ----------------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------------


def _band(x: Any, lo: Any, hi: Any, color: str, name: str, group: str, showlegend: bool = False) -> go.Scatter:
    x = list(x)
    return go.Scatter(x=x + x[::-1], y=list(hi) + list(lo)[::-1], fill="toself", fillcolor=_rgba(color, 0.15),
                      line=dict(width=0), hoverinfo="skip", name=name, legendgroup=group, showlegend=showlegend)


def _rgba(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{a})"


def _err(y: Any, lo: Any, hi: Any) -> dict[str, Any]:
    y, lo, hi = (np.asarray(v, dtype=float) for v in (y, lo, hi))
    return dict(type="data", symmetric=False, array=np.maximum(hi - y, 0), arrayminus=np.maximum(y - lo, 0),
                thickness=1.2, width=4)


def _kinds_in(values: Any) -> list[str]:
    vals = [str(v) for v in pd.unique(pd.Series(values))]
    return [k for k in KINDS if k in vals] + [v for v in vals if v not in KINDS]


def _fig_readouts(run: Run) -> go.Figure | str:
    df = run.table("readouts.csv")
    if df is None:
        return "readouts.csv is missing"
    need = {"frame", "kind", "readout", "value", *FACTORS}
    if not need <= set(df.columns):
        return f"readouts.csv lacks columns {sorted(need - set(df.columns))}"
    from scipy.stats import t as t_dist

    ro_first = judgement_readout(run.metrics)
    readouts = sorted(df["readout"].astype(str).unique(), key=lambda r: (r != ro_first, r == "logprob", r))
    kinds_of = {r: _kinds_in(df.loc[df["readout"].astype(str) == r, "kind"]) for r in readouts}
    ncol = max(len(v) for v in kinds_of.values())
    titles = [f"{r} · {kinds_of[r][j]} judgement" if j < len(kinds_of[r]) else "" for r in readouts
              for j in range(ncol)]
    fig = make_subplots(rows=len(readouts), cols=ncol, horizontal_spacing=0.07, vertical_spacing=0.16,
                        subplot_titles=titles)
    shown: set[str] = set()
    for i, r in enumerate(readouts, 1):
        for j in range(len(kinds_of[r]) + 1, ncol + 1):
            fig.update_xaxes(visible=False, row=i, col=j)
            fig.update_yaxes(visible=False, row=i, col=j)
        for j, k in enumerate(kinds_of[r], 1):
            sub = df[(df["readout"].astype(str) == r) & (df["kind"].astype(str) == k)]
            if sub.empty:
                continue
            for f in FACTORS:
                per_frame = sub.groupby(["frame", f])["value"].mean().unstack(f)
                levels = sorted(per_frame.columns)
                mean = per_frame.mean(axis=0).to_numpy()
                n = per_frame.notna().sum(axis=0).to_numpy()
                sd = per_frame.std(axis=0, ddof=1).to_numpy()
                with np.errstate(invalid="ignore", divide="ignore"):
                    half = np.where(n > 1, t_dist.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n), np.nan)
                fig.add_trace(go.Scatter(
                    x=levels, y=mean, mode="lines+markers", name=f"{f} factor", legendgroup=f,
                    showlegend=f not in shown, line=dict(color=COLORS.get(f)),
                    error_y=dict(type="data", array=half, thickness=1.2, width=4),
                    hovertemplate=f"{f}=%{{x}}<br>mean %{{y:.3f}}<extra>{r} · {k}</extra>"), row=i, col=j)
                shown.add(f)
            fig.update_yaxes(title_text="readout value" if j == 1 else None, row=i, col=j)
            fig.update_xaxes(title_text="factor level", tickvals=[-1, 0, 1], row=i, col=j)
    fig.update_layout(height=330 * len(readouts) + 60)
    return fig


def _fig_probe_accuracy(run: Run) -> go.Figure | str:
    df = run.table("probes.csv")
    if df is None:
        return "probes.csv is missing"
    if not {"layer", "kind", "accuracy"} <= set(df.columns):
        return "probes.csv lacks layer/kind/accuracy"
    kinds = _kinds_in(df["kind"])
    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True, subplot_titles=[f"{k}" for k in kinds],
                        horizontal_spacing=0.04)
    shuffled_shown = False
    for j, k in enumerate(kinds, 1):
        sub = df[df["kind"] == k]
        methods = list(pd.unique(sub["method"])) if "method" in sub.columns else [None]
        primary = _get(run.metrics, "probe", k, "method")
        methods.sort(key=lambda x: x != primary)
        color = COLORS.get(k, "#555")
        for mi, meth in enumerate(methods):
            s = (sub if meth is None else sub[sub["method"] == meth]).sort_values("layer")
            main = mi == 0
            if main and {"acc_ci_low", "acc_ci_high"} <= set(s.columns):
                fig.add_trace(_band(s["layer"], s["acc_ci_low"], s["acc_ci_high"], color, f"{k} 95% CI", k),
                              row=1, col=j)
            fig.add_trace(go.Scatter(
                x=s["layer"], y=s["accuracy"], mode="lines", name=f"{k} ({meth})" if meth else k, legendgroup=k,
                line=dict(color=color, dash="solid" if main else "dot", width=2 if main else 1.3),
                hovertemplate="layer %{x}<br>accuracy %{y:.3f}<extra>" + f"{k} {meth or ''}</extra>"),
                row=1, col=j)
            if main and "shuffled_accuracy" in s.columns:
                fig.add_trace(go.Scatter(x=s["layer"], y=s["shuffled_accuracy"], mode="lines",
                                         name="shuffled labels", legendgroup="shuffled", showlegend=not shuffled_shown,
                                         line=dict(color="#888", dash="dash", width=1.2)), row=1, col=j)
                shuffled_shown = True
            if main:
                bl = _get(run.metrics, "probe", k, "best_layer")
                if bl is None and "best" in s.columns:
                    b = s[s["best"].astype(str).str.lower().isin(["true", "1"])]
                    bl = b["layer"].iloc[0] if len(b) else None
                row = s[s["layer"] == bl] if bl is not None else s.iloc[0:0]
                if len(row):
                    fig.add_trace(go.Scatter(x=row["layer"], y=row["accuracy"], mode="markers",
                                             marker=dict(symbol="star", size=13, color=color,
                                                         line=dict(color="black", width=1)),
                                             name=f"{k} best layer", showlegend=False,
                                             hovertemplate="best layer %{x}<br>accuracy %{y:.3f}<extra></extra>"),
                                  row=1, col=j)
        fig.update_xaxes(title_text="layer", row=1, col=j)
    fig.update_yaxes(title_text="CV accuracy", row=1, col=1)
    fig.update_layout(height=420)
    return fig


def _heatmap_slider(frames: list[tuple[Any, np.ndarray, np.ndarray]], xlabels: list[str], ylabels: list[str],
                    zmin: float, zmax: float, colorscale: str, cbar: str, active: int,
                    zmid: float | None = None) -> go.Figure:
    fig = go.Figure()
    for i, (layer, z, text) in enumerate(frames):
        fig.add_trace(go.Heatmap(z=z, x=xlabels, y=ylabels, text=text, texttemplate="%{text}", zmin=zmin, zmax=zmax,
                                 zmid=zmid, colorscale=colorscale, visible=i == active,
                                 colorbar=dict(title=dict(text=cbar)), name=f"layer {layer}",
                                 hovertemplate="%{y} × %{x}<br>%{text}<extra>layer " + str(layer) + "</extra>"))
    steps = [dict(method="update", label=str(layer),
                  args=[{"visible": [j == i for j in range(len(frames))]}, {"title.text": f"layer {layer}"}])
             for i, (layer, _, _) in enumerate(frames)]
    fig.update_layout(sliders=[dict(active=active, steps=steps, currentvalue=dict(prefix="layer "), pad=dict(t=40))],
                      title=dict(text=f"layer {frames[active][0]}"), height=480,
                      yaxis=dict(autorange="reversed"))
    return fig


def _active_layer(layers: list[Any], run: Run) -> int:
    bl = _get(run.metrics, "probe", "moral", "best_layer")
    return layers.index(bl) if bl in layers else 0


def _fig_cosine(run: Run) -> go.Figure | str:
    df = run.table("cosine.csv")
    if df is None:
        return "cosine.csv is missing"
    if df.empty:
        return "cosine.csv is empty"
    kinds = _kinds_in(pd.concat([df["kind_a"], df["kind_b"]]))
    idx = {k: i for i, k in enumerate(kinds)}
    layers = sorted(df["layer"].unique().tolist())
    frames = []
    for layer in layers:
        z = np.eye(len(kinds))
        for _, r in df[df["layer"] == layer].iterrows():
            a, b = idx[r["kind_a"]], idx[r["kind_b"]]
            z[a, b] = z[b, a] = r["cosine"]
        frames.append((layer, z, np.vectorize(lambda v: _f(v))(z)))
    return _heatmap_slider(frames, kinds, kinds, -1, 1, "RdBu_r", "cosine", _active_layer(layers, run))


def _fig_cross_decoding(run: Run) -> go.Figure | str:
    df = run.table("cross_decoding.csv")
    if df is None:
        return "cross_decoding.csv is missing"
    if df.empty:
        return "cross_decoding.csv is empty"
    dks, pks = _kinds_in(df["direction_kind"]), _kinds_in(df["prompt_kind"])
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
                    text[i, j] = _f(r["auc"]) + (f"<br>[{_f(r['ci_low'])}, {_f(r['ci_high'])}]" if has_ci else "")
        frames.append((layer, z, text))
    fig = _heatmap_slider(frames, [f"{k} prompts" for k in pks], [f"{k} direction" for k in dks], 0, 1, "RdBu_r",
                          "AUC", _active_layer(layers, run), zmid=0.5)
    return fig


def _ei_cells(run: Run) -> dict[str, dict[str, dict[str, Any]]]:
    """readout -> 'f_to_k' -> cell dict, from metrics.json (falling back to ei.csv/excess.csv)."""
    beh = _get(run.metrics, "entanglement", "behavioural", default=None)
    if isinstance(beh, Mapping) and beh:
        return {str(r): dict(c) for r, c in beh.items() if isinstance(c, Mapping)}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    ei, ex = run.table("ei.csv"), run.table("excess.csv")
    if ei is not None:
        for _, r in ei.iterrows():
            out.setdefault(str(r["readout"]), {})[f"{r['from_factor']}_to_{r['to_kind']}"] = dict(
                ei=r["ei"], ci_low=r["ci_low"], ci_high=r["ci_high"], coef_p=r.get("coef_p"))
    if ex is not None:
        for _, r in ex.iterrows():
            d = out.setdefault(str(r["readout"]), {}).setdefault(f"{r['from_factor']}_to_{r['to_kind']}", {})
            d.update(human_ei=r["ei_human"], excess=r["excess"], excess_ci_low=r["ci_low"], excess_ci_high=r["ci_high"])
            d.setdefault("ei", r["ei_model"])
    return out


def _readout_order(names: list[str], run: Run) -> list[str]:
    ro = judgement_readout(run.metrics)
    return sorted(names, key=lambda r: (r != ro, r == "logprob", r))


def _fig_ei_matrix(run: Run) -> go.Figure | str:
    cells = _ei_cells(run)
    if not cells:
        return "metrics.json has no entanglement.behavioural section (and ei.csv is missing)"
    readouts = _readout_order(list(cells), run)
    cols_of = {}
    for r in readouts:
        tos = {c.split("_to_", 1)[1] for c in cells[r] if "_to_" in c}
        cols_of[r] = [k for k in KINDS if k in tos] + sorted(tos - set(KINDS))
    fig = make_subplots(rows=1, cols=len(readouts), column_widths=[max(len(cols_of[r]), 1) for r in readouts],
                        subplot_titles=[f"{r} readout" for r in readouts], horizontal_spacing=0.12)
    for j, r in enumerate(readouts, 1):
        cols = cols_of[r]
        z = np.full((len(FACTORS), len(cols)), np.nan)
        text = np.full(z.shape, "", dtype=object)
        for i, f in enumerate(FACTORS):
            for c, k in enumerate(cols):
                d = cells[r].get(f"{f}_to_{k}")
                if not d:
                    continue
                z[i, c] = _num(d.get("ei")) if _num(d.get("ei")) is not None else np.nan
                text[i, c] = f"{_f(d.get('ei'))}<br>[{_f(d.get('ci_low'))}, {_f(d.get('ci_high'))}]"
        fig.add_trace(go.Heatmap(z=z, x=[f"{k} judgement" for k in cols], y=[f"{f} factor" for f in FACTORS],
                                 text=text, texttemplate="%{text}", zmin=-1, zmax=1, zmid=0, colorscale="RdBu_r",
                                 showscale=j == len(readouts), colorbar=dict(title=dict(text="EI")),
                                 hovertemplate="%{y} → %{x}<br>EI %{text}<extra>" + r + "</extra>"), row=1, col=j)
        fig.update_yaxes(autorange="reversed", showticklabels=j == 1, row=1, col=j)
    fig.update_layout(height=420)
    return fig


def _fig_excess(run: Run) -> go.Figure | str:
    cells = _ei_cells(run)
    rows = []
    for r in _readout_order(list(cells), run):
        for c, d in cells[r].items():
            f, _, k = c.partition("_to_")
            if f == k or _num(d.get("ei")) is None:
                continue
            rows.append(dict(label=f"{r}: {_cell_label(c)}", moral=f == "moral", **{
                key: _num(d.get(key)) for key in ("ei", "ci_low", "ci_high", "human_ei", "excess", "excess_ci_low",
                                                   "excess_ci_high")}))
    if not rows:
        return "no off-diagonal EI cells in metrics.json"
    t = pd.DataFrame(rows).iloc[::-1]
    t["excess"] = t["excess"].fillna(t["ei"] - t["human_ei"].fillna(0))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=["EI: model vs human norm", "excess = EI_model − EI_human"])
    colors = [COLORS["moral"] if m else "#555" for m in t["moral"]]
    fig.add_trace(go.Scatter(x=t["ei"], y=t["label"], mode="markers", name="model EI (95% CI)",
                             marker=dict(color=colors, size=9),
                             error_x=_err(t["ei"], t["ci_low"].fillna(t["ei"]), t["ci_high"].fillna(t["ei"]))),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=t["human_ei"].fillna(0), y=t["label"], mode="markers", name="human norm",
                             marker=dict(symbol="diamond-open", size=11, color="black")), row=1, col=1)
    fig.add_trace(go.Scatter(x=t["excess"], y=t["label"], mode="markers", name="excess (95% CI)",
                             marker=dict(color=colors, size=9, symbol="square"),
                             error_x=_err(t["excess"], t["excess_ci_low"].fillna(t["excess"]),
                                          t["excess_ci_high"].fillna(t["excess"]))), row=1, col=2)
    for col in (1, 2):
        fig.add_vline(x=0, line=dict(color="#999", dash="dot"), row=1, col=col)
    fig.update_layout(height=max(320, 34 * len(t) + 140), legend=dict(orientation="h", y=-0.15))
    return fig


def _fig_leakage(run: Run) -> go.Figure | str:
    df = run.table("leakage.csv")
    if df is None:
        return "leakage.csv is missing"
    fig = go.Figure()
    for k in _kinds_in(df["to_kind"]):
        s = df[df["to_kind"] == k].sort_values("layer")
        color = COLORS.get(k, "#555")
        if {"ci_low", "ci_high"} <= set(s.columns):
            fig.add_trace(_band(s["layer"], s["ci_low"], s["ci_high"], color, f"moral→{k} 95% CI", k))
        fig.add_trace(go.Scatter(x=s["layer"], y=s["leakage"], mode="lines+markers", name=f"moral→{k}",
                                 legendgroup=k, line=dict(color=color), marker=dict(size=4)))
    fig.add_hline(y=0, line=dict(color="#999", dash="dot"))
    bl = _get(run.metrics, "probe", "moral", "best_layer")
    if bl is not None:
        fig.add_vline(x=bl, line=dict(color=COLORS["moral"], dash="dot"),
                      annotation_text=f"moral best layer {bl}", annotation_position="top left")
    fig.update_layout(height=420, xaxis_title="layer", yaxis_title="leakage L(m→K)")
    return fig


def _methods(run: Run) -> dict[str, dict[str, Any]]:
    abl = _get(run.metrics, "ablation", default={}) or {}
    return {k: v for k, v in abl.items() if k not in ("primary", "random") and isinstance(v, Mapping)
            and ("repair_fraction" in v or "cells" in v)}


def _judgement_rows(run: Run) -> pd.DataFrame | None:
    """ablation.csv rows of the judgement readout (the file also holds log-prob rows for moral->grammatical)."""
    csv = run.table("ablation.csv")
    if csv is not None and "readout" in csv.columns:
        csv = csv[csv["readout"] == judgement_readout(run.metrics)]
    return csv


def _fig_ablation_cells(run: Run) -> go.Figure | str:
    meths = _methods(run)
    if not meths:
        return "metrics.json has no ablation section"
    ro = judgement_readout(run.metrics)
    beh = _get(run.metrics, "entanglement", "behavioural", ro, default={}) or {}
    csv = _judgement_rows(run)
    names = list(meths)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=[_cell_label(c) for c in MORAL_CELLS],
                        horizontal_spacing=0.05)
    for j, cell in enumerate(MORAL_CELLS, 1):
        to = cell.split("_to_")[1]
        before, after, alo, ahi = [], [], [], []
        for n in names:
            d = _get(meths[n], "cells", cell, default={}) or {}
            before.append(_num(d.get("ei_before")))
            after.append(_num(d.get("ei_after")))
            lo, hi = _num(d.get("ei_after_ci_low")), _num(d.get("ei_after_ci_high"))
            if (lo is None or hi is None) and csv is not None and {"ei_after_ci_low", "ei_after_ci_high"} <= set(
                    csv.columns):
                r = csv[(csv["method"] == n) & (csv["to_kind"] == to)]
                if len(r):
                    lo, hi = _num(r["ei_after_ci_low"].iloc[0]), _num(r["ei_after_ci_high"].iloc[0])
            alo.append(lo)
            ahi.append(hi)
        b = np.array([np.nan if v is None else v for v in before], dtype=float)
        a = np.array([np.nan if v is None else v for v in after], dtype=float)
        blo = _num(_get(beh, cell, "ci_low"))
        bhi = _num(_get(beh, cell, "ci_high"))
        # the before-ablation EI's interval, from the behavioural cell (shifted if the ablation's EI differs)
        bei = _num(_get(beh, cell, "ei"))
        if csv is not None and {"ei_before_ci_low", "ei_before_ci_high"} <= set(csv.columns):
            rows = [csv[(csv["method"] == n) & (csv["to_kind"] == to)] for n in names]
            berr = _err(b, [_num(r["ei_before_ci_low"].iloc[0]) if len(r) else None for r in rows],
                        [_num(r["ei_before_ci_high"].iloc[0]) if len(r) else None for r in rows])
        elif blo is not None and bhi is not None and bei is not None:
            berr = _err(b, b - (bei - blo), b + (bhi - bei))
        else:
            berr = None
        xs = np.arange(len(names))
        fig.add_trace(go.Scatter(x=xs - 0.12, y=b, mode="markers", name="before (95% CI)", legendgroup="before",
                                 showlegend=j == 1, marker=dict(color="#888", size=10), error_y=berr), row=1, col=j)
        aerr = None
        if all(v is not None for v in alo + ahi):
            aerr = _err(a, alo, ahi)
        fig.add_trace(go.Scatter(x=xs + 0.12, y=a, mode="markers", name="after" + (" (95% CI)" if aerr else ""),
                                 legendgroup="after", showlegend=j == 1,
                                 marker=dict(color=COLORS[to], size=11, symbol="diamond"), error_y=aerr), row=1, col=j)
        h = _num(_get(beh, cell, "human_ei"))
        fig.add_hline(y=0.0 if h is None else h, line=dict(color="black", dash="dash"), row=1, col=j,
                      annotation_text="human norm", annotation_position="bottom right")
        fig.update_xaxes(tickvals=list(xs), ticktext=names, row=1, col=j)
    fig.update_yaxes(title_text="EI", row=1, col=1)
    fig.update_layout(height=430)
    return fig


def _fig_repair(run: Run, names: list[str] | None = None, x_labels: list[str] | None = None) -> go.Figure | str:
    meths = _methods(run)
    if not meths:
        return "metrics.json has no ablation section"
    names = list(meths) if names is None else names
    x = x_labels or names
    fig = go.Figure()
    rnd = _get(run.metrics, "ablation", "random", default={}) or {}
    mu, sd = _num(rnd.get("repair_fraction_mean")), _num(rnd.get("repair_fraction_sd"))
    if mu is not None and sd is not None:
        fig.add_hrect(y0=mu - sd, y1=mu + sd, fillcolor="#bbb", opacity=0.3, line_width=0,
                      annotation_text=f"random directions (n={rnd.get('n', '?')}) mean ± SD",
                      annotation_position="top left")
    for off, cell in zip((-0.15, 0.15), MORAL_CELLS, strict=True):
        to = cell.split("_to_")[1]
        y = [_num(_get(meths[n], "cells", cell, "repair_fraction")) for n in names]
        lo = [_num(_get(meths[n], "cells", cell, "ci_low")) for n in names]
        hi = [_num(_get(meths[n], "cells", cell, "ci_high")) for n in names]
        yy = np.array([np.nan if v is None else v for v in y], dtype=float)
        err = _err(yy, [np.nan if v is None else v for v in lo], [np.nan if v is None else v for v in hi])
        fig.add_trace(go.Scatter(x=np.arange(len(names)) + off, y=yy, mode="markers", name=_cell_label(cell),
                                 marker=dict(color=COLORS[to], size=7, opacity=0.75), error_y=err))
    y = np.array([np.nan if _num(meths[n].get("repair_fraction")) is None else _num(meths[n].get("repair_fraction"))
                  for n in names], dtype=float)
    lo = [_num(meths[n].get("ci_low")) for n in names]
    hi = [_num(meths[n].get("ci_high")) for n in names]
    ptxt = [_p(meths[n].get("random_p_value")) if _num(meths[n].get("random_p_value")) is not None else ""
            for n in names]
    fig.add_trace(go.Scatter(x=np.arange(len(names)), y=y, mode="markers+text", name="mean of the two cells",
                             text=ptxt, textposition="top right", textfont=dict(size=10),
                             marker=dict(color="black", size=10),
                             error_y=_err(y, [np.nan if v is None else v for v in lo],
                                          [np.nan if v is None else v for v in hi])))
    fig.add_hline(y=0, line=dict(color="#999", dash="dot"))
    fig.add_hline(y=1, line=dict(color="#999", dash="dot"), annotation_text="full repair",
                  annotation_position="bottom left")
    fig.update_layout(height=430, yaxis_title="repair fraction",
                      xaxis=dict(tickvals=list(range(len(names))), ticktext=x, title="ablation"))
    return fig


def _fig_random(run: Run) -> go.Figure | str:
    df = run.table("ablation_random.csv")
    if df is None:
        return "ablation_random.csv is missing"
    if df.empty or "repair_fraction" not in df.columns:
        return "ablation_random.csv has no repair fractions"
    key = "index" if "index" in df.columns else None
    per = df.groupby(key)["repair_fraction"].mean() if key else df["repair_fraction"]
    fig = go.Figure(go.Histogram(x=per, nbinsx=max(10, min(40, len(per) // 2)), name="random directions",
                                 marker=dict(color="#999", line=dict(color="white", width=1))))
    primary = _get(run.metrics, "ablation", "primary")
    if "moral_repair_fraction_same_subset" in df.columns:
        moral = _num(df.groupby("to_kind")["moral_repair_fraction_same_subset"].mean().mean()
                     if "to_kind" in df.columns else df["moral_repair_fraction_same_subset"].mean())
        lab = f"{primary or 'moral'} on the same subset"
    else:
        moral = _num(_get(run.metrics, "ablation", primary or "", "repair_fraction"))
        lab = f"{primary or 'moral'}"
    if moral is not None:
        p = _get(run.metrics, "ablation", primary or "", "random_p_value")
        fig.add_vline(x=moral, line=dict(color=COLORS["moral"], width=3),
                      annotation_text=f"{lab}: {_f(moral)} ({_p(p)})", annotation_position="top")
    fig.update_layout(height=380, xaxis_title="repair fraction (mean over the two moral cells)",
                      yaxis_title="random directions", showlegend=False, bargap=0.05)
    return fig


def _sweep_methods(run: Run) -> list[str]:
    csv = _judgement_rows(run)
    meths = _methods(run)
    if csv is not None and {"method", "direction_kind"} <= set(csv.columns):
        moral = set(csv.loc[csv["direction_kind"] == "moral", "method"])
        names = [n for n in meths if n in moral and "leace" not in n.lower()]
    else:
        names = [n for n in meths if n.startswith("moral_")]
    return names


def _fig_layer_sweep(run: Run) -> go.Figure | str:
    names = _sweep_methods(run)
    if not names:
        return "no moral-direction ablations with a layer rule"
    meths = _methods(run)
    labels = [f"{meths[n].get('rule', n)}<br>({_layers_str(meths[n].get('layers', []))})" for n in names]
    fig = _fig_repair(run, names, labels)
    if isinstance(fig, go.Figure):
        fig.update_layout(xaxis_title="layer rule")
    return fig


def _fig_selectivity(run: Run) -> go.Figure | str:
    df = run.table("selectivity.csv")
    if df is None:
        rows = [dict(method=n, kind=k, estimate=_num(v), ci_low=None, ci_high=None)
                for n, d in _methods(run).items() for k, v in (d.get("selectivity") or {}).items()]
        if not rows:
            return "selectivity.csv is missing and metrics.json has no selectivity"
        df = pd.DataFrame(rows)
    methods = list(pd.unique(df["method"]))
    fig = go.Figure()
    for k in _kinds_in(df["kind"]):
        s = df[df["kind"] == k].set_index("method").reindex(methods)
        y = s["estimate"].astype(float)
        err = None
        if {"ci_low", "ci_high"} <= set(s.columns) and s["ci_low"].notna().all():
            err = _err(y, s["ci_low"].astype(float), s["ci_high"].astype(float))
        fig.add_trace(go.Bar(x=methods, y=y, name=f"{k} own effect", marker_color=COLORS.get(k), error_y=err))
    fig.add_hline(y=1, line=dict(color="black", dash="dash"), annotation_text="untouched",
                  annotation_position="top left")
    fig.update_layout(barmode="group", height=420, yaxis_title="own effect after / before", xaxis_title="ablation")
    return fig


_BUILDERS: dict[str, Callable[[Run], go.Figure | str]] = {
    "readouts": _fig_readouts,
    "ei_matrix": _fig_ei_matrix,
    "excess": _fig_excess,
    "probe_accuracy": _fig_probe_accuracy,
    "cosine": _fig_cosine,
    "cross_decoding": _fig_cross_decoding,
    "leakage": _fig_leakage,
    "ablation_cells": _fig_ablation_cells,
    "repair_by_method": _fig_repair,
    "random_controls": _fig_random,
    "layer_sweep": _fig_layer_sweep,
    "selectivity": _fig_selectivity,
}


def _all_figures(run: Run) -> tuple[dict[str, go.Figure], dict[str, str]]:
    figs, notes = {}, {}
    for name, build in _BUILDERS.items():
        try:
            res = build(run)
        except Exception as exc:  # noqa: BLE001 — a malformed table drops its figure, not the report
            res = f"could not be drawn ({type(exc).__name__}: {exc})"
        if isinstance(res, go.Figure):
            title = FIGURES[name][0]
            if not res.layout.title.text:
                res.update_layout(title=dict(text=title))
            res.update_layout(template=TEMPLATE, margin=dict(l=60, r=30, t=80, b=60))
            figs[name] = res
        else:
            notes[name] = res
    return figs, notes


def figures(run_dir: str | Path | Run) -> dict[str, go.Figure]:
    """Every figure the run's files allow, by name (see FIGURES for names, titles and captions)."""
    return _all_figures(_as_run(run_dir))[0]


# ----------------------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------------------

CSS = """
body { font-family: Georgia, 'Times New Roman', serif; color: #222; max-width: 1060px; margin: 2em auto;
       padding: 0 1.2em; line-height: 1.5; background: #fff; }
h1 { font-size: 1.8em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em;
margin-top: 2em; } h3 { margin-top: 1.6em; }
.meta { color: #666; font-size: .92em; }
.abstract { background: #f7f7f4; border-left: 4px solid #999; padding: .8em 1.2em; margin: 1.2em 0; }
.verdict { margin: .6em 0; padding: .5em .8em; border-radius: 4px; border: 1px solid #ddd; background: #fff; }
.verdict .answer { font-weight: bold; text-transform: uppercase; font-family: Helvetica, Arial, sans-serif;
                   font-size: .85em; padding: .1em .5em; border-radius: 3px; margin-right: .4em; }
.answer.yes, .answer.small { background: #d5f0dc; color: #1b5e20; }
.answer.no-evidence, .answer.not-beyond-random, .answer.moderate, .answer.not-measured {
  background: #fff3cd; color: #7a5b00; }
.answer.no, .answer.large { background: #f8d7da; color: #842029; }
table { border-collapse: collapse; margin: .8em 0; font-family: Helvetica, Arial, sans-serif; font-size: .86em; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.figure { margin: 1.6em 0; border: 1px solid #eee; padding: .4em .6em; }
section.figure h4 { margin: .3em 0; font-family: Helvetica, Arial, sans-serif; }
.caption { color: #555; font-size: .9em; }
.note { background: #fff8e1; border: 1px dashed #d4a017; padding: .4em .8em; margin: 1em 0; font-size: .92em; }
.pass { color: #1b5e20; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: .8em; }
code { font-size: .92em; }
"""


class _Html:
    """Accumulates the body and inlines plotly.js with the first figure only."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n_fig = 0

    def add(self, s: str) -> None:
        self.parts.append(s)

    def figure(self, name: str, fig: go.Figure | None, note: str | None, prefix: str = "") -> None:
        title, caption = FIGURES.get(name, (name, ""))
        if fig is None:
            self.add(f'<div class="note missing" id="missing-{_e(prefix + name)}"><b>{_e(title)}</b> is not shown: '
                     f"{_e(note or 'no data')}.</div>")
            return
        self.n_fig += 1
        if fig.layout.title.text == title:  # the section heading already says it
            fig = go.Figure(fig).update_layout(title=None)
        div = fig.to_html(full_html=False, include_plotlyjs=self.n_fig == 1, div_id=f"plot-{prefix}{name}",
                          config={"displaylogo": False, "responsive": True})
        self.add(f'<section class="figure" id="fig-{_e(prefix + name)}"><h4>Figure {self.n_fig}. {_e(title)}</h4>'
                 f'{div}<p class="caption">{_e(caption)}</p></section>')

    def document(self, title: str) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
                f"<style>{CSS}</style></head><body>\n" + "\n".join(self.parts) + "\n</body></html>\n")


def _table(header: list[str], rows: list[list[Any]], num_from: int = 1) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in header)
    body = []
    for r in rows:
        tds = "".join(f'<td class="num">{_e(c)}</td>' if i >= num_from else f"<td>{_e(c)}</td>"
                      for i, c in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict_block(v: dict[str, dict[str, Any]]) -> str:
    qs = [("entanglement", "1. Does moral value leak into grammatical and economic judgements beyond human norms?"),
          ("repair", "2. Does ablating the moral direction repair it, beyond random directions?"),
          ("cost", "3. At what cost?")]
    out = []
    for key, q in qs:
        a = v[key]["answer"]
        out.append(f'<div class="verdict" id="verdict-{key}"><div><b>{_e(q)}</b></div>'
                   f'<span class="answer {_e(a.replace(" ", "-"))}">{_e(a)}</span>'
                   f'<span class="verdict-text">{_e(v[key]["text"])}</span></div>')
    return "\n".join(out)


def _probe_rows(run: Run) -> list[list[Any]]:
    rows = []
    for k in KINDS:
        d = _get(run.metrics, "probe", k)
        if not isinstance(d, Mapping):
            continue
        ci = d.get("ci") or [None, None]
        rows.append([k, d.get("method", "n/a"), d.get("best_layer", "n/a"),
                     f"{_f(d.get('cv_accuracy'), 3)} [{_f(ci[0], 3)}, {_f(ci[1], 3)}]", _f(d.get("auc"), 3),
                     _f(d.get("selectivity"), 3)])
    return rows


def _ei_rows(run: Run, readout: str) -> list[list[Any]]:
    cells = _ei_cells(run).get(readout, {})
    rows = []
    for f in FACTORS:
        for k in KINDS:
            d = cells.get(f"{f}_to_{k}")
            if not d:
                continue
            rows.append([f"{f}→{k}", f"{_f(d.get('ei'))} [{_f(d.get('ci_low'))}, {_f(d.get('ci_high'))}]",
                         _f(d.get("human_ei")),
                         f"{_f(d.get('excess'), sign=True)} [{_f(d.get('excess_ci_low'), sign=True)}, "
                         f"{_f(d.get('excess_ci_high'), sign=True)}]",
                         _p(d.get("coef_p")).removeprefix("p = ") if d.get("coef_p") is not None else "n/a"])
    return rows


def _ablation_rows(run: Run) -> list[list[Any]]:
    rows = []
    for n, d in _methods(run).items():
        cells = d.get("cells") or {}
        sel = d.get("selectivity") or {}

        def ba(c: str, cells: Mapping[str, Any] = cells) -> str:
            x = cells.get(c) or {}
            return f"{_f(x.get('ei_before'))} → {_f(x.get('ei_after'))}"

        rows.append([n, d.get("rule", "n/a"), _layers_str(d.get("layers", [])).removeprefix("layers ")
                     .removeprefix("layer "),
                     f"{_pct(d.get('repair_fraction'))} [{_pct(d.get('ci_low'))}, {_pct(d.get('ci_high'))}]",
                     ba("moral_to_grammatical"), ba("moral_to_economic"),
                     _p(d.get("random_p_value")) if d.get("random_p_value") is not None else "—",
                     " / ".join(_f(sel.get(k)) for k in ("moral", "grammatical", "economic")),
                     _f(d.get("loss_delta"), 3, sign=True)])
    return rows


def _methods_section(run: Run) -> str:
    c, m = run.config, run.metrics
    mi = c.get("model_info") or {}
    st = c.get("stimuli") if isinstance(c.get("stimuli"), Mapping) else {}
    ro = judgement_readout(m)
    ev = _get(m, "readout", "evidence", default={}) or {}
    reason = ev.get("reason") if isinstance(ev, Mapping) else None
    rnd = _get(m, "ablation", "random", default={}) or {}
    probe_methods = sorted({str(_get(m, "probe", k, "method")) for k in KINDS if _get(m, "probe", k, "method")})
    out = ["<h2 id=\"methods\">1. Methods</h2>", "<h3>Model</h3>"]
    if mi:
        out.append(_table(["field", "value"], [[k, v] for k, v in mi.items()], num_from=99))
    else:
        out.append('<div class="note">config.json has no model_info.</div>')
    out.append("<h3>Stimuli</h3>")
    if st:
        out.append(f"<p>{_e(st.get('n_items', '?'))} items from {_e(st.get('n_frames', '?'))} frames "
                   f"(source <code>{_e(st.get('source', '?'))}</code>, sha256 <code>{_e(str(st.get('sha256', '?'))[:16])}"
                   "…</code>). Each frame is filled at every level of three independent factors: moral m ∈ {+1, 0, −1} "
                   "(the act), economic e ∈ {+1, 0, −1} (a monetary outcome the act does not cause) and grammatical "
                   "g ∈ {1, 0} (one auxiliary in a neutral context clause). Frames are the unit of every "
                   "cross-validation split and bootstrap.</p>")
    else:
        out.append('<div class="note">config.json has no stimuli record.</div>')
    out.append("<h3>Readouts</h3>")
    out.append(f"<p>The judgement readout is <b>{_e(ro)}</b>"
               + (f", chosen because {_e(reason)}" if reason else "") + ". "
               "Cloze: log p(positive word) − log p(negative word) after a kind-specific continuation, averaged "
               "over paraphrased templates; Likert: the expected 1–7 rating from the digit distribution. The "
               "per-token log-probability of the judged sentence (<i>logprob</i>) is a second, prompt-free "
               "grammaticality readout.</p>")
    if isinstance(ev, Mapping) and ev:
        out.append(_table(["evidence", "value"], [[k, v if isinstance(v, (str, int, float, bool)) or v is None
                                                   else json.dumps(v, default=str)]
                                                  for k, v in ev.items() if k != "reason"], num_from=1))
    out.append("<h3>Probes</h3>")
    out.append(f"<p>Per-layer linear probes ({_e(', '.join(probe_methods) or 'n/a')}) separate the good from the "
               "bad level of each kind's own factor, with frame-grouped cross-validation, a shuffled-label "
               "baseline, and a direction per kind and layer (<code>directions/</code>).</p>")
    out.append("<h3>Metrics</h3><ul>"
               "<li><b>Entanglement index.</b> For each kind K the readout r_K is z-scored and regressed on the "
               "three factors by OLS, r_K ~ b0 + b_m·m + b_e·e + b_g·g, with cluster-robust standard errors by "
               "frame. EI(f→K) = b_f / |b_K|: the influence of factor f in units of the effect that should drive "
               "K. Intervals: percentile bootstrap over frames.</li>"
               "<li><b>Excess entanglement</b> = EI_model − EI_human on paired frame resamples; the norm is "
               f"{_e(_norm_phrase(m))}.</li>"
               "<li><b>Leakage</b> L(m→K, ℓ): the projection difference onto d_K between moral-good and moral-bad "
               "items with K's own factor fixed, over the difference K's own factor produces.</li>"
               "<li><b>Repair fraction</b> = (EI_before − EI_after) / (EI_before − EI_human) for moral→grammatical "
               "and moral→economic; the headline is their mean (1 = repaired to the norm, 0 = unchanged).</li>"
               "<li><b>Selectivity</b> = b_K after / b_K before in readout units: what a kind's own judgement keeps. "
               "<b>Loss delta</b>: change in mean per-token loss on neutral texts (nats).</li>"
               f"<li><b>Random controls.</b> The same ablation along {_e(rnd.get('n', '≥20'))} random unit directions "
               f"(on {_e(rnd.get('control_frames', 'a subset of'))} frames); the p-value is the share of random "
               "directions that repair at least as much as the moral direction on the same subset. A moral "
               "ablation counts as repair only where it beats them.</li></ul>")
    verdict_rules = (
        "<p class=\"meta\">Verdict rules: (1) <i>yes</i> where the 95% CI of the excess excludes 0; (2) <i>yes</i> "
        f"where the repair CI lies above 0 and the random-direction p &lt; {ALPHA}; (3) <i>small</i> cost where "
        f"the grammatical and economic judgements keep ≥ {COST_SMALL_KEEP:.0%} of their own effect and the "
        f"neutral-text loss rises ≤ {COST_SMALL_LOSS} nats, <i>large</i> where either keeps &lt; "
        f"{COST_LARGE_KEEP:.0%} or the loss rises &gt; {COST_LARGE_LOSS} nats.</p>")
    out.append(verdict_rules)
    return "\n".join(out)


def _caveats(run: Run) -> str:
    mi = run.config.get("model_info") or {}
    name = str(mi.get("name", model_name(run)))
    items = []
    d_model, n_layers = mi.get("d_model"), mi.get("n_layers")
    small = (isinstance(d_model, int) and d_model < 2048) or any(s in name.lower() for s in ("135m", "270m", "360m"))
    if small or not mi:
        items.append(f"<b>Small model.</b> {_e(name)} ({_e(n_layers)} layers, d_model {_e(d_model)}) is a small "
                     "model; its judgements are weak and may not reflect how larger models separate kinds of good.")
    if _norm_is_design(run.metrics):
        items.append("<b>Design norm.</b> No human ratings were used: EI_human = 0 by design, i.e. the stimuli "
                     "assume that a person's grammatical and economic judgements ignore the moral act. Real raters "
                     "may show a halo (a good act making the rest of the sentence seem better); where they do, the excess "
                     "against the design norm overstates entanglement beyond human judgement. Supply ratings "
                     "(data/norms) to measure the human EI instead.")
    src = str(mi.get("source", "")) + " " + name
    if "gguf" in src.lower() or "q4" in src.lower() or name in ("smollm2-135m", "gemma3-270m"):
        items.append("<b>Quantised weights.</b> The weights come from a Q4 GGUF file, de-quantised to "
                     f"{_e(mi.get('dtype', 'float32'))}; 4-bit rounding perturbs every activation a little.")
    ro = judgement_readout(run.metrics)
    items.append(f"<b>The readout's limits.</b> The {_e(ro)} readout measures what the model says next after a "
                 "prompt, which mixes the judgement with word frequency and template wording; the log-probability "
                 "readout reacts to rare words and length. EIs are relative to each readout's own effect, not "
                 "absolute.")
    beh = _get(run.metrics, "entanglement", "behavioural", default={}) or {}
    for readout, cells in beh.items():
        for kind in KINDS:
            own = cells.get(f"{kind}_to_{kind}") if isinstance(cells, Mapping) else None
            p = _num(own.get("coef_p")) if isinstance(own, Mapping) else None
            if p is not None and p >= 0.05:
                items.append(f"<b>A readout that ignores its own factor.</b> The {_e(readout)} {_e(kind)} readout "
                             f"does not respond to the {_e(kind)} factor itself (own-effect p = {p:.2f}), so "
                             f"EI(·→{_e(kind)}) = b_f / |b_{_e(kind)}| divides by a near-zero effect: its value and "
                             "interval are unstable, and so is any repair fraction computed from it. Read the "
                             "raw coefficients (ei.csv) and another readout of the same kind instead.")
    items.append("<b>Linear directions.</b> Probes and ablations see only linearly decodable information in one "
                 "direction per kind and layer; entanglement carried non-linearly or across several directions "
                 "is not removed by a rank-one ablation.")
    for p in run.problems:
        items.append(f"<b>Run folder.</b> {_e(p)}.")
    return '<h2 id="caveats">3. Caveats</h2><ul>' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _self_checks(run: Run) -> str:
    sc = _get(run.metrics, "self_checks", default={}) or {}
    out = ['<h2 id="self-checks">4. Self-checks</h2>']
    if not sc:
        return out[0] + '<div class="note">metrics.json records no self-checks.</div>'
    rows = []
    for name, d in sc.items():
        d = d if isinstance(d, Mapping) else {}
        passed = d.get("passed")
        err = _num(d.get("max_rel_error"))
        err_s = "n/a" if err is None else f"{err:.1e}"
        tol = _num(d.get("tolerance"))
        rows.append(f"<tr><td>{_e(name)}</td><td class=\"num\">{_e(err_s)}</td>"
                    f"<td class=\"num\">{_e('n/a' if tol is None else f'{tol:.0e}')}</td>"
                    f"<td class=\"{'pass' if passed else 'fail'}\">{'passed' if passed else 'FAILED'}</td></tr>")
    out.append("<p>Padding invariance: a prompt's activations do not depend on the batch it is padded into. Hook "
               "semantics: an ablation hook does what it says (the projection onto the direction is removed).</p>")
    out.append("<table><thead><tr><th>check</th><th>max relative error</th><th>tolerance</th><th>result</th></tr></thead><tbody>"
               + "".join(rows) + "</tbody></table>")
    if any(not (isinstance(d, Mapping) and d.get("passed")) for d in sc.values()):
        out.append('<div class="note">A self-check failed: treat every number in this report with suspicion.</div>')
    return "\n".join(out)


def _appendix(run: Run) -> str:
    out = ['<h2 id="files">Appendix: run folder</h2>']
    present = [n for n in CSV_FILES if run.table(n) is not None]
    missing = [n for n in CSV_FILES if run.table(n) is None]
    out.append(f"<p>Tables: {_e(', '.join(present) or 'none')}."
               + (f" Missing: {_e(', '.join(missing))}." if missing else "") + "</p>")
    if run.directions:
        out.append(f"<p>Directions ({len(run.directions)} files in <code>directions/</code>):</p><ul>"
                   + "".join(f"<li><code>{_e(d)}</code></li>" for d in run.directions) + "</ul>")
    else:
        out.append('<div class="note">No <code>directions/</code> folder.</div>')
    out.append("<details><summary>config.json</summary><pre>" + _e(json.dumps(run.config, indent=2, default=str))
               + "</pre></details>")
    if run.log_tail:
        out.append("<details><summary>run.log (last lines)</summary><pre>" + _e("\n".join(run.log_tail))
                   + "</pre></details>")
    return "\n".join(out)


def _abstract(run: Run, v: dict[str, dict[str, Any]]) -> str:
    m = run.metrics
    ro = judgement_readout(m)
    probe_bits = []
    for k in KINDS:
        d = _get(m, "probe", k)
        if isinstance(d, Mapping):
            probe_bits.append(f"{k} {_f(d.get('cv_accuracy'), 2)} (layer {d.get('best_layer', '?')})")
    st = run.config.get("stimuli") if isinstance(run.config.get("stimuli"), Mapping) else {}
    lead = (f"We ask whether {_e(model_name(run))} keeps moral, grammatical and economic good apart. On "
            f"{_e(st.get('n_items', '?'))} factorial items ({_e(st.get('n_frames', '?'))} frames), we read its "
            f"judgements with the {_e(ro)} readout, measure how much an item's moral value moves its grammatical and "
            f"economic judgements (the entanglement index, against {_e(_norm_phrase(m))}), and ablate the moral "
            "direction found by linear probes to see whether the leak closes.")
    if probe_bits:
        lead += " Linear probes decode each kind (best CV accuracy: " + _e("; ".join(probe_bits)) + ")."
    return f'<div class="abstract" id="summary"><p>{lead}</p>{_verdict_block(v)}</div>'


def _safe(what: str, fn: Callable[..., str], *args: Any) -> str:
    """A section's HTML, or a note where the run folder holds something the section cannot read."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 — one malformed entry must not cost the whole report
        return f'<div class="note">{_e(what)} could not be written ({_e(type(exc).__name__)}: {_e(exc)}).</div>'


def _header(run: Run) -> str:
    meta = _get(run.metrics, "run", default={}) or {}
    return (f"<header><h1>Does {_e(model_name(run))} keep moral, grammatical and economic good apart?</h1>"
            f'<p class="meta">entangle {_e(meta.get("entangle_version", "?"))} · run <code>{_e(run.path.name)}</code>'
            f' · {_e(meta.get("started", "?"))} → {_e(meta.get("finished", "?"))} '
            f'({_f(meta.get("wall_seconds"), 0)} s) · device {_e(meta.get("device", "?"))}</p></header>')


def _ei_tables(run: Run) -> str:
    ro = judgement_readout(run.metrics)
    out = [f"<p>Entanglement indices of the {_e(ro)} readout (EI [95% CI], human norm, excess [95% CI], "
           "OLS p of the factor's coefficient):</p>"]
    rows = _ei_rows(run, ro)
    out.append(_table(["cell", "EI", "EI_human", "excess", "p"], rows) if rows else
               '<div class="note">No EI cells for the judgement readout.</div>')
    lp = _ei_rows(run, "logprob")
    if lp:
        out.append("<p>Sentence log-probability readout:</p>" + _table(["cell", "EI", "EI_human", "excess", "p"], lp))
    return "\n".join(out)


def _probe_table(run: Run) -> str:
    pr = _probe_rows(run)
    return _table(["kind", "method", "best layer", "CV accuracy [95% CI]", "AUC", "selectivity"], pr) if pr else ""


def _representational_table(run: Run) -> str:
    rep = _get(run.metrics, "entanglement", "representational", default={}) or {}
    rrows = []
    for k, d in rep.items():
        if not isinstance(d, Mapping):
            continue
        if k.startswith("leakage."):
            val = f"{_f(d.get('leakage'))} [{_f(d.get('ci_low'))}, {_f(d.get('ci_high'))}]"
        else:
            val = _f(d.get("cosine"))
        rrows.append([k, d.get("layer", "?"), val])
    return ("<p>At the moral probe's best layer:</p>" + _table(["measure", "layer", "value"], rrows)) if rrows else ""


def _ablation_table(run: Run) -> str:
    ar = _ablation_rows(run)
    if not ar:
        return '<div class="note">metrics.json has no ablation results.</div>'
    primary = _get(run.metrics, "ablation", "primary")
    skipped = _get(run.metrics, "ablation", "skipped", default={}) or {}
    out = [f"<p>Primary ablation: <b>{_e(primary)}</b>. Repair is the mean over the two moral cells; "
           "selectivity is own effect after/before for moral / grammatical / economic.</p>",
           _table(["method", "rule", "layers", "repair [95% CI]", "m→g EI before → after", "m→e EI before → after",
                   "random p", "selectivity m / g / e", "loss Δ (nats)"], ar, num_from=3)]
    if isinstance(skipped, Mapping) and skipped:
        out.append('<div class="note">Skipped ablations: '
                   + _e("; ".join(f"{k}: {v}" for k, v in skipped.items())) + "</div>")
    return "\n".join(out)


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of a run folder (default run_dir/report.html) and return its path.

    Needs only the folder (no model). Missing optional files drop their figure and leave a note in its place.
    """
    run = load_run(run_dir)
    figs, notes = _all_figures(run)
    try:
        v = verdicts(run.metrics)
        v["cost"] = _verdict_cost(run.metrics, run.table("selectivity.csv"))
    except Exception as exc:  # noqa: BLE001
        msg = f"Not measured: metrics.json could not be read for the verdicts ({type(exc).__name__}: {exc})."
        v = {k: {"answer": "not measured", "text": msg} for k in ("entanglement", "repair", "cost")}
    h = _Html()

    def fig(name: str) -> None:
        h.figure(name, figs.get(name), notes.get(name))

    h.add(_safe("The header", _header, run))
    h.add('<h2 id="abstract">Summary</h2>')
    h.add(_safe("The summary", _abstract, run, v))
    h.add(_safe("The methods", _methods_section, run))
    h.add('<h2 id="results">2. Results</h2><h3>2.1 Behaviour</h3>')
    fig("readouts")
    h.add(_safe("The EI tables", _ei_tables, run))
    fig("ei_matrix")
    fig("excess")
    h.add("<h3>2.2 Representations</h3>")
    h.add(_safe("The probe table", _probe_table, run))
    fig("probe_accuracy")
    h.add(_safe("The representational table", _representational_table, run))
    fig("cosine")
    fig("cross_decoding")
    fig("leakage")
    h.add("<h3>2.3 Ablation</h3>")
    h.add(_safe("The ablation table", _ablation_table, run))
    for name in ("ablation_cells", "repair_by_method", "random_controls", "layer_sweep", "selectivity"):
        fig(name)
    h.add(_safe("The caveats", _caveats, run))
    h.add(_safe("The self-checks", _self_checks, run))
    h.add(_safe("The appendix", _appendix, run))
    dest = Path(out) if out is not None else run.path / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(h.document(f"entangle report: {model_name(run)}"), encoding="utf-8")
    return dest


# ----------------------------------------------------------------------------------------------------------
# comparison of two runs
# ----------------------------------------------------------------------------------------------------------

FIGURES.update({
    "compare_probe_accuracy": (
        "Probe accuracy by layer, both runs",
        "CV accuracy of each kind's probe by layer (primary probe method), run A solid, run B dashed, with 95% CI "
        "bands. Layers are the runs' own numbering (0 = embedding output).",
    ),
    "compare_ei": (
        "Entanglement of the two runs",
        "EI of every off-diagonal cell of each run's judgement readout and the logprob readout, with 95% CIs.",
    ),
})


def _fig_compare_probes(a: Run, b: Run) -> go.Figure | str:
    if a.table("probes.csv") is None and b.table("probes.csv") is None:
        return "neither run has probes.csv"
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, subplot_titles=list(KINDS), horizontal_spacing=0.04)
    for run, dash, tag in ((a, "solid", "A"), (b, "dash", "B")):
        df = run.table("probes.csv")
        if df is None:
            continue
        for j, k in enumerate(KINDS, 1):
            s = df[df["kind"] == k]
            meth = _get(run.metrics, "probe", k, "method")
            if "method" in s.columns and len(s):
                s = s[s["method"] == (meth if meth in set(s["method"]) else s["method"].iloc[0])]
            s = s.sort_values("layer")
            if s.empty:
                continue
            color = COLORS[k]
            if {"acc_ci_low", "acc_ci_high"} <= set(s.columns):
                fig.add_trace(_band(s["layer"], s["acc_ci_low"], s["acc_ci_high"], color, f"{tag} CI", f"{tag}{k}"),
                              row=1, col=j)
            fig.add_trace(go.Scatter(x=s["layer"], y=s["accuracy"], mode="lines", name=f"{tag}: {run.label} · {k}",
                                     legendgroup=f"{tag}{k}", line=dict(color=color, dash=dash)), row=1, col=j)
            fig.update_xaxes(title_text="layer", row=1, col=j)
    fig.update_yaxes(title_text="CV accuracy", row=1, col=1)
    fig.update_layout(height=440, legend=dict(orientation="h", y=-0.25))
    return fig


def _fig_compare_ei(a: Run, b: Run) -> go.Figure | str:
    fig = go.Figure()
    any_rows = False
    for run, tag, sym, off in ((a, "A", "circle", -0.15), (b, "B", "square", 0.15)):
        cells = _ei_cells(run)
        ro = judgement_readout(run.metrics)
        labels, y, lo, hi = [], [], [], []
        for r, name in ((ro, "judgement"), ("logprob", "logprob")):
            for c, d in (cells.get(r) or {}).items():
                f, _, k = c.partition("_to_")
                if f == k or _num(d.get("ei")) is None:
                    continue
                labels.append(f"{name}: {_cell_label(c)}")
                y.append(_num(d.get("ei")))
                lo.append(_num(d.get("ci_low")) if _num(d.get("ci_low")) is not None else _num(d.get("ei")))
                hi.append(_num(d.get("ci_high")) if _num(d.get("ci_high")) is not None else _num(d.get("ei")))
        if not labels:
            continue
        any_rows = True
        fig.add_trace(go.Scatter(x=y, y=labels, mode="markers", name=f"{tag}: {run.label}",
                                 marker=dict(symbol=sym, size=9), error_x=_err(y, lo, hi)))
    if not any_rows:
        return "neither run has EI cells"
    fig.add_vline(x=0, line=dict(color="#999", dash="dot"))
    fig.update_layout(height=480, xaxis_title="EI", yaxis=dict(autorange="reversed"), scattermode="group")
    return fig


def _compare_rows(a: Run, b: Run) -> list[list[str]]:
    rows: list[list[str]] = []

    def add(label: str, fn: Callable[[Run], str]) -> None:
        rows.append([label, fn(a), fn(b)])

    add("model", model_name)
    add("weights hash", lambda r: str(_get(r.config, "model_info", "weights_hash", default="n/a"))[:16])
    add("judgement readout", lambda r: judgement_readout(r.metrics))
    add("human norm", lambda r: str(_get(r.metrics, "entanglement", "human_norm", "source", default="n/a")))
    add("stimuli sha256", lambda r: str(_get(r.config, "stimuli", "sha256", default="n/a"))[:16])
    for k in KINDS:
        def probe(r: Run, k: str = k) -> str:
            d = _get(r.metrics, "probe", k)
            if not isinstance(d, Mapping):
                return "n/a"
            ci = d.get("ci") or [None, None]
            return (f"{_f(d.get('cv_accuracy'), 3)} [{_f(ci[0], 3)}, {_f(ci[1], 3)}] at layer "
                    f"{d.get('best_layer', '?')}")
        add(f"probe accuracy: {k}", probe)
    for cell in MORAL_CELLS:
        def ei(r: Run, cell: str = cell) -> str:
            d = _get(r.metrics, "entanglement", "behavioural", judgement_readout(r.metrics), cell)
            if not isinstance(d, Mapping):
                return "n/a"
            return f"{_f(d.get('ei'))} [{_f(d.get('ci_low'))}, {_f(d.get('ci_high'))}]"

        def ex(r: Run, cell: str = cell) -> str:
            d = _get(r.metrics, "entanglement", "behavioural", judgement_readout(r.metrics), cell)
            if not isinstance(d, Mapping):
                return "n/a"
            return (f"{_f(d.get('excess'), sign=True)} [{_f(d.get('excess_ci_low'), sign=True)}, "
                    f"{_f(d.get('excess_ci_high'), sign=True)}]")
        add(f"EI {_cell_label(cell)} (judgement)", ei)
        add(f"excess {_cell_label(cell)}", ex)

    def lp(r: Run) -> str:
        d = _get(r.metrics, "entanglement", "behavioural", "logprob", "moral_to_grammatical")
        return f"{_f(d.get('ei'))} [{_f(d.get('ci_low'))}, {_f(d.get('ci_high'))}]" if isinstance(d, Mapping) else "n/a"
    add("EI moral→grammatical (logprob)", lp)

    def prim(r: Run) -> Mapping[str, Any]:
        p = _get(r.metrics, "ablation", "primary")
        d = _get(r.metrics, "ablation", p or "")
        return d if isinstance(d, Mapping) else {}
    add("primary ablation", lambda r: str(_get(r.metrics, "ablation", "primary", default="n/a")))
    add("repair fraction", lambda r: f"{_pct(prim(r).get('repair_fraction'))} [{_pct(prim(r).get('ci_low'))}, "
                                     f"{_pct(prim(r).get('ci_high'))}]")
    add("random-direction p", lambda r: _p(prim(r).get("random_p_value")))
    add("random repair mean ± SD",
        lambda r: f"{_pct(_get(r.metrics, 'ablation', 'random', 'repair_fraction_mean'))} ± "
                  f"{_pct(_get(r.metrics, 'ablation', 'random', 'repair_fraction_sd'))}")
    add("selectivity m / g / e", lambda r: " / ".join(_f((prim(r).get("selectivity") or {}).get(k))
                                                       for k in ("moral", "grammatical", "economic")))
    add("loss Δ neutral text (nats)", lambda r: _f(prim(r).get("loss_delta"), 3, sign=True))
    for key in ("entanglement", "repair", "cost"):
        add(f"verdict: {key}", lambda r, key=key: verdicts(r.metrics)[key]["answer"])
    return rows


def compare_runs(run_a: str | Path, run_b: str | Path, out: str | Path) -> Path:
    """Side-by-side HTML of two runs: key metrics, verdicts, overlaid probe accuracy and EI figures."""
    a, b = load_run(run_a), load_run(run_b)
    h = _Html()
    h.add(f"<header><h1>entangle: {_e(a.label)} vs {_e(b.label)}</h1>"
          f'<p class="meta">A = <code>{_e(a.path)}</code> · B = <code>{_e(b.path)}</code></p></header>')
    h.add('<h2 id="key-metrics">Key metrics</h2>')
    rows = _compare_rows(a, b)
    h.add('<table id="compare-table"><thead><tr><th>measure</th><th>A</th><th>B</th></tr></thead><tbody>'
          + "".join(f"<tr><td>{_e(r[0])}</td><td class=\"num\">{_e(r[1])}</td><td class=\"num\">{_e(r[2])}</td></tr>"
                    for r in rows) + "</tbody></table>")
    h.add('<h2 id="verdicts">Verdicts</h2>')
    for tag, run in (("A", a), ("B", b)):
        h.add(f"<h3>{tag}: {_e(run.label)}</h3>" + _verdict_block(verdicts(run.metrics)))
    h.add('<h2 id="figures">Figures</h2>')
    for name, build in (("compare_probe_accuracy", _fig_compare_probes), ("compare_ei", _fig_compare_ei)):
        try:
            res = build(a, b)
        except Exception as exc:  # noqa: BLE001
            res = f"could not be drawn ({type(exc).__name__}: {exc})"
        if isinstance(res, go.Figure):
            res.update_layout(template=TEMPLATE, title=dict(text=FIGURES[name][0]), margin=dict(l=60, r=30, t=80, b=60))
            h.figure(name, res, None)
        else:
            h.figure(name, None, res)
    for tag, run in (("A", a), ("B", b)):
        if run.problems:
            h.add(f'<div class="note">{tag}: ' + _e("; ".join(run.problems)) + "</div>")
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(h.document(f"entangle comparison: {a.label} vs {b.label}"), encoding="utf-8")
    return dest
