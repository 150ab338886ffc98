"""Human-norm baselines for excess entanglement (DESIGN.md §5).

Two sources: the design norm (EI_human = 0 off the diagonal, used where no ratings exist; reports must say
so) and human ratings of the same items from a CSV (`item_id,kind,rating[,rater_id]`), turned into an EI
exactly like the model's behavioural readouts, with raters resampled alongside frames when known.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from entangle.analysis.entanglement import EIResult, behavioural_ei
from entangle.schema import FACTORS, KINDS, RESAMPLING_UNIT

RATING_COLUMNS = ("item_id", "kind", "rating")
OPTIONAL_COLUMNS = ("rater_id",)


class NormsError(ValueError):
    """A ratings file is malformed; the message names file:line: field."""

    def __init__(self, path: str | Path, line: int, field: str, msg: str):
        self.path, self.line, self.field = str(path), line, field
        super().__init__(f"{path}:{line}: field {field!r}: {msg}")


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


def load_ratings(path: str | Path, stimuli_df: pd.DataFrame | Iterable[Any]) -> pd.DataFrame:
    """Read and validate a human-ratings CSV (item_id,kind,rating[,rater_id]); errors name file:line: field."""
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
    has_rater = "rater_id" in pos
    rows = []
    for rec in reader:
        line = reader.line_num
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            raise NormsError(path, line, "<row>", f"{len(rec)} fields, header has {len(header)}")
        val = {h: rec[i].strip() for h, i in pos.items()}
        for c in RATING_COLUMNS:
            if not val[c]:
                raise NormsError(path, line, c, "missing value")
        if val["item_id"] not in known:
            raise NormsError(path, line, "item_id", f"unknown item id {val['item_id']!r}")
        if val["kind"] not in KINDS:
            raise NormsError(path, line, "kind", f"unknown kind {val['kind']!r}; expected one of {list(KINDS)}")
        try:
            rating = float(val["rating"])
        except ValueError:
            raise NormsError(path, line, "rating", f"not a number: {val['rating']!r}") from None
        if not np.isfinite(rating):
            raise NormsError(path, line, "rating", f"not finite: {val['rating']!r}")
        rows.append(
            {
                "item_id": val["item_id"],
                "kind": val["kind"],
                "rating": rating,
                "rater_id": (val["rater_id"] or None) if has_rater else None,
                "line": line,
            }
        )
    if not rows:
        raise NormsError(path, 2, "<rows>", "no ratings after the header")
    out = pd.DataFrame(rows, columns=["item_id", "kind", "rating", "rater_id", "line"])
    out.attrs["source"] = f"ratings:{path.name}"
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
