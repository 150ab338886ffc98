"""Human-norm baselines for excess entanglement (DESIGN.md §5).

Two sources: the design norm (EI_human = 0 off the diagonal, used where no ratings exist; reports must say
so) and human ratings of the same items: a CSV (`item_id,kind,rating[,rater_id]`) or the export of
`entangle survey` (with attention checks and response times). `load_norms` reads either, applies the exclusion
rules and measures reliability; `human_ei` turns the ratings into an EI exactly like the model's behavioural
readouts, with raters resampled alongside frames when known.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from entangle.analysis.entanglement import EIResult, behavioural_ei
from entangle.files import InputError
from entangle.schema import FACTORS, KINDS, RESAMPLING_UNIT
from entangle.survey.quality import (
    ExclusionRules,
    Exclusions,
    Reliability,
    apply_exclusions,
    reliability,
)

RATING_COLUMNS = ("item_id", "kind", "rating")
OPTIONAL_COLUMNS = ("rater_id", "trial", "expected_min", "expected_max", "rt_ms", "simulated")
"""`entangle survey export` writes all of these; a plain `item_id,kind,rating[,rater_id]` file is read as items."""
TRIALS = ("item", "catch", "instructed")
SCALE = (1, 7)
DEFAULT_RULES = ExclusionRules()
"""The documented defaults (docs/SURVEY.md): no failed check, 800 ms, 25% too fast, 5 identical ratings."""


class NormsError(InputError):
    """A ratings file is malformed; the message names file:line: field."""

    def __init__(self, path: str | Path, line: int | None, field: str, msg: str):
        super().__init__(path, line, field, msg)


def _stimuli_frame(stimuli: Any) -> pd.DataFrame:
    """Items as a DataFrame with item_id (or the schema's `id`), frame, m, e, g (+ n_tokens when known)."""
    if isinstance(stimuli, pd.DataFrame):
        df = stimuli
    elif hasattr(stimuli, "to_frame"):  # entangle.stimuli.StimulusSet
        df = stimuli.to_frame()
    else:
        rows = []
        for it in stimuli:
            rows.append(dict(it) if isinstance(it, dict) else dict(vars(it)))
        df = pd.DataFrame(rows)
    if "item_id" not in df.columns and "id" in df.columns:
        df = df.rename(columns={"id": "item_id"})
    missing = [c for c in ("item_id", "frame", *FACTORS) if c not in df.columns]
    if missing:
        raise ValueError(f"stimuli lack column(s) {missing}; have {list(df.columns)}")
    return df


def design_norm(stimuli: pd.DataFrame | Iterable[Any]) -> EIResult:
    """The design norm: factors are independent by construction, so EI_human = 0 off-diagonal, +1 on it, no width."""
    df = _stimuli_frame(stimuli)
    kinds = list(KINDS)
    nf, nk = len(FACTORS), len(kinds)
    ei = np.zeros((nf, nk))
    for j, k in enumerate(kinds):
        ei[FACTORS.index(k), j] = 1.0
    nan = np.full((nf, nk), np.nan)
    return EIResult(
        kinds=kinds,
        factors=list(FACTORS),
        ei=ei,
        ci_low=ei.copy(),
        ci_high=ei.copy(),
        coef=nan.copy(),
        coef_se=nan.copy(),
        coef_p=nan.copy(),
        ei_se=np.zeros((nf, nk)),
        ei_p=nan.copy(),
        own_coef=np.full(nk, np.nan),
        own_coef_raw=np.full(nk, np.nan),
        n_items=np.full(nk, len(df), dtype=int),
        n_frames=int(df["frame"].nunique()),
        boot=None,
        source="design",
        controls=[],
        n_boot=0,
        seed=0,
        resampling_unit=RESAMPLING_UNIT,
    )


def read_ratings_file(path: str | Path, stimuli_df: pd.DataFrame | Iterable[Any]) -> pd.DataFrame:
    """Every row of a ratings file or survey export, validated (items and attention checks, 1..7 scale).

    Columns: item_id, kind, rating, rater_id, trial, expected_min, expected_max, rt_ms, line; `attrs` carries the
    source name and whether the file says it is simulated. Errors name file:line: field.
    """
    path = Path(path)
    stim = _stimuli_frame(stimuli_df)
    known = set(stim["item_id"].astype(str))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise NormsError(path, line, "<encoding>", f"not valid UTF-8 (byte {raw[e.start]:#04x})") from None
    if not text.strip():
        raise NormsError(path, 1, "<header>", "empty file")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader)]
    for c in RATING_COLUMNS:
        if c not in header:
            raise NormsError(path, 1, c, f"missing column (header is {','.join(header)})")
    unknown_cols = [h for h in header if h not in RATING_COLUMNS + OPTIONAL_COLUMNS]
    if unknown_cols:
        raise NormsError(path, 1, unknown_cols[0], "unknown column")
    pos = {h: i for i, h in enumerate(header)}
    rows = []
    for rec in reader:
        line = reader.line_num
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            raise NormsError(path, line, "<row>", f"{len(rec)} fields, header has {len(header)}")
        rows.append(_parse_row(path, line, {h: rec[i].strip() for h, i in pos.items()}, known))
    if not rows:
        raise NormsError(path, 2, "<rows>", "no ratings after the header")
    out = pd.DataFrame(rows, columns=["item_id", "kind", "rating", "rater_id", "trial", "expected_min",
                                      "expected_max", "rt_ms", "line", "simulated"])
    if "rater_id" in pos and out["rater_id"].isna().any() and out["rater_id"].notna().any():
        line = int(out.loc[out["rater_id"].isna(), "line"].iloc[0])
        raise NormsError(path, line, "rater_id", "missing value (give rater_id on every row or on none)")
    out.attrs["source"] = f"ratings:{path.name}"
    out.attrs["simulated"] = bool(out.pop("simulated").any())
    return out


