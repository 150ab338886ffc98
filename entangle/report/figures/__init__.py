"""The entanglement study's figures by name, each drawn from the run folder alone (plotly, no model).

`FIGURES` gives each figure's title and caption in report order; `draw(run)` returns the figures the folder's files
allow and, for the others, why not (a missing table drops its figure, not the report).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go

from entangle.report.figures import behaviour, causal, representation
from entangle.report.figures.style import finish
from entangle.report.metrics import EntanglementRun
from entangle.runfolder import RunFolder

FIGURES: dict[str, tuple[str, str]] = {
    "level_means": (
        "Readout by factor level",
        "Mean readout at each level of each factor (other factors averaged out), 95% percentile interval from a "
        "bootstrap over frames, one panel per readout and kind of judgement (level_means.csv). A judgement should "
        "move only with its own factor (thick line); a panel whose readout does not order its own factor's levels "
        "is marked as not monotone.",
    ),
    "ei_matrix": (
        "Entanglement index matrix",
        "EI(f→K) = b_f / |b_K| (effect-coded full contrasts) for each factor f (rows) and kind of judgement K "
        "(columns), with 95% intervals from a bootstrap over frames. The diagonal is ±1 by definition; "
        "off-diagonal cells are leaks.",
    ),
    "excess": (
        "Model vs human norm",
        "Left: the model's EI (95% CI, bootstrap over frames) and the human norm for every off-diagonal cell. "
        "Right: excess entanglement EI_model − EI_human with its 95% CI; an interval that excludes 0 is "
        "entanglement beyond the norm.",
    ),
    "probe_accuracy": (
        "Probe accuracy by layer",
        "Frame-grouped cross-validated accuracy of the linear probe for each kind by layer (layer 0 = "
        "embedding output), 95% CI band (bootstrap over frames), and the shuffled-label baseline (grey, "
        "dashed). The star marks the best layer; other probe methods are dotted.",
    ),
    "cosine": (
        "Cosine between kind directions by layer",
        "cos(d_a, d_b) between the probe directions of the three kinds (a point value, no interval); move the "
        "slider to change layer.",
    ),
    "cross_decoding": (
        "Cross-decoding AUC by layer",
        "AUC of a kind's direction (rows) at separating the good and bad items of another kind's prompts "
        "(columns), with 95% CI (bootstrap over frames); 0.5 = no information. Move the slider to change layer.",
    ),
    "leakage": (
        "Representational leakage of moral value by layer",
        "L(m→K, ℓ): the projection difference onto d_K between moral-good and moral-bad items (K's own factor "
        "fixed), in units of the difference K's own factor produces, with 95% CI (bootstrap over frames). The "
        "dotted line marks the moral probe's best layer.",
    ),
    "candidate_screen": (
        "Candidate moral directions: first-order screen and exact ablation",
        "Left: first-order estimate of the share of the model's own moral effect (good − bad) each candidate's "
        "ablation keeps, by method, read position (solid: last token) and layer. Right: estimate against the "
        "exact ablation for the candidates confirmed exactly, with the exact value's 95% interval from a "
        "bootstrap over the selection frames; circles pass the collateral filters, crosses fail one, the "
        "outlined marker is the chosen direction. Lower is a stronger moral direction.",
    ),
    "effects_kept": (
        "Effects kept under the chosen ablation and the controls",
        "Each contrast (mean readout of the top level − the bottom level) after / before the ablation, on "
        "held-out frames: the chosen moral direction (positive control), difference-of-means directions of the "
        "economic and grammatical factors, and LEACE per position group. 95% intervals from a paired bootstrap "
        "over frames (the same draws before and after); intervals reaching past the axis are cut. 1 = untouched, "
        "0 = erased; the dotted red line is the positive control's threshold for the moral effect.",
    ),
    "amnesic": (
        "Amnesic check of the chosen direction",
        "With the chosen direction projected out at every layer, on the moral prompts of the held-out control "
        "frames (last token): left, the share of the good − bad mean activation difference removed at each layer "
        "(1 = none left); right, a fresh logistic probe's frame-grouped cross-validated accuracy at telling good "
        "from bad before (dotted) and after (solid) the ablation. 95% intervals from a bootstrap over frames; the "
        "dotted vertical line is the direction's layer. Moral value still decodable after the ablation means the "
        "judgement read one direction of a wider representation.",
    ),
    "null_distributions": (
        "Repair against matched nulls",
        "Repair fraction (mean over the valid cells) when each null direction is projected out on the null "
        "control subset: variance-matched random directions (drawn from N(0, Σ) of the activations) and "
        "difference-of-means directions with good/bad labels shuffled within frames. The shaded band is the "
        "central 95% of the null draws (the resampling unit is the direction); the red line is the chosen "
        "direction's repair on the same subset, with p = (1 + #{null ≥ observed}) / (1 + n) and its resolution "
        "1 / (1 + n).",
    ),
    "steering": (
        "Steering dose–response",
        "Mean change of each kind's readout when α·σ·d_moral is added at the chosen layer on morally neutral "
        "held-out items (α in units of the residual stream's scale σ), with 95% intervals from a bootstrap over "
        "frames; α = 0 is the unsteered baseline. A moral direction that is sufficient moves the moral readout "
        "monotonically; the other kinds' slopes per unit of moral change are the interventional EI.",
    ),
    "patching": (
        "Activation patching: where moral value enters",
        "Restored fraction of the good − bad readout difference when the good item's residual stream is patched "
        "into the bad item at one layer and position group (Σ Δ / Σ effect over minimal pairs); each cell's 95% "
        "interval from a bootstrap over frames is printed in the cell (or shown on hover when there are many "
        "layers). 1 = the patch carries the whole moral difference.",
    ),
}
"""name -> (title, caption), in the order of the report."""

BUILDERS: dict[str, Callable[[EntanglementRun], go.Figure | str]] = {
    "level_means": behaviour.level_means,
    "ei_matrix": behaviour.ei_matrix,
    "excess": behaviour.excess,
    "probe_accuracy": representation.probe_accuracy,
    "cosine": representation.cosine,
    "cross_decoding": representation.cross_decoding,
    "leakage": representation.leakage,
    "candidate_screen": causal.candidate_screen,
    "effects_kept": causal.effects_kept,
    "amnesic": causal.amnesic,
    "null_distributions": causal.null_distributions,
    "steering": causal.steering,
    "patching": causal.patching,
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
