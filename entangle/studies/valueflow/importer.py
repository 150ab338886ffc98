"""Import VALUEFLOW's few-shot anchor files (from a path the user supplies; nothing of theirs ships with entangle).

Format (read from the public VALUEFLOW repository's `data/prompt/few_shot/*.json`): one JSON object whose keys name
values (e.g. "care-harm", "Benevolence"); each maps intensity-level keys ("-2", "-1", "1", "2") to lists of
`{"text": str, "intensity": number}` with intensities in [-10, 10]. A value of ours matches the key equal to its
id or name, or whose first "-"-separated part is its id (care -> "care-harm"), case-insensitively.

    >>> panels = read_valueflow_anchors("few_shot/mft.json")          # doctest: +SKIP
    >>> care = care.with_anchors(panel_for(care, panels, "few_shot/mft.json"))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from entangle.files import InputError, read_json
from entangle.values import Anchor, Value, check_anchor_panel


def read_valueflow_anchors(path: str | Path) -> dict[str, tuple[Anchor, ...]]:
    """Every value's anchors in a VALUEFLOW few-shot file, keyed as in the file."""
    path = Path(path)
    data = read_json(path)
    out: dict[str, tuple[Anchor, ...]] = {}
    for key, levels in data.items():
        if not isinstance(levels, dict):
            raise InputError(path, None, key, "expected an object of intensity levels")
        anchors = []
        for level, items in levels.items():
            where = f"{key}.{level}"
            if not isinstance(items, list):
                raise InputError(path, None, where, "expected a list of {text, intensity}")
            for j, it in enumerate(items):
                f = f"{where}[{j}]"
                if not isinstance(it, dict) or not isinstance(it.get("text"), str) or not it["text"].strip():
                    raise InputError(path, None, f + ".text", "missing or empty")
                x = it.get("intensity")
                if isinstance(x, bool) or not isinstance(x, int | float) or not -10 <= float(x) <= 10:
                    raise InputError(path, None, f + ".intensity", f"must be a number in [-10, 10], got {x!r}")
                anchors.append(Anchor(f"{key}:{level}:{j}", float(x), it["text"].strip()))
        check_anchor_panel(anchors, path)
        out[str(key)] = tuple(anchors)
    if not out:
        raise InputError(path, None, None, "no values in the file")
    return out


def panel_for(value: Value, panels: dict[str, tuple[Anchor, ...]], path: str | Path) -> tuple[Anchor, ...] | None:
    """The panel in `panels` that belongs to `value` (module docstring's rule), None when none does; two matching
    panels are an error."""
    names = {value.id.lower(), value.name.lower()}
    hits = [k for k in panels if k.lower() in names or k.lower().split("-")[0] == value.id.lower()]
    if not hits:
        return None
    if len(hits) > 1:
        raise InputError(path, None, None, f"{len(hits)} panels match value {value.id!r} "
                         f"({', '.join(hits) or 'none'}); keys: {', '.join(panels)}")
    return panels[hits[0]]
