"""The entanglement study's figures by name, each drawn from the run folder alone (plotly, no model).

`FIGURES` gives each figure's title and caption in report order; `draw(run)` returns the figures the folder's files
allow and, for the others, why not (a missing table drops its figure, not the report).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go

from entangle.report.figures import ablation, behaviour, representation
from entangle.report.figures.style import finish
from entangle.report.metrics import EntanglementRun
from entangle.runfolder import RunFolder

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
"""name -> (title, caption), in the order of the report."""

BUILDERS: dict[str, Callable[[EntanglementRun], go.Figure | str]] = {
    "readouts": behaviour.readouts,
    "ei_matrix": behaviour.ei_matrix,
    "excess": behaviour.excess,
    "probe_accuracy": representation.probe_accuracy,
    "cosine": representation.cosine,
    "cross_decoding": representation.cross_decoding,
    "leakage": representation.leakage,
    "ablation_cells": ablation.ablation_cells,
    "repair_by_method": ablation.repair_by_method,
    "random_controls": ablation.random_controls,
    "layer_sweep": ablation.layer_sweep,
    "selectivity": ablation.selectivity,
}


def draw(run: EntanglementRun) -> tuple[dict[str, go.Figure], dict[str, str]]:
    """Every figure the run's files allow, and a note saying why for each one they do not."""
    figs, notes = {}, {}
    for name, build in BUILDERS.items():
        try:
            res = build(run)
        except Exception as exc:  # noqa: BLE001 - a malformed table drops its figure, not the report
            res = f"could not be drawn ({type(exc).__name__}: {exc})"
        if isinstance(res, go.Figure):
            figs[name] = finish(res, FIGURES[name][0])
        else:
            notes[name] = res
    return figs, notes


def figures(run_dir: str | Path | RunFolder) -> dict[str, go.Figure]:
    """Every figure the run folder's files allow, by name (see FIGURES for names, titles and captions)."""
    folder = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
    return draw(EntanglementRun.read(folder))[0]
