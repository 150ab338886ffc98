"""Weight orthogonalisation: remove a direction from every residual write of the model's weights (= all-layer ablation)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from entangle.interventions.hooks import _orthonormal_basis
from entangle.models import LoadedModel

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------------------------------------------
# weight orthogonalisation


_POST_NORMS = ("post_feedforward_layernorm", "pre_feedforward_layernorm", "post_mlp_layernorm", "post_attn_layernorm")


def _unwrap(module: Any) -> Any:
    """The original HF module inside a TransformerBridge component (or the module itself)."""
    while hasattr(module, "_original_component"):
        module = module._original_component
    return module


def _unbridged_state_dict(hf_model: torch.nn.Module) -> dict[str, Tensor]:
    """The HF state dict of a bridged model: bridge wrappers' `._original_component` stripped, first key wins."""
    out: dict[str, Tensor] = {}
    for k, v in hf_model.state_dict(keep_vars=False).items():
        k2 = k.replace("._original_component", "")
        out.setdefault(k2, v)
    return out


def _fresh_hf_copy(hf_model: torch.nn.Module) -> torch.nn.Module:
    """A deep, unbridged copy of a bridged HF causal LM with untied input/output embeddings (original weights)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - older transformers
        no_init_weights = nullcontext  # type: ignore[assignment]
    cfg = copy.deepcopy(hf_model.config)
    cfg.tie_word_embeddings = False
    if hasattr(cfg, "get_text_config") and cfg.get_text_config() is not cfg:
        cfg.get_text_config().tie_word_embeddings = False
    ref = next(hf_model.parameters())
    with no_init_weights(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = type(hf_model)(cfg)
    new = new.to(device=ref.device, dtype=ref.dtype)
    want = new.state_dict()
    src = _unbridged_state_dict(hf_model)
    missing = [k for k in want if k not in src]
    if missing:
        raise RuntimeError(f"cannot rebuild the HF model from the bridge: missing weights {missing[:5]}")
    kept = {src[k].data_ptr() for k in want}
    for k, v in src.items():  # extras the bridge added (e.g. a zero lm_head bias) must be aliases or no-ops
        if k not in want and v.data_ptr() not in kept and v.is_floating_point() and bool((v != 0).any()):
            raise RuntimeError(f"bridge weight {k!r} has no place in the HF model and is not zero")
    new.load_state_dict({k: src[k].detach().clone() for k in want}, strict=True, assign=True)  # one copy, not two
    inp, outp = new.get_input_embeddings(), new.get_output_embeddings()
    if outp is not None and outp.weight.data_ptr() == inp.weight.data_ptr():
        raise RuntimeError("could not untie the output embedding from the input embedding")
    return new.eval()


@torch.no_grad()
def _orthogonalize_inplace(hf: torch.nn.Module, Q: Float[Tensor, "d k"]) -> None:
    """Remove span(Q) from every residual write of a Llama-layout HF model (embedding, o_proj, down_proj)."""
    inner = hf.model
    layers = inner.layers

    def rows(w: Tensor) -> None:  # W_E [vocab, d]: each row is a residual write
        q = Q.to(w.device)
        w64 = w.double()
        w.copy_((w64 - (w64 @ q) @ q.T).to(w.dtype))

    def out_linear(lin: torch.nn.Linear) -> None:  # weight [d_model, in]: columns are residual writes
        q = Q.to(lin.weight.device)
        w64 = lin.weight.double()
        lin.weight.copy_((w64 - q @ (q.T @ w64)).to(lin.weight.dtype))
        if lin.bias is not None:
            b64 = lin.bias.double()
            lin.bias.copy_((b64 - q @ (q.T @ b64)).to(lin.bias.dtype))

    rows(inner.embed_tokens.weight)
    for layer in layers:
        out_linear(layer.self_attn.o_proj)
        out_linear(layer.mlp.down_proj)


def _check_llama_layout(hf: torch.nn.Module) -> None:
    """Raise NotImplementedError unless the model has the Llama residual-write layout without post-norms."""
    inner = getattr(hf, "model", None)
    layers = getattr(inner, "layers", None)
    ok = inner is not None and hasattr(inner, "embed_tokens") and layers is not None and len(layers) > 0
    ok = ok and all(hasattr(_unwrap(l), "self_attn") and hasattr(_unwrap(l), "mlp") for l in layers)
    ok = ok and all(
        hasattr(_unwrap(_unwrap(l).self_attn), "o_proj") and hasattr(_unwrap(_unwrap(l).mlp), "down_proj")
        for l in layers
    )
    if not ok:
        raise NotImplementedError(
            f"weight orthogonalisation supports the Llama layout (model.embed_tokens, layers[i].self_attn.o_proj, "
            f"layers[i].mlp.down_proj); {type(hf).__name__} differs. Use the hook ablation `ablate` at all layers."
        )
    post = sorted({n for l in layers for n in _POST_NORMS if hasattr(_unwrap(l), n)})
    if post:
        raise NotImplementedError(
            f"{type(hf).__name__} normalises attention/MLP outputs before adding them to the residual stream "
            f"({', '.join(post)}), so orthogonalising the output weights does not remove the direction exactly. "
            f"Use the hook ablation `ablate(bridge, {{l: d for l in range(n_layers + 1)}})` instead."
        )


def orthogonalize_weights(model: LoadedModel, direction: Float[Tensor, " d"] | Float[Tensor, "k d"]) -> LoadedModel:
    """A deep copy of `model` whose residual-stream writes are orthogonalised against unit d (or span of k rows).

    Edits W_E (rows), every attention o_proj and MLP down_proj (W <- W - d dᵀ W, and biases). Tied unembeddings
    are untied first (lm_head keeps the ORIGINAL weights), so only what writes into the residual stream changes.
    The original model is untouched. Equivalent to `ablate` at all layers 0..n_layers with include_resid_mid.
    """
    from transformer_lens.model_bridge import TransformerBridge

    hf = model.hf_model
    _check_llama_layout(hf)
    Q = _orthonormal_basis(direction)
    if Q.shape[0] != model.info.d_model:
        raise ValueError(f"direction width {Q.shape[0]} != d_model {model.info.d_model}")
    new_hf = _fresh_hf_copy(hf)
    _orthogonalize_inplace(new_hf, Q)
    ref = next(new_hf.parameters())
    src = model.info.source
    source_dir = str(Path(src).parent) if src.endswith(".gguf") else src
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(
            source_dir, hf_model=new_hf, tokenizer=model.tokenizer, device=ref.device, dtype=ref.dtype
        )
    bridge.eval()
    d_unit = torch.as_tensor(np.asarray(direction) if not isinstance(direction, Tensor) else direction)
    d_unit = d_unit.detach().to("cpu", torch.float64)
    d_unit = d_unit / d_unit.norm(dim=-1, keepdim=True)
    tag = hashlib.sha256(d_unit.to(torch.float32).contiguous().numpy().tobytes()).hexdigest()[:8]
    info = dataclasses.replace(model.info, weights_hash=f"{model.info.weights_hash}+orth:{tag}")
    return LoadedModel(bridge=bridge, tokenizer=model.tokenizer, info=info)
