"""Shared fixtures: the real embedded model (session-scoped) and a tiny random-weight Llama for plumbing tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore")


def n_hooks(bridge) -> int:
    """Forward hooks over the bridge's distinct HookPoints (aliases share one object)."""
    return sum(len(hp.fwd_hooks) for hp in {id(h): h for h in bridge.hook_dict.values()}.values())


@pytest.fixture(scope="session")
def smollm():
    """The real embedded SmolLM2-135M-Instruct (loaded once per session, ~20 s)."""
    from entangle.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A 3-layer, d_model 64 random-weight Llama saved as a local HF directory (SmolLM2's tokenizer)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from entangle.models import _gguf_path

    gguf = _gguf_path("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
    )
    out = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """The tiny random Llama loaded through the real local-directory code path."""
    from entangle.models import load_model

    return load_model(str(tiny_dir))
