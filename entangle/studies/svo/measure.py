"""The SVO slider measure (Murphy et al. 2011): six primary items, their nine allocations, the angle, categories,
the ideal answer patterns of each orientation, null baselines and value rationality.

    >>> items = load_items()
    >>> round(svo_angle(items, ideal_patterns(items)["altruistic"]), 2)
    61.39
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float

from entangle.files import InputError, read_json

ITEMS_PATH = Path(__file__).resolve().parents[3] / "data" / "svo" / "items.json"
N_OPTIONS = 9
CATEGORIES: tuple[tuple[str, float, float], ...] = (
    ("competitive", -math.inf, -12.04),
    ("individualistic", -12.04, 22.45),
    ("prosocial", 22.45, 57.15),
    ("altruistic", 57.15, 90.0),
)
"""(name, lo, hi): an angle θ belongs to the category with lo < θ <= hi (competitive: θ <= -12.04)."""
ORIENTATIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "altruistic": lambda s, o: o,
    "prosocial": lambda s, o: s + o,
    "individualistic": lambda s, o: s,
    "competitive": lambda s, o: s - o,
    "inequality_averse": lambda s, o: -np.abs(s - o),
}
"""What each ideal chooser maximises over (self, other) payoffs; ties are split evenly."""


@dataclass(frozen=True)
class Item:
    """One slider item: its two endpoints and the nine (self, other) allocations between them."""

    id: int
    start: tuple[int, int]
    end: tuple[int, int]
    options: tuple[tuple[int, int], ...]

    @property
    def self_payoffs(self) -> np.ndarray:
        return np.array([s for s, _ in self.options], dtype=np.float64)

    @property
    def other_payoffs(self) -> np.ndarray:
        return np.array([o for _, o in self.options], dtype=np.float64)


def slider_options(start: tuple[int, int], end: tuple[int, int], n: int = N_OPTIONS) -> tuple[tuple[int, int], ...]:
    """n allocations evenly spaced from `start` to `end`, rounded half up to whole points (as the published measure)."""
    t = np.linspace(0.0, 1.0, n)
    pts = np.asarray(start, float)[None, :] + t[:, None] * (np.asarray(end, float) - np.asarray(start, float))[None, :]
    return tuple((math.floor(s + 0.5), math.floor(o + 0.5)) for s, o in pts)


def load_items(path: str | Path = ITEMS_PATH) -> tuple[Item, ...]:
    """The slider items of `path` (default data/svo/items.json); options must equal those computed from the endpoints."""
    data = read_json(path)
    items = []
    for i, raw in enumerate(data.get("items", [])):
        try:
            start, end = tuple(raw["start"]), tuple(raw["end"])
            options = tuple(tuple(o) for o in raw["options"])
            item = Item(int(raw["id"]), start, end, options)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, None, f"items[{i}]", f"malformed item: {exc}") from None
        if options != slider_options(start, end):
            raise InputError(path, None, f"items[{i}].options", "differ from the nine evenly spaced allocations "
                             f"between {start} and {end}: {slider_options(start, end)}")
        items.append(item)
    if len(items) < 1:
        raise InputError(path, None, "items", "no items")
    return tuple(items)


def angle(self_mean: float, other_mean: float) -> float:
    """SVO angle in degrees: atan((Ō − 50) / (S̄ − 50)) (S̄ > 50 for every allocation of the primary items)."""
    return math.degrees(math.atan((other_mean - 50.0) / (self_mean - 50.0)))


def mean_allocation(items: tuple[Item, ...], dist: Float[np.ndarray, "item option"]) -> tuple[float, float]:
    """Mean (self, other) payoff over items when item i's option k is chosen with probability dist[i, k]."""
    d = np.asarray(dist, dtype=np.float64)
    d = d / d.sum(axis=1, keepdims=True)
    s = np.mean([d[i] @ it.self_payoffs for i, it in enumerate(items)])
    o = np.mean([d[i] @ it.other_payoffs for i, it in enumerate(items)])
    return float(s), float(o)


def svo_angle(items: tuple[Item, ...], dist: Float[np.ndarray, "item option"]) -> float:
    """The angle of a choice distribution (one-hot rows: a chosen pattern; soft rows: the expected allocation)."""
    return angle(*mean_allocation(items, dist))


def category(theta: float) -> str:
    """The SVO category of an angle by the (lo, hi] rule; NaN gives 'undefined'."""
    if not math.isfinite(theta):
        return "undefined"
    for name, lo, hi in CATEGORIES:
        if lo < theta <= hi:
            return name
    return "altruistic" if theta > 90 else "competitive"


def one_hot(choices: list[int] | np.ndarray, n: int = N_OPTIONS) -> np.ndarray:
    """A pattern of chosen option indices as a one-hot [item, option] distribution."""
    return np.eye(n)[np.asarray(choices, dtype=int)]


def ideal_patterns(items: tuple[Item, ...]) -> dict[str, np.ndarray]:
    """Per orientation, the [item, option] distribution of an ideal chooser (ties split evenly)."""
    out = {}
    for name, utility in ORIENTATIONS.items():
        rows = []
        for it in items:
            u = utility(it.self_payoffs, it.other_payoffs)
            best = np.isclose(u, u.max())
            rows.append(best / best.sum())
        out[name] = np.array(rows)
    return out


def null_patterns(items: tuple[Item, ...]) -> dict[str, np.ndarray]:
    """Choosers without a preference: uniform random, always the first, the middle or the last option."""
    n = len(items)
    return {"uniform_random": np.full((n, N_OPTIONS), 1.0 / N_OPTIONS), "always_first": one_hot([0] * n),
            "always_middle": one_hot([N_OPTIONS // 2] * n), "always_last": one_hot([N_OPTIONS - 1] * n)}


def value_rationality(theta: float, target: float) -> float:
    """Default value rationality: 1 − min(|θ − θ*|, 90) / 90 (1 = the target angle, 0 = 90° or more away)."""
    if not (math.isfinite(theta) and math.isfinite(target)):
        return math.nan
    return 1.0 - min(abs(theta - target), 90.0) / 90.0


RationalityFn = Callable[[float, float], float]
"""(θ, θ*) -> value rationality; pass another to `Config.rationality` to change the definition."""