def _parse_row(path: Path, line: int, val: dict[str, str], known: set[str]) -> dict[str, Any]:
    """One validated row of a ratings file."""
    for c in RATING_COLUMNS:
        if not val[c]:
            raise NormsError(path, line, c, "missing value")
    trial = val.get("trial") or "item"
    if trial not in TRIALS:
        raise NormsError(path, line, "trial", f"unknown trial type {trial!r}; expected one of {list(TRIALS)}")
    if trial == "item" and val["item_id"] not in known:
        raise NormsError(path, line, "item_id", f"unknown item id {val['item_id']!r}")
    if val["kind"] not in KINDS:
        raise NormsError(path, line, "kind", f"unknown kind {val['kind']!r}; expected one of {list(KINDS)}")
    rating = _number(path, line, "rating", val["rating"])
    if not SCALE[0] <= rating <= SCALE[1]:
        raise NormsError(path, line, "rating", f"{val['rating']} is outside the {SCALE[0]}-{SCALE[1]} scale")
    expected = [None, None]
    if trial != "item":
        for j, c in enumerate(("expected_min", "expected_max")):
            if not val.get(c):
                raise NormsError(path, line, c, f"missing value (a {trial} check needs its expected range)")
            expected[j] = _number(path, line, c, val[c])
            if not SCALE[0] <= expected[j] <= SCALE[1]:
                raise NormsError(path, line, c, f"{val[c]} is outside the {SCALE[0]}-{SCALE[1]} scale")
        if expected[0] > expected[1]:
            raise NormsError(path, line, "expected_max", "smaller than expected_min")
    rt = _number(path, line, "rt_ms", val["rt_ms"]) if val.get("rt_ms") else None
    if rt is not None and rt < 0:
        raise NormsError(path, line, "rt_ms", f"negative response time {val['rt_ms']}")
    if val.get("simulated") not in (None, "", "yes"):
        raise NormsError(path, line, "simulated", f"expected 'yes' or empty, got {val['simulated']!r}")
    return {"item_id": val["item_id"], "kind": val["kind"], "rating": rating, "rater_id": val.get("rater_id") or None,
            "trial": trial, "expected_min": expected[0], "expected_max": expected[1], "rt_ms": rt, "line": line,
            "simulated": val.get("simulated") == "yes"}


