"""Bootstrap of SVO angles: resample option orders within items (default), items, or both; the same draws serve
every condition, so differences between conditions are paired."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int

from entangle.studies.svo.choice import allocation_probs, prior_corrected
from entangle.studies.svo.measure import Item

UNITS = {"permutations": "option orders within items", "items": "items", "both": "items, then option orders"}


@dataclass(frozen=True)
class Draws:
    """Resample indices: which items [boot, item] and, per drawn item, which orders [boot, item, perm]."""

    items: Int[np.ndarray, "boot item"]
    perms: Int[np.ndarray, "boot item perm"]
    unit: str


def draw(n_item: int, n_perm: int, n_boot: int, seed: int = 0, unit: str = "permutations") -> Draws:
    """Seeded resample indices for `unit` in UNITS (an axis not resampled keeps every index once)."""
    if unit not in UNITS:
        raise ValueError(f"resampling unit must be one of {sorted(UNITS)}, got {unit!r}")
    rng = np.random.default_rng(seed)
    items = (rng.integers(0, n_item, (n_boot, n_item)) if unit in ("items", "both")
             else np.broadcast_to(np.arange(n_item), (n_boot, n_item)).copy())
    perms = (rng.integers(0, n_perm, (n_boot, n_item, n_perm)) if unit in ("permutations", "both")
             else np.broadcast_to(np.arange(n_perm), (n_boot, n_item, n_perm)).copy())
    return Draws(items, perms, unit)


def angles(self_pay: Float[np.ndarray, "... item option"], other_pay: Float[np.ndarray, "... item option"],
           dist: Float[np.ndarray, "... item option"]) -> Float[np.ndarray, ...]:
    """Vectorised SVO angle (degrees) of choice distributions over the items of the last-but-one axis."""
    s = (dist * self_pay).sum(-1).mean(-1)
    o = (dist * other_pay).sum(-1).mean(-1)
    return np.degrees(np.arctan((o - 50.0) / (s - 50.0)))


def boot_angles(items: tuple[Item, ...], logprobs: Float[np.ndarray, "item perm letter"],
                perms: Int[np.ndarray, "perm letter"], d: Draws) -> dict[str, np.ndarray]:
    """Angles of every draw: 'biased' (order 0 of each drawn item), 'averaged' (mean over orders) and 'debiased'
    (letter prior removed)."""
    S = np.array([it.self_payoffs for it in items])[d.items]
    O = np.array([it.other_payoffs for it in items])[d.items]
    lp = logprobs[d.items[..., None], d.perms]  # [boot, item, perm, letter]
    pm = perms[d.perms]  # [boot, item, perm, letter]
    alloc = allocation_probs(logprobs, perms)[d.items]  # [boot, item, perm, option], orders not yet resampled
    return {"biased": angles(S, O, alloc[:, :, 0]),
            "averaged": angles(S, O, np.take_along_axis(alloc, d.perms[..., None], axis=2).mean(axis=2)),
            "debiased": angles(S, O, prior_corrected(lp, pm)[0])}
