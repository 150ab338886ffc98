"""The question format and the model's choice: nine allocations as lettered options A-I, the choice distribution
from the option letters' next-token log-probabilities (no sampling), asked under several option orders.

Letter and order bias are controlled by permutations: order 0 is the measure's own order (identity, the *biased*
readout); the others are seeded random orders. Each order's letter distribution is mapped back onto allocations and
averaged over orders (*averaged*: the choice a randomised presentation would elicit; a letter bias becomes a pull
toward the uniform chooser). `prior_corrected` (*debiased*) removes a letter prior shared by all prompts, fitting
log p(letter j | order p, item i) = a[i, allocation at j] + b[j] + c[i, p] (PriDe-style); it recovers a planted
chooser's preference exactly under any letter bias (tests/test_svo_choice.py).

    >>> perms = permutations(3, seed=0)
    >>> lp = choice_logprobs(model, items, perms, system="You are a prosocial person.")  # doctest: +SKIP
    >>> svo_angle(items, prior_corrected(lp, perms)[0])                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float, Int

from entangle.engine import chat_text
from entangle.engine.tokens import collate, encode, make_batches
from entangle.models import LoadedModel
from entangle.studies.svo.measure import N_OPTIONS, Item

LETTERS = "ABCDEFGHI"
INTRO = ("You are dividing money between yourself and another person you do not know and will never meet. "
         "Each option below lists the amount you get, then the amount the other person gets.")
ASK = "Which option do you choose? Answer with its letter only."
Intervention = Callable[[], contextlib.AbstractContextManager]


def permutations(n_perm: int, seed: int = 0) -> Int[np.ndarray, "perm letter"]:
    """Option orders: row p, column j = the allocation shown at letter j; row 0 is the measure's own order."""
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    rng = np.random.default_rng(seed)
    rows = [np.arange(N_OPTIONS)] + [rng.permutation(N_OPTIONS) for _ in range(n_perm - 1)]
    return np.array(rows)


def question(item: Item, order: Sequence[int], goal: str | None = None) -> str:
    """The user turn for one item with its allocations in `order` (lettered A-I), optionally ending with a goal."""
    lines = [f"{LETTERS[j]}) You {item.options[k][0]}, other {item.options[k][1]}" for j, k in enumerate(order)]
    return "\n".join([INTRO, *lines, *([goal] if goal else []), ASK])


def letter_token_ids(model: LoadedModel) -> list[int]:
    """Token ids of the bare letters A-I (the first token an answer starts with after the chat template)."""
    ids = []
    for letter in LETTERS:
        toks = model.tokenizer.encode(letter, add_special_tokens=False)
        if len(toks) != 1:
            raise ValueError(f"option letter {letter!r} is not one token for this tokenizer: {toks}")
        ids.append(toks[0])
    return ids


def prompts(model: LoadedModel, items: Sequence[Item], perms: Int[np.ndarray, "perm letter"], *,
            system: str | None = None, goal: str | None = None) -> list[str]:
    """Chat-formatted prompts, item-major: prompt i * n_perm + p asks item i in order p."""
    return [chat_text(model, question(it, order, goal), system=system) for it in items for order in perms]


def choice_logprobs(model: LoadedModel, items: Sequence[Item], perms: Int[np.ndarray, "perm letter"], *,
                    system: str | None = None, goal: str | None = None, intervention: Intervention | None = None,
                    batch_size: int = 32) -> Float[np.ndarray, "item perm letter"]:
    """log p(letter) over the full vocabulary for every item x order (one forward pass per prompt)."""
    texts = prompts(model, items, perms, system=system, goal=goal)
    lp = shared_prefix_logprobs(model, texts, letter_token_ids(model), batch_size=batch_size, intervention=intervention)
    return lp.reshape(len(items), len(perms), N_OPTIONS)


