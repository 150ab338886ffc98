"""Per-layer probes on synthetic activations with a planted direction (no model)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from entangle.analysis import probing as probes
from entangle.analysis.probing import cross_decoding, fit_probes, kind_labels

N_FRAMES, D, L, PLANTED = 160, 8, 4, 2  # logistic needs many rows per dimension to pin a direction to 0.99


def planted(seed: int = 0, n_frames: int = N_FRAMES, strength: float = 1.75, frame_sd: float = 0.2):
    """Moral labels (+1/0/−1, 8 items each per frame) written along a unit u at layer PLANTED only; frame offsets."""
    rng = np.random.default_rng(seed)
    m = np.tile(np.repeat([1, 0, -1], 8), n_frames)
    frames = np.repeat([f"fr{i:02d}" for i in range(n_frames)], 24)
    u = rng.normal(size=D)
    u /= np.linalg.norm(u)
    acts = rng.normal(size=(len(m), L, D))
    acts += rng.normal(0, frame_sd, size=(n_frames, 1, D)).repeat(24, axis=0)  # frame random effects
    acts[:, PLANTED] += strength * np.outer(m, u)
    acts += 5.0  # a common offset: standardisation must not matter for the direction
    factors = pd.DataFrame({"moral": m, "economic": 0, "grammatical": 1, "frame": frames})
    return acts.astype(np.float32), factors, u


@pytest.mark.parametrize("method", ["logistic", "diff_means"])
def test_probe_recovers_planted_direction(method):
    acts, factors, u = planted()
    y = kind_labels(factors, "moral")
    res = fit_probes(acts, y, factors["frame"], "moral", method=method, n_boot=200, seed=0)
    assert res.layers == list(range(L)) and res.best_layer == PLANTED
    cos = float(res.direction(PLANTED) @ u)
    assert cos > 0.99  # sign convention: positive = good
    assert np.allclose(np.linalg.norm(res.directions, axis=1), 1.0, atol=1e-5)
    assert res.accuracy[PLANTED] > 0.93 and res.acc_ci_low[PLANTED] > 0.9  # Bayes accuracy Φ(1.75) = 0.96
    assert res.auc[PLANTED] > 0.98
    for layer in range(L):
        if layer != PLANTED:
            assert abs(res.accuracy[layer] - 0.5) < 0.1
            assert res.acc_ci_low[layer] < 0.5 + 0.1
    assert np.all(np.abs(res.shuffled_accuracy - 0.5) < 0.1)
    assert res.selectivity[PLANTED] > 0.35
    assert res.neutral_between[PLANTED]
    assert res.bad_mean[PLANTED] < res.neutral_mean[PLANTED] < res.good_mean[PLANTED]
    assert res.n_items == N_FRAMES * 16 and res.n_neutral == N_FRAMES * 8 and res.n_frames == N_FRAMES
    tab = res.table()
    assert len(tab) == L and tab.loc[tab.best, "layer"].item() == PLANTED
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["resampling_unit"] == "frame" and "within each frame" in d["shuffle_scheme"]


def test_probe_layers_subset_and_no_neutral():
    acts, factors, _u = planted(strength=1.0)
    keep = factors["moral"] != 0
    acts, factors = acts[keep.to_numpy()], factors[keep]
    y = kind_labels(factors, "moral")
    res = fit_probes(acts, y, factors["frame"], "moral", method="diff_means", n_boot=50, layers=[1, PLANTED])
    assert res.layers == [1, PLANTED] and res.directions.shape == (2, D) and res.best_layer == PLANTED
    assert res.n_neutral == 0
    assert all(r["neutral_between"] is None for r in res.to_dict()["per_layer"])
    json.dumps(res.to_dict(), allow_nan=False)


def test_probe_input_validation():
    acts, factors, _ = planted(n_frames=4)
    y = kind_labels(factors, "moral")
    with pytest.raises(ValueError, match="line up"):
        fit_probes(acts[:-1], y, factors["frame"], "moral", n_boot=10)
    with pytest.raises(ValueError, match="method"):
        fit_probes(acts, y, factors["frame"], "moral", method="svm", n_boot=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="good and bad"):
        fit_probes(acts, np.abs(y), factors["frame"], "moral", n_boot=10)


def test_kind_labels():
    f = pd.DataFrame({"moral": [1, 0, -1], "economic": [-1, 1, 0], "grammatical": [0, 1, 1]})
    assert kind_labels(f, "moral").tolist() == [1, 0, -1]
    assert kind_labels(f, "economic").tolist() == [-1, 1, 0]
    assert kind_labels(f, "grammatical").tolist() == [-1, 1, 1]


@pytest.mark.parametrize("method", ["logistic", "diff_means"])
def test_grouped_cv_never_shares_a_frame(monkeypatch, method):
    """Instrument the training and scoring calls: feature 0 carries the frame code, so we see what each fit saw."""
    acts, factors, _ = planted(n_frames=12)
    codes = pd.factorize(factors["frame"])[0].astype(np.float32)
    acts[:, :, 0] = codes[:, None]
    y = kind_labels(factors, "moral")
    seen: dict[str, list] = {"train": [], "pairs": []}
    real_train, real_score = probes._train, probes._score

    def spy_train(x, yy, method):
        seen["train"].append(set(np.unique(x[:, 0]).tolist()))
        return real_train(x, yy, method)

    def spy_score(model, x, method):
        test_frames = set(np.unique(x[:, 0]).tolist())
        seen["pairs"].append((seen["train"][-1], test_frames))
        return real_score(model, x, method)

    monkeypatch.setattr(probes, "_train", spy_train)
    monkeypatch.setattr(probes, "_score", spy_score)
    n_shuffle = 2
    fit_probes(
        acts,
        y,
        factors["frame"],
        "moral",
        method=method,
        n_splits=4,
        n_boot=10,
        n_shuffle=n_shuffle,
        layers=[0, PLANTED],
    )
    pairs = seen["pairs"]
    assert len(pairs) == 2 * 4 * (1 + n_shuffle)  # layers × folds × (real + shuffles)
    for train_frames, test_frames in pairs:
        assert train_frames.isdisjoint(test_frames)
    for start in range(0, len(pairs), 4):  # each CV covers every frame once as test
        tested = [f for _, te in pairs[start : start + 4] for f in te]
        assert sorted(tested) == list(range(12))


def test_cross_decoding_planted():
    rng = np.random.default_rng(3)
    n_frames, per = 20, 12
    frames = np.repeat([f"f{i}" for i in range(n_frames)], per)
    lab = np.tile(np.repeat([1, -1], per // 2), n_frames)
    u, v = np.eye(D)[0], np.eye(D)[1]
    acts_m = rng.normal(size=(len(lab), 2, D)) + 2.0 * lab[:, None, None] * u
    acts_g = rng.normal(size=(len(lab), 2, D)) + 2.0 * lab[:, None, None] * v
    acts_g[:, 1] += 2.0 * lab[:, None] * u  # at layer 1 grammaticality is also written on the moral axis
    dirs = {"moral": np.stack([u, u]), "grammatical": np.stack([v, v])}
    df = cross_decoding(
        dirs,
        {"moral": acts_m, "grammatical": acts_g},
        {"moral": lab, "grammatical": lab},
        {"moral": frames, "grammatical": frames},
        n_boot=200,
    )
    assert set(df.columns) >= {"layer", "direction_kind", "prompt_kind", "auc", "ci_low", "ci_high"}
    t = df.set_index(["direction_kind", "prompt_kind", "layer"])
    assert t.loc[("moral", "moral", 0), "auc"] > 0.95
    assert t.loc[("grammatical", "grammatical", 0), "auc"] > 0.95
    r = t.loc[("moral", "grammatical", 0)]
    assert r["ci_low"] <= 0.5 <= r["ci_high"]
    assert t.loc[("moral", "grammatical", 1), "ci_low"] > 0.9
    # flipping the direction flips the AUC
    flipped = cross_decoding({"moral": -dirs["moral"]}, {"moral": acts_m}, {"moral": lab}, {"moral": frames}, n_boot=20)
    assert flipped["auc"].iloc[0] == pytest.approx(1 - t.loc[("moral", "moral", 0), "auc"])
