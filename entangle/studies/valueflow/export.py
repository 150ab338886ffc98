"""Export the steering vectors: one file per value (safetensors + JSON sidecar, and a llama.cpp control vector),
with the α calibration in the metadata: the vector added is α·σ_l·d, and the intensity it bought per unit α."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from entangle.directions import Direction, direction_meta, save_direction
from entangle.models import LoadedModel
from entangle.runfolder import RunFolder
from entangle.studies.valueflow.directions import ValueDirection


def export_directions(folder: RunFolder, model: LoadedModel, dirs: Mapping[str, ValueDirection], sigma: np.ndarray,
                      dose: pd.DataFrame, alphas: Sequence[float]) -> list[Path]:
    """Write directions/valueflow_<value>.{safetensors,gguf}; returns the files written."""
    written: list[Path] = []
    for v, d in dirs.items():
        sel = d.selection.set_index("layer").loc[d.layer]
        part = dose[(dose.value == v) & (dose.arm == "activation") & (dose.readout == f"I_probe_{v}")]
        slope = float(np.polyfit(part.x, part["mean"], 1)[0]) if len(part) >= 2 else None
        calib = {"vector": "alpha * sigma * unit direction, added at the residual layer's hook (all positions)",
                 "sigma": float(sigma[d.layer]), "alpha_grid": [float(a) for a in alphas],
                 "intensity_per_alpha": slope, "intensity_readout": "anchor-based probe judge, [-10, 10]",
                 "llamacpp_scale_per_alpha": float(sigma[d.layer])}
        meta = direction_meta(model.info, kind=v, method="diff_of_means_causal_layer", layers=[d.layer],
                              position="mean", stimuli_sha256=d.pairs_sha256,
                              cv_metrics={"causal_effect": [float(sel.effect)], "heldout_auc": [float(sel.heldout_auc)]},
                              extra={"alpha_calibration": calib, "study": "valueflow"})
        direction = Direction(d.unit[None, :], [d.layer], v, "diff_of_means_causal_layer", meta)
        for suffix in (".safetensors", ".gguf"):
            written += save_direction(direction, folder.path / "directions" / f"valueflow_{v}{suffix}")
    return written
