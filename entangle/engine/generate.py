"""Short responses from the model, batched, with an optional intervention (steering) active while it writes.

Greedy by default; `temperature > 0` samples with a seeded generator so a run is reproducible. Chat models get their
chat template (the prompt becomes the user turn); base models continue the prompt as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from entangle.engine.tokens import collate, encode, make_batches
from entangle.models import LoadedModel


def chat_text(model: LoadedModel, prompt: str, system: str | None = None) -> str:
    """The prompt as the model will see it: wrapped in the chat template for chat models, unchanged otherwise."""
    tok = model.tokenizer
    if not (model.info.chat and getattr(tok, "chat_template", None)):
        return prompt if system is None else f"{system}\n\n{prompt}"
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


@torch.inference_mode()
def generate(model: LoadedModel, prompts: Sequence[str], *, max_new_tokens: int = 40, batch_size: int = 16,
             intervention: Callable[[], contextlib.AbstractContextManager] | None = None,
             temperature: float = 0.0, seed: int = 0, system: str | None = None, chat: bool = True) -> list[str]:
    """One response per prompt (new text only, stripped), written under `intervention` if given.

    >>> generate(model, ["How should I spend a free Saturday?"], max_new_tokens=30)  # doctest: +SKIP
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    tok = model.tokenizer
    texts = [chat_text(model, p, system) if chat else p for p in prompts]
    enc = [encode(tok, t, (0, len(t)), model.info.bos_policy) for t in texts]
    dev = next(model.hf_model.parameters()).device
    out: list[str] = [""] * len(prompts)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    eos = {i for i in [tok.eos_token_id, getattr(tok, "convert_tokens_to_ids", lambda _: None)("<|im_end|>")]
           if isinstance(i, int) and i >= 0}
    ctx = intervention() if intervention is not None else contextlib.nullcontext()
    with ctx:
        for idx in make_batches([len(e.ids) for e in enc], batch_size):
            ids, mask, pos, _ = collate([enc[i].ids for i in idx], tok.pad_token_id)
            ids, mask, pos = ids.to(dev), mask.to(dev), pos.to(dev)
            logits, past = model.bridge(ids, attention_mask=mask, position_ids=pos, return_type="logits_and_cache",
                                        use_cache=True, logits_to_keep=1)
            done = torch.zeros(len(idx), dtype=torch.bool, device=dev)
            new: list[list[int]] = [[] for _ in idx]
            for _ in range(max_new_tokens):
                last = logits[:, -1].float()
                if temperature > 0:
                    probs = torch.softmax(last / temperature, dim=-1).cpu()
                    nxt = torch.multinomial(probs, 1, generator=gen)[:, 0].to(dev)
                else:
                    nxt = last.argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, tok.pad_token_id), nxt)
                for b, t in enumerate(nxt.tolist()):
                    if not done[b]:
                        if t in eos:
                            done[b] = True
                        else:
                            new[b].append(t)
                if bool(done.all()):
                    break
                mask = torch.cat([mask, (~done).long()[:, None]], dim=1)
                pos = pos[:, -1:] + 1
                logits, past = model.bridge(nxt[:, None], attention_mask=mask, position_ids=pos, past_key_values=past,
                                            return_type="logits_and_cache", logits_to_keep=1)
            for b, i in enumerate(idx):
                out[i] = tok.decode(new[b], skip_special_tokens=True).strip()
    return out
