"""The value sets of `data/values/`: each value's definition, contrast pairs and anchor panel, validated on load.

One folder per value (`value.json`, `pairs.jsonl`, `anchors.jsonl`; format in data/values/README.md), plus the
queries the steered model answers. Every malformed line raises `InputError(file, line, field, message)`.

    >>> from entangle.values import load_values, load_queries
    >>> care, = load_values(["care"])
    >>> len(care.pairs), sorted({a.intensity for a in care.anchors})
    (48, [-8.0, -4.0, 0.0, 4.0, 8.0])
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entangle.files import InputError, jsonl_records

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
VALUES_DIR = REPO_DATA / "values"
THEORIES = ("moral_foundations", "schwartz", "kinds_of_good")
VALUE_FIELDS = ("id", "name", "theory", "definition", "positive_pole", "negative_pole")
MIN_PAIRS = 40
INTENSITY_RANGE = (-10.0, 10.0)


@dataclass(frozen=True)
class Pair:
    """One situation told twice: acting on the value (`expressing`) and against it (`rejecting`)."""

    id: str
    expressing: str
    rejecting: str


@dataclass(frozen=True)
class Anchor:
    """A response-like text of known intensity in [-10, 10] (negative: rejects the value)."""

    id: str
    intensity: float
    text: str


@dataclass(frozen=True)
class Value:
    """A value with its definition, poles, contrast pairs (>= 40) and anchor panel."""

    id: str
    name: str
    theory: str
    definition: str
    positive_pole: str
    negative_pole: str
    pairs: tuple[Pair, ...]
    anchors: tuple[Anchor, ...]

    def with_anchors(self, anchors: Sequence[Anchor]) -> Value:
        """The same value with another anchor panel (e.g. one imported from VALUEFLOW's few-shot file)."""
        return Value(self.id, self.name, self.theory, self.definition, self.positive_pole, self.negative_pole,
                     self.pairs, tuple(anchors))


def _text(obj: dict[str, Any], key: str, path: Path, line: int | None) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v.strip():
        raise InputError(path, line, key, "missing or not a non-empty string")
    return v.strip()


def _unique(path: Path, rows: list[tuple[int, str]]) -> None:
    seen: set[str] = set()
    for line, key in rows:
        if key in seen:
            raise InputError(path, line, "id", f"duplicate id {key!r}")
        seen.add(key)


def load_pairs(path: Path, min_pairs: int = MIN_PAIRS) -> tuple[Pair, ...]:
    """Contrast pairs from a JSONL file (`id`, `expressing`, `rejecting`), at least `min_pairs` of them."""
    rows = list(jsonl_records(path))
    pairs = tuple(Pair(_text(o, "id", path, i), _text(o, "expressing", path, i), _text(o, "rejecting", path, i))
                  for i, o in rows)
    _unique(path, [(i, p.id) for (i, _), p in zip(rows, pairs, strict=True)])
    if len(pairs) < min_pairs:
        raise InputError(path, None, None, f"{len(pairs)} pairs; a value needs at least {min_pairs}")
    return pairs


def check_anchor_panel(anchors: Sequence[Anchor], path: Path | None = None) -> None:
    """An anchor panel needs intensities in [-10, 10] and at least two distinct levels (one below, one above 0)."""
    if not anchors:
        raise InputError(path, None, None, "no anchors")
    levels = {a.intensity for a in anchors}
    if len(levels) < 2 or min(levels) >= 0 or max(levels) <= 0:
        raise InputError(path, None, "intensity", f"anchors need levels on both sides of 0, got {sorted(levels)}")


def load_anchors(path: Path) -> tuple[Anchor, ...]:
    """Anchor panel from a JSONL file (`id`, `intensity` in [-10, 10], `text`)."""
    rows = list(jsonl_records(path))
    out = []
    lo, hi = INTENSITY_RANGE
    for i, o in rows:
        x = o.get("intensity")
        if isinstance(x, bool) or not isinstance(x, int | float) or not lo <= float(x) <= hi:
            raise InputError(path, i, "intensity", f"must be a number in [{lo:g}, {hi:g}], got {x!r}")
        out.append(Anchor(_text(o, "id", path, i), float(x), _text(o, "text", path, i)))
    _unique(path, [(i, a.id) for (i, _), a in zip(rows, out, strict=True)])
    check_anchor_panel(out, path)
    return tuple(out)


def load_value(folder: Path) -> Value:
    """One value folder: value.json, pairs.jsonl, anchors.jsonl."""
    vpath = folder / "value.json"
    if not vpath.is_file():
        raise InputError(vpath, None, None, "file not found")
    try:
        meta = json.loads(vpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(vpath, exc.lineno, None, f"malformed JSON: {exc.msg}") from None
    if not isinstance(meta, dict):
        raise InputError(vpath, 1, None, "expected a JSON object")
    f = {k: _text(meta, k, vpath, None) for k in VALUE_FIELDS}
    if not re.fullmatch(r"[a-z_]+", f["id"]) or f["id"] != folder.name:
        raise InputError(vpath, None, "id", f"must be [a-z_]+ and equal the folder name {folder.name!r}")
    if f["theory"] not in THEORIES:
        raise InputError(vpath, None, "theory", f"{f['theory']!r} is not one of {', '.join(THEORIES)}")
    return Value(**f, pairs=load_pairs(folder / "pairs.jsonl"), anchors=load_anchors(folder / "anchors.jsonl"))


def value_ids(root: Path = VALUES_DIR) -> list[str]:
    """Ids of every value folder under `root`, sorted."""
    return sorted(p.parent.name for p in Path(root).glob("*/value.json"))


def load_values(ids: Sequence[str] | None = None, root: str | Path = VALUES_DIR) -> list[Value]:
    """The values named in `ids` (all under `root` when None), in the order given."""
    root = Path(root)
    known = value_ids(root)
    ids = known if ids is None else list(ids)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise InputError(root, None, "values", f"unknown value(s) {unknown}; known: {', '.join(known)}")
    return [load_value(root / i) for i in ids]


def load_queries(path: str | Path = VALUES_DIR / "queries.jsonl") -> list[tuple[str, str]]:
    """(id, text) of the everyday queries the steered model answers."""
    path = Path(path)
    rows = list(jsonl_records(path))
    out = [(_text(o, "id", path, i), _text(o, "text", path, i)) for i, o in rows]
    _unique(path, [(i, q[0]) for (i, _), q in zip(rows, out, strict=True)])
    if not out:
        raise InputError(path, None, None, "no queries")
    return out
