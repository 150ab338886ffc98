"""The engine every study runs on: tokenise + batch, shared-prefix forward passes with hooks, capture, cache,
re-measurement under interventions, generation, and the self-checks recorded with every capture."""

from entangle.engine.capture import (
           ActivationSet,
           capture,
           choose_style,
           readout_table,
           resolve_templates,
)
from entangle.engine.generate import chat_text, generate
from entangle.engine.measure import (
           array_hash,
           measure,
           next_token_logprobs,
           text_activations,
           text_loss,
)
from entangle.engine.runner import POSITIONS, Runner

__all__ = ["POSITIONS", "ActivationSet", "Runner", "array_hash", "capture", "chat_text", "choose_style", "generate",
           "measure", "next_token_logprobs", "readout_table", "resolve_templates", "text_activations", "text_loss"]
