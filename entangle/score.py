"""Score any text with an exported direction: its projection per layer and the behavioural readouts per kind.

The prompt templates, position rule and BOS policy come from the direction's sidecar, so a text is scored
exactly as the stimuli were when the direction was fitted (a test checks `score` equals `capture`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from entangle.directions import Direction, check_compatible
from entangle.engine.runner import Runner
from entangle.engine.tokens import group_batches
from entangle.files import InputError
from entangle.models import LoadedModel
from entangle.prompts import CLOZE_TEMPLATES, LIKERT_TEMPLATES, build_prompts
from entangle.stimuli import KINDS, Item

POSITION_RULES = {"last_prompt_token": "last", "judged_sentence_mean": "judged_mean",
                  **{name: name for name in ("last", "judged_mean", "judged_last")}}
"""A direction's recorded position -> the engine's read position (older sidecars use the long names)."""


class TextsError(InputError):
    """A texts file could not be read; names the file, line and field."""


def read_texts(path: str | Path, column: str | None = None) -> list[str]:
    """Texts from a CSV with a named column (`column`, default "text") or a plain file with one text per line.

    CSV is read as CSV, so a quoted field keeps its newlines; the line named in an error is the row's first line.
    """
    path = Path(path)
    if not path.is_file():
        raise TextsError(path, None, None, "file not found" if not path.exists() else "not a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TextsError(path, raw[: exc.start].count(b"\n") + 1, None, f"not valid UTF-8 ({exc.reason})") from None
    if "\x00" in text:
        raise TextsError(path, text[: text.index("\x00")].count("\n") + 1, None, "NUL byte: not a text file")
    if path.suffix.lower() == ".csv" or column is not None:
        out = _csv_texts(path, text, column or "text")
    else:
        out = [line for line in text.splitlines() if line.strip()]
    if not out:
        raise TextsError(path, None, None, "no texts")
    return out


def _csv_texts(path: Path, text: str, column: str) -> list[str]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise TextsError(path, 1, None, "empty file")
        if column not in header:
            raise TextsError(path, 1, column, f"no such column (columns: {', '.join(header)})")
        col, out, start = header.index(column), [], reader.line_num + 1
        for row in reader:
            if row and len(row) != len(header):
                raise TextsError(path, start, None, f"expected {len(header)} fields, found {len(row)}")
            if row and not row[col].strip():
                raise TextsError(path, start, column, "empty text")
            if row:
                out.append(row[col])
            start = reader.line_num + 1
    except csv.Error as exc:
        raise TextsError(path, reader.line_num, None, f"malformed CSV: {exc}") from None
    return out


def _items(texts: list[str]) -> list[Item]:
    return [Item(id=f"text{i:05d}", frame=f"text{i:05d}", moral=0, economic=0, grammatical=1, text=t,
                 judged_start=0, judged_end=len(t)) for i, t in enumerate(texts)]


def score_texts(model: LoadedModel, direction: Direction, texts: list[str], batch_size: int = 32,
                readouts: bool = False) -> pd.DataFrame:
    """Per text: projection onto the direction at each of its layers (mean over the direction's own templates), the
    per-token log-prob of the text, and with `readouts` the judgement readout of every kind (template mean).

    Only what is asked runs: without `readouts`, just the direction's own templates (one of them for a sentence
    position, whose activations every template shares); each text's sentence runs once (shared prefix).

    >>> score_texts(model, load_direction("runs/x/directions/moral_causal.safetensors"), ["She kept the wallet."])  # doctest: +SKIP
    """
    check_compatible(direction, model.info)
    meta = direction.meta
    recorded = meta.get("position", "last_prompt_token")
    if recorded not in POSITION_RULES:
        raise InputError(None, None, "position", f"the direction was read at {recorded!r}, which a free text does not "
                                                 f"have (scorable: {', '.join(sorted(POSITION_RULES))})")
    position = POSITION_RULES[recorded]
    style = meta.get("prompt_style", "cloze")
    pool = [t for t in (CLOZE_TEMPLATES if style == "cloze" else LIKERT_TEMPLATES) if t.kind in KINDS]
    own = [t for t in pool if t.id in set(meta.get("templates") or [])] or [t for t in pool if t.kind == direction.kind]
    used = pool if readouts else (own[:1] if position != "last" else own)
    items = _items(texts)
    prompts = build_prompts(items, used, model.tokenizer)
    runner = Runner(model, prompts, used, bos=meta.get("bos_policy"))
    n, layers = len(prompts), list(direction.layers)
    proj = np.full((n, len(layers)), np.nan)
    readout = np.full(n, np.nan)
    logprob = np.full(n, np.nan)
    for idx in group_batches(runner.encoded, batch_size):
        out = runner.run(idx, [position], layers)
        readout[idx], logprob[idx] = out.readout, out.logprob
        proj[idx] = np.einsum("bld,ld->bl", out.acts[position].astype(np.float64), direction.vectors.astype(np.float64))
    df = pd.DataFrame({"item": [p.item_id for p in prompts], "kind": [p.kind for p in prompts],
                       "template": [p.template_id for p in prompts], "readout": readout, "logprob": logprob})
    result = pd.DataFrame({"text_id": [it.id for it in items], "text": texts})
    mine = np.array([p.template_id in {t.id for t in own} for p in prompts])
    for j, layer in enumerate(layers):
        per_text = pd.Series(proj[mine, j]).groupby(df.item[mine].to_numpy()).mean()
        result[f"projection_L{layer}"] = per_text.reindex(result.text_id).to_numpy()
    if readouts:
        for kind in KINDS:
            sel = df.kind == kind
            result[f"{style}_{kind}"] = df[sel].groupby("item").readout.mean().reindex(result.text_id).to_numpy()
    result["logprob_per_token"] = df.groupby("item").logprob.mean().reindex(result.text_id).to_numpy()
    return result
