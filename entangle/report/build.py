"""`build_report`: the run folder's report.html, one section per study that ran, rebuilt from the folder alone.

The folder is validated before anything is written (metrics.json of a known schema version, config.json, every
table a section reads): a folder that does not validate raises `RunFolderError` and leaves any existing report
untouched. The page is written atomically and opens offline (plotly.js inlined once).
"""

from __future__ import annotations

from pathlib import Path

from entangle.files import InputError, atomic_write_text, dumps
from entangle.report import fmt, html
from entangle.report.metrics import RunInfo, Settings, model_name
from entangle.report.sections import render_all
from entangle.runfolder import Block, RunFolder


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of a run folder (default run_dir/report.html) and return its path."""
    folder = RunFolder(run_dir)
    metrics = folder.metrics()
    run = RunInfo.parse(Block.of(folder, metrics).block("run"))
    settings = Settings.read(folder)
    sections = render_all(folder, metrics)
    page = html.page(
        "report.html.j2", f"entangle report: {model_name(settings, run)}",
        plotly=any('class="plotly-graph-div"' in s.html for s in sections),
        run=run, wall=fmt.num(run.wall_seconds, 0), folder_name=folder.path.name, sections=sections,
        tables=folder.tables(), directions=folder.directions(),
        config=dumps(folder.config()) if folder.has("config.json") else None, log_tail=folder.log_tail())
    return write_page(Path(out) if out is not None else folder.path / "report.html", page)


def write_page(dest: Path, page: str) -> Path:
    """Write `page` atomically to `dest`; a path that cannot be written raises InputError."""
    try:
        return atomic_write_text(dest, page)
    except OSError as exc:
        raise InputError(dest, None, None, f"cannot write the report: {exc.strerror or exc}") from None
