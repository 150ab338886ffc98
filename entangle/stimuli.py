"""Stimuli: the factorial item schema, loading with validation, and frame-grouped cross-validation splits."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import GroupKFold

from entangle.files import InputError, jsonl_records
from entangle.schema import DATA_DIR, FACTOR_LEVELS, KINDS

if TYPE_CHECKING:
    import pandas as pd

STIMULI_V1: Path = DATA_DIR / "stimuli" / "factorial.jsonl"
STIMULI_V2: Path = DATA_DIR / "stimuli" / "v2" / "factorial_v2.jsonl"
DEFAULT_STIMULI: Path = STIMULI_V2
"""The shipped default: v2 (confound rules checked, counterbalanced, spans recorded); v1 stays loadable."""
"""The v2 set (issue 8): outcomes that happen to the agent, counterbalanced order, recorded spans."""

_FACTORS: tuple[str, ...] = ("moral", "economic", "grammatical")  # the order of a cell tuple
_STR_FIELDS: tuple[str, ...] = ("id", "frame", "text")
_INT_FIELDS: tuple[str, ...] = ("moral", "economic", "grammatical", "judged_start", "judged_end")
_REQUIRED: tuple[str, ...] = ("id", "frame", "moral", "economic", "grammatical", "text", "judged_start", "judged_end")
COLUMNS: tuple[str, ...] = (*_REQUIRED, "violation")
SPANS: tuple[str, ...] = ("act", "outcome", "violation")
"""Character spans an item may record (v2): the moral act, the economic outcome, the manipulated grammatical word."""
ORDERS: tuple[str, ...] = ("act_first", "outcome_first")
VIOLATION_POSITIONS: tuple[str, ...] = ("before_act", "after_act")
OPTIONAL_COLUMNS: tuple[str, ...] = (*(f"{s}_{end}" for s in SPANS for end in ("start", "end")),
                                     "order", "violation_position", "target")
"""Optional v2 fields (a v1 file has none of them); `to_frame` and the hash include only those that are set."""


class StimulusError(InputError):
    """A stimulus file is invalid; names the file, the 1-based line and the field so the user can fix it."""


@dataclass(frozen=True)
class Item:
    """One stimulus: a text filled at one level of each factor, with the span of the sentence to be judged."""

    id: str
    frame: str
    moral: int
    economic: int
    grammatical: int
    text: str
    judged_start: int
    judged_end: int
    violation: str = ""
    act_start: int | None = None
    act_end: int | None = None
    outcome_start: int | None = None
    outcome_end: int | None = None
    violation_start: int | None = None
    violation_end: int | None = None
    order: str = ""  # "act_first" | "outcome_first" | "" (not recorded)
    violation_position: str = ""  # "before_act" | "after_act" | ""
    target: str = ""  # the person the moral act concerns, as written in the act

    def span(self, name: str) -> tuple[int, int] | None:
        """The [start, end) character span of "act", "outcome" or "violation" in the text, or None if not recorded."""
        if name not in SPANS:
            raise ValueError(f"unknown span {name!r}; expected one of {SPANS}")
        start, end = getattr(self, f"{name}_start"), getattr(self, f"{name}_end")
        return None if start is None else (start, end)

    def span_text(self, name: str) -> str | None:
        """The text of a recorded span ("act", "outcome", "violation"), or None if not recorded."""
        span = self.span(name)
        return None if span is None else self.text[span[0]:span[1]]

    @property
    def judged(self) -> str:
        """The judged sentence, text[judged_start:judged_end] (context before it is not judged)."""
        return self.text[self.judged_start:self.judged_end]

    @property
    def cell(self) -> tuple[int, int, int]:
        """(moral, economic, grammatical): the item's cell of the factorial design."""
        return (self.moral, self.economic, self.grammatical)

    def level(self, kind: str) -> int:
        """The item's level of kind's own factor, i.e. what a judgement of that kind should depend on."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        return int(getattr(self, kind))


def _record(item: Item) -> dict[str, Any]:
    """The item as a dict without unset optional v2 fields, so a v1 item serialises (and hashes) as before."""
    return {k: v for k, v in asdict(item).items() if k not in OPTIONAL_COLUMNS or v not in (None, "")}


def _items_sha256(items: Sequence[Item]) -> str:
    """Hex SHA-256 of a canonical JSON serialisation of the items (order-sensitive, so subsets differ)."""
    payload = json.dumps([_record(it) for it in items], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StimulusSet:
    """An ordered, validated collection of items plus where it came from and a content hash for caching."""

    items: tuple[Item, ...]
    source: str
    sha256: str

    @classmethod
    def from_items(cls, items: Sequence[Item], source: str = "<memory>") -> StimulusSet:
        """Build a set from items, computing the content hash (no validation; use load_stimuli for files)."""
        items = tuple(items)
        return cls(items=items, source=source, sha256=_items_sha256(items))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def frames(self) -> list[str]:
        """Frame names in order of first appearance: the units of resampling and cross-validation."""
        return list(dict.fromkeys(it.frame for it in self.items))

    def subset(self, frames: int | Sequence[str]) -> StimulusSet:
        """The first n frames, or the named frames, with all their items (file order kept, own hash)."""
        available = self.frames()
        if isinstance(frames, bool):
            raise TypeError("frames must be an int or a sequence of frame names")
        if isinstance(frames, int):
            if not 1 <= frames <= len(available):
                raise ValueError(f"subset needs 1..{len(available)} frames, got {frames}")
            keep = set(available[:frames])
        else:
            names = [frames] if isinstance(frames, str) else list(frames)
            unknown = [f for f in names if f not in set(available)]
            if unknown:
                raise ValueError(f"unknown frame(s) {unknown}; the set has {len(available)} frames, "
                                 f"e.g. {available[:3]}")
            if not names:
                raise ValueError("subset needs at least one frame")
            keep = set(names)
        return StimulusSet.from_items([it for it in self.items if it.frame in keep], source=self.source)

    def to_frame(self) -> pd.DataFrame:
        """One row per item with the schema's columns, for analysis and joins with readouts."""
        import pandas as pd  # lazy: importing entangle.stimuli stays fast

        optional = [c for c in OPTIONAL_COLUMNS if any(getattr(it, c) not in (None, "") for it in self.items)]
        return pd.DataFrame([asdict(it) for it in self.items], columns=[*COLUMNS, *optional])


