"""Files written and read the same way everywhere: one atomic-write helper, strict JSON, and `InputError`.

Every output goes through `atomic_write` (temp file beside the target, fsync, rename;
`atomic_write_many` for files that belong together), so a reader sees the old
file or the new one, never half of one, and every file gets the same permissions (0644 less the umask).
Every bad input raises an `InputError` naming file, line and field, which the CLI turns into one clear line.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


class InputError(ValueError):
    """Bad input from a user: names the file, the 1-based line and the field, so it can be fixed."""

    def __init__(self, path: str | Path | None, line: int | None, field: str | None, message: str) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = "" if self.path is None else (self.path if self.line is None else f"{self.path}:{self.line}")
        what = "" if self.field is None else f"field '{self.field}': "
        return f"{where}: {what}{self.message}" if where else f"{what}{self.message}"

    def __reduce__(self):  # picklable across worker processes despite the 4-argument init
        return (type(self), (self.path, self.line, self.field, self.message))


def refuse(bad: bool, field: str, message: str) -> None:
    """Raise InputError naming the setting `field` when `bad` holds: one line per rule in a study config's check."""
    if bad:
        raise InputError(None, None, field, message)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prepare(path: Path, write: Callable[[Path], None]) -> Path:
    """Write via `write(tmp)` to a temp file beside `path`, fsync it and give it the shared permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_many(writes: list[tuple[str | Path, Callable[[Path], None]]]) -> list[Path]:
    """Write several files that belong together (a tensor file and its sidecar): every temp file is written
    first, then all are renamed into place; a failure before the renames leaves every target untouched."""
    prepared: list[tuple[Path, Path]] = []
    try:
        for path, write in writes:
            prepared.append((_prepare(Path(path), write), Path(path)))
        for tmp, path in prepared:
            os.replace(tmp, path)
    finally:
        for tmp, _ in prepared:
            tmp.unlink(missing_ok=True)
    return [path for _, path in prepared]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write via `write(tmp)` to a temp file beside `path`, then rename it over `path` (0644 less the umask)."""
    return atomic_write_many([(path, write)])[0]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write a UTF-8 text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def clean_json(obj: Any) -> Any:
    """Strict-JSON form of `obj`: NaN/inf -> None, numpy scalars/arrays -> Python, paths -> str, keys -> str."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [clean_json(v) for v in (sorted(obj) if isinstance(obj, set | frozenset) else obj)]
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON text of `obj` (see `clean_json`); refuses anything else that is not serialisable."""
    return json.dumps(clean_json(obj), indent=indent, allow_nan=False, ensure_ascii=False)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write strict JSON (NaN written as null, never as the invalid token NaN)."""
    return atomic_write_text(path, dumps(obj) + "\n")


def read_json(path: str | Path, *, expect: type = dict) -> Any:
    """Read strict JSON; a missing, truncated or wrong-shaped file raises InputError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, None, "file not found" if not path.exists() else "not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, None, None, f"not valid UTF-8 ({exc.reason})") from None

    def no_constants(name: str) -> Any:
        raise ValueError(f"invalid JSON constant {name}")

    try:
        obj = json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, None, f"malformed JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError as exc:
        raise InputError(path, None, None, str(exc)) from None
    if not isinstance(obj, expect):
        raise InputError(path, 1, None, f"expected a JSON {expect.__name__}, got {type(obj).__name__}")
    return obj


def jsonl_records(path: str | Path, text: str | None = None, error: type[InputError] = InputError
                  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) for every non-blank line of a JSONL file; a malformed line raises `error` naming file:line.

    Lazy, so a caller's own field checks surface in file order; `text` skips reading when the caller has it."""
    path = Path(path)
    if text is None:
        if not path.is_file():
            raise error(path, None, None, "file not found")
        text = path.read_text(encoding="utf-8")
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(path, lineno, None, f"malformed JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(record, dict):
            raise error(path, lineno, None, f"expected a JSON object, got {type(record).__name__}")
        yield lineno, record
