"""The one contract for a run folder: config.json, metrics.json (versioned), tables, directions and the log.

Every writer (the CLI, `probes/` scripts, notebooks, studies) goes through `RunFolder`, and every reader (the report,
`compare`) reads through it, so the folder has one shape. `metrics.json` carries `schema_version`; a folder from an
unknown version is refused with a clear error instead of being half-read.

    >>> from entangle.runfolder import RunFolder
    >>> rf = RunFolder("runs/demo")
    >>> rf.write_config({"model": "smollm2-135m"})            # doctest: +SKIP
    >>> rf.update_metrics("probe", {"moral": {"best_layer": 17}})  # doctest: +SKIP
    >>> rf.metrics()["probe"]["moral"]["best_layer"]          # doctest: +SKIP
    17
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from entangle.files import InputError, atomic_write, atomic_write_json, read_json

SCHEMA_VERSION = 2
"""Version of metrics.json's layout; 1 = entangle 0.1 (no `schema_version` key), 2 = the study-shaped layout."""
KNOWN_VERSIONS = (SCHEMA_VERSION,)


class RunFolderError(InputError):
    """A run folder is missing, incomplete, or of an unknown version."""


class RunFolder:
    """Read and write one run folder; tables are CSV (`<name>.csv`, `name` may contain a study sub-folder)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ writing
    def write_config(self, config: dict[str, Any]) -> Path:
        """config.json: what the run was asked to do (settings, model info, stimuli hash)."""
        return atomic_write_json(self.path / "config.json", config)

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """metrics.json as a whole, stamped with the schema version (strict JSON: NaN -> null)."""
        return atomic_write_json(self.path / "metrics.json", {"schema_version": SCHEMA_VERSION, **metrics})

    def update_metrics(self, key: str, value: Any) -> Path:
        """Set one top-level key of metrics.json (creating the file), keeping the others."""
        current = self.metrics() if (self.path / "metrics.json").exists() else {}
        current.pop("schema_version", None)
        current[key] = value
        return self.write_metrics(current)

    def write_table(self, name: str, df: pd.DataFrame) -> Path:
        """`<name>.csv` (atomic; NaN as an empty field)."""
        return atomic_write(self.path / f"{name}.csv", lambda p: df.to_csv(p, index=False))

    # ------------------------------------------------------------------ reading
    def exists(self) -> bool:
        return (self.path / "metrics.json").is_file()

    def metrics(self) -> dict[str, Any]:
        """metrics.json, validated: strict JSON object of a known schema version, else RunFolderError."""
        mpath = self.path / "metrics.json"
        if not self.path.is_dir():
            raise RunFolderError(self.path, None, None, "no such run folder" if not self.path.exists()
                                 else "not a folder")
        if not mpath.exists():
            raise RunFolderError(mpath, None, None, "missing: this folder holds no finished run")
        try:
            m = read_json(mpath)
        except InputError as exc:
            raise RunFolderError(exc.path, exc.line, exc.field, exc.message) from None
        version = m.get("schema_version", 1)
        if version not in KNOWN_VERSIONS:
            raise RunFolderError(mpath, None, "schema_version",
                                 f"version {version!r} is not one this entangle reads ({', '.join(map(str, KNOWN_VERSIONS))})"
                                 + ("; re-run the study with this version of entangle" if version == 1 else ""))
        return m

    def config(self) -> dict[str, Any]:
        """config.json, or {} when absent."""
        p = self.path / "config.json"
        return read_json(p) if p.exists() else {}

    def table(self, name: str) -> pd.DataFrame | None:
        """`<name>.csv` as a DataFrame, or None when absent or empty."""
        p = self.path / f"{name}.csv"
        if not p.is_file() or p.stat().st_size == 0:
            return None
        try:
            return pd.read_csv(p)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise RunFolderError(p, None, None, f"unreadable table: {exc}") from None
