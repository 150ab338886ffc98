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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from entangle.files import InputError, atomic_write, atomic_write_json, read_json

SCHEMA_VERSION = 2
"""Version of metrics.json's layout; 1 = entangle 0.1 (no `schema_version` key), 2 = the study-shaped layout."""
KNOWN_VERSIONS = (SCHEMA_VERSION,)
T = TypeVar("T")


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
    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    def exists(self) -> bool:
        return self.metrics_path.is_file()

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
        """config.json, or {} when absent; an unreadable one raises RunFolderError."""
        p = self.path / "config.json"
        if not p.exists():
            return {}
        try:
            return read_json(p)
        except InputError as exc:
            raise RunFolderError(exc.path, exc.line, exc.field, exc.message) from None

    def has(self, name: str) -> bool:
        """Whether the folder holds `name` (a file or folder, relative to the run folder)."""
        return (self.path / name).exists()

    def table(self, name: str) -> pd.DataFrame | None:
        """`<name>.csv` as a DataFrame, or None when absent or empty."""
        p = self.path / f"{name}.csv"
        if not p.is_file() or p.stat().st_size == 0:
            return None
        try:
            return pd.read_csv(p)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise RunFolderError(p, None, None, f"unreadable table: {exc}") from None

    def tables(self) -> list[str]:
        """Names of every table in the folder (`probes`, `svo/choices`, ...), sorted."""
        return sorted(p.relative_to(self.path).with_suffix("").as_posix() for p in self.path.rglob("*.csv")
                      if p.is_file())

    def directions(self) -> list[str]:
        """Files under `directions/`, relative to it, sorted."""
        d = self.path / "directions"
        return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()) if d.is_dir() else []

    def log_tail(self, n: int = 40) -> list[str]:
        """The last `n` lines of run.log ([] when absent)."""
        p = self.path / "run.log"
        return p.read_text(encoding="utf-8", errors="replace").splitlines()[-n:] if p.is_file() else []


class Block:
    """One JSON object of metrics.json read through typed getters, so a block is validated once, where it is read.

    Absent keys and nulls read as None ("not measured"); a value of the wrong type raises RunFolderError naming
    the file and the dotted field, e.g. `runs/x/metrics.json: field 'probe.moral.best_layer': expected an integer`.
    """

    def __init__(self, data: Mapping[str, Any], where: str = "", path: str | Path | None = None) -> None:
        self.data, self.where, self.path = data, where, path

    @classmethod
    def of(cls, folder: RunFolder, metrics: Mapping[str, Any]) -> Block:
        """The whole of `metrics` (as read from `folder`) as the root block."""
        return cls(metrics, "", folder.metrics_path)

    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, expected: str) -> RunFolderError:
        got = type(self.data.get(key)).__name__
        return RunFolderError(self.path, None, self.field(key), f"expected {expected}, got {got}")

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def block(self, key: str) -> Block | None:
        """The object under `key`, or None when absent or null."""
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, Mapping):
            raise self.error(key, "an object")
        return Block(v, self.field(key), self.path)

    def blocks(self, keys: Iterable[str] | None = None) -> dict[str, Block]:
        """The entries named in `keys` that are present (each must be an object), or, without `keys`, every
        object-valued entry (other entries, e.g. `ablation.primary`, are left to their own getters)."""
        if keys is not None:
            return {k: b for k in keys if (b := self.block(k)) is not None}
        return {k: Block(v, self.field(k), self.path) for k, v in self.data.items() if isinstance(v, Mapping)}

    def _scalar(self, key: str, accepts: Callable[[Any], bool], expected: str) -> Any:
        v = self.data.get(key)
        if v is not None and not accepts(v):
            raise self.error(key, expected)
        return v

    def number(self, key: str) -> float | None:
        v = self._scalar(key, _is_number, "a number")
        return None if v is None else float(v)

    def integer(self, key: str) -> int | None:
        return self._scalar(key, lambda x: _is_number(x, integer=True), "an integer")

    def text(self, key: str) -> str | None:
        return self._scalar(key, lambda x: isinstance(x, str), "a string")

    def flag(self, key: str) -> bool | None:
        return self._scalar(key, lambda x: isinstance(x, bool), "true or false")

    def numbers(self, key: str, integers: bool = False) -> tuple[Any, ...] | None:
        """A list of numbers (nulls allowed) or, with `integers`, of integers; None when absent."""
        v = self._scalar(key, lambda xs: isinstance(xs, list) and all(
            _is_number(x, integers) or (x is None and not integers) for x in xs),
            "a list of integers" if integers else "a list of numbers")
        if v is None:
            return None
        return tuple(v) if integers else tuple(None if x is None else float(x) for x in v)

    def scalars(self, cls: type[T], **given: Any) -> T:
        """An instance of the dataclass `cls`: fields in `given` as given, every other field read from this block
        by its declared type (`float | None`, `int | None`, `str | None` or `bool | None`)."""
        return cls(**given, **{f.name: _GETTERS[str(f.type)](self, f.name) for f in fields(cls)
                               if f.name not in given})


def _is_number(x: Any, integer: bool = False) -> bool:
    return isinstance(x, int if integer else int | float) and not isinstance(x, bool)


_GETTERS: dict[str, Callable[[Block, str], Any]] = {
    "float | None": Block.number, "int | None": Block.integer, "str | None": Block.text, "bool | None": Block.flag}
