"""The report's sections, one per study, in the order the page shows them.

Protocol: a section is a module `entangle.report.sections.<name>` listed in `SECTIONS` that exposes

    TITLE: str                                          the section's heading (and its line in the contents)
    present(metrics: dict) -> bool                      did this study run in this folder (its metrics.json keys)
    render(folder: RunFolder, metrics: dict) -> str     an HTML fragment, rebuilt from the folder alone

`metrics` is the folder's validated metrics.json (`RunFolder.metrics()`, schema version checked). `render` reads
only the folder (`folder.table("<study>/<table>")`, `folder.config()`), escapes all text (Jinja2 autoescape or
`html.escape`), and embeds figures as `fig.to_html(full_html=False, include_plotlyjs=False)`: the page inlines
plotly.js once. A block of metrics.json that does not validate raises `RunFolderError` (the report refuses and
writes nothing); a block that is absent renders as "not measured". A listed module that does not exist yet, or
whose `present()` is False, is skipped.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Protocol

from entangle.runfolder import RunFolder, RunFolderError

SECTIONS: tuple[str, ...] = ("entanglement", "norms", "valueflow", "svo", "tradeoffs")
"""Section modules in page order; each is optional."""


class Section(Protocol):
    """What a section module provides (see the module docstring)."""

    TITLE: str

    def present(self, metrics: dict[str, Any]) -> bool: ...

    def render(self, folder: RunFolder, metrics: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class Rendered:
    """One section as it appears on the page: its module name (the anchor), heading and HTML fragment."""

    name: str
    title: str
    html: str


def available(names: tuple[str, ...] = SECTIONS) -> list[tuple[str, Section]]:
    """The listed section modules that exist, imported by name, in order (a missing module is skipped)."""
    found = []
    for name in names:
        module = f"{__name__}.{name}"
        if importlib.util.find_spec(module) is not None:
            found.append((name, importlib.import_module(module)))
    return found


def render_all(folder: RunFolder, metrics: dict[str, Any], names: tuple[str, ...] = SECTIONS) -> list[Rendered]:
    """Every available section whose study ran in this folder, rendered in order.

    A folder that does not validate raises `RunFolderError`; any other failure of one section leaves a note in its
    place, so one study's bug does not cost the others' report."""
    out = []
    for name, section in available(names):
        if not section.present(metrics):
            continue
        try:
            fragment = section.render(folder, metrics)
        except RunFolderError:
            raise
        except Exception as exc:  # noqa: BLE001 - independent sections: one failure must not cost the others
            fragment = (f'<div class="note" id="failed-{html.escape(name)}">This section could not be rendered '
                        f"({html.escape(type(exc).__name__)}: {html.escape(str(exc))}).</div>")
        out.append(Rendered(name, section.TITLE, fragment))
    return out
