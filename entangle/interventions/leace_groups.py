"""LEACE fitted per position group and applied where it was fitted, at the hook points `ablate` uses.

A concept is erased where the eraser saw it: one eraser per (hook point, group), fitted on that group's token
activations at that hook point (streamed through concept-erasure's `LeaceFitter`, so no token activations are
kept), and applied only to the same group's tokens, read from the token layout the Runner publishes. This avoids
the off-distribution use of an eraser fitted at the last token on every position (and on the BOS attention sink).

    >>> er = fit_group_leace(model, prompts, tmpls, labels)               # doctest: +SKIP
    >>> df = measure(model, held_out, tmpls, intervention=lambda: group_leace(model.bridge, er))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from entangle.engine.layout import current_layout
from entangle.engine.runner import Runner
from entangle.engine.tokens import group_batches
from entangle.hookpoints import all_layers, resid_hook, resid_mid_hook
from entangle.interventions.hooks import HookFn, _registered
from entangle.models import LoadedModel
from entangle.prompts import Prompt, Template

LEACE_GROUPS: dict[str, tuple[str, ...]] = {
    "sentence": ("context", "act", "outcome", "violation"),
    "template": ("template",),
    "last": ("last",),
}
"""Fitted groups and the layout groups each covers. The judged sentence is one group: its spans hold a few tokens
per item each, too few for a d×d covariance per hook point."""
FITTER_BUDGET = 2 * 1024**3
"""Bytes of running covariances held at once; larger models fit in several passes over the prompts."""


def hook_points(n_layers: int) -> list[str]:
    """Every residual hook point `ablate` acts on: the embedding, each block's output and its mid-block stream."""
    return [name for layer in all_layers(n_layers)
            for name in ([resid_hook(layer)] if layer == 0 else [resid_mid_hook(layer), resid_hook(layer)])]


@dataclass(frozen=True)
class GroupErasers:
    """LEACE erasers per hook point and group, with the number of tokens each was fitted on."""

    erasers: dict[str, dict[str, Any]]      # hook point -> group -> concept_erasure.LeaceEraser
    tokens: dict[str, int]                  # group -> fitted tokens (per hook point)
    groups: dict[str, tuple[str, ...]]      # group -> layout groups it covers


def _one_hot(labels: Sequence[int]) -> tuple[Tensor, int]:
    classes, idx = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"LEACE needs at least two concept classes, got {classes.tolist()}")
    return torch.as_tensor(np.eye(len(classes))[idx], dtype=torch.float64), len(classes)


def fit_group_leace(model: LoadedModel, prompts: Sequence[Prompt], tmpls: Sequence[Template], labels: Sequence[int],
                    *, groups: Mapping[str, tuple[str, ...]] = LEACE_GROUPS, batch_size: int = 32) -> GroupErasers:
    """Fit one LEACE eraser per (hook point, group) on the tokens of `prompts` (shared-prefix passes), each token
    labelled with its prompt's concept class (`labels[i]`, e.g. the moral level)."""
    from concept_erasure import LeaceFitter

    if len(labels) != len(prompts):
        raise ValueError(f"{len(labels)} labels for {len(prompts)} prompts")
    z_all, n_classes = _one_hot(labels)
    d = model.info.d_model
    points = hook_points(model.info.n_layers)
    per_pass = max(1, FITTER_BUDGET // (len(groups) * d * d * 8))
    runner = Runner(model, prompts, tmpls)
    batches = group_batches(runner.encoded, batch_size)
    erasers: dict[str, dict[str, Any]] = {}
    tokens: dict[str, int] = {}
    for lo in range(0, len(points), per_pass):
        fitters: dict[str, dict[str, LeaceFitter]] = {
            p: {g: LeaceFitter(d, n_classes, dtype=torch.float64, device="cpu") for g in groups}
            for p in points[lo:lo + per_pass]}

        def collect(point: str) -> HookFn:
            def hook(x: Tensor, hook: Any = None) -> Tensor:
                lay = current_layout()
                z_rows = z_all[list(lay.rows)]
                for g, parts in groups.items():
                    m = lay.mask(parts)
                    if m.any():
                        b = m.nonzero()[:, 0]
                        fitters[point][g].update(x[m.to(x.device)].detach().to("cpu", torch.float64), z_rows[b])
                return x
            return hook

        with torch.inference_mode(), _registered(model.bridge, [(p, collect(p)) for p in fitters]):
            for idx in batches:
                runner.run(idx, positions=(), shared=True)
        for p, by_group in fitters.items():
            empty = [g for g, f in by_group.items() if f.n == 0]
            if empty:
                raise ValueError(f"no tokens of group(s) {empty} in the fitting prompts")
            erasers[p] = {g: f.eraser for g, f in by_group.items()}
            tokens = {g: int(f.n) for g, f in by_group.items()}  # the same at every hook point
    return GroupErasers(erasers, tokens, dict(groups))


@contextmanager
def group_leace(bridge: Any, fitted: GroupErasers) -> Iterator[None]:
    """Apply each group's eraser to that group's tokens at every fitted hook point (other tokens pass unchanged)."""
    from concept_erasure import LeaceEraser

    def erase(point: str) -> HookFn:
        cast_cache: dict[tuple[Any, Any], dict[str, LeaceEraser]] = {}

        def hook(x: Tensor, hook: Any = None) -> Tensor:
            key = (x.device, x.dtype)
            if key not in cast_cache:
                cast = lambda t: None if t is None else t.to(device=x.device, dtype=x.dtype)  # noqa: E731
                cast_cache[key] = {g: LeaceEraser(cast(e.proj_left), cast(e.proj_right), cast(e.bias))
                                   for g, e in fitted.erasers[point].items()}
            lay = current_layout()
            out = x
            for g, eraser in cast_cache[key].items():
                m = lay.mask(fitted.groups[g]).to(x.device)
                if m.any():
                    out = torch.where(m[..., None], eraser(x), out)
            return out
        return hook

    with _registered(bridge, [(p, erase(p)) for p in fitted.erasers]):
        yield
