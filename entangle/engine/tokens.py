"""Tokenisation with one BOS policy, left-padded batches, and the split of a prompt into shared prefix + suffix.

A prompt's *prefix* is its tokens up to the end of the judged sentence (BOS + the sentence for cloze prompts); the
nine judgement prompts of an item share it, so the engine runs it once and the templates' suffixes against its
key/value cache. The split is taken from the full prompt's own tokenisation, so shared and full runs see the same
tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Int


@dataclass(frozen=True)
class Encoded:
    """Token ids of one prompt, the token span [lo, hi) of its judged sentence, named token spans, and the split."""

    ids: tuple[int, ...]
    judged_lo: int
    judged_hi: int
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def split(self) -> int:
        """Number of leading tokens shared with the item's other prompts (through the judged sentence)."""
        return self.judged_hi

    @property
    def prefix(self) -> tuple[int, ...]:
        return self.ids[: self.split]

    @property
    def suffix(self) -> tuple[int, ...]:
        return self.ids[self.split:]


def _token_span(offsets: Sequence[tuple[int, int]], chars: tuple[int, int]) -> tuple[int, int] | None:
    inside = [i for i, (s, e) in enumerate(offsets) if e > chars[0] and s < chars[1] and e > s]
    return (inside[0], inside[-1] + 1) if inside else None


def encode(tokenizer: Any, text: str, judged: tuple[int, int], bos: str = "prepend",
           spans: dict[str, tuple[int, int]] | None = None) -> Encoded:
    """Tokenise one prompt with the explicit BOS policy and map the judged (and any named) character span to tokens.

    `bos="prepend"` adds the tokenizer's BOS unless the text already starts with it (chat templates do);
    `bos="none"` adds nothing. The HF tokenizer is called without special tokens so this is the only place a BOS
    can enter (TransformerBridge.to_tokens would add one on its own, the HF tokenizer would not).
    """
    if bos not in ("prepend", "none"):
        raise ValueError(f"bos policy must be 'prepend' or 'none', got {bos!r}")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos == "prepend" and bos_id is not None and (not ids or ids[0] != bos_id):
        ids, offsets = [bos_id, *ids], [(0, 0), *offsets]
    judged_tok = _token_span(offsets, judged)
    if judged_tok is None:
        raise ValueError(f"judged span {judged} covers no token of prompt {text[:60]!r}")
    named = {}
    for name, chars in (spans or {}).items():
        tok = _token_span(offsets, chars)
        if tok is not None:
            named[name] = tok
    return Encoded(tuple(ids), judged_tok[0], judged_tok[1], named)


def collate(rows: Sequence[Sequence[int]], pad_id: int, offset: Sequence[int] | None = None
            ) -> tuple[Int[torch.Tensor, "b t"], Int[torch.Tensor, "b t"], Int[torch.Tensor, "b t"], np.ndarray]:
    """Left-pad token rows: ids, attention mask, position ids (continuing from `offset[b]` tokens), pad counts."""
    width = max(len(r) for r in rows)
    pads = np.array([width - len(r) for r in rows])
    ids = torch.tensor([[pad_id] * int(p) + list(r) for r, p in zip(rows, pads, strict=True)], dtype=torch.long)
    mask = torch.tensor([[0] * int(p) + [1] * len(r) for r, p in zip(rows, pads, strict=True)], dtype=torch.long)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    if offset is not None:
        pos = pos + torch.as_tensor(np.asarray(offset), dtype=torch.long)[:, None]
    return ids, mask, pos, pads


def make_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Prompt indices grouped into batches of similar length (longest first), so little compute goes on padding."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def group_batches(encoded: Sequence[Encoded], batch_size: int) -> list[list[int]]:
    """Batches of prompt indices in which every prompt's prefix group is whole (shared-prefix runs).

    Prompts with the same prefix tokens form a group; groups are sorted by prefix length (longest first) and packed
    so that a batch holds about `batch_size` prompts; a group is never split across batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, e in enumerate(encoded):
        groups.setdefault(e.prefix, []).append(i)
    ordered = sorted(groups.values(), key=lambda g: (-len(encoded[g[0]].prefix), g[0]))
    batches: list[list[int]] = []
    current: list[int] = []
    for g in ordered:
        if current and len(current) + len(g) > batch_size:
            batches.append(current)
            current = []
        current = current + g
    if current:
        batches.append(current)
    return batches


def shared_tokens(encoded: Sequence[Encoded]) -> int:
    """Tokens the shared-prefix engine runs: each distinct prefix once plus every suffix."""
    return sum(len(p) for p in {e.prefix for e in encoded}) + sum(len(e.suffix) for e in encoded)
