"""Stimuli: the shipped factorial set, validation errors (file, line, field), CSV/JSONL parity, subsets, folds."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter, defaultdict
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from entangle.stimuli import (
    FACTOR_LEVELS,
    KINDS,
    STIMULI_V1,
    Item,
    StimulusError,
    StimulusSet,
    frame_folds,
    load_stimuli,
)

BUILD_SCRIPT = STIMULI_V1.parent / "build_stimuli.py"
ALL_CELLS = set(product(FACTOR_LEVELS["moral"], FACTOR_LEVELS["economic"], FACTOR_LEVELS["grammatical"]))


@pytest.fixture(scope="module")
def stim() -> StimulusSet:
    return load_stimuli(STIMULI_V1)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    """The shipped file's records, for building bad inputs."""
    return [json.loads(line) for line in STIMULI_V1.read_text(encoding="utf-8").splitlines()]


def _cells(stim: StimulusSet) -> dict[str, dict[tuple[int, int, int], Item]]:
    out: dict[str, dict[tuple[int, int, int], Item]] = defaultdict(dict)
    for it in stim:
        out[it.frame][it.cell] = it
    return out


def _parts(text: str) -> tuple[str, str, str]:
    """Shipped items are '<context>, <Name act>, and <when pronoun outcome>.': split into the three slots."""
    context, rest = text.split(", ", 1)
    agent_act, outcome = rest.rsplit(", and ", 1)
    return context, agent_act, outcome


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the shipped set


def test_shipped_set_is_a_full_factorial(stim):
    assert len(stim) == 864
    frames = stim.frames()
    assert len(frames) == 48 and len(set(frames)) == 48
    assert len({it.id for it in stim}) == 864
    for frame, cells in _cells(stim).items():
        assert set(cells) == ALL_CELLS, frame
    for kind in ("moral", "economic", "grammatical"):
        assert Counter(getattr(it, kind) for it in stim).keys() == set(FACTOR_LEVELS[kind])
    assert stim.source == str(STIMULI_V1)
    assert len(stim.sha256) == 64


def test_shipped_items_are_short_and_judged_whole(stim):
    for it in stim:
        assert (it.judged_start, it.judged_end) == (0, len(it.text))
        assert it.judged == it.text
        assert len(it.text.split()) <= 24, it.text


def test_violation_kind_is_constant_within_a_frame_and_balanced(stim):
    by_frame = defaultdict(set)
    for it in stim:
        by_frame[it.frame].add(it.violation)
    assert all(len(v) == 1 and next(iter(v)) for v in by_frame.values())
    per_kind = Counter(next(iter(v)) for v in by_frame.values())
    assert len(per_kind) >= 3
    assert set(per_kind.values()) == {12}


def test_grammatical_levels_differ_in_exactly_one_word(stim):
    for frame, cells in _cells(stim).items():
        swaps = set()
        for m, e in product(FACTOR_LEVELS["moral"], FACTOR_LEVELS["economic"]):
            ok, bad = cells[m, e, 1].text.split(), cells[m, e, 0].text.split()
            assert len(ok) == len(bad)
            diff = [(a, b) for a, b in zip(ok, bad, strict=True) if a != b]
            assert len(diff) == 1, (frame, diff)
            swaps.add(diff[0])
            # the manipulated word sits in the neutral context clause, not in the act or the outcome
            assert _parts(cells[m, e, 1].text)[1:] == _parts(cells[m, e, 0].text)[1:]
        assert len(swaps) == 1, (frame, swaps)  # the same violation at every moral and economic level


def test_moral_levels_differ_only_in_the_act(stim):
    for frame, cells in _cells(stim).items():
        for e, g in product(FACTOR_LEVELS["economic"], FACTOR_LEVELS["grammatical"]):
            parts = [_parts(cells[m, e, g].text) for m in FACTOR_LEVELS["moral"]]
            assert len({(p[0], p[2]) for p in parts}) == 1, frame
            assert len({p[1] for p in parts}) == 3, frame
            names = {p[1].split()[0] for p in parts}
            assert len(names) == 1, frame  # the agent stays; only the act after the name changes
            lengths = [len(p[1].split()) for p in parts]
            assert max(lengths) - min(lengths) <= 2, (frame, lengths)


def test_economic_levels_differ_only_in_the_outcome(stim):
    for frame, cells in _cells(stim).items():
        for m, g in product(FACTOR_LEVELS["moral"], FACTOR_LEVELS["grammatical"]):
            parts = {e: _parts(cells[m, e, g].text) for e in FACTOR_LEVELS["economic"]}
            assert len({(p[0], p[1]) for p in parts.values()}) == 1, frame
            assert "$" in parts[1][2] and "$" in parts[-1][2] and "$" not in parts[0][2], frame
            assert "$" not in parts[1][1]  # the act never involves money


