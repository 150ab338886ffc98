"""Judgement prompts for each kind of good: cloze templates (any model) and chat Likert templates (chat models).

A cloze prompt is the item text followed by a kind-specific continuation; the readout is
log p(positive word) - log p(negative word) at the next token. A Likert prompt asks, in the model's chat
format, for a 1-7 rating; the readout is the expected digit. Every prompt records the character span of the
judged sentence, so capture can average activations over it and score its per-token log-probability.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from entangle.stimuli import KINDS, Item

STYLES = ("cloze", "likert")
TEXT_STYLE = "text"  # plain text, scored only for its per-token log-probability (collateral-damage checks)


@dataclass(frozen=True)
class Template:
    """One judgement template: `text` contains `{text}`; cloze templates name a positive/negative answer word."""

    id: str
    kind: str
    style: str
    text: str
    positive: str = ""
    negative: str = ""


CLOZE_TEMPLATES: tuple[Template, ...] = (
    Template("moral.c1", "moral", "cloze", "{text} Morally, what they did was", " good", " bad"),
    Template("moral.c2", "moral", "cloze", "{text} From an ethical point of view, this behaviour was", " good", " bad"),
    Template("moral.c3", "moral", "cloze", "{text} Was it the right thing to do? Morally, it was", " right", " wrong"),
    Template("grammatical.c1", "grammatical", "cloze", "{text} Grammatically, the sentence above is", " correct", " incorrect"),
    Template("grammatical.c2", "grammatical", "cloze", "{text} As a piece of English grammar, that sentence is", " good", " bad"),
    Template("grammatical.c3", "grammatical", "cloze", "{text} Judged only on its grammar, the sentence is", " fine", " wrong"),
    Template("economic.c1", "economic", "cloze", "{text} Financially, the day turned out", " well", " badly"),
    Template("economic.c2", "economic", "cloze", "{text} For their bank balance, the outcome was", " good", " bad"),
    Template("economic.c3", "economic", "cloze", "{text} In terms of money alone, the result for them was", " good", " bad"),
)

_LIKERT_QUESTION = (
    "Read the sentence and rate {what}, from 1 ({low}) to 7 ({high}). Answer with a single digit.\n\nSentence: {{text}}"
)
LIKERT_TEMPLATES: tuple[Template, ...] = (
    Template("moral.l1", "moral", "likert", _LIKERT_QUESTION.format(
        what="how morally good the person's behaviour is", low="very bad", high="very good")),
    Template("grammatical.l1", "grammatical", "likert", _LIKERT_QUESTION.format(
        what="how grammatically correct the sentence is", low="very ungrammatical", high="perfectly grammatical")),
    Template("economic.l1", "economic", "likert", _LIKERT_QUESTION.format(
        what="how good the financial outcome is for the person", low="very bad", high="very good")),
)
LIKERT_DIGITS: tuple[str, ...] = tuple(str(i) for i in range(1, 8))
TEXT_TEMPLATE = Template("text", TEXT_STYLE, TEXT_STYLE, "{text}")


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its text, where the judged sentence sits in it, and which item/kind/template it is."""

    item_id: str
    frame: str
    kind: str
    template_id: str
    style: str
    text: str
    judged_start: int
    judged_end: int
    moral: int
    economic: int
    grammatical: int
    spans: tuple[tuple[str, int, int], ...] = ()  # (name, start, end) character spans in `text` (act, outcome, ...)

    def to_dict(self) -> dict[str, Any]:
        """The prompt's fields without its text and spans (the per-prompt table stored beside activations)."""
        d = asdict(self)
        d.pop("spans")
        return d

    def span_dict(self) -> dict[str, tuple[int, int]]:
        return {name: (start, end) for name, start, end in self.spans}


def templates(style: str = "cloze", kinds: Sequence[str] = KINDS, per_kind: int | None = None) -> list[Template]:
    """The built-in templates of one style for the given kinds (optionally only the first `per_kind` of each)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    pool = CLOZE_TEMPLATES if style == "cloze" else LIKERT_TEMPLATES
    out: list[Template] = []
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        mine = [t for t in pool if t.kind == kind]
        out.extend(mine[:per_kind] if per_kind else mine)
    return out


def render(item: Item, template: Template, tokenizer: Any = None) -> Prompt:
    """Fill a template with an item; Likert prompts go through the tokenizer's chat template."""
    body = template.text.format(text=item.text)
    offset = template.text.index("{text}")
    if template.style == "likert":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"template {template.id} needs a chat model (tokenizer with a chat template)")
        chat = tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                             add_generation_prompt=True)
        offset = chat.index(body) + offset
        body = chat
    spans = tuple((name, offset + s[0], offset + s[1]) for name in ITEM_SPANS
                  if (s := _item_span(item, name)) is not None)
    return Prompt(
        item_id=item.id, frame=item.frame, kind=template.kind, template_id=template.id, style=template.style,
        text=body, judged_start=offset + item.judged_start, judged_end=offset + item.judged_end,
        moral=item.moral, economic=item.economic, grammatical=item.grammatical, spans=spans,
    )


ITEM_SPANS = ("act", "outcome", "violation")
"""Named character spans an item may carry (stimuli v2); prompts shift them into prompt coordinates."""


def _item_span(item: Item, name: str) -> tuple[int, int] | None:
    span = getattr(item, "span", None)
    return span(name) if callable(span) else None


def build_prompts(items: Iterable[Item], tmpls: Sequence[Template], tokenizer: Any = None) -> list[Prompt]:
    """Every item under every template, item-major so one item's prompts sit together."""
    return [render(item, t, tokenizer) for item in items for t in tmpls]


def answer_token_ids(tokenizer: Any, tmpls: Sequence[Template]) -> dict[str, tuple[int, int]]:
    """Token ids of each cloze template's (positive, negative) answer; a multi-token answer is an error."""
    out: dict[str, tuple[int, int]] = {}
    for t in tmpls:
        if t.style != "cloze":
            continue
        ids = []
        for word in (t.positive, t.negative):
            toks = tokenizer(word, add_special_tokens=False).input_ids
            if len(toks) != 1:
                raise ValueError(f"template {t.id}: answer {word!r} is {len(toks)} tokens for this tokenizer; "
                                 "cloze answers must be single tokens")
            ids.append(toks[0])
        out[t.id] = (ids[0], ids[1])
    return out


def likert_digit_ids(tokenizer: Any) -> list[int]:
    """Token ids of the digits 1..7 as the first token of an assistant answer."""
    ids = []
    for d in LIKERT_DIGITS:
        toks = tokenizer(d, add_special_tokens=False).input_ids
        if len(toks) != 1:
            raise ValueError(f"digit {d!r} is not a single token for this tokenizer; Likert readout unavailable")
        ids.append(toks[0])
    return ids


def text_prompts(texts: Iterable[str]) -> list[Prompt]:
    """Plain texts as prompts (template TEXT_TEMPLATE) whose whole text is the judged span, for per-token loss."""
    out = []
    for i, text in enumerate(t for t in texts if t.strip()):
        out.append(Prompt(item_id=f"text{i:04d}", frame=f"text{i:04d}", kind=TEXT_STYLE, template_id=TEXT_TEMPLATE.id,
                          style=TEXT_STYLE, text=text, judged_start=0, judged_end=len(text), moral=0, economic=0,
                          grammatical=1))
    return out
