"""Per-layer linear probes for one kind of good: frame-grouped CV accuracy/AUC, a shuffle control, directions.

For each residual layer (0 = embedding output) a probe separates the kind's good (+1) from bad (−1) items;
neutral items (label 0) never enter training and are only used to check that they project between the two.
Cross-validation is grouped by frame (`entangle.stimuli.frame_folds`), intervals come from a frame bootstrap
of the out-of-fold predictions (no refitting), and the exported direction is fitted on all labelled items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from jaxtyping import Float, Int
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from entangle.analysis.entanglement import _records
from entangle.analysis.geometry import project
from entangle.analysis.stats import (
    boot_auc,
    draw_counts,
    frame_bootstrap_indices,
    frame_levels,
    percentile_ci,
)
from entangle.schema import GOOD_BAD, KINDS, RESAMPLING_UNIT
from entangle.stimuli import frame_folds

Method = Literal["logistic", "diff_means"]
LOGISTIC_C = 1.0
SHUFFLE_SCHEME = "labels permuted within each frame (item-wise inside frames), then the same frame-grouped CV"


def kind_labels(factors: pd.DataFrame, kind: str) -> Int[np.ndarray, " n"]:
    """+1 good / −1 bad / 0 neutral on the kind's own factor (moral→m, economic→e, grammatical→g)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {list(KINDS)}")
    v = factors[kind].to_numpy()
    good, bad = GOOD_BAD[kind]
    return np.where(v == good, 1, np.where(v == bad, -1, 0)).astype(int)


@dataclass
class ProbeResult:
    """Per-layer probe quality for one kind and method, plus the exported unit directions (positive = good)."""

    kind: str
    method: str
    layers: list[int]
    accuracy: np.ndarray
    acc_ci_low: np.ndarray
    acc_ci_high: np.ndarray
    auc: np.ndarray
    auc_ci_low: np.ndarray
    auc_ci_high: np.ndarray
    shuffled_accuracy: np.ndarray
    selectivity: np.ndarray
    directions: np.ndarray  # [n_layers_sel, d], unit rows, fitted on all labelled items
    thresholds: np.ndarray  # projection threshold separating good/bad on the exported direction
    good_mean: np.ndarray  # mean projection of good / bad / neutral items on the exported direction
    bad_mean: np.ndarray
    neutral_mean: np.ndarray
    neutral_between: np.ndarray  # bool; all False when there are no neutral items (n_neutral == 0)
    best_layer: int
    n_items: int  # labelled rows (good + bad)
    n_neutral: int
    n_frames: int
    n_splits: int
    n_boot: int
    n_shuffle: int
    seed: int
    shuffle_scheme: str = SHUFFLE_SCHEME
    resampling_unit: str = RESAMPLING_UNIT

    def direction(self, layer: int) -> np.ndarray:
        """The unit direction at residual layer `layer`."""
        return self.directions[self.layers.index(layer)]

    def table(self) -> pd.DataFrame:
        """One row per layer."""
        has_neutral = self.n_neutral > 0
        return pd.DataFrame(
            {
                "layer": self.layers,
                "kind": self.kind,
                "method": self.method,
                "accuracy": self.accuracy,
                "acc_ci_low": self.acc_ci_low,
                "acc_ci_high": self.acc_ci_high,
                "auc": self.auc,
                "auc_ci_low": self.auc_ci_low,
                "auc_ci_high": self.auc_ci_high,
                "shuffled_accuracy": self.shuffled_accuracy,
                "selectivity": self.selectivity,
                "good_mean": self.good_mean,
                "bad_mean": self.bad_mean,
                "neutral_mean": self.neutral_mean,
                "neutral_between": (
                    pd.array(self.neutral_between, dtype="boolean")
                    if has_neutral
                    else pd.array([pd.NA] * len(self.layers), dtype="boolean")
                ),
                "best": [layer == self.best_layer for layer in self.layers],
            }
        )

    def to_dict(self, *, include_directions: bool = True) -> dict[str, Any]:
        """JSON-serialisable result (directions as nested lists unless excluded)."""
        rows = _records(self.table())
        for r in rows:
            if r["neutral_between"] is pd.NA:
                r["neutral_between"] = None
            elif r["neutral_between"] is not None:
                r["neutral_between"] = bool(r["neutral_between"])
        out: dict[str, Any] = {
            "kind": self.kind,
            "method": self.method,
            "layers": [int(x) for x in self.layers],
            "best_layer": int(self.best_layer),
            "n_items": int(self.n_items),
            "n_neutral": int(self.n_neutral),
            "n_frames": int(self.n_frames),
            "n_splits": int(self.n_splits),
            "n_boot": int(self.n_boot),
            "n_shuffle": int(self.n_shuffle),
            "seed": int(self.seed),
            "shuffle_scheme": self.shuffle_scheme,
            "resampling_unit": self.resampling_unit,
            "cv": "frame-grouped k-fold (entangle.stimuli.frame_folds)",
            "per_layer": rows,
        }
        if include_directions:
            out["directions"] = np.asarray(self.directions, dtype=np.float64).tolist()
            out["thresholds"] = [float(t) for t in self.thresholds]
        return out


