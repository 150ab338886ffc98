"""The study protocol: a config dataclass, `run(ctx) -> result`, the tables it writes, a report section.

Every study (entanglement, valueflow steering, svo, tradeoffs) runs on the same model and writes into the same run
folder through `StudyContext.folder`; its headline numbers go under its own top-level keys of metrics.json, its
tables under `<study>/...csv` (entanglement keeps its tables at the top level), and the report renders its section
from the folder alone (`entangle.report.sections.<study>`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from entangle.models import LoadedModel
from entangle.runfolder import RunFolder

log = logging.getLogger("entangle")


@dataclass(frozen=True)
class StudyContext:
    """What every study gets: the loaded model, the run folder to write into, the cache and shared settings."""

    model: LoadedModel
    folder: RunFolder
    cache_dir: Path
    seed: int = 0
    batch_size: int = 32
    n_boot: int = 1000
    progress: bool = True


@dataclass(frozen=True)
class StudyResult:
    """A finished study: its metrics.json entries (top-level key -> JSON-able value) and its tables."""

    name: str
    metrics: Mapping[str, Any]
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    seconds: float = 0.0

    def save(self, folder: RunFolder) -> None:
        """Write the tables, then merge the metrics into metrics.json (one key at a time, atomically)."""
        for name, df in self.tables.items():
            folder.write_table(name, df)
        for key, value in self.metrics.items():
            folder.update_metrics(key, value)


class Study(Protocol):
    """A study: `name` (its metrics.json key), and `run` from a context to a saved result."""

    name: str

    def run(self, ctx: StudyContext) -> StudyResult: ...
