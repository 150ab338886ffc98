"""Residual-stream layer numbering shared by capture, probes, directions and interventions.

Layer 0 is the embedding output (`embed.hook_out`); layer l >= 1 is the output of block l-1
(`blocks.{l-1}.hook_out`), so `hidden_states[l]` of a Hugging Face model with `output_hidden_states`
is the same tensor for l < n_layers (HF applies the final norm to its last entry).
"""

from __future__ import annotations


def resid_hook(layer: int) -> str:
    """TransformerBridge hook name for residual-stream layer `layer` (0 = embedding output)."""
    if layer < 0:
        raise ValueError(f"layer must be >= 0, got {layer}")
    return "embed.hook_out" if layer == 0 else f"blocks.{layer - 1}.hook_out"


def resid_mid_hook(layer: int) -> str:
    """The residual stream between attention and MLP inside block `layer - 1` (layer >= 1)."""
    if layer < 1:
        raise ValueError(f"resid_mid exists for layers >= 1, got {layer}")
    return f"blocks.{layer - 1}.hook_resid_mid"


def all_layers(n_layers: int) -> list[int]:
    """Residual layers 0..n_layers (embedding output plus every block output)."""
    return list(range(n_layers + 1))