# ----------------------------------------------------------------------------------------------------------
# fitting: one training routine and one scoring routine per method (tests instrument these two)
# ----------------------------------------------------------------------------------------------------------


def _train(x: np.ndarray, y: np.ndarray, method: str) -> Any:
    """Fit a good(+1)/bad(−1) classifier on training rows only."""
    if method == "logistic":
        model = Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression(C=LOGISTIC_C, max_iter=2000, tol=1e-4))]
        )
        return model.fit(x, y > 0)
    mu_g, mu_b = x[y > 0].mean(axis=0), x[y < 0].mean(axis=0)
    d = mu_g - mu_b
    d = d / (np.linalg.norm(d) or 1.0)
    return d, float((mu_g + mu_b) @ d / 2.0)  # threshold at the midpoint of the training class means


def _score(model: Any, x: np.ndarray, method: str) -> np.ndarray:
    """Signed score: > 0 predicts good."""
    if method == "logistic":
        return model.decision_function(x)
    d, thr = model
    return x @ d - thr


def _direction(model: Any, method: str) -> np.ndarray:
    """The model's direction in raw activation space, unit norm."""
    if method == "logistic":
        scale = model.named_steps["scale"].scale_
        w = model.named_steps["clf"].coef_[0] / scale
    else:
        w = model[0]
    n = np.linalg.norm(w)
    return w / n if n > 0 else w


def _permute_within_frames(y: np.ndarray, frame_codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels permuted among the rows of each frame: kills the label–activation link, keeps each frame's balance."""
    order = np.lexsort((rng.random(len(y)), frame_codes))  # rows grouped by frame, random order inside
    by_frame = np.argsort(frame_codes, kind="stable")
    out = np.empty_like(y)
    out[by_frame] = y[order]
    return out


def _oof_scores(
    x: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]], method: str
) -> np.ndarray:
    """Out-of-fold signed scores from frame-grouped folds."""
    s = np.empty(len(y))
    for tr, te in folds:
        s[te] = _score(_train(x[tr], y[tr], method), x[te], method)
    return s


