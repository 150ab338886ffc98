"""The report's HTML: Jinja2 templates (autoescaped) in `templates/`, figure embedding, and the page itself.

Sections write fragments with the macros in `templates/macros.html.j2` (table, figure, note, verdict) or, from
Python, `figure`; the page inlines plotly.js once in its head, so every figure is embedded with
`include_plotlyjs=False` and the file opens offline.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from plotly.offline import get_plotlyjs

ENV = Environment(loader=PackageLoader("entangle.report", "templates"), autoescape=True, trim_blocks=True,
                  lstrip_blocks=True, undefined=StrictUndefined)
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def render(template: str, **context: Any) -> str:
    """Render one template of `templates/` (all text escaped unless marked safe)."""
    return ENV.get_template(template).render(**context)


def figure(name: str, title: str, caption: str, fig: go.Figure | str) -> Markup:
    """A numbered figure block `<section class="figure" id="fig-<name>">`, or a note saying why it is missing.

    `fig` is the figure, or the reason it could not be drawn. `name` must be unique on the page (new studies prefix
    it with their own name)."""
    block = ENV.get_template("macros.html.j2").module.figure
    if isinstance(fig, str):
        return Markup(block(name, title, caption, None, fig))
    if fig.layout.title.text == title:  # the block's heading already says it
        fig = go.Figure(fig).update_layout(title=None)
    div = Markup(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{name}", config=PLOT_CONFIG))
    return Markup(block(name, title, caption, div, None))


def page(template: str, title: str, *, plotly: bool, **context: Any) -> str:
    """A whole page from `template` (which extends base.html.j2), with plotly.js inlined once when `plotly`."""
    return render(template, title=title, plotlyjs=Markup(get_plotlyjs()) if plotly else None, **context)
