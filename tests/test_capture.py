"""Capture plumbing on the tiny random Llama: BOS policy, padding, judged spans, hooks, cache hit/miss/resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import n_hooks

from entangle.engine import runner as runner_mod
from entangle.engine.capture import capture
from entangle.engine.runner import Runner
from entangle.engine.tokens import collate, encode, make_batches
from entangle.prompts import build_prompts, render, templates
from entangle.stimuli import load_stimuli


@pytest.fixture(scope="module")
def stim2():
    return load_stimuli().subset(2)


def test_bos_prepended_once_and_never_doubled(tiny):
    tok = tiny.tokenizer
    text = "While the bus was late, Tom returned a lost wallet."
    with_bos = encode(tok, text, (0, len(text)), "prepend")
    without = encode(tok, text, (0, len(text)), "none")
    assert with_bos.ids[0] == tok.bos_token_id and with_bos.ids[1:] == without.ids
    assert without.ids[0] != tok.bos_token_id
    # the HF tokenizer adds no BOS, TransformerBridge.to_tokens adds one: our single path matches to_tokens
    assert list(with_bos.ids) == tiny.bridge.to_tokens(text)[0].tolist()
    # a chat-formatted prompt already starts with the BOS token: it is not added a second time
    chat = render(load_stimuli().items[0], templates("likert", ["moral"])[0], tok).text
    enc = encode(tok, chat, (0, 5), "prepend")
    assert enc.ids[0] == tok.bos_token_id and enc.ids[1] != tok.bos_token_id
    with pytest.raises(ValueError, match="bos policy"):
        encode(tok, text, (0, 4), "sometimes")


def test_judged_span_tokens_decode_to_the_judged_sentence(tiny, stim2):
    item = stim2.items[0]
    p = render(item, templates("cloze", ["moral"])[0])
    enc = encode(tiny.tokenizer, p.text, (p.judged_start, p.judged_end))
    decoded = tiny.tokenizer.decode(enc.ids[enc.judged_lo:enc.judged_hi]).strip()
    assert decoded == item.text.strip()
    rest = tiny.tokenizer.decode(enc.ids[enc.judged_hi:]).strip()
    assert rest == "Morally, what they did was"


def test_collate_left_pads_with_mask_and_positions():
    ids, mask, pos, pads = collate([(5, 6, 7), (8,)], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert pos.tolist() == [[0, 1, 2], [0, 0, 0]]
    assert pads.tolist() == [0, 2]


def test_make_batches_groups_similar_lengths_and_covers_everything():
    lengths = [5, 9, 3, 9, 1, 7, 2]
    batches = make_batches(lengths, 3)
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert [lengths[i] for i in batches[0]] == [9, 9, 7]


@pytest.mark.parametrize("model_name", ["tiny", "smollm"])
def test_padding_invariance_batched_equals_alone(request, model_name, stim2):
    model = request.getfixturevalue(model_name)
    tmpls = templates("cloze")
    prompts = build_prompts(stim2.items[:6], tmpls)
    runner = Runner(model, prompts, tmpls)
    # mix lengths so that some rows are padded
    idx = sorted(range(len(prompts)), key=lambda i: len(runner.encoded[i].ids))[::4][:8]
    assert len({len(runner.encoded[i].ids) for i in idx}) > 1
    batched = runner.run(idx)
    for j, i in enumerate(idx):
        alone = runner.run([i])
        for pos in ("last", "judged_mean"):
            a, b = batched.acts[pos][j], alone.acts[pos][0]
            rel = np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)
            assert rel.max() <= 1e-4, (pos, rel.max())
        assert abs(batched.readout[j] - alone.readout[0]) <= 1e-3 * max(1.0, abs(alone.readout[0]))


def test_right_padding_would_read_padding(tiny, stim2):
    """The trap the left-padding policy avoids: with right padding, position -1 of a short prompt is padding."""
    tmpls = templates("cloze", ["moral"])
    prompts = build_prompts(stim2.items[:2], tmpls)
    runner = Runner(tiny, prompts, tmpls)
    short = min(range(len(prompts)), key=lambda i: len(runner.encoded[i].ids))
    long_ = max(range(len(prompts)), key=lambda i: len(runner.encoded[i].ids))
    a, b = list(runner.encoded[short].ids), list(runner.encoded[long_].ids)
    assert len(a) < len(b)
    ids = torch.tensor([a + [runner.pad_id] * (len(b) - len(a)), b])
    with torch.no_grad():
        right = tiny.hf_model(ids, output_hidden_states=True).hidden_states[2][0, -1]
    ok = runner.run([short]).acts["last"][0, 2]
    rel = float(np.linalg.norm(right.numpy() - ok) / np.linalg.norm(ok))
    assert rel > 0.05  # reading position -1 under right padding gives a different (wrong) vector


def test_hooks_removed_when_a_run_raises(tiny, stim2, monkeypatch):
    tmpls = templates("cloze", ["moral"])
    runner = Runner(tiny, build_prompts(stim2.items[:2], tmpls), tmpls)
    before = n_hooks(tiny.bridge)

    def boom(*a, **k):
        raise RuntimeError("inside the run")

    monkeypatch.setattr(runner_mod, "span_logprob", boom)
    with pytest.raises(RuntimeError, match="inside the run"):
        runner.run([0, 1])
    assert n_hooks(tiny.bridge) == before == 0


def test_cache_miss_interrupt_resume_hit(tiny, stim2, tmp_path, monkeypatch):
    """An interrupted capture resumes at batch granularity, equals an uninterrupted one, then hits the cache."""
    kw = dict(batch_size=8, progress=False, kinds=["moral", "economic"])
    seen: list[int] = []

    def interrupt(b: int) -> None:
        seen.append(b)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        capture(tiny, stim2, cache_dir=tmp_path / "a", on_batch=interrupt, **kw)
    partial = list((tmp_path / "a").rglob("*.partial"))
    assert len(partial) == 1 and not list((tmp_path / "a").rglob("manifest.json"))

    resumed = capture(tiny, stim2, cache_dir=tmp_path / "a", **kw)
    assert resumed.manifest["resumed_batches"] == 2
    assert not list((tmp_path / "a").rglob("*.partial"))
    fresh = capture(tiny, stim2, cache_dir=tmp_path / "b", **kw)
    for pos in ("last", "judged_mean"):
        np.testing.assert_allclose(resumed.acts[pos], fresh.acts[pos], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.prompts.readout, fresh.prompts.readout, rtol=1e-5, atol=1e-6)
    assert resumed.manifest["self_checks"]["padding_invariance"]["passed"]
    assert resumed.manifest["self_checks"]["hook_semantics"]["passed"]

    # a hit reads the disk without running the model
    class ModelRan(Exception):
        pass

    def ran(*a, **k):
        raise ModelRan("model ran")

    monkeypatch.setattr(Runner, "run", ran)
    hit = capture(tiny, stim2, cache_dir=tmp_path / "a", **kw)
    assert hit.path == resumed.path and isinstance(hit.acts["last"], np.memmap)
    # anything the result depends on changes the key: a miss
    with pytest.raises(ModelRan):
        capture(tiny, stim2, cache_dir=tmp_path / "a", **{**kw, "kinds": ["moral"]})


def test_activation_set_shapes_and_readout_table(tiny, stim2, tmp_path):
    acts = capture(tiny, stim2, cache_dir=tmp_path, batch_size=16, progress=False)
    n = len(stim2) * 9
    assert acts.acts["last"].shape == (n, tiny.info.n_layers + 1, tiny.info.d_model)
    table = acts.readout_table()
    cloze = table[table.readout == "cloze"]
    assert len(cloze) == len(stim2) * 3 and cloze.value.notna().all()
    lp = table[table.readout == "logprob"]
    assert len(lp) == len(stim2) and (lp.value < 0).all() and (lp.kind == "grammatical").all()
    assert set(acts.manifest["hook_points"][:2]) == {"embed.hook_out", "blocks.0.hook_out"}


@pytest.mark.parametrize("model_name", ["tiny", "smollm"])
def test_shared_prefix_equals_full_prompt(request, model_name, stim2):
    """Prefix once + suffixes against its KV cache = whole prompts: activations and readouts, with and without an
    all-layer ablation hook (which must act in both passes)."""
    from entangle.engine.checks import shared_prefix_error
    from entangle.engine.tokens import group_batches, shared_tokens

    model = request.getfixturevalue(model_name)
    tmpls = templates("cloze")
    prompts = build_prompts(stim2.items[:4], tmpls)
    runner = Runner(model, prompts, tmpls)
    assert shared_tokens(runner.encoded) < 0.6 * sum(runner.lengths())  # the sentence is run once, not 9 times
    idx = group_batches(runner.encoded, 18)[0]
    res = shared_prefix_error(runner, idx, ["last", "judged_mean"])
    assert res["passed"], res
    assert res["ablation"]["acts_max_rel_error"] <= 1e-4 and res["plain"]["readout_max_abs_error"] <= 1e-4
    # and the ablation did change the numbers (so the comparison under it is not vacuous)
    from entangle.interventions import ablate, random_unit_directions
    vec = torch.from_numpy(random_unit_directions(1, model.info.d_model, 0)[0]).float()
    plain = runner.run(idx, ["last"])
    with ablate(model.bridge, {layer: vec for layer in range(model.info.n_layers + 1)}):
        hooked = runner.run(idx, ["last"])
    assert np.abs(plain.acts["last"] - hooked.acts["last"]).max() > 1e-3


def test_a_prompt_longer_than_the_models_context_is_refused_before_any_pass(tiny, stim2, monkeypatch):
    from entangle.files import InputError

    tmpls = templates("cloze")
    prompts = build_prompts(stim2.items[:2], tmpls)
    monkeypatch.setattr(tiny.hf_model.config, "max_position_embeddings", 8)
    monkeypatch.setattr(Runner, "_pass", lambda *a, **k: pytest.fail("a pass ran"))
    with pytest.raises(InputError, match="longer than the model's context of 8 tokens") as err:
        Runner(tiny, prompts, tmpls)
    assert err.value.field == "text" and stim2.items[0].id in str(err.value)
