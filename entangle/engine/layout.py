"""Which token of a forward pass belongs to which position group, published by the Runner while the pass runs.

Position-aware interventions (group LEACE) read it, so they act on the same tokens whether a prompt runs whole or
as a shared prefix plus suffix. Groups: the judged sentence's tokens split by the stimuli's recorded spans
(`context` outside them), the template tokens after the sentence, and the prompt's `last` token; tokens before the
sentence (BOS, a chat header) belong to no group and are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property

import torch
from jaxtyping import Bool

from entangle.engine.tokens import Encoded

TOKEN_GROUPS: tuple[str, ...] = ("context", "act", "outcome", "violation", "template", "last")
"""Position groups of a prompt: judged-sentence tokens outside the spans, the three spans, template, last token."""
SPAN_GROUPS: tuple[str, ...] = ("violation", "act", "outcome")
"""Groups read from the stimuli's recorded spans (v2); a token touching two spans goes to the first listed."""


def token_groups(enc: Encoded) -> list[str | None]:
    """The group of every token of one encoded prompt (None before the judged sentence).

    The final token is `last` only when it follows the judged sentence (a prompt that is just a sentence, such as a
    neutral text, has no template and no `last` group).
    """
    n = len(enc.ids)
    out: list[str | None] = [None] * n
    for p in range(enc.judged_lo, enc.judged_hi):
        out[p] = "context"
    for name in reversed(SPAN_GROUPS):
        lo, hi = enc.spans.get(name, (0, 0))
        for p in range(max(lo, enc.judged_lo), min(hi, enc.judged_hi)):
            out[p] = name
    for p in range(enc.judged_hi, n):
        out[p] = "last" if p == n - 1 else "template"
    return out


@dataclass(frozen=True)
class Layout:
    """Token groups of one forward pass: row b holds tokens [starts[b], stops[b]) of prompt `rows[b]`, left-padded
    by `pads[b]` to `width` columns. Masks are built on first use, so a pass nobody reads costs nothing."""

    encoded: tuple[Encoded, ...]
    rows: tuple[int, ...]
    pads: tuple[int, ...]
    starts: tuple[int, ...]
    stops: tuple[int, ...]
    width: int

    @cached_property
    def masks(self) -> dict[str, Bool[torch.Tensor, "b t"]]:
        """Group name -> [b, t] boolean mask over this pass's token columns (only groups present)."""
        out: dict[str, torch.Tensor] = {}
        for b, enc in enumerate(self.encoded):
            groups = token_groups(enc)
            for p in range(self.starts[b], self.stops[b]):
                g = groups[p]
                if g is not None:
                    if g not in out:
                        out[g] = torch.zeros((len(self.encoded), self.width), dtype=torch.bool)
                    out[g][b, self.pads[b] + p - self.starts[b]] = True
        return out

    def mask(self, groups: Sequence[str]) -> Bool[torch.Tensor, "b t"]:
        """Union of the masks of `groups` (all False where none is present)."""
        m = torch.zeros((len(self.encoded), self.width), dtype=torch.bool)
        for g in groups:
            if g in self.masks:
                m |= self.masks[g]
        return m


def layout(encoded: Sequence[Encoded], rows: Sequence[int], pads: Sequence[int], width: int,
           part: str = "whole") -> Layout:
    """The layout of a pass over `encoded` prompts: `part` is `whole`, `prefix` (through the judged sentence) or
    `suffix` (the rest)."""
    if part not in ("whole", "prefix", "suffix"):
        raise ValueError(f"part must be whole, prefix or suffix, got {part!r}")
    starts = tuple(e.split if part == "suffix" else 0 for e in encoded)
    stops = tuple(e.split if part == "prefix" else len(e.ids) for e in encoded)
    return Layout(tuple(encoded), tuple(int(r) for r in rows), tuple(int(p) for p in pads), starts, stops, int(width))


_CURRENT: ContextVar[Layout | None] = ContextVar("entangle_layout", default=None)


@contextmanager
def published(lay: Layout) -> Iterator[None]:
    """Make `lay` the current layout for the duration of one forward pass."""
    token = _CURRENT.set(lay)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_layout() -> Layout:
    """The layout of the forward pass now running; an error outside the Runner's passes."""
    lay = _CURRENT.get()
    if lay is None:
        raise RuntimeError("this intervention acts on position groups and needs the token layout the Runner "
                           "publishes; run it through Runner.run, measure or text_loss")
    return lay
