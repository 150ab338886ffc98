"""The study's SQLite database (standard library): participants, their planned trials, every answer.

WAL mode and synchronous=FULL; each answer is one short transaction, so an answer the server acknowledged survives a
closed tab, a crash or SIGKILL. Answering is idempotent: only the participant's next open trial accepts a rating,
and a repeated or stale submission changes nothing. Assignment runs under BEGIN IMMEDIATE so two participants
arriving together cannot both take the last open slot. Every query is parameterised.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from entangle.stimuli import StimulusSet
from entangle.survey.design import StudyConfig, choose_items, choose_kind, plan_trials
from entangle.survey.materials import Materials

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
  id INTEGER PRIMARY KEY,
  token TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  seed INTEGER NOT NULL,
  prolific_pid TEXT, study_id TEXT, session_id TEXT,
  created_at REAL NOT NULL, instructions_at REAL, completed_at REAL, last_seen REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS participants_prolific ON participants (prolific_pid) WHERE prolific_pid IS NOT NULL;
CREATE TABLE IF NOT EXISTS trials (
  participant_id INTEGER NOT NULL REFERENCES participants (id),
  position INTEGER NOT NULL,
  trial TEXT NOT NULL, item_id TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL, question TEXT,
  expected_min INTEGER, expected_max INTEGER,
  shown_at REAL, rating INTEGER, rt_ms INTEGER, answered_at REAL,
  PRIMARY KEY (participant_id, position)
);
CREATE INDEX IF NOT EXISTS trials_item ON trials (kind, item_id);
"""


def rater_id(participant_id: int) -> str:
    """The pseudonymous id the exports use for a participant (never the Prolific id)."""
    return f"p{participant_id:05d}"


@dataclass(frozen=True)
class Participant:
    """A row of `participants`: who, which kind, and where they are."""

    id: int
    token: str
    kind: str
    seed: int
    prolific_pid: str | None
    instructions_at: float | None
    completed_at: float | None


@dataclass(frozen=True)
class Trial:
    """A row of `trials`."""

    position: int
    trial: str
    item_id: str
    kind: str
    text: str
    question: str | None
    expected_min: int | None
    expected_max: int | None
    rating: int | None