def test_no_two_frames_share_an_act(stim):
    acts = {}
    for frame, cells in _cells(stim).items():
        for m in FACTOR_LEVELS["moral"]:
            act = _parts(cells[m, 0, 1].text)[1].split(" ", 1)[1]
            assert act not in acts, (frame, acts.get(act))
            acts[act] = frame


def test_build_script_reproduces_the_shipped_file(monkeypatch):
    spec = importlib.util.spec_from_file_location("build_stimuli", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "build_stimuli", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    built = module.build()
    module.check(built)
    expected = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in built)
    assert STIMULI_V1.read_text(encoding="utf-8") == expected
    assert list(built[0]) == ["id", "frame", "moral", "economic", "grammatical", "text", "judged_start",
                              "judged_end", "violation"]


def test_item_level_and_judged():
    it = Item("x1", "fr", 1, -1, 0, "Context here. The judged one.", 14, 29, "agreement_aux_sg")
    assert it.judged == "The judged one."
    assert [it.level(k) for k in KINDS] == [1, 0, -1]
    assert it.cell == (1, -1, 0)
    with pytest.raises(ValueError):
        it.level("aesthetic")


# ---------------------------------------------------------------- subsets, frames, folds


def test_subset_first_n_and_named(stim):
    sub = stim.subset(4)
    assert sub.frames() == stim.frames()[:4]
    assert len(sub) == 4 * 18
    assert sub.sha256 != stim.sha256
    assert stim.subset(48).sha256 == stim.sha256
    named = stim.subset([stim.frames()[5], stim.frames()[2]])
    assert named.frames() == [stim.frames()[2], stim.frames()[5]]  # file order is kept
    assert named.sha256 not in (stim.sha256, sub.sha256)
    assert stim.subset(stim.frames()[0]).frames() == stim.frames()[:1]
    with pytest.raises(ValueError, match="unknown frame"):
        stim.subset(["no_such_frame"])
    with pytest.raises(ValueError):
        stim.subset(0)
    with pytest.raises(ValueError):
        stim.subset(49)


def test_to_frame(stim):
    df = stim.to_frame()
    assert list(df.columns) == ["id", "frame", "moral", "economic", "grammatical", "text", "judged_start",
                                "judged_end", "violation"]
    assert len(df) == 864
    assert df["id"].tolist() == [it.id for it in stim]


def test_frame_folds_keep_frames_apart(stim):
    groups = np.array([it.frame for it in stim])
    for n_splits, seed in [(5, 0), (4, 3), (100, 1)]:
        folds = frame_folds(groups, n_splits=n_splits, seed=seed)
        seen_test = np.zeros(len(groups), dtype=int)
        for train, test in folds:
            assert not set(groups[train]) & set(groups[test])
            assert len(train) + len(test) == len(groups)
            seen_test[test] += 1
        assert (seen_test == 1).all()
    with pytest.raises(ValueError):
        frame_folds(["only"] * 5)


# ---------------------------------------------------------------- CSV parity and user files


def test_csv_equals_jsonl(stim, tmp_path):
    path = tmp_path / "stimuli.csv"
    stim.to_frame().to_csv(path, index=False)
    from_csv = load_stimuli(path)
    assert from_csv.items == stim.items
    assert from_csv.sha256 == stim.sha256


def test_user_file_with_context_before_the_judged_sentence(tmp_path):
    records = []
    for f, (m, e, g) in product(("a", "b"), sorted(ALL_CELLS)):
        verb = "is" if g else "are"
        context = "It rained. "
        judged = f"The shop {verb} open and act {m} outcome {e}."
        records.append({"id": f"{f}{m}{e}{g}", "frame": f, "moral": m, "economic": e, "grammatical": g,
                        "text": context + judged, "judged_start": len(context),
                        "judged_end": len(context) + len(judged)})  # no violation key: it is optional
    s = load_stimuli(_write_jsonl(tmp_path / "mine.jsonl", records))
    assert len(s) == 36 and s.frames() == ["a", "b"]
    assert all(it.judged.startswith("The shop") and it.violation == "" for it in s)


# ---------------------------------------------------------------- validation errors


def _one_frame(rows: list[dict]) -> list[dict]:
    return [dict(r) for r in rows[:18]]


BAD_VALUES = [
    # (line index to corrupt (0-based), field, new value or "<drop>", expected field in the error)
    (3, "text", "<drop>", "text"),
    (5, "moral", "good", "moral"),
    (5, "moral", True, "moral"),
    (6, "text", 42, "text"),
    (7, "moral", 2, "moral"),
    (7, "economic", -2, "economic"),
    (8, "grammatical", -1, "grammatical"),
    (9, "text", "   ", "text"),
    (10, "judged_end", 10_000, "judged_end"),
    (10, "judged_end", 0, "judged_end"),
    (11, "judged_start", -1, "judged_start"),
    (12, "id", "", "id"),
    (13, "violation", 3, "violation"),
]


