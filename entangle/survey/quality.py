"""Data quality of a ratings file: exclusion rules (attention checks, speed, straight-lining) and reliability.

Rules (all configurable through `ExclusionRules`, defaults below, documented in docs/SURVEY.md):
- a participant who fails more than `max_failed_checks` attention checks is excluded entirely;
- a response faster than `min_rt_ms` is dropped; a participant with more than `max_fast_share` of their item
  responses that fast is excluded entirely;
- a participant who gives the same rating to all of at least `constant_min_items` items is excluded entirely.
Reliability per kind is Krippendorff's alpha (interval level) over raters × items, with a bootstrap interval over items.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import krippendorff
import numpy as np
import pandas as pd

from entangle.schema import CI_LEVEL, KINDS

CHECK_TRIALS = ("catch", "instructed")
REASONS = ("failed_checks", "too_fast", "constant")


@dataclass(frozen=True)
class ExclusionRules:
    """When a participant or a response is left out of the norms."""

    max_failed_checks: int = 0
    min_rt_ms: float = 800.0
    max_fast_share: float = 0.25
    constant_min_items: int = 5

    def __post_init__(self) -> None:
        if self.max_failed_checks < 0 or self.min_rt_ms < 0 or not 0 <= self.max_fast_share <= 1 \
                or self.constant_min_items < 2:
            raise ValueError(f"invalid exclusion rules {self}")


@dataclass(frozen=True)
class Exclusions:
    """What the rules removed and why; participants are counted once per reason that applies to them."""

    rules: dict
    n_participants: int
    n_participants_kept: int
    participants_by_reason: dict[str, int]
    excluded: dict[str, tuple[str, ...]]  # rater_id -> reasons
    n_trials: int
    n_trials_kept: int
    trials_dropped: dict[str, int]  # participant_excluded | too_fast
    n_checks: int
    n_checks_failed: int
    rt_known: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        d["excluded"] = {k: list(v) for k, v in self.excluded.items()}
        return d


@dataclass(frozen=True)
class Reliability:
    """Inter-rater reliability of one kind's ratings."""

    kind: str
    alpha: float
    ci_low: float
    ci_high: float
    n_raters: int
    n_items: int
    n_ratings: int
    method: str = "Krippendorff's alpha, interval level; bootstrap over items"
    n_boot: int = 0


def apply_exclusions(df: pd.DataFrame, rules: ExclusionRules | None = None) -> tuple[pd.DataFrame, Exclusions]:
    """Item ratings that pass the rules, and the account of what was removed.

    `df` has item_id, kind, rating, rater_id, trial, expected_min, expected_max, rt_ms (rt_ms may be missing);
    `rules` defaults to `ExclusionRules()`."""
    rules = rules or ExclusionRules()
    items = df[df["trial"] == "item"]
    checks = df[df["trial"].isin(CHECK_TRIALS)]
    failed = checks[(checks["rating"] < checks["expected_min"]) | (checks["rating"] > checks["expected_max"])]
    rt = pd.to_numeric(items["rt_ms"], errors="coerce") if "rt_ms" in items else pd.Series(np.nan, items.index)
    fast = rt < rules.min_rt_ms  # NaN (unknown) is never too fast
    raters = items["rater_id"].notna()
    reasons: dict[str, list[str]] = {}
    if raters.any():
        for rid, n in failed.groupby("rater_id").size().items():
            if n > rules.max_failed_checks:
                reasons.setdefault(str(rid), []).append("failed_checks")
        share = fast[raters].groupby(items.loc[raters, "rater_id"]).mean()
        for rid in share[share > rules.max_fast_share].index:
            reasons.setdefault(str(rid), []).append("too_fast")
        grouped = items[raters].groupby("rater_id")["rating"]
        spread = grouped.agg(["nunique", "size"])
        for rid in spread[(spread["nunique"] == 1) & (spread["size"] >= rules.constant_min_items)].index:
            reasons.setdefault(str(rid), []).append("constant")
    out_rater = items["rater_id"].astype(str).isin(reasons) & raters
    keep = ~out_rater & ~fast
    all_raters = set(df.loc[df["rater_id"].notna(), "rater_id"].astype(str))
    ex = Exclusions(
        rules=asdict(rules),
        n_participants=len(all_raters),
        n_participants_kept=len(all_raters - set(reasons)),
        participants_by_reason={r: sum(r in v for v in reasons.values()) for r in REASONS},
        excluded={k: tuple(v) for k, v in sorted(reasons.items())},
        n_trials=len(items),
        n_trials_kept=int(keep.sum()),
        trials_dropped={"participant_excluded": int(out_rater.sum()), "too_fast": int((fast & ~out_rater).sum())},
        n_checks=len(checks),
        n_checks_failed=len(failed),
        rt_known=bool(rt.notna().any()),
    )
    return items[keep], ex


def _alpha(matrix: np.ndarray) -> float:
    """Interval alpha of a raters × items matrix (NaN = not rated); NaN when fewer than two items have two ratings."""
    pairable = (np.isfinite(matrix).sum(axis=0) >= 2)
    if pairable.sum() < 2:
        return float("nan")
    m = matrix[:, pairable]
    if np.nanstd(m) == 0:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=m, level_of_measurement="interval"))


def reliability(ratings: pd.DataFrame, *, n_boot: int = 200, seed: int = 0) -> dict[str, Reliability]:
    """Krippendorff's interval alpha per kind present in `ratings` (item rows with rater_id), bootstrap CI over items."""
    out = {}
    rng = np.random.default_rng([seed, 2])
    q = (1 - CI_LEVEL) / 2
    for kind in KINDS:
        r = ratings[(ratings["kind"] == kind) & ratings["rater_id"].notna()]
        if r.empty:
            continue
        wide = r.pivot_table(index="rater_id", columns="item_id", values="rating", aggfunc="mean")
        m = wide.to_numpy(dtype=float)
        a = _alpha(m)
        boots = [_alpha(m[:, rng.integers(0, m.shape[1], m.shape[1])]) for _ in range(n_boot if np.isfinite(a) else 0)]
        boots = np.array([b for b in boots if np.isfinite(b)])
        lo, hi = (np.quantile(boots, [q, 1 - q]) if len(boots) else (np.nan, np.nan))
        out[kind] = Reliability(kind, a, float(lo), float(hi), wide.shape[0], wide.shape[1], len(r), n_boot=len(boots))
    return out


__all__ = ["ExclusionRules", "Exclusions", "Reliability", "apply_exclusions", "reliability"]
