"""Interventions on the residual stream: hooks (ablate, steer, LEACE per position group) and weight
orthogonalisation."""

from entangle.interventions.hooks import (
    ablate,
    add_vectors,
    fit_leace,
    random_unit_directions,
    residual_scale,
    steer,
    steering_vectors,
)
from entangle.interventions.leace_groups import GroupErasers, fit_group_leace, group_leace
from entangle.interventions.weights import orthogonalize_weights

__all__ = ["GroupErasers", "ablate", "add_vectors", "fit_group_leace", "fit_leace", "group_leace",
           "orthogonalize_weights", "random_unit_directions", "residual_scale", "steer", "steering_vectors"]