def fit_probes(
    acts: Float[np.ndarray, "n layer d"],
    labels: Int[np.ndarray, " n"],
    groups: Sequence[Any] | np.ndarray,
    kind: str,
    *,
    method: Method = "logistic",
    n_splits: int = 5,
    n_boot: int = 1000,
    n_shuffle: int = 1,
    seed: int = 0,
    layers: Sequence[int] | None = None,
) -> ProbeResult:
    """Per-layer probes for `kind`: frame-grouped CV accuracy/AUC with frame-bootstrap CIs, shuffle control, directions.

    The shuffle control permutes labels within each frame (so each frame keeps its good/bad balance) and
    reruns the same grouped CV; its accuracy is averaged over `n_shuffle` permutations.
    """
    if method not in ("logistic", "diff_means"):
        raise ValueError(f"method must be 'logistic' or 'diff_means', got {method!r}")
    labels = np.asarray(labels).astype(int)
    groups = np.asarray(groups)
    if acts.ndim != 3 or acts.shape[0] != len(labels) or len(groups) != len(labels):
        raise ValueError(f"acts {acts.shape}, labels {labels.shape}, groups {groups.shape} do not line up")
    if not set(np.unique(labels)) <= {-1, 0, 1}:
        raise ValueError("labels must be +1 (good), -1 (bad) or 0 (neutral)")
    layers = list(range(acts.shape[1])) if layers is None else [int(x) for x in layers]
    lab = np.flatnonzero(labels != 0)
    neu = np.flatnonzero(labels == 0)
    y = labels[lab]
    if (y > 0).sum() == 0 or (y < 0).sum() == 0:
        raise ValueError(f"{kind}: need both good and bad items to fit a probe")
    g = groups[lab]
    levels = frame_levels(g)
    fcodes = np.searchsorted(levels, g)
    folds = frame_folds(g, n_splits=n_splits, seed=seed)
    counts = draw_counts(frame_bootstrap_indices(levels, n_boot, seed), len(levels))
    rng = np.random.default_rng([seed, 2])
    shuffled = [_permute_within_frames(y, fcodes, rng) for _ in range(n_shuffle)]

    nl = len(layers)
    res = {
        k: np.full(nl, np.nan)
        for k in ("accuracy", "acc_ci_low", "acc_ci_high", "auc", "auc_ci_low", "auc_ci_high", "shuffled_accuracy",
                  "thresholds", "good_mean", "bad_mean", "neutral_mean")
    }
    between = np.zeros(nl, dtype=bool)
    dirs = np.zeros((nl, acts.shape[2]))
    n_per_frame = np.bincount(fcodes, minlength=len(levels)).astype(np.float64)
    denom = counts @ n_per_frame
    # one BLAS thread: the solves are small, and threaded BLAS on them is ~10x slower on a shared machine
    with threadpool_limits(limits=1, user_api="blas"):
        for li, layer in enumerate(layers):
            x_all = np.asarray(acts[:, layer, :], dtype=np.float64)  # one layer at a time (memmap-friendly)
            x = x_all[lab]
            s = _oof_scores(x, y, folds, method)
            correct = ((s > 0) == (y > 0)).astype(np.float64)
            res["accuracy"][li] = correct.mean()
            acc_b = (counts @ np.bincount(fcodes, weights=correct, minlength=len(levels))) / denom
            res["acc_ci_low"][li], res["acc_ci_high"][li] = percentile_ci(acc_b)
            res["auc"][li] = boot_auc(s, y, fcodes, np.ones((1, len(levels))))[0]
            res["auc_ci_low"][li], res["auc_ci_high"][li] = percentile_ci(boot_auc(s, y, fcodes, counts))
            res["shuffled_accuracy"][li] = np.mean([np.mean((_oof_scores(x, ys, folds, method) > 0) == (ys > 0)) for ys in shuffled])
            # exported direction: fitted on all labelled items, sign fixed so that good projects higher
            d = _direction(_train(x, y, method), method)
            p = x @ d
            mg, mb = p[y > 0].mean(), p[y < 0].mean()
            if mg < mb:
                d, p, mg, mb = -d, -p, -mg, -mb
            dirs[li] = d
            res["good_mean"][li], res["bad_mean"][li], res["thresholds"][li] = mg, mb, (mg + mb) / 2.0
            if len(neu):
                mn = float((x_all[neu] @ d).mean())
                res["neutral_mean"][li] = mn
                between[li] = mb < mn < mg

    acc = res["accuracy"]
    best = layers[int(np.argmax(acc))]  # CV accuracy only; np.argmax takes the earliest on ties
    return ProbeResult(
        kind=kind,
        method=method,
        layers=layers,
        **res,
        selectivity=acc - res["shuffled_accuracy"],
        directions=dirs.astype(np.float32),
        neutral_between=between,
        best_layer=best,
        n_items=len(lab),
        n_neutral=len(neu),
        n_frames=len(levels),
        n_splits=len(folds),
        n_boot=n_boot,
        n_shuffle=n_shuffle,
        seed=seed,
    )


def cross_decoding(
    directions: Mapping[str, Float[np.ndarray, "n_sel d"]],
    acts: Mapping[str, Float[np.ndarray, "n layer d"]],
    labels: Mapping[str, Int[np.ndarray, " n"]],
    groups: Mapping[str, Sequence[Any] | np.ndarray],
    *,
    layers: Sequence[int] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """AUC of projecting kind B's prompts onto kind A's direction for B's own good/bad labels (frame-bootstrap CI).

    Does the moral direction read out grammaticality? AUC 0.5 = no; above 0.5 = aligned with B's good; below
    0.5 = anti-aligned. `layers` names the residual layer of each direction row (default 0..L-1).
    """
    rows = []
    for b, acts_b in acts.items():
        lab_b = np.asarray(labels[b]).astype(int)
        keep = np.flatnonzero(lab_b != 0)
        y = lab_b[keep]
        g = np.asarray(groups[b])[keep]
        levels = frame_levels(g)
        fcodes = np.searchsorted(levels, g)
        counts = draw_counts(frame_bootstrap_indices(levels, n_boot, seed), len(levels))
        ones = np.ones((1, len(levels)))
        for a, dirs_a in directions.items():
            da = np.asarray(dirs_a, dtype=np.float64)
            lay = list(range(da.shape[0])) if layers is None else list(layers)
            if len(lay) != da.shape[0]:
                raise ValueError(f"{len(lay)} layer numbers for {da.shape[0]} rows of the {a} direction")
            proj = project(acts_b, da, lay, rows=keep)
            for li, layer in enumerate(lay):
                lo, hi = percentile_ci(boot_auc(proj[:, li], y, fcodes, counts))
                rows.append(
                    {
                        "layer": int(layer),
                        "direction_kind": a,
                        "prompt_kind": b,
                        "auc": float(boot_auc(proj[:, li], y, fcodes, ones)[0]),
                        "ci_low": float(lo),
                        "ci_high": float(hi),
                        "n_items": len(keep),
                        "n_frames": len(levels),
                        "resampling_unit": RESAMPLING_UNIT,
                    }
                )
    return pd.DataFrame(rows)
