"""Interventions on the residual stream: hooks (ablate, steer, LEACE) and weight orthogonalisation."""

from entangle.interventions.hooks import (
    ablate,
    fit_leace,
    leace,
    random_unit_directions,
    residual_scale,
    steer,
)
from entangle.interventions.weights import orthogonalize_weights

__all__ = ["ablate", "add_vectors", "fit_leace", "leace", "orthogonalize_weights", "random_unit_directions", "residual_scale", "steer", "steering_vectors"]
