"""Interventions: projection ablation, steering, LEACE, weight orthogonalisation, hook hygiene, layer numbering."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import n_hooks
from sklearn.linear_model import LogisticRegression

from entangle.hookpoints import resid_hook
from entangle.interventions import (
    ablate,
    fit_leace,
    orthogonalize_weights,
    random_unit_directions,
    residual_scale,
    steer,
)

PROMPTS = ["Stealing from a friend is wrong.", "The cake was good", "A fair price for honest work is what she asked."]


def _batch(model):
    enc = model.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    mask = enc["attention_mask"]
    return enc["input_ids"], mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _run(model, batch=None):
    """Logits and hook_out of every residual layer 0..n_layers (captured with a read-only hook)."""
    ids, mask, pos = batch or _batch(model)
    n = model.info.n_layers
    caps: dict[str, torch.Tensor] = {}

    def cap(x, hook):
        caps[hook.name] = x.detach().clone()
        return x

    with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(resid_hook(l), cap) for l in range(n + 1)]):
        logits = model.bridge(ids, attention_mask=mask, position_ids=pos)
    return logits.detach(), [caps[resid_hook(l)] for l in range(n + 1)]


def _rel(a, b, mask):
    m = mask.bool()
    return float(((a - b)[m].norm(dim=-1) / b[m].norm(dim=-1).clamp(min=1e-12)).max())


def _proj_rel(x, d):
    """max |x·d| / |x| over positions (zero rows, e.g. the padding embedding, count as 0)."""
    return float(((x @ d).abs() / x.norm(dim=-1).clamp(min=1e-12)).max())


def _unit(d, seed):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=g)
    return v / v.norm()


# ---------------------------------------------------------------------------------------------------- ablation


@pytest.mark.parametrize("layer", [0, 2])
def test_ablate_removes_exactly_the_component(tiny, layer):
    _, base = _run(tiny)
    d = _unit(tiny.info.d_model, 3)
    with ablate(tiny.bridge, {layer: d}, include_resid_mid=False):
        _, abl = _run(tiny)
    x0, x1 = base[layer], abl[layer]
    assert float((x0 @ d).abs().max()) > 1e-2  # there was something to remove
    assert _proj_rel(x1, d) < 1e-5
    perp0 = x0 - (x0 @ d)[..., None] * d
    perp1 = x1 - (x1 @ d)[..., None] * d
    torch.testing.assert_close(perp1, perp0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x1, x0 - (x0 @ d)[..., None] * d, rtol=1e-6, atol=1e-6)


def test_ablate_subspace_orthonormalises_rows(tiny):
    _, base = _run(tiny)
    D = torch.stack([_unit(tiny.info.d_model, s) for s in (1, 2, 3)])
    D = D * torch.tensor([[2.0], [0.5], [3.0]]) + 0.3 * D[[0]]  # neither unit nor orthogonal
    layer = 1
    with ablate(tiny.bridge, {layer: D}, include_resid_mid=False):
        _, abl = _run(tiny)
    Q, _ = torch.linalg.qr(D.double().T)
    x0, x1 = base[layer].double(), abl[layer].double()
    assert max(_proj_rel(x1, row) for row in D.double()) < 1e-5
    assert float((x0 @ Q).abs().max()) > 1e-2
    torch.testing.assert_close(x1 - (x1 @ Q) @ Q.T, x0 - (x0 @ Q) @ Q.T, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError), ablate(tiny.bridge, {layer: torch.stack([D[0], 2 * D[0]])}):
        pass


def test_ablate_positions_only_touches_the_slice(tiny):
    _, base = _run(tiny)
    d = _unit(tiny.info.d_model, 5)
    with ablate(tiny.bridge, {1: d}, positions=slice(-1, None), include_resid_mid=False):
        _, abl = _run(tiny)
    torch.testing.assert_close(abl[1][:, :-1], base[1][:, :-1], rtol=0, atol=0)
    assert _proj_rel(abl[1][:, -1], d) < 1e-5
    assert float((base[1][:, -1] @ d).abs().max()) > 1e-2


def test_off_by_one_ablating_layer_l_leaves_layer_l_minus_1(tiny):
    n = tiny.info.n_layers
    _, base = _run(tiny)
    d = _unit(tiny.info.d_model, 7)
    for layer in range(n + 1):
        with ablate(tiny.bridge, {layer: d}):
            _, abl = _run(tiny)
        for j in range(n + 1):
            diff = float((abl[j] - base[j]).abs().max())
            if j < layer:
                assert diff == 0.0, (layer, j)
            else:
                assert diff > 1e-4, (layer, j)


# ------------------------------------------------------------------------------------- weight orthogonalisation


def test_orthogonalize_weights_equals_hook_ablation_tiny(tiny):
    n = tiny.info.n_layers
    _, mask, _ = batch = _batch(tiny)
    d = _unit(tiny.info.d_model, 11)
    logits0, base = _run(tiny, batch)
    emb0 = tiny.hf_model.model.embed_tokens._original_component.weight.detach().clone()

    orth = orthogonalize_weights(tiny, d)

    assert orth.bridge is not tiny.bridge
    assert orth.info.weights_hash.startswith(tiny.info.weights_hash + "+orth:")
    assert len(orth.info.weights_hash.split("+orth:")[1]) == 8
    logits1, _ = _run(tiny, batch)  # original untouched
    torch.testing.assert_close(logits1, logits0, rtol=0, atol=0)
    torch.testing.assert_close(tiny.hf_model.model.embed_tokens._original_component.weight, emb0, rtol=0, atol=0)
    # untied: the unembedding keeps the original embedding, the embedding lost d
    ohf = orth.hf_model
    torch.testing.assert_close(ohf.lm_head._original_component.weight, emb0, rtol=0, atol=0)
    assert float((ohf.model.embed_tokens._original_component.weight.detach() @ d).abs().max()) < 1e-6

    with ablate(tiny.bridge, {l: d for l in range(n + 1)}):
        logits_h, hooked = _run(tiny, batch)
    logits_o, orthed = _run(orth, batch)
    for layer in range(n + 1):
        assert _rel(orthed[layer], hooked[layer], mask) < 1e-4, layer
        assert _rel(base[layer], hooked[layer], mask) > 1e-3, layer  # the ablation did something
    assert _rel(logits_o, logits_h, mask) < 1e-4

    # without the resid_mid projection the MLP reads d written by attention: not equivalent
    with ablate(tiny.bridge, {l: d for l in range(n + 1)}, include_resid_mid=False):
        _, no_mid = _run(tiny, batch)
    assert max(_rel(orthed[layer], no_mid[layer], mask) for layer in range(1, n + 1)) > 1e-3


@pytest.mark.model
def test_orthogonalize_weights_equals_hook_ablation_smollm(smollm):
    n = smollm.info.n_layers
    _, mask, _ = batch = _batch(smollm)
    d = _unit(smollm.info.d_model, 13)
    logits0, _ = _run(smollm, batch)
    orth = orthogonalize_weights(smollm, d)
    logits1, _ = _run(smollm, batch)
    torch.testing.assert_close(logits1, logits0, rtol=0, atol=0)
    with ablate(smollm.bridge, {l: d for l in range(n + 1)}):
        logits_h, hooked = _run(smollm, batch)
    logits_o, orthed = _run(orth, batch)
    errs = [_rel(orthed[layer], hooked[layer], mask) for layer in range(n + 1)]
    assert max(errs) < 1e-4, errs
    assert _rel(logits_o, logits_h, mask) < 1e-4
    del orth


def test_orthogonalize_weights_refuses_post_norm_architectures():
    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = SimpleNamespace(o_proj=torch.nn.Linear(4, 4))
            self.mlp = SimpleNamespace(down_proj=torch.nn.Linear(8, 4))
            self.post_feedforward_layernorm = torch.nn.LayerNorm(4)

    hf = torch.nn.Module()
    hf.model = torch.nn.Module()
    hf.model.embed_tokens = torch.nn.Embedding(10, 4)
    hf.model.layers = torch.nn.ModuleList([Layer()])
    fake = SimpleNamespace(hf_model=hf, info=SimpleNamespace(d_model=4))
    with pytest.raises(NotImplementedError, match="ablate"):
        orthogonalize_weights(fake, torch.ones(4))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- steering


def test_steer_adds_alpha_sigma_d_exactly_once(tiny):
    _, base = _run(tiny)
    d = 3.0 * _unit(tiny.info.d_model, 17)  # not unit: steer normalises
    alpha, sigma, layer = 0.7, {2: 4.0}, 2
    before = n_hooks(tiny.bridge)
    with steer(tiny.bridge, {layer: d}, alpha, sigma):
        assert n_hooks(tiny.bridge) == before + 1
        _, st = _run(tiny)
    expected = alpha * sigma[layer] * d / d.norm()
    diff = st[layer] - base[layer]
    torch.testing.assert_close(diff, expected.expand_as(diff), rtol=0, atol=1e-5)
    torch.testing.assert_close(st[layer - 1], base[layer - 1], rtol=0, atol=0)


def test_steer_positions_and_missing_sigma(tiny):
    _, base = _run(tiny)
    d = _unit(tiny.info.d_model, 19)
    with steer(tiny.bridge, {0: d}, 1.0, {0: 2.0}, positions=slice(-1, None)):
        _, st = _run(tiny)
    torch.testing.assert_close(st[0][:, :-1], base[0][:, :-1], rtol=0, atol=0)
    torch.testing.assert_close(st[0][:, -1] - base[0][:, -1], (2.0 * d).expand(len(PROMPTS), -1), rtol=0, atol=1e-5)
    with pytest.raises(KeyError), steer(tiny.bridge, {1: d}, 1.0, {0: 2.0}):
        pass


# ------------------------------------------------------------------------------------------------ hook hygiene


@pytest.mark.parametrize("kind", ["ablate", "steer"])
def test_no_hook_survives_an_exception(tiny, kind):
    logits0, _ = _run(tiny)
    before = n_hooks(tiny.bridge)
    d = _unit(tiny.info.d_model, 23)
    ctx = {
        "ablate": lambda: ablate(tiny.bridge, {0: d, 2: d}),
        "steer": lambda: steer(tiny.bridge, {1: d, 3: d}, 2.0, {1: 1.0, 3: 1.0}),
    }[kind]
    with pytest.raises(RuntimeError, match="boom"), ctx():
        assert n_hooks(tiny.bridge) > before
        logits_in, _ = _run(tiny)
        assert float((logits_in - logits0).abs().max()) > 1e-4
        raise RuntimeError("boom")
    assert n_hooks(tiny.bridge) == before
    logits1, _ = _run(tiny)
    torch.testing.assert_close(logits1, logits0, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------------- LEACE


def _planted(n=2000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    mu = rng.standard_normal(d)
    x = rng.standard_normal((n, d)) + np.outer(2 * y - 1, mu) + 0.5 * rng.standard_normal(d)
    return x.astype(np.float32), y


def _lr_acc(x, y):
    return LogisticRegression(max_iter=2000).fit(x, y).score(x, y)


def test_leace_erases_planted_concept_to_chance():
    x, y = _planted()
    assert _lr_acc(x, y) > 0.9
    eraser = fit_leace(x, 2 * y - 1)
    xe = eraser(torch.as_tensor(x, dtype=torch.float64)).numpy()
    assert _lr_acc(xe, y) < 0.56
    # integer multi-class labels are one-hot encoded
    rng = np.random.default_rng(1)
    c = rng.integers(0, 3, 1500)
    means = rng.standard_normal((3, 16)) * 2
    xc = (rng.standard_normal((1500, 16)) + means[c]).astype(np.float32)
    clf = LogisticRegression(max_iter=2000).fit(xc, c)
    assert clf.score(xc, c) > 0.8
    xce = fit_leace(torch.as_tensor(xc), c)(torch.as_tensor(xc, dtype=torch.float64)).numpy()
    assert LogisticRegression(max_iter=2000).fit(xce, c).score(xce, c) < 0.42


# ----------------------------------------------------------------------------------------------------- helpers


def test_random_unit_directions_and_residual_scale():
    a = random_unit_directions(20, 32, seed=4)
    assert a.shape == (20, 32)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(a, random_unit_directions(20, 32, seed=4))
    assert not np.allclose(a, random_unit_directions(20, 32, seed=5))
    acts = np.zeros((3, 2, 4))
    acts[:, 0, 0] = [1.0, 2.0, 10.0]
    acts[:, 1, 1] = [-3.0, 4.0, 5.0]
    np.testing.assert_allclose(residual_scale(acts), [2.0, 4.0])
