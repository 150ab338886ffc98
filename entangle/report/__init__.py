"""The run folder's report: verdicts, figures and a self-contained HTML page, rebuilt from the folder alone."""

from entangle.report.build import (
    FIGURES,
    build_report,
    compare_runs,
    figures,
    load_run,
    verdicts,
)

__all__ = ["FIGURES", "build_report", "compare_runs", "figures", "load_run", "verdicts"]
