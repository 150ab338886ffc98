"""Moral minimal pairs and the token positions patching moves between them: groups as contiguous runs, aligned
receiver to source (used by `entangle.interventions.patching`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from entangle.engine.layout import SPAN_GROUPS, TOKEN_GROUPS, token_groups
from entangle.engine.tokens import Encoded
from entangle.stimuli import Item

GROUPS = TOKEN_GROUPS
"""Position groups of a prompt (the engine's token layout): context, the three spans, template, last token."""
EVERYTHING = "all"
"""Pseudo-group: every token of the prompt by absolute position (only for prompts of equal length); a control."""
ALIGNMENT = ("each group is a list of contiguous runs of token positions; receiver and source runs are paired in "
             "order and positions inside a run one by one, so context before the act aligns from the start, context "
             "after it and template/last from the end; a pair enters a cell only if every run has equal length")

Runs = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class MinimalPair:
    """Two items of one frame, economic and grammatical level: `good` (moral +1, the source), `bad` (−1, receiver)."""

    frame: str
    economic: int
    grammatical: int
    good: Item
    bad: Item

    @property
    def id(self) -> str:
        return f"{self.frame}|e{self.economic:+d}|g{self.grammatical}"


def minimal_pairs(items: Iterable[Item]) -> list[MinimalPair]:
    """Every good/bad minimal pair (same frame, economic and grammatical level), in order of the good items."""
    items = list(items)
    bad = {(it.frame, it.economic, it.grammatical): it for it in items if it.moral == -1}
    return [MinimalPair(it.frame, it.economic, it.grammatical, it, bad[key]) for it in items
            if it.moral == 1 and (key := (it.frame, it.economic, it.grammatical)) in bad]



def _runs(positions: Sequence[int]) -> Runs:
    runs: list[list[int]] = []
    for p in positions:
        if runs and runs[-1][-1] == p - 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return tuple(tuple(r) for r in runs)


def position_groups(enc: Encoded, has_spans: bool) -> dict[str, Runs]:
    """Token positions of every group that can be formed in one encoded prompt, as contiguous runs.

    Without recorded spans (v1 stimuli) only `template`, `last` and `all` exist: context is defined as the judged
    sentence outside the act, outcome and violation spans, so it cannot be formed either.
    """
    n = len(enc.ids)
    out: dict[str, Runs] = {"last": ((n - 1,),), EVERYTHING: (tuple(range(n)),)}
    groups = token_groups(enc)
    for name in ("template", *(("context", *SPAN_GROUPS) if has_spans else ())):
        pos = [p for p, g in enumerate(groups) if g == name]
        if pos:
            out[name] = _runs(pos)
    return out


def align(recv: dict[str, Runs], src: dict[str, Runs], group: str) -> tuple[list[int], list[int]] | str:
    """(receiver positions, source positions) of a group ('a+b' = union), or why the pair cannot enter it."""
    rp: list[int] = []
    sp: list[int] = []
    for part in group.split("+"):
        r, s = recv.get(part), src.get(part)
        if r is None or s is None:
            return "missing"
        if len(r) != len(s) or any(len(a) != len(b) for a, b in zip(r, s, strict=True)):
            return "unequal"
        for a, b in zip(r, s, strict=True):
            rp.extend(a)
            sp.extend(b)
    return rp, sp
