"""The trade-offs study's settings, its steering grids, and the value texts it reads (data/values/<id>/pairs.jsonl).

A grid point is a method (how the directions were decorrelated) and weights ω, one per frontier value; the model is
steered with Σ ω_i α σ_l d_i at one layer. Grids are sets of ω, and a grid "contains" every evaluated point whose ω
lie in it, so they nest: convex (Σω = 1, ω >= 0) ⊂ box [0, 1] ⊂ extrapolated box [0, 1.5] ⊂ [0, 2].
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from entangle.analysis.decorrelate import METHODS
from entangle.files import InputError, jsonl_records, refuse

NAME = "tradeoffs"
ROOT = Path(__file__).resolve().parents[3]
VALUES_DIR = ROOT / "data" / "values"
NEUTRAL = ROOT / "data" / "neutral" / "neutral_texts.txt"
TOL = 1e-9


@dataclass(frozen=True)
class Config:
    """Settings of one trade-offs run (the default is the coarse grid; `Config.fine()` the finer one).

    values: the values whose subspaces, interference, directions and cross-effects are measured; frontier: the
    values whose weights ω span the steering grid (default: the first two); layer/alpha: where and how hard one unit
    of ω pushes (α in units of σ_l, the median norm of the layer's mean-pooled residual); box_levels/convex_step/
    extrapolate: the grid; extrapolate_all: extrapolate the decorrelated methods too (raw directions only otherwise);
    n_train/n_heldout: pairs per value for the directions and for the readouts (disjoint); n_neutral: neutral texts
    for the fluency cost; fluency_budget: the loss increase (nats/token) at which the hypervolume's fluency axis ends;
    k: subspace rank; hsic_lambda/hsic_sigma: the HSIC-penalised probes (MVA's weight 10 and σ = 1); gs_order:
    Gram–Schmidt's order (default `values`); moral_direction: a direction file (e.g. the entanglement study's) whose
    ablation at `layer` is plotted as the point ω_moral = 0 (default: the DoM moral direction when "moral" is a value);
    n_boot: resamples for the steering intervals; interference_boot/interference_every: resamples and layer stride
    for the interference tables (every 3rd residual layer and the steering layer by default)."""

    values: tuple[str, ...] = ("economic", "care", "moral")
    frontier: tuple[str, ...] | None = None
    layer: int = 10
    alpha: float = 0.25
    box_levels: tuple[float, ...] = (0.0, 1.0)
    convex_step: float = 0.5
    extrapolate: tuple[float, ...] = (1.5, 2.0)
    extrapolate_all: bool = False
    methods: tuple[str, ...] = METHODS
    n_train: int = 24
    n_heldout: int = 12
    n_neutral: int = 12
    fluency_budget: float = 0.5
    k: int = 3
    hsic_lambda: float = 10.0
    hsic_sigma: float = 1.0
    gs_order: tuple[str, ...] | None = None
    moral_direction: str | None = None
    n_boot: int = 200
    interference_boot: int = 100
    interference_every: int = 3
    values_dir: str = str(VALUES_DIR)
    neutral_path: str = str(NEUTRAL)

    @classmethod
    def fine(cls, **kw: object) -> Config:
        """The finer grid: box levels every 0.25, convex step 0.25, extrapolation for every method, 24 held-out
        pairs and 24 neutral texts, interference at every layer with 200 resamples (several times the default's
        model passes)."""
        base = {"box_levels": (0.0, 0.25, 0.5, 0.75, 1.0), "convex_step": 0.25, "extrapolate_all": True,
                "n_heldout": 24, "n_neutral": 24, "interference_every": 1, "interference_boot": 200}
        return cls(**{**base, **kw})

    @property
    def frontier_values(self) -> tuple[str, ...]:
        return tuple(self.frontier) if self.frontier else self.values[:2]

    def check(self) -> Config:
        """Refuse settings that cannot run (InputError naming the field); returns self."""
        bad = [m for m in self.methods if m not in METHODS]
        refuse(bool(bad) or "none" not in self.methods, "methods", f"choose from {', '.join(METHODS)} and keep 'none' "
               f"(the raw directions every comparison is against); got {', '.join(self.methods)}")
        refuse(len(set(self.values)) != len(self.values) or len(self.values) < 2, "values",
               "need at least two distinct values")
        refuse(not set(self.frontier_values) <= set(self.values) or not self.frontier_values, "frontier",
               f"frontier values must be among {', '.join(self.values)}")
        refuse(self.gs_order is not None and sorted(self.gs_order) != sorted(self.values), "gs_order",
               "must name each value once")
        refuse(any(lv < 0 for lv in self.box_levels) or 0.0 not in self.box_levels or 1.0 not in self.box_levels,
               "box_levels", "levels must be >= 0 and include 0 and 1")
        refuse(any(c <= 1 for c in self.extrapolate), "extrapolate", "extrapolation bounds C must be > 1")
        refuse(not 0 < self.convex_step <= 1 or abs(round(1 / self.convex_step) * self.convex_step - 1) > TOL,
               "convex_step", "must divide 1 (e.g. 0.5, 0.25)")
        refuse(self.interference_every < 1 or self.interference_boot < 0 or self.n_boot < 0,
               "interference_every/interference_boot/n_boot", "must be >= 1 / >= 0")
        refuse(min(self.n_train, self.n_heldout, self.n_neutral) < 2 or self.fluency_budget <= 0 or self.k < 1,
               "n_train/n_heldout/n_neutral/fluency_budget/k", "must be positive (at least 2 pairs and texts)")
        return self


def grids(cfg: Config) -> dict[str, float | None]:
    """Grid name -> its box bound (None: the convex simplex): convex, box, then box_<C> per extrapolation bound."""
    return {"convex": None, "box": 1.0, **{f"box_{c:g}": float(c) for c in sorted(cfg.extrapolate)}}


def in_grid(omega: np.ndarray, bound: float | None) -> bool:
    """Whether weights ω lie in a grid: the simplex Σω = 1 (bound None) or the box [0, bound]."""
    w = np.asarray(omega, dtype=np.float64)
    if (w < -TOL).any():
        return False
    return abs(w.sum() - 1.0) < 1e-6 if bound is None else bool((w <= bound + TOL).all())


def method_points(cfg: Config, method: str) -> list[tuple[float, ...]]:
    """The ω evaluated for one method: the convex grid, the box levels' product and, for the raw directions (or all
    with `extrapolate_all`), the extrapolation bounds added to the levels; the unsteered ω = 0 is left out."""
    m = len(cfg.frontier_values)
    n = round(1 / cfg.convex_step)
    convex = {tuple(c * cfg.convex_step for c in combo) for combo in itertools.product(range(n + 1), repeat=m)
              if sum(combo) == n}
    levels = set(cfg.box_levels)
    if method == "none" or cfg.extrapolate_all:
        levels |= set(cfg.extrapolate)
    box = set(itertools.product(sorted(levels), repeat=m))
    pts = {tuple(round(x, 6) for x in p) for p in convex | box}
    pts.discard(tuple([0.0] * m))
    return sorted(pts, key=lambda p: (max(p), sum(p), p))


@dataclass(frozen=True)
class ValueTexts:
    """One value's contrast pairs split into training pairs (directions) and held-out pairs (readouts)."""

    id: str
    train_expressing: tuple[str, ...]
    train_rejecting: tuple[str, ...]
    heldout_expressing: tuple[str, ...]
    heldout_rejecting: tuple[str, ...]


