"""The texts a rater sees besides the stimuli: one question per kind, practice sentences, attention checks.

They live in `data/survey/materials.json` so a lab can translate or reword them without touching code; the file is
validated when the server starts, and every problem is an InputError naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from entangle.files import InputError
from entangle.schema import DATA_DIR, KINDS

DEFAULT_MATERIALS: Path = DATA_DIR / "survey" / "materials.json"
SCALE: tuple[int, ...] = tuple(range(1, 8))
"""The rating scale, 1..7, for every kind, every check and the importer."""
MAX_TEXT = 600


@dataclass(frozen=True)
class Question:
    """The one judgement question of a kind, with the scale's end labels and the kind's instructions."""

    kind: str
    label: str
    question: str
    low: str
    high: str
    instructions: str


@dataclass(frozen=True)
class Check:
    """An attention check with a known answer range: a catch item, or the instructed response (min == max)."""

    id: str
    trial: str  # "catch" | "instructed"
    kind: str
    text: str
    min: int
    max: int
    question: str | None = None  # replaces the kind's question (instructed response)


@dataclass(frozen=True)
class Materials:
    """Everything from materials.json, validated."""

    questions: dict[str, Question]
    practice: dict[str, tuple[str, ...]]
    catch: dict[str, tuple[Check, ...]]
    instructed: dict[str, Check]
    source: str

    def extra_trials(self) -> int:
        """Practice and attention-check screens a participant sees besides the items (the most over kinds)."""
        return max(len(self.practice[k]) + len(self.catch[k]) + 1 for k in self.questions)


def _text(path: Path, obj: dict, key: str, where: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise InputError(path, None, f"{where}.{key}", f"expected a non-empty text of at most {MAX_TEXT} characters")
    return value.strip()


def _rating(path: Path, obj: dict, key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value not in SCALE:
        raise InputError(path, None, f"{where}.{key}", f"expected an integer rating 1..7, got {value!r}")
    return value


def load_materials(path: str | Path | None = None) -> Materials:
    """Read and validate the study texts (default: the shipped `data/survey/materials.json`)."""
    path = Path(path) if path is not None else DEFAULT_MATERIALS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, None, None, "file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, None, f"malformed JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InputError(path, 1, None, "expected a JSON object")
    for section in ("kinds", "practice", "catch", "instructed"):
        if not isinstance(data.get(section), dict):
            raise InputError(path, None, section, "missing section (expected an object)")
    questions, practice, catch, instructed = {}, {}, {}, {}
    ins = data["instructed"]
    for kind in KINDS:
        q = data["kinds"].get(kind)
        questions[kind] = Question(kind, *(_text(path, q, k, f"kinds.{kind}")
                                           for k in ("label", "question", "low", "high", "instructions")))
        texts = data["practice"].get(kind)
        if not isinstance(texts, list) or not texts:
            raise InputError(path, None, f"practice.{kind}", "expected a non-empty list of sentences")
        practice[kind] = tuple(_text(path, {"t": t}, "t", f"practice.{kind}[{i}]") for i, t in enumerate(texts))
        checks = data["catch"].get(kind)
        if not isinstance(checks, list) or not checks:
            raise InputError(path, None, f"catch.{kind}", "expected a non-empty list of catch items")
        catch[kind] = tuple(
            Check(_text(path, c, "id", f"catch.{kind}[{i}]"), "catch", kind, _text(path, c, "text", f"catch.{kind}[{i}]"),
                  _rating(path, c, "min", f"catch.{kind}[{i}]"), _rating(path, c, "max", f"catch.{kind}[{i}]"))
            for i, c in enumerate(checks)
        )
        bad = next((c for c in catch[kind] if c.min > c.max), None)
        if bad is not None:
            raise InputError(path, None, f"catch.{kind}", f"{bad.id}: min is larger than max")
        answer = _rating(path, ins, "answer", "instructed")
        question = _text(path, ins, "question", "instructed")
        if "{answer}" not in question:
            raise InputError(path, None, "instructed.question", "must contain {answer}, where the number goes")
        instructed[kind] = Check(_text(path, ins, "id", "instructed"), "instructed", kind,
                                 _text(path, ins, "text", "instructed"), answer, answer,
                                 question.replace("{answer}", str(answer)))
    return Materials(questions, practice, catch, instructed, str(path))
