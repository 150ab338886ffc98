"""Per-frame contrasts of measured readouts: the model's own effects and the moral effect on the other kinds.

Every causal figure (effect kept after an ablation, interventional entanglement under steering) is a ratio of two
such contrasts, bootstrapped over frames with the same draws before and after, and reported with its raw numerator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from entangle.analysis.stats import draw_counts, frame_bootstrap_indices, percentile_ci

CONTRASTS: dict[str, tuple[str, str, str]] = {
    # name: (prompt kind, factor, readout column)
    "moral": ("moral", "moral", "readout"),
    "economic": ("economic", "economic", "readout"),
    "grammatical": ("grammatical", "grammatical", "readout"),
    "moral_to_economic": ("economic", "moral", "readout"),
    "moral_to_grammatical": ("grammatical", "moral", "readout"),
}
LOGPROB_VIOLATION = "grammatical_logprob"  # well-formed − violated sentence log-prob (positive when grammar is read)


def frame_contrasts(df: pd.DataFrame) -> pd.DataFrame:
    """One row per frame, one column per contrast: mean(top level) − mean(bottom level) of the readout."""
    out: dict[str, pd.Series] = {}
    for name, (kind, factor, col) in CONTRASTS.items():
        sub = df[df["kind"] == kind]
        if sub.empty:
            continue
        hi, lo = sub[factor].max(), sub[factor].min()
        g = sub.groupby(["frame", factor])[col].mean().unstack(factor)
        if hi in g and lo in g and hi != lo:
            out[name] = g[hi] - g[lo]
    lp = df.dropna(subset=["sentence_logprob"]).groupby(["frame", "grammatical"])["sentence_logprob"].mean()
    lp = lp.unstack("grammatical")
    if 0 in lp and 1 in lp:
        out[LOGPROB_VIOLATION] = lp[1] - lp[0]
    return pd.DataFrame(out)


@dataclass(frozen=True)
class Kept:
    """after / before of one contrast, with its frame-bootstrap interval and both raw contrasts."""

    name: str
    kept: float
    ci_low: float
    ci_high: float
    before: float
    after: float
    n_frames: int

    def to_dict(self) -> dict[str, float | int | str]:
        return {"kept": self.kept, "ci_low": self.ci_low, "ci_high": self.ci_high, "before": self.before,
                "after": self.after, "n_frames": self.n_frames}


def kept(before: pd.DataFrame, after: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Kept]:
    """Share of each contrast kept after an intervention: mean over frames after / before, paired frame bootstrap."""
    b, a = frame_contrasts(before), frame_contrasts(after)
    frames = b.index.intersection(a.index)
    b, a = b.loc[frames], a.loc[frames]
    counts = draw_counts(frame_bootstrap_indices(np.arange(len(frames)), n_boot, seed), len(frames))
    out = {}
    for name in b.columns.intersection(a.columns):
        vb, va = b[name].to_numpy(dtype=float), a[name].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = (counts @ va) / (counts @ vb)
        lo, hi = percentile_ci(draws)
        mb, ma = float(vb.mean()), float(va.mean())
        out[name] = Kept(name, ma / mb if mb else float("nan"), float(lo), float(hi), mb, ma, len(frames))
    return out
