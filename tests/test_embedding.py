"""Embedding-level moral probe: span means equal the layer-0 residual, planted signal found, controls at chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from entangle.analysis.embedding import (
    embedding_probe,
    probe_embeddings,
    span_embeddings,
)
from entangle.engine.tokens import encode
from entangle.stimuli import STIMULI_V1, STIMULI_V2, load_stimuli


def test_planted_signal_is_found_and_noise_is_not():
    rng = np.random.default_rng(0)
    n_frames, d = 24, 32
    frames = np.repeat([f"f{i:02d}" for i in range(n_frames)], 6)
    moral = np.tile([1, 1, 0, 0, -1, -1], n_frames)
    frame_offset = rng.normal(0, 2, (n_frames, d)).repeat(6, axis=0)  # frames differ more than items
    noise = rng.normal(0, 1, (len(frames), d))
    signal = np.zeros(d)
    signal[0] = 3.0
    means = {"act": frame_offset + noise + moral[:, None] * signal, "sentence": frame_offset + noise}
    res = probe_embeddings(means, moral, frames, n_boot=300)
    t = res.table.set_index("span")
    assert t.loc["act", "ci_low"] > 0.75
    assert t.loc["sentence", "ci_low"] < 0.5 < t.loc["sentence", "ci_high"]
    assert t.loc["act", "n_items"] == 2 * 2 * n_frames and t.loc["act", "n_frames"] == n_frames
    assert res.metrics()["spans"]["act"]["accuracy"] == t.loc["act", "accuracy"]


def test_span_means_are_the_layer0_residual(tiny):
    items = load_stimuli(STIMULI_V2).items[:3]
    means, unavailable = span_embeddings(tiny, items, ("sentence", "act"))
    assert unavailable == {}
    for i, it in enumerate(items):
        e = encode(tiny.tokenizer, it.text, (it.judged_start, it.judged_end), "prepend", {"act": it.span("act")})
        got = {}

        def keep(x, hook, got=got):
            got["x"] = x.detach()
            return x

        with torch.no_grad(), tiny.bridge.hooks(fwd_hooks=[("embed.hook_out", keep)]):
            tiny.bridge(torch.tensor([e.ids]))
        x = got["x"][0]
        np.testing.assert_allclose(means["sentence"][i], x[e.judged_lo:e.judged_hi].mean(0).numpy(), atol=1e-6)
        np.testing.assert_allclose(means["act"][i], x[slice(*e.spans["act"])].mean(0).numpy(), atol=1e-6)
    assert not np.allclose(means["act"], means["sentence"])


def test_embedding_probe_on_tiny_with_its_control(tiny):
    stim = load_stimuli(STIMULI_V2).subset(6)
    res = embedding_probe(tiny, stim, n_boot=200)
    t = res.table.set_index("span")
    assert list(t.index) == ["sentence", "act", "outcome"]
    # the outcome is the same words in a frame's good and bad items: identical inputs, so exactly chance
    assert t.loc["outcome", "accuracy"] == pytest.approx(0.5)
    assert t.loc["act", "n_items"] == 6 * 12 and t.loc["act", "n_frames"] == 6
    assert ((t["ci_low"] <= t["accuracy"]) & (t["accuracy"] <= t["ci_high"])).all()


def test_v1_stimuli_name_the_spans_they_lack(tiny):
    res = embedding_probe(tiny, load_stimuli(STIMULI_V1).subset(4), n_boot=50)
    assert set(res.unavailable) == {"act", "outcome"}
    assert "v1" in res.unavailable["act"]
    assert list(res.table["span"]) == ["sentence"]
    with pytest.raises(ValueError, match="unknown span"):
        span_embeddings(tiny, load_stimuli(STIMULI_V1).items[:2], ("verb",))