class Store:
    """One study database; each method opens its own connection, so it is safe across server threads."""

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = str(path)
        self.synchronous = "FULL" if durable else "OFF"  # OFF only for the simulator's throw-away databases
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        con.execute(f"PRAGMA synchronous={self.synchronous}")
        con.execute("PRAGMA foreign_keys=ON")
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ------------------------------------------------------------------ study metadata
    def meta(self) -> dict[str, str]:
        with self._connect() as con:
            return dict(con.execute("SELECT key, value FROM meta").fetchall())

    def init_meta(self, values: Mapping[str, str]) -> dict[str, str]:
        """Set the keys not set yet (a restarted server keeps the first values) and return all of them."""
        with self._transaction() as con:
            con.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", list(values.items()))
        return self.meta()

    # ------------------------------------------------------------------ participants
    def participant(self, token: str | None = None, prolific_pid: str | None = None) -> Participant | None:
        """The participant with this cookie token or Prolific id, if any."""
        if token is None and prolific_pid is None:
            return None
        with self._connect() as con:
            row = con.execute("SELECT id, token, kind, seed, prolific_pid, instructions_at, completed_at "
                              "FROM participants WHERE token = ? OR prolific_pid = ?", (token, prolific_pid)).fetchone()
        return Participant(*row) if row else None

    def _counts(self, con: sqlite3.Connection, now: float, stale_minutes: float) -> dict[str, dict[str, int]]:
        """Raters per kind × item who count toward N: finished or recently active, and no failed check so far."""
        rows = con.execute(
            """SELECT t.kind, t.item_id, COUNT(*) FROM trials t JOIN participants p ON p.id = t.participant_id
               WHERE t.trial = 'item' AND (p.completed_at IS NOT NULL OR p.last_seen >= ?)
                 AND NOT EXISTS (SELECT 1 FROM trials c WHERE c.participant_id = p.id AND c.rating IS NOT NULL
                                 AND c.expected_min IS NOT NULL AND c.trial != 'practice'
                                 AND (c.rating < c.expected_min OR c.rating > c.expected_max))
               GROUP BY t.kind, t.item_id""", (now - 60.0 * stale_minutes,)).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for kind, item, n in rows:
            counts.setdefault(kind, {})[item] = n
        return counts

    def counts(self, config: StudyConfig, now: float | None = None) -> dict[str, dict[str, int]]:
        with self._connect() as con:
            return self._counts(con, time.time() if now is None else now, config.stale_minutes)

    def assign(self, token: str, seed: int, stimuli: StimulusSet, materials: Materials, config: StudyConfig,
               prolific: Mapping[str, str | None] | None = None, now: float | None = None) -> Participant | None:
        """Create a participant with a balanced kind and item list and their planned trials; None when the study is full.

        A Prolific id seen before returns that participant (they resume), never a second list.
        """
        prolific = dict(prolific or {})
        now = time.time() if now is None else now
        with self._transaction() as con:
            pid = prolific.get("prolific_pid")
            row = None if pid is None else con.execute(
                "SELECT token FROM participants WHERE prolific_pid = ?", (pid,)).fetchone()
            if row:
                token = row[0]
            else:
                rng = np.random.default_rng(seed)
                counts = self._counts(con, now, config.stale_minutes)
                kind = choose_kind(counts, len(stimuli), config.raters_per_item, rng)
                if kind is None:
                    return None
                items = choose_items(stimuli, counts.get(kind, {}), config.items_per_participant, rng)
                plan = plan_trials(kind, items, stimuli, materials, rng)
                cur = con.execute(
                    "INSERT INTO participants (token, kind, seed, prolific_pid, study_id, session_id, created_at, "
                    "last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (token, kind, seed, pid, prolific.get("study_id"), prolific.get("session_id"), now, now))
                con.executemany(
                    "INSERT INTO trials (participant_id, position, trial, item_id, kind, text, question, expected_min, "
                    "expected_max) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(cur.lastrowid, i, t.trial, t.item_id, t.kind, t.text, t.question, t.expected_min, t.expected_max)
                     for i, t in enumerate(plan)])
        return self.participant(token=token)

    def seen_instructions(self, participant_id: int, now: float | None = None) -> None:
        with self._transaction() as con:
            con.execute("UPDATE participants SET instructions_at = COALESCE(instructions_at, ?) WHERE id = ?",
                        (time.time() if now is None else now, participant_id))

    # ------------------------------------------------------------------ trials
    def next_trial(self, participant_id: int, now: float | None = None) -> Trial | None:
        """The first unanswered trial (marked as shown, and the participant as active), or None when all are done."""
        now = time.time() if now is None else now
        with self._transaction() as con:
            row = con.execute(
                "SELECT position, trial, item_id, kind, text, question, expected_min, expected_max, rating FROM trials "
                "WHERE participant_id = ? AND rating IS NULL ORDER BY position LIMIT 1", (participant_id,)).fetchone()
            con.execute("UPDATE participants SET last_seen = ? WHERE id = ?", (now, participant_id))
            if row:
                con.execute("UPDATE trials SET shown_at = COALESCE(shown_at, ?) WHERE participant_id = ? "
                            "AND position = ?", (now, participant_id, row[0]))
        return Trial(*row) if row else None

    def answer(self, participant_id: int, position: int, rating: int, rt_ms: int | None,
               now: float | None = None) -> bool:
        """Record a rating for the participant's next open trial, in one transaction; False if it was not that trial
        (a duplicate or stale submission), which leaves everything as it was."""
        now = time.time() if now is None else now
        with self._transaction() as con:
            nxt = con.execute("SELECT MIN(position) FROM trials WHERE participant_id = ? AND rating IS NULL",
                              (participant_id,)).fetchone()[0]
            if nxt is None or nxt != position:
                return False
            if rt_ms is None:
                shown = con.execute("SELECT shown_at FROM trials WHERE participant_id = ? AND position = ?",
                                    (participant_id, position)).fetchone()[0]
                rt_ms = None if shown is None else round(1000 * (now - shown))
            con.execute("UPDATE trials SET rating = ?, rt_ms = ?, answered_at = ? WHERE participant_id = ? "
                        "AND position = ? AND rating IS NULL", (rating, rt_ms, now, participant_id, position))
            left = con.execute("SELECT COUNT(*) FROM trials WHERE participant_id = ? AND rating IS NULL",
                               (participant_id,)).fetchone()[0]
            con.execute("UPDATE participants SET last_seen = ?, completed_at = CASE WHEN ? = 0 THEN ? "
                        "ELSE completed_at END WHERE id = ?", (now, left, now, participant_id))
        return True

    def progress(self, participant_id: int) -> tuple[int, int]:
        """(answered, total) trials of a participant."""
        with self._connect() as con:
            return con.execute("SELECT COUNT(rating), COUNT(*) FROM trials WHERE participant_id = ?",
                               (participant_id,)).fetchone()

    # ------------------------------------------------------------------ admin and export
    def rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query (admin page, exports); parameters are bound, never formatted in."""
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return con.execute(sql, params).fetchall()
