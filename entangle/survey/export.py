"""The study's two exports: every answered trial (raw), and the ratings file `entangle run --norms` reads.

The ratings file has one row per answered item or attention check (practice is left out):
`item_id,kind,rating,rater_id,trial,expected_min,expected_max,rt_ms`, where `trial` is item, catch or instructed
and the expected range is set for checks only. `rater_id` is pseudonymous (p00001); the Prolific ids appear only in
the raw export, which stays with the lab. A database written by the simulator adds `simulated=yes` to every row.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from entangle.files import atomic_write
from entangle.survey.store import Store, rater_id

RATINGS_COLUMNS: tuple[str, ...] = ("item_id", "kind", "rating", "rater_id", "trial", "expected_min",
                                    "expected_max", "rt_ms")
TRIALS_COLUMNS: tuple[str, ...] = ("rater_id", "prolific_pid", "study_id", "session_id", "kind", "position", "trial",
                                   "item_id", "text", "expected_min", "expected_max", "rating", "rt_ms", "shown_at",
                                   "answered_at", "completed")
SIMULATED = "yes"


def _iso(t: float | None) -> str:
    return "" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


def trials_table(store: Store) -> pd.DataFrame:
    """Every answered trial, practice included, in participant and position order."""
    rows = store.rows(
        """SELECT p.id AS pid, p.prolific_pid, p.study_id, p.session_id, p.completed_at, t.* FROM trials t
           JOIN participants p ON p.id = t.participant_id WHERE t.rating IS NOT NULL
           ORDER BY p.id, t.position""")
    df = pd.DataFrame([{
        "rater_id": rater_id(r["pid"]), "prolific_pid": r["prolific_pid"], "study_id": r["study_id"],
        "session_id": r["session_id"], "kind": r["kind"], "position": r["position"], "trial": r["trial"],
        "item_id": r["item_id"], "text": r["text"], "expected_min": r["expected_min"],
        "expected_max": r["expected_max"], "rating": r["rating"], "rt_ms": r["rt_ms"],
        "shown_at": _iso(r["shown_at"]), "answered_at": _iso(r["answered_at"]),
        "completed": "yes" if r["completed_at"] is not None else "no"} for r in rows], columns=list(TRIALS_COLUMNS))
    for c in ("expected_min", "expected_max", "rt_ms"):
        df[c] = df[c].astype("Int64")
    return _mark(store, df)


def ratings_table(store: Store) -> pd.DataFrame:
    """The `--norms` file: answered items and attention checks, one row each."""
    t = trials_table(store)
    t = t[t["trial"] != "practice"]
    return _mark(store, t[list(RATINGS_COLUMNS)].reset_index(drop=True))


def _mark(store: Store, df: pd.DataFrame) -> pd.DataFrame:
    """Add the `simulated` column when the database came from the simulator."""
    if store.meta().get("simulated") == SIMULATED and "simulated" not in df.columns:
        df = df.assign(simulated=SIMULATED)
    return df


def write_exports(store: Store, out: str | Path) -> tuple[Path, Path]:
    """Write `ratings.csv` and `trials.csv` into folder `out` (atomically); returns their paths."""
    out = Path(out)
    ratings, trials = ratings_table(store), trials_table(store)
    r = atomic_write(out / "ratings.csv", lambda p: ratings.to_csv(p, index=False))
    t = atomic_write(out / "trials.csv", lambda p: trials.to_csv(p, index=False))
    return r, t
