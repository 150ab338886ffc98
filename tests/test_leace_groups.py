"""Token layout and LEACE per position group: the layout names the same tokens in shared and whole passes, the
erasers are fitted on exactly their group's tokens, act only there, and erase the concept where they were fitted."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch
from conftest import n_hooks

from entangle.engine import measure
from entangle.engine.layout import current_layout, token_groups
from entangle.engine.runner import Runner
from entangle.engine.tokens import group_batches, make_batches
from entangle.hookpoints import resid_hook
from entangle.interventions import GroupErasers, fit_group_leace, group_leace
from entangle.prompts import build_prompts, templates
from entangle.stimuli import load_stimuli

LAYER = 2


@pytest.fixture(scope="module")
def setup(tiny):
    stim = load_stimuli().subset(3)
    tmpls = templates("cloze", per_kind=1)
    prompts = build_prompts(stim.items, tmpls)
    labels = [p.moral for p in prompts]
    return tiny, prompts, tmpls, labels


def test_token_groups_cover_sentence_template_last(setup):
    model, prompts, tmpls, _ = setup
    enc = Runner(model, prompts[:1], tmpls).encoded[0]
    groups = token_groups(enc)
    assert groups[0] is None                                   # BOS is never touched
    assert groups[-1] == "last"
    assert set(groups[enc.judged_lo:enc.judged_hi]) <= {"context", "act", "outcome", "violation"}
    assert "act" in groups and "template" in groups
    assert all(g in ("template", "last") for g in groups[enc.judged_hi:])


def _record(model, runner, shared):
    """Mean activation at LAYER per (prompt, group) as the layout names them in the passes the Runner makes."""
    seen = defaultdict(list)

    def hook(x, hook=None):
        lay = current_layout()
        for g, m in lay.masks.items():
            for b, t in m.nonzero().tolist():
                seen[(lay.rows[b], g)].append(x[b, t].float().clone())
        return x

    batches = group_batches(runner.encoded, 8) if shared else make_batches(runner.lengths(), 8)
    with torch.inference_mode(), model.bridge.hooks(fwd_hooks=[(resid_hook(LAYER), hook)]):
        for idx in batches:
            runner.run(idx, positions=(), shared=shared)
    return {k: torch.stack(v).mean(0) for k, v in seen.items()}


def test_layout_names_the_same_tokens_in_shared_and_whole_passes(setup):
    model, prompts, tmpls, _ = setup
    runner = Runner(model, prompts[:24], tmpls)
    shared, whole = _record(model, runner, True), _record(model, runner, False)
    assert set(shared) <= set(whole)
    # template and last tokens are seen for every prompt in both; sentence tokens once per shared prefix
    assert {k for k in whole if k[1] in ("template", "last")} <= set(shared)
    for k, v in shared.items():
        torch.testing.assert_close(v, whole[k], rtol=1e-4, atol=1e-4)


def test_fit_reads_exactly_the_groups_tokens(setup):
    model, prompts, tmpls, labels = setup
    fitted = fit_group_leace(model, prompts, tmpls, labels, batch_size=16)
    runner = Runner(model, prompts, tmpls)
    out = runner.run(range(len(prompts)), positions=("last", "judged_mean"), layers=[LAYER])
    # affine LEACE centres on the fitted mean: the last group's mean = mean of the captured last-token activations
    last = fitted.erasers[resid_hook(LAYER)]["last"].bias.numpy()
    np.testing.assert_allclose(last, out.acts["last"][:, 0].mean(0), rtol=1e-4, atol=1e-4)
    assert fitted.tokens["last"] == len(prompts)
    # the sentence group's mean = token-weighted mean of judged_mean over distinct prefixes
    first = {}
    for i, e in enumerate(runner.encoded):
        first.setdefault(e.prefix, (i, e.judged_hi - e.judged_lo))
    w = np.array([n for _, n in first.values()], dtype=float)
    x = out.acts["judged_mean"][[i for i, _ in first.values()], 0]
    sent = fitted.erasers[resid_hook(LAYER)]["sentence"].bias.numpy()
    np.testing.assert_allclose(sent, (w[:, None] * x).sum(0) / w.sum(), rtol=1e-4, atol=1e-4)
    assert fitted.tokens["sentence"] == int(w.sum())


def test_group_leace_erases_where_fitted_and_runs_the_same_shared_or_whole(setup):
    model, prompts, tmpls, labels = setup
    fitted = fit_group_leace(model, prompts, tmpls, labels, batch_size=16)
    runner = Runner(model, prompts, tmpls)
    y = np.asarray(labels)

    def gap(acts):  # largest distance between class means of last-token activations at LAYER
        means = [acts[y == c].mean(0) for c in (-1, 0, 1)]
        return max(np.abs(a - b).max() for a in means for b in means)

    before = runner.run(range(len(prompts)), positions=("last",), layers=[LAYER]).acts["last"][:, 0]
    only = GroupErasers({resid_hook(LAYER): fitted.erasers[resid_hook(LAYER)]}, fitted.tokens, fitted.groups)
    with group_leace(model.bridge, only):
        after = runner.run(range(len(prompts)), positions=("last",), layers=[LAYER]).acts["last"][:, 0]
    er = fitted.erasers[resid_hook(LAYER)]["last"]
    np.testing.assert_allclose(after, er(torch.as_tensor(before, dtype=torch.float64)).numpy(), rtol=1e-4, atol=1e-4)
    assert gap(before) > 1e-3
    assert gap(after) < 1e-2 * gap(before)
    # the whole intervention (every hook point) changes readouts, identically in shared and whole passes
    base = measure(model, prompts, tmpls)["readout"].to_numpy()
    hooks0 = n_hooks(model.bridge)
    ctx = lambda: group_leace(model.bridge, fitted)  # noqa: E731
    sh = measure(model, prompts, tmpls, intervention=ctx)["readout"].to_numpy()
    wh = measure(model, prompts, tmpls, intervention=ctx, shared=False)["readout"].to_numpy()
    assert n_hooks(model.bridge) == hooks0
    assert np.abs(sh - base).max() > 1e-3
    np.testing.assert_allclose(sh, wh, rtol=1e-3, atol=1e-3)


def test_group_leace_outside_the_runner_says_why(setup):
    model, prompts, tmpls, labels = setup
    fitted = fit_group_leace(model, prompts, tmpls, labels, batch_size=16)
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(RuntimeError, match="token layout"), group_leace(model.bridge, fitted):
        model.bridge(ids)
    assert n_hooks(model.bridge) == 0