def load_value_texts(value: str, n_train: int, n_heldout: int, root: str | Path = VALUES_DIR) -> ValueTexts:
    """The first `n_train` pairs of data/values/<value>/pairs.jsonl for training, the next `n_heldout` held out."""
    path = Path(root) / value / "pairs.jsonl"
    if not path.is_file():
        have = sorted(p.name for p in Path(root).iterdir() if (p / "pairs.jsonl").is_file()) if Path(root).is_dir() else []
        raise InputError(path, None, "values", f"no such value {value!r}; available: {', '.join(have) or 'none'}")
    pairs = []
    for i, row in jsonl_records(path):
        for key in ("expressing", "rejecting"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise InputError(path, i, key, "missing or empty text")
        pairs.append((row["expressing"], row["rejecting"]))
    if len(pairs) < n_train + n_heldout:
        raise InputError(path, None, "n_train/n_heldout", f"{len(pairs)} pairs, fewer than {n_train} + {n_heldout}")
    tr, ho = pairs[:n_train], pairs[n_train:n_train + n_heldout]
    return ValueTexts(value, tuple(p[0] for p in tr), tuple(p[1] for p in tr), tuple(p[0] for p in ho),
                      tuple(p[1] for p in ho))


def load_neutral(n: int, path: str | Path = NEUTRAL) -> list[str]:
    """The first `n` non-empty lines of the neutral text file (the fluency cost's texts)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, None, None, "neutral text file not found")
    lines = [s.strip() for s in p.read_text(encoding="utf-8").splitlines() if s.strip()]
    if len(lines) < n:
        raise InputError(p, None, "n_neutral", f"{len(lines)} texts, fewer than {n}")
    return lines[:n]