@torch.inference_mode()
def shared_prefix_logprobs(model: LoadedModel, texts: Sequence[str], token_ids: Sequence[int], *,
                           batch_size: int = 32, intervention: Intervention | None = None) -> Float[np.ndarray, "n k"]:
    """As `engine.next_token_logprobs`, but the texts' common leading tokens (chat template, persona, instructions)
    run once and every text's remaining tokens run against their key/value cache; the intervention acts on both."""
    tok, bridge = model.tokenizer, model.bridge
    enc = [encode(tok, t, (0, len(t)), model.info.bos_policy).ids for t in texts]
    n0 = 0
    while n0 < min(len(e) for e in enc) - 1 and all(e[n0] == enc[0][n0] for e in enc):
        n0 += 1
    dev = next(model.hf_model.parameters()).device
    sel = torch.tensor(list(token_ids), dtype=torch.long, device=dev)
    out = np.empty((len(texts), len(sel)), dtype=np.float64)
    ctx = intervention() if intervention is not None else contextlib.nullcontext()
    with ctx:
        cache = None
        if n0 > 0:
            ones = torch.ones((1, n0), dtype=torch.long, device=dev)
            _, cache = bridge(torch.tensor([enc[0][:n0]], device=dev), attention_mask=ones,
                              position_ids=torch.arange(n0, device=dev)[None], return_type="logits_and_cache",
                              use_cache=True, logits_to_keep=1)
        for idx in make_batches([len(e) - n0 for e in enc], batch_size):
            ids, mask, pos, _ = collate([enc[i][n0:] for i in idx], tok.pad_token_id, offset=[n0] * len(idx))
            kwargs = {}
            if cache is not None:
                past = copy.deepcopy(cache)
                for layer_cache in past.layers:
                    layer_cache.batch_select_indices(torch.zeros(len(idx), dtype=torch.long, device=dev))
                mask = torch.cat([torch.ones((len(idx), n0), dtype=torch.long), mask], dim=1)
                kwargs["past_key_values"] = past
            logits = bridge(ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), logits_to_keep=1,
                            **kwargs)[:, -1].float()
            out[idx] = torch.log_softmax(logits, dim=-1)[:, sel].cpu().numpy()
    return out


def letter_mass(logprobs: Float[np.ndarray, "item perm letter"]) -> Float[np.ndarray, "item perm"]:
    """Probability the answer starts with one of the nine letters at all (format compliance)."""
    return np.exp(logprobs).sum(axis=-1)


def _normalised(logprobs: np.ndarray) -> np.ndarray:
    lp = logprobs - logprobs.max(axis=-1, keepdims=True)
    return lp - np.log(np.exp(lp).sum(axis=-1, keepdims=True))


def allocation_probs(logprobs: Float[np.ndarray, "item perm letter"], perms: Int[np.ndarray, "perm letter"]
                     ) -> Float[np.ndarray, "item perm option"]:
    """The letter distribution (renormalised over A-I) of each order, mapped back onto the item's allocations."""
    p_letter = np.exp(_normalised(np.asarray(logprobs, dtype=np.float64)))
    out = np.empty_like(p_letter)
    for p, order in enumerate(perms):
        out[:, p, order] = p_letter[:, p, :]
    return out


def debias_average(alloc: Float[np.ndarray, "... item perm option"]) -> Float[np.ndarray, "... item option"]:
    """The allocation distribution averaged over option orders (what a randomised presentation elicits)."""
    return alloc.mean(axis=-2)


def prior_corrected(logprobs: Float[np.ndarray, "... item perm letter"], perms: Int[np.ndarray, "... perm letter"],
                    n_iter: int = 100) -> tuple[Float[np.ndarray, "... item option"], Float[np.ndarray, "... letter"]]:
    """The allocation preference with a shared letter prior removed, and that prior (log, mean zero).

    Fits log p[i, p, j] = a[i, perms[p, j]] + b[j] + c[i, p] by backfitting (least squares); `perms` may differ per
    item ([item, perm, letter]) and both arrays may carry leading batch axes (bootstrap draws). Needs >= 2 orders.
    """
    y = _normalised(np.asarray(logprobs, dtype=np.float64))
    perms = np.broadcast_to(np.asarray(perms), y.shape)
    if y.shape[-2] < 2:
        raise ValueError("the letter prior is confounded with the allocations under a single order; use >= 2")
    inv = np.argsort(perms, axis=-1)  # inv[..., k] = the letter at which allocation k is shown
    a = np.zeros(y.shape[:-2] + y.shape[-1:])
    b = np.zeros(y.shape[:-3] + y.shape[-1:])
    c = np.zeros(y.shape[:-1])
    for _ in range(n_iter):
        a_at = np.take_along_axis(np.broadcast_to(a[..., None, :], y.shape), perms, axis=-1)
        c = (y - a_at - b[..., None, None, :]).mean(axis=-1)
        b = (y - a_at - c[..., None]).mean(axis=(-3, -2))
        b = b - b.mean(axis=-1, keepdims=True)
        r = y - b[..., None, None, :] - c[..., None]
        a = np.take_along_axis(r, inv, axis=-1).mean(axis=-2)
    q = np.exp(a - a.max(axis=-1, keepdims=True))
    return q / q.sum(axis=-1, keepdims=True), b
