"""The SVO study's answers to its questions, each with the paired bootstrap interval it rests on: does the HVAE
finding hold (prompted orientations drift to neutral/prosocial), do personas move the angle at all (the prompt arm's
positive control), and does steering along the prosocial and the moral direction move it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from entangle.analysis.stats import percentile_ci

KEYS = ("debiased", "averaged")
MIN_CONTROL_DEG = 5.0
"""The least altruistic − competitive persona difference (of the ideal choosers' 77.65°) that counts as a working
prompt induction; below it the HVAE question is untested."""


def _contrast(boots: Mapping[str, Mapping[str, np.ndarray]], table: pd.DataFrame, a: str, b: str) -> dict:
    """angle(a) − angle(b) per readout with its paired interval; `moves` when the interval excludes 0."""
    pt = table.set_index("condition")
    out = {"conditions": [a, b]}
    for key in KEYS:
        if key not in boots[a]:
            continue
        lo, hi = percentile_ci(boots[a][key] - boots[b][key])
        est = float(pt.loc[a, f"angle_{key}"] - pt.loc[b, f"angle_{key}"])
        out[key] = {"estimate": est, "ci_low": float(lo), "ci_high": float(hi), "moves": bool(lo > 0 or hi < 0)}
    return out


def _contrasts(boots: Mapping[str, Mapping[str, np.ndarray]], table: pd.DataFrame,
               pairs: Mapping[str, tuple[str, str]]) -> dict:
    """`_contrast` of each named (a, b) pair of conditions that the table holds both of."""
    names = set(table["condition"])
    return {k: _contrast(boots, table, a, b) for k, (a, b) in pairs.items() if {a, b} <= names}


def findings(table: pd.DataFrame, boots: Mapping[str, Mapping[str, np.ndarray]], alphas: Sequence[float],
             uniform: float) -> dict:
    """hvae_drift (with the conditions whose interval holds the uniform chooser's angle `uniform`: no preference
    told apart from none), persona_control per form, steering per direction (angle at the largest α − smallest)."""
    out: dict = {}
    control = _contrasts(boots, table, {form: (f"{form}:altruistic", f"{form}:competitive")
                                        for form in ("one_step", "two_step")})
    if control:
        out["persona_control"] = control
    prompt = table[table["arm"].str.startswith("prompt")]
    if len(prompt):
        cats = dict(zip(prompt["condition"], prompt["category_debiased"], strict=True))
        extreme = sorted(c for c, k in cats.items() if k in ("altruistic", "competitive"))
        flat = sorted(r.condition for r in prompt.itertuples() if r.ci_low_debiased <= uniform <= r.ci_high_debiased)
        controlled = any(c["debiased"]["ci_low"] > 0 and c["debiased"]["estimate"] >= MIN_CONTROL_DEG
                         for c in control.values())
        if len(flat) == len(prompt) or (control and not controlled):
            verdict = "untested"
        else:
            verdict = "does not hold" if extreme else "holds"
        out["hvae_drift"] = {
            "holds": not extreme, "verdict": verdict, "extreme_conditions": extreme, "categories": cats,
            "min_angle": float(prompt["angle_debiased"].min()), "max_angle": float(prompt["angle_debiased"].max()),
            "uniform_angle": uniform, "indistinguishable_from_uniform": flat,
            "rule": "holds: no persona condition's debiased angle is altruistic (> 57.15) or competitive (<= -12.04); "
                    "the verdict is 'untested' where every persona angle's interval holds the uniform chooser's "
                    f"angle (no preference at all) or no altruistic persona sits >= {MIN_CONTROL_DEG}° above the "
                    "competitive one (interval above 0)"}
    if len(alphas) >= 2:
        steering = _contrasts(boots, table, {name: (f"steer:{name}:{max(alphas):+g}", f"steer:{name}:{min(alphas):+g}")
                                             for name in ("prosocial", "moral")})
        if steering:
            out["steering"] = steering
    return out