@pytest.mark.parametrize(("index", "field", "value", "err_field"), BAD_VALUES)
def test_bad_field_names_line_and_field(rows, tmp_path, index, field, value, err_field):
    records = _one_frame(rows)
    if value == "<drop>":
        del records[index][field]
    else:
        records[index][field] = value
    path = _write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(StimulusError) as info:
        load_stimuli(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), index + 1, err_field)
    assert str(err).startswith(f"{path}:{index + 1}: field '{err_field}': ")


def test_zero_width_judged_span(rows, tmp_path):
    records = _one_frame(rows)
    records[4]["judged_start"] = records[4]["judged_end"] = 5
    with pytest.raises(StimulusError) as info:
        load_stimuli(_write_jsonl(tmp_path / "bad.jsonl", records))
    assert (info.value.line, info.value.field) == (5, "judged_end")
    assert "empty" in str(info.value)


def test_invalid_utf8_names_the_line(rows, tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", _one_frame(rows))
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"While", b"Wh\xffile")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StimulusError) as info:
        load_stimuli(path)
    assert (info.value.line, info.value.field) == (3, None)
    assert "UTF-8" in str(info.value)


def test_malformed_json_names_the_line(rows, tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", _one_frame(rows))
    lines = path.read_text().split("\n")
    lines[1] = lines[1][:-1]  # drop the closing brace
    path.write_text("\n".join(lines))
    with pytest.raises(StimulusError) as info:
        load_stimuli(path)
    assert (info.value.line, info.value.field) == (2, None)
    assert "malformed JSON" in str(info.value)


def test_non_object_json_line(rows, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n[1, 2]\n")
    with pytest.raises(StimulusError) as info:
        load_stimuli(path)
    assert info.value.line == 2


def test_duplicate_id_names_both_lines(rows, tmp_path):
    records = _one_frame(rows)
    records[9]["id"] = records[2]["id"]
    with pytest.raises(StimulusError) as info:
        load_stimuli(_write_jsonl(tmp_path / "bad.jsonl", records))
    assert (info.value.line, info.value.field) == (10, "id")
    assert "line 3" in str(info.value) and records[2]["id"] in str(info.value)


def test_missing_cell_names_frame_cell_and_first_line(rows, tmp_path):
    records = [dict(r) for r in rows[:36]]
    dropped = records.pop(18 + 7)  # a cell of the second frame
    path = _write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(StimulusError) as info:
        load_stimuli(path)
    err = info.value
    assert (err.line, err.field) == (19, "frame")
    msg = str(err)
    assert dropped["frame"] in msg and "missing 1 of 18" in msg
    moral = f"moral={dropped['moral']:+d}" if dropped["moral"] else "moral=0"
    assert moral in msg
    assert f"grammatical={dropped['grammatical']}" in msg
    # the same file loads when an incomplete design is allowed
    assert len(load_stimuli(path, require_full_factorial=False)) == 35


def test_duplicate_cell_in_a_frame(rows, tmp_path):
    records = _one_frame(rows)
    records[5] = {**records[4], "id": "another_id"}
    with pytest.raises(StimulusError) as info:
        load_stimuli(_write_jsonl(tmp_path / "bad.jsonl", records))
    assert (info.value.line, info.value.field) == (6, "frame")
    assert "line 5" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path, content):
    for name in ("empty.jsonl", "empty.csv"):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(StimulusError) as info:
            load_stimuli(path)
        assert info.value.line is None and "no stimuli" in str(info.value)


def test_header_only_csv_is_empty(stim, tmp_path):
    path = tmp_path / "header.csv"
    stim.to_frame().head(0).to_csv(path, index=False)
    with pytest.raises(StimulusError, match="no stimuli"):
        load_stimuli(path)


def test_csv_errors_count_the_header_as_line_1(stim, tmp_path):
    df = stim.subset(1).to_frame()
    df["moral"] = df["moral"].astype(object)
    df.loc[2, "moral"] = "very"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(StimulusError) as info:
        load_stimuli(path)
    assert (info.value.line, info.value.field) == (4, "moral")

    df.drop(columns=["judged_end"]).to_csv(path, index=False)
    with pytest.raises(StimulusError) as info:
        load_stimuli(path)
    assert (info.value.line, info.value.field) == (1, "judged_end")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "stimuli.txt"
    path.write_text("hello\n")
    with pytest.raises(StimulusError, match="unsupported"):
        load_stimuli(path)


def test_error_string_without_line_or_field():
    assert str(StimulusError("a.jsonl", None, None, "boom")) == "a.jsonl: boom"
    assert str(StimulusError("a.jsonl", 3, "moral", "boom")) == "a.jsonl:3: field 'moral': boom"
    assert isinstance(StimulusError("a", 1, None, "x"), ValueError)


def test_neutral_texts():
    path = STIMULI_V1.parent.parent / "neutral" / "neutral_texts.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 60
    assert all(line.strip() == line and line.endswith(".") for line in lines)
    assert len(set(lines)) == 60
    assert not any("$" in line for line in lines)
