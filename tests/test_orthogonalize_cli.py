"""`entangle orthogonalize`: the written folder loads, carries no direction component, equals all-layer hook ablation."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from entangle.cli import app
from entangle.cli.orthogonalize import PROVENANCE
from entangle.directions import Direction, load_direction, save_direction
from entangle.engine import next_token_logprobs
from entangle.hookpoints import resid_hook
from entangle.interventions import ablate
from entangle.models import load_model
from entangle.prompts import answer_token_ids, templates

TEXTS = ["Tom pushed his elderly neighbour on the icy steps. Morally, what they did was",
         "A tax refund of $240 arrived for him. Financially, the day turned out",
         "The lift were broken."]


@pytest.fixture(scope="module")
def direction_file(tmp_path_factory, tiny):
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((3, tiny.info.d_model)).astype(np.float32)
    path = tmp_path_factory.mktemp("dirs") / "moral.safetensors"
    save_direction(Direction(vectors, [1, 2, 3], "moral", "diff_means", {"best_layer": 2}), path)
    return path


def _resid(model, texts):
    enc = model.tokenizer(texts, return_tensors="pt", padding=True)
    got: dict[str, torch.Tensor] = {}

    def keep(x, hook):
        got[hook.name] = x.detach().clone()
        return x

    n = model.info.n_layers
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(resid_hook(la), keep) for la in range(n + 1)]):
        model.bridge(enc["input_ids"], attention_mask=enc["attention_mask"])
    return [got[resid_hook(la)] for la in range(n + 1)], enc["attention_mask"].bool()


def test_orthogonalize_writes_a_loadable_model_equal_to_hook_ablation(tiny, tiny_dir, direction_file, tmp_path):
    out = tmp_path / "tiny-no-moral"
    res = CliRunner().invoke(app, ["orthogonalize", "--direction", str(direction_file), "--out", str(out),
                                   "--model", str(tiny_dir)])
    assert res.exit_code == 0, res.output
    prov = json.loads((out / PROVENANCE).read_text())
    assert prov["layer"] == 2 and prov["layer_rule"] == "the direction's best_layer"
    assert prov["direction_sha256"] == hashlib.sha256(direction_file.read_bytes()).hexdigest()
    assert prov["source_weights_hash"] == tiny.info.weights_hash
    for key in ("source_model", "direction_file", "entangle_version", "date", "weights_hash"):
        assert prov[key]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind

    orth = load_model(str(out))
    assert orth.info.weights_hash != tiny.info.weights_hash
    d = torch.tensor(load_direction(direction_file).at(2), dtype=torch.float32)
    d = d / d.norm()
    resid, mask = _resid(orth, TEXTS)
    for x in resid:
        rel = (x[mask] @ d).abs() / x[mask].norm(dim=-1).clamp(min=1e-12)
        assert float(rel.max()) <= 1e-4
    base, _ = _resid(tiny, TEXTS)
    assert max(float(((x[mask] @ d).abs() / x[mask].norm(dim=-1)).max()) for x in base) > 1e-2  # it was there

    t = templates("cloze", ["moral", "economic"], 1)
    ids = sorted({i for pair in answer_token_ids(tiny.tokenizer, t).values() for i in pair})
    n = tiny.info.n_layers
    hooked = next_token_logprobs(tiny, TEXTS, ids, intervention=lambda: ablate(tiny.bridge, {la: d for la in
                                                                                             range(n + 1)}))
    written = next_token_logprobs(orth, TEXTS, ids)
    plain = next_token_logprobs(tiny, TEXTS, ids)
    np.testing.assert_allclose(written, hooked, atol=1e-4, rtol=0)
    assert np.abs(plain - hooked).max() > 1e-3  # the ablation changed the readouts


def test_orthogonalize_refuses_an_existing_folder_unless_forced(tiny_dir, direction_file, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    runner = CliRunner()
    res = runner.invoke(app, ["orthogonalize", "--direction", str(direction_file), "--out", str(out),
                              "--model", str(tiny_dir), "--layer", "3"])
    assert res.exit_code == 2
    assert "already holds" in res.output
    assert (out / "keep.txt").read_text() == "mine"
    res = runner.invoke(app, ["orthogonalize", "--direction", str(direction_file), "--out", str(out),
                              "--model", str(tiny_dir), "--layer", "3", "--force"])
    assert res.exit_code == 0, res.output
    assert not (out / "keep.txt").exists()
    assert json.loads((out / PROVENANCE).read_text())["layer"] == 3


def test_orthogonalize_rejects_a_layer_the_direction_lacks(direction_file, tmp_path):
    res = CliRunner().invoke(app, ["orthogonalize", "--direction", str(direction_file), "--out",
                                   str(tmp_path / "x"), "--layer", "7"])
    assert res.exit_code == 2
    assert "--layer" in res.output and "[1, 2, 3]" in res.output
    assert not (tmp_path / "x").exists()
