"""The run folder's report: one section per study, verdicts, figures, and a comparison of two runs.

    build_report(run_dir, out=None) -> Path      # run_dir/report.html by default (refuses a folder that does not
                                                 # validate, with RunFolderError, and writes nothing)
    compare_runs(run_a, run_b, out) -> Path      # side-by-side page of two runs
    figures(run_dir) -> dict[str, go.Figure]     # the entanglement study's figures by name (for notebooks)
    verdicts(run_dir_or_metrics) -> dict         # its four verdicts as data (answer, text, facts)
"""

from entangle.report.build import build_report
from entangle.report.compare import compare_runs
from entangle.report.figures import FIGURES, figures
from entangle.report.verdicts import verdicts

__all__ = ["FIGURES", "build_report", "compare_runs", "figures", "verdicts"]