def _decode(path: Path, data: bytes) -> str:
    """The file as text; invalid UTF-8 raises StimulusError naming the line and byte where it occurs."""
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some spreadsheet exports write
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise StimulusError(path, line, None, f"invalid UTF-8 (byte 0x{data[exc.start]:02x} at byte {column} "
                                              "of the line); save the file as UTF-8") from None


def _read_csv(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record) for every data row of a CSV file whose first line is the header (values stay strings)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise StimulusError(path, 1, None, f"malformed CSV header: {exc}") from None
    for name in _REQUIRED:
        if name not in header:
            raise StimulusError(path, 1, name,
                                f"missing column in the CSV header (expected columns: {', '.join(COLUMNS)})")
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:
        raise StimulusError(path, 1, repeated[0], "column appears more than once in the CSV header")
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise StimulusError(path, start, None, f"malformed CSV: {exc}") from None
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise StimulusError(path, start, None, f"row has {len(row)} cells but the header has {len(header)}")
        yield start, dict(zip(header, row, strict=False))


def _as_int(path: Path, line: int, name: str, value: Any) -> int:
    """An integer field's value: ints (or integral floats) in JSON, integer strings in CSV; else StimulusError."""
    if isinstance(value, str):
        s = value.strip()
        try:
            return int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                raise StimulusError(path, line, name, f"expected an integer, got {value!r}") from None
            value = f
    if isinstance(value, bool):
        raise StimulusError(path, line, name, f"expected an integer, got boolean {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise StimulusError(path, line, name, f"expected an integer, got {type(value).__name__} {value!r}")


def _to_item(path: Path, line: int, record: dict[str, Any]) -> Item:
    """Validate one record (fields, types, factor levels, text, judged span) and build its Item."""
    for name in _REQUIRED:
        if record.get(name) is None:
            raise StimulusError(path, line, name, "missing field")
    values: dict[str, Any] = {}
    for name in _STR_FIELDS:
        value = record[name]
        if not isinstance(value, str):
            raise StimulusError(path, line, name, f"expected a string, got {type(value).__name__} {value!r}")
        if not value.strip():
            raise StimulusError(path, line, name, "is empty or whitespace")
        values[name] = value
    for name in _INT_FIELDS:
        values[name] = _as_int(path, line, name, record[name])
    for name in _FACTORS:
        if values[name] not in FACTOR_LEVELS[name]:
            raise StimulusError(path, line, name,
                                f"unknown level {values[name]}; expected one of {FACTOR_LEVELS[name]}")
    text, start, end = values["text"], values["judged_start"], values["judged_end"]
    if not 0 <= start < len(text):
        raise StimulusError(path, line, "judged_start",
                            f"judged span start {start} is outside the text (length {len(text)})")
    if end <= start:
        raise StimulusError(path, line, "judged_end", f"judged span is empty (end {end} <= start {start})")
    if end > len(text):
        raise StimulusError(path, line, "judged_end",
                            f"judged span end {end} is past the end of the text (length {len(text)})")
    if not text[start:end].strip():
        raise StimulusError(path, line, "judged_end", f"judged span [{start}, {end}) holds only whitespace")
    violation = record.get("violation")
    if violation is None:
        violation = ""
    if not isinstance(violation, str):
        raise StimulusError(path, line, "violation", f"expected a string, got {type(violation).__name__}")
    return Item(violation=violation.strip(), **values, **_layout(path, line, record, values))


def _optional(record: dict[str, Any], name: str) -> Any:
    """An optional field's value, None when absent, null or (as CSV writes it) empty."""
    value = record.get(name)
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _layout(path: Path, line: int, record: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Validate the optional v2 fields (spans inside the judged span, act and outcome apart, order and violation
    position from the known sets and agreeing with the spans) and return those that are set."""
    out: dict[str, Any] = {}
    text, j_start, j_end = values["text"], values["judged_start"], values["judged_end"]
    for name in SPANS:
        keys = (f"{name}_start", f"{name}_end")
        given = [k for k in keys if _optional(record, k) is not None]
        if len(given) == 1:
            raise StimulusError(path, line, next(k for k in keys if k not in given),
                                f"missing field ({given[0]} is given; a span needs both ends)")
        if given:
            start, end = (_as_int(path, line, k, record[k]) for k in keys)
            where = "empty or outside the text" if not 0 <= start < end <= len(text) else \
                "not inside the judged span" if start < j_start or end > j_end else ""
            if where:
                raise StimulusError(path, line, keys[0], f"{name} span [{start}, {end}) is {where} "
                                                         f"(text length {len(text)}, judged [{j_start}, {j_end}))")
            out[keys[0]], out[keys[1]] = start, end
    act, outcome, violation = ((out.get(f"{n}_start"), out.get(f"{n}_end")) for n in SPANS)
    if act[0] is not None and outcome[0] is not None and act[0] < outcome[1] and outcome[0] < act[1]:
        raise StimulusError(path, line, "outcome_start",
                            f"outcome span {list(outcome)} overlaps the act span {list(act)}")
    for name, allowed in (("order", ORDERS), ("violation_position", VIOLATION_POSITIONS), ("target", None)):
        value = _optional(record, name)
        if value is not None and not isinstance(value, str):
            raise StimulusError(path, line, name, f"expected a string, got {type(value).__name__} {value!r}")
        if value is not None and allowed is not None and value.strip() not in allowed:
            raise StimulusError(path, line, name, f"unknown value {value!r}; expected one of {allowed}")
        if value is not None:
            out[name] = value.strip()
    if "order" in out and act[0] is not None and outcome[0] is not None and \
            (act[0] < outcome[0]) != (out["order"] == "act_first"):
        raise StimulusError(path, line, "order", f"order is {out['order']!r} but the act span {list(act)} starts "
                                                 f"{'before' if act[0] < outcome[0] else 'after'} the outcome span")
    if "violation_position" in out and act[0] is not None and violation[0] is not None and \
            not (violation[1] <= act[0] if out["violation_position"] == "before_act" else violation[0] >= act[1]):
        raise StimulusError(path, line, "violation_position",
                            f"violation_position is {out['violation_position']!r} but the violation span "
                            f"{list(violation)} is not there relative to the act span {list(act)}")
    return out


def _cell_name(cell: tuple[int, ...]) -> str:
    """A cell as '(moral=+1, economic=0, grammatical=1)' for error messages."""
    parts = [f"{k}={v}" if k == "grammatical" or v == 0 else f"{k}={v:+d}" for k, v in zip(_FACTORS, cell, strict=True)]
    return "(" + ", ".join(parts) + ")"


def _check_factorial(path: Path, items: list[Item], lines: list[int]) -> None:
    """Every frame holds exactly one item per cell of moral x economic x grammatical; else StimulusError."""
    expected = list(product(*(FACTOR_LEVELS[k] for k in _FACTORS)))
    by_frame: dict[str, dict[tuple[int, int, int], int]] = {}
    first_line: dict[str, int] = {}
    for item, line in zip(items, lines, strict=True):
        cells = by_frame.setdefault(item.frame, {})
        first_line.setdefault(item.frame, line)
        if item.cell in cells:
            raise StimulusError(path, line, "frame",
                                f"frame {item.frame!r} has a second item for cell {_cell_name(item.cell)} "
                                f"(first on line {cells[item.cell]}); a full factorial needs exactly one")
        cells[item.cell] = line
    for frame, cells in by_frame.items():
        missing = [c for c in expected if c not in cells]
        if missing:
            shown = ", ".join(_cell_name(c) for c in missing[:6])
            more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
            raise StimulusError(path, first_line[frame], "frame",
                                f"frame {frame!r} (first item on this line) is missing {len(missing)} of "
                                f"{len(expected)} cells: {shown}{more}; pass require_full_factorial=False "
                                "to load an incomplete design")


def load_stimuli(path: str | Path | None = None, require_full_factorial: bool = True) -> StimulusSet:
    """Load and validate a stimulus file (.jsonl or .csv; None = the shipped set) so bad input fails early."""
    p = Path(path) if path is not None else DEFAULT_STIMULI
    suffix = p.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv"):
        raise StimulusError(p, None, None, f"unsupported file type {suffix or '(none)'!r}; use .jsonl or .csv")
    text = _decode(p, p.read_bytes())
    records = () if not text.strip() else _read_csv(p, text) if suffix == ".csv" else jsonl_records(p, text, StimulusError)
    items: list[Item] = []
    lines: list[int] = []
    first_seen: dict[str, int] = {}
    for line, record in records:
        item = _to_item(p, line, record)
        if item.id in first_seen:
            raise StimulusError(p, line, "id", f"duplicate id {item.id!r} (first on line {first_seen[item.id]})")
        first_seen[item.id] = line
        items.append(item)
        lines.append(line)
    if not items:
        raise StimulusError(p, None, None, "the file holds no stimuli")
    if require_full_factorial:
        _check_factorial(p, items, lines)
    return StimulusSet.from_items(items, source=str(p))


def frame_folds(groups: Sequence[str], n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, test_idx) pairs with every frame wholly in train or in test: lexical overlap cannot leak."""
    groups = np.asarray(groups)
    n_frames = len(np.unique(groups))
    if n_frames < 2:
        raise ValueError(f"grouped cross-validation needs >= 2 frames, got {n_frames}")
    splitter = GroupKFold(n_splits=min(n_splits, n_frames), shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(groups)), groups=groups)]