def _number(path: Path, line: int, field: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise NormsError(path, line, field, f"not a number: {text!r}") from None
    if not np.isfinite(value):
        raise NormsError(path, line, field, f"not finite: {text!r}")
    return value


def load_ratings(path: str | Path, stimuli_df: pd.DataFrame | Iterable[Any]) -> pd.DataFrame:
    """The item ratings of a ratings CSV or survey export (item_id, kind, rating, rater_id, line), no exclusions."""
    rows = read_ratings_file(path, stimuli_df)
    out = rows.loc[rows["trial"] == "item", ["item_id", "kind", "rating", "rater_id", "line"]].reset_index(drop=True)
    out.attrs.update(rows.attrs)
    return out


def _item_means(ratings: pd.DataFrame, stim: pd.DataFrame, control_tokens: bool) -> pd.DataFrame:
    """One row per item × kind: the mean rating as `value`, with the item's factors and frame."""
    means = ratings.groupby(["item_id", "kind"], as_index=False)["rating"].mean().rename(columns={"rating": "value"})
    cols = ["item_id", "frame", *FACTORS] + (["n_tokens"] if control_tokens else [])
    s = stim[cols].copy()
    s["item_id"] = s["item_id"].astype(str)
    return means.merge(s, on="item_id", how="inner", validate="many_to_one")


def human_ei(
    ratings_df: pd.DataFrame,
    stimuli_df: pd.DataFrame | Iterable[Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    control_tokens: bool | None = None,
) -> EIResult:
    """EI_human from ratings, computed like the model's behavioural EI; resamples frames and (if known) raters.

    Frame draws come from `frame_bootstrap_indices` with the same seed, so they pair with a model EI on the same
    frames; rater draws use an independent stream derived from the seed. `control_tokens` defaults to whether the
    stimuli carry `n_tokens`.
    """
    stim = _stimuli_frame(stimuli_df)
    if control_tokens is None:
        control_tokens = "n_tokens" in stim.columns
    source = ratings_df.attrs.get("source", "ratings")
    df = _item_means(ratings_df, stim, control_tokens)

    resampler = None
    raters = ratings_df["rater_id"] if "rater_id" in ratings_df.columns else None
    if raters is not None and raters.notna().any():
        if raters.isna().any():
            raise ValueError("rater_id is given for some ratings but not others: fill it everywhere or nowhere")
        resampler = _RaterResampler(ratings_df, seed, n_boot)

    res = behavioural_ei(
        df, n_boot=n_boot, seed=seed, control_tokens=control_tokens, source=source, _rater_values=resampler
    )
    return res


@dataclass(frozen=True, eq=False)
class NormsImport:
    """Human ratings ready for EI_human: item ratings after exclusions, what was excluded, reliability per kind."""

    source: str
    ratings: pd.DataFrame  # item_id, kind, rating, rater_id, line: the input of `human_ei`
    exclusions: Exclusions
    reliability: dict[str, Reliability]
    simulated: bool

    def to_metrics(self, ei: EIResult | None = None) -> dict[str, Any]:
        """metrics.json key `norms`: who rated, how many, exclusions, alpha per kind (and EI_human cells if given)."""
        r = self.ratings
        out: dict[str, Any] = {
            "source": self.source,
            "simulated": self.simulated,
            "participants": self.exclusions.n_participants,
            "participants_kept": self.exclusions.n_participants_kept,
            "ratings": len(r),
            "per_kind": {k: {"raters": int(g["rater_id"].nunique()), "ratings": len(g),
                             "items": int(g["item_id"].nunique()),
                             "raters_per_item": float(g.groupby("item_id").size().mean())}
                         for k, g in r.groupby("kind")},
            "exclusions": self.exclusions.to_dict(),
            "reliability": {k: asdict(v) for k, v in self.reliability.items()},
        }
        if ei is not None:
            t = ei.table()
            out["ei_human"] = {"resampling_unit": ei.resampling_unit, "n_boot": ei.n_boot, "cells": {
                f"{c.from_factor}_to_{c.to_kind}": {"ei": c.ei, "ci_low": c.ci_low, "ci_high": c.ci_high}
                for c in t.itertuples() if c.from_factor != c.to_kind}}
        return out


def _require_kinds(path: str | Path, ratings: pd.DataFrame, stage: str) -> None:
    missing = [k for k in KINDS if k not in set(ratings["kind"])]
    if missing:
        raise NormsError(path, None, "kind", f"no item ratings of kind(s) {missing} {stage}; the norms need every "
                                             f"kind ({', '.join(KINDS)}) rated")


def load_norms(path: str | Path, stimuli: pd.DataFrame | Iterable[Any], rules: ExclusionRules = DEFAULT_RULES,
               *, n_boot: int = 200, seed: int = 0) -> NormsImport:
    """Read a ratings file or `entangle survey export`, apply the exclusion rules, measure reliability per kind.

    The one entry point for `--norms`: pass `result.ratings` to `human_ei` and `result.to_metrics(ei)` to metrics.json.
    Every kind must be rated (before and after exclusions); otherwise a NormsError says which is missing.
    """
    rows = read_ratings_file(path, stimuli)
    _require_kinds(path, rows[rows["trial"] == "item"], "in the file")
    kept, ex = apply_exclusions(rows, rules)
    _require_kinds(path, kept, "after exclusions")
    ratings = kept[["item_id", "kind", "rating", "rater_id", "line"]].reset_index(drop=True)
    ratings.attrs.update(rows.attrs)
    return NormsImport(source=rows.attrs["source"], ratings=ratings, exclusions=ex,
                       reliability=reliability(kept, n_boot=n_boot, seed=seed), simulated=rows.attrs["simulated"])


class _RaterResampler:
    """Per-draw item means under resampled raters (same rater draws for every kind)."""

    def __init__(self, ratings: pd.DataFrame, seed: int, n_boot: int):
        self.ratings = ratings
        self.levels = np.unique(ratings["rater_id"].astype(str).to_numpy())
        n_r = len(self.levels)
        self.draws = np.random.default_rng([seed, 1]).integers(0, n_r, size=(n_boot, n_r))
        flat = (self.draws + n_r * np.arange(n_boot)[:, None]).ravel()
        self.counts = np.bincount(flat, minlength=n_boot * n_r).reshape(n_boot, n_r).astype(np.float64)

    def __call__(self, sub: pd.DataFrame, n_boot: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        kind = sub["kind"].iloc[0]
        r = self.ratings[self.ratings["kind"] == kind]
        row_of = {iid: i for i, iid in enumerate(sub["item_id"].astype(str))}
        keep = r["item_id"].astype(str).map(row_of)
        r, rows = r[keep.notna()], keep[keep.notna()].to_numpy(dtype=int)
        rc = np.searchsorted(self.levels, r["rater_id"].astype(str).to_numpy())
        w = self.counts[:, rc]  # [B, n_ratings]
        n = len(sub)
        tot = np.zeros((n_boot, n))
        cnt = np.zeros((n_boot, n))
        vals = r["rating"].to_numpy(dtype=np.float64)
        for i in range(n_boot):  # bincount per draw: ~n_ratings work each
            tot[i] = np.bincount(rows, weights=w[i] * vals, minlength=n)
            cnt[i] = np.bincount(rows, weights=w[i], minlength=n)
        present = (cnt > 0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(cnt > 0, tot / np.where(cnt > 0, cnt, 1.0), 0.0)
        return y, present, self.levels, self.draws
