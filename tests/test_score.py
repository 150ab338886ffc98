"""Scoring any text with an exported direction equals capturing the same text."""

from __future__ import annotations

import numpy as np
import pytest

from entangle.directions import (
    Direction,
    direction_meta,
    load_direction,
    save_direction,
)
from entangle.engine.capture import capture
from entangle.interventions import random_unit_directions
from entangle.prompts import templates
from entangle.score import TextsError, read_texts, score_texts
from entangle.stimuli import load_stimuli


def test_score_equals_capture_on_the_same_text(tiny, tmp_path):
    stim = load_stimuli().subset(1)
    items = [it for it in stim.items][:4]
    acts = capture(tiny, stim, cache_dir=tmp_path / "cache", batch_size=8, progress=False)
    layers = [1, 3]
    vecs = random_unit_directions(2, tiny.info.d_model, seed=3).astype(np.float32)
    meta = direction_meta(tiny.info, kind="moral", method="logistic", layers=layers, position="last_prompt_token",
                          stimuli_sha256=stim.sha256, cv_metrics=None,
                          templates=[t.id for t in templates("cloze", ["moral"])], extra={"prompt_style": "cloze"})
    path = tmp_path / "moral.safetensors"
    save_direction(Direction(vecs, layers, "moral", "logistic", meta), path)
    scored = score_texts(tiny, load_direction(path), [it.text for it in items], readouts=True)
    only = score_texts(tiny, load_direction(path), [it.text for it in items])  # projections only: own templates
    assert "cloze_economic" not in only.columns
    assert np.allclose(only.filter(like="projection").to_numpy(), scored.filter(like="projection").to_numpy(), atol=1e-5)
    for row, item in zip(scored.itertuples(index=False), items, strict=True):
        sel = acts.rows("moral")
        sel = sel[acts.prompts.item_id.to_numpy()[sel] == item.id]
        for j, layer in enumerate(layers):
            expected = float(np.mean(np.asarray(acts.acts["last"][sel, layer]) @ vecs[j]))
            assert getattr(row, f"projection_L{layer}") == pytest.approx(expected, rel=1e-4, abs=1e-5)
        cached = acts.prompts[(acts.prompts.item_id == item.id)]
        for kind in ("moral", "grammatical", "economic"):
            assert getattr(row, f"cloze_{kind}") == pytest.approx(
                cached[cached.kind == kind].readout.mean(), rel=1e-3, abs=1e-4)


def test_read_texts_formats_and_errors(tmp_path):
    (tmp_path / "a.txt").write_text("one text\n\nanother text\n", encoding="utf-8")
    assert read_texts(tmp_path / "a.txt") == ["one text", "another text"]
    (tmp_path / "b.csv").write_text("id,sentence\n1,Hello there.\n2,Bye.\n", encoding="utf-8")
    assert read_texts(tmp_path / "b.csv", "sentence") == ["Hello there.", "Bye."]
    with pytest.raises(TextsError, match=r"b\.csv:1: field 'text'"):
        read_texts(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("text\nfine\n\"\"\n", encoding="utf-8")
    with pytest.raises(TextsError, match=r"c\.csv:3: field 'text': empty"):
        read_texts(tmp_path / "c.csv")
    (tmp_path / "d.txt").write_bytes(b"ok\nbad \xff byte\n")
    with pytest.raises(TextsError, match=r"d\.txt:2: not valid UTF-8"):
        read_texts(tmp_path / "d.txt")
    with pytest.raises(TextsError, match="not found"):
        read_texts(tmp_path / "missing.txt")
    with pytest.raises(TextsError, match="not a file"):
        read_texts(tmp_path)


def test_read_texts_keeps_newlines_in_quoted_csv_fields(tmp_path):
    (tmp_path / "m.csv").write_text('text,id\n"Dear Sam,\nthank you.",1\nplain,2\n"",3\n', encoding="utf-8")
    with pytest.raises(TextsError, match=r"m\.csv:5: field 'text': empty"):  # the line count sees the quoted newline
        read_texts(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text('text,id\n"Dear Sam,\r\nthank you.",1\nplain,2\n', encoding="utf-8")
    assert read_texts(tmp_path / "m.csv") == ["Dear Sam,\r\nthank you.", "plain"]


def test_texts_error_is_an_input_error(tmp_path):
    from entangle.files import InputError

    (tmp_path / "e.csv").write_text("id\n1\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_texts(tmp_path / "e.csv")
    assert (info.value.line, info.value.field) == (1, "text")
