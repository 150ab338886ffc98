"""What every report figure shares: kind colours, the plotly template, CI bands and error bars, layer sliders."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from entangle.schema import KINDS

COLORS: dict[str, str] = {"moral": "#c0392b", "grammatical": "#2471a3", "economic": "#1e8449"}
TEMPLATE = "plotly_white"
MARGIN = {"l": 60, "r": 30, "t": 80, "b": 60}


def finish(fig: go.Figure, title: str) -> go.Figure:
    """The report's look: template, margins, and `title` unless the figure set its own (e.g. a layer slider's)."""
    if not fig.layout.title.text:
        fig.update_layout(title={"text": title})
    return fig.update_layout(template=TEMPLATE, margin=MARGIN)


def rgba(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{a})"


def band(x: Any, lo: Any, hi: Any, color: str, name: str, group: str) -> go.Scatter:
    """A shaded interval from `lo` to `hi` along `x` (legend hidden)."""
    x = list(x)
    return go.Scatter(x=x + x[::-1], y=list(hi) + list(lo)[::-1], fill="toself", fillcolor=rgba(color, 0.15),
                      line={"width": 0}, hoverinfo="skip", name=name, legendgroup=group, showlegend=False)


def err(y: Any, lo: Any, hi: Any) -> dict[str, Any]:
    """Asymmetric error bars from an estimate and its interval (None counts as missing)."""
    y, lo, hi = (np.asarray(v, dtype=float) for v in (y, lo, hi))
    return {"type": "data", "symmetric": False, "array": np.maximum(hi - y, 0), "arrayminus": np.maximum(y - lo, 0),
            "thickness": 1.2, "width": 4}


def kinds_in(column: Any) -> list[str]:
    """The kinds in a column, in the canonical order, then any other values."""
    vals = [str(v) for v in pd.unique(pd.Series(column))]
    return [k for k in KINDS if k in vals] + [v for v in vals if v not in KINDS]


def heatmap_slider(frames: list[tuple[Any, np.ndarray, np.ndarray]], xlabels: list[str], ylabels: list[str], *,
                   zrange: tuple[float, float], colorbar: str, active: int, zmid: float | None = None) -> go.Figure:
    """One annotated heatmap per layer (`frames`: layer, values, texts) with a slider to move between them."""
    fig = go.Figure()
    for i, (layer, z, text) in enumerate(frames):
        fig.add_trace(go.Heatmap(z=z, x=xlabels, y=ylabels, text=text, texttemplate="%{text}", zmin=zrange[0],
                                 zmax=zrange[1], zmid=zmid, colorscale="RdBu_r", visible=i == active,
                                 colorbar={"title": {"text": colorbar}}, name=f"layer {layer}",
                                 hovertemplate="%{y} × %{x}<br>%{text}<extra>layer " + str(layer) + "</extra>"))
    steps = [{"method": "update", "label": str(layer),
              "args": [{"visible": [j == i for j in range(len(frames))]}, {"title.text": f"layer {layer}"}]}
             for i, (layer, _, _) in enumerate(frames)]
    fig.update_layout(sliders=[{"active": active, "steps": steps, "currentvalue": {"prefix": "layer "},
                                "pad": {"t": 40}}],
                      title={"text": f"layer {frames[active][0]}"}, height=480, yaxis={"autorange": "reversed"})
    return fig
