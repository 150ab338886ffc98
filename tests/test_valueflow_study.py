"""Steering plumbing and the whole valueflow study on the tiny random Llama: α = 0 is no steering, a planted
direction gives a monotone dose-response, and a steered run round-trips through the run folder and the report."""

from __future__ import annotations

import numpy as np
import pytest

from entangle.directions import load_direction
from entangle.engine import chat_text, generate, next_token_logprobs, text_activations
from entangle.interventions import steer
from entangle.runfolder import RunFolder
from entangle.studies.base import StudyContext
from entangle.studies.valueflow import Config, run
from entangle.studies.valueflow.arms import (
    distinct_n,
    level_system,
    mix_vectors,
    repetition,
    vectors_intervention,
)
from entangle.studies.valueflow.directions import ValueDirection
from entangle.values import load_queries, load_values

QUERIES = [q for _, q in load_queries()[:3]]


def _planted(d_model: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(d_model)
    return v / np.linalg.norm(v)


def test_alpha_zero_is_no_steering(tiny):
    d = _planted(tiny.info.d_model)
    texts = [chat_text(tiny, q) for q in QUERIES]
    ids = list(range(5))
    plain = next_token_logprobs(tiny, texts, ids)
    zero = next_token_logprobs(tiny, texts, ids, intervention=lambda: steer(tiny.bridge, {2: d}, 0.0, {2: 3.0}))
    np.testing.assert_allclose(zero, plain, atol=1e-6)
    pushed = next_token_logprobs(tiny, texts, ids, intervention=lambda: steer(tiny.bridge, {2: d}, 2.0, {2: 3.0}))
    assert np.abs(pushed - plain).max() > 1e-3  # the same hook does act when α is not 0
    vd = ValueDirection("x", 2, d, np.zeros((4, len(d))), None, "")
    vec = mix_vectors({"x": vd}, {"x": 1.0}, 0.0, np.ones(4))
    assert vectors_intervention(tiny, vec) is None
    assert generate(tiny, QUERIES, max_new_tokens=4) == generate(
        tiny, QUERIES, max_new_tokens=4, intervention=lambda: steer(tiny.bridge, {2: d}, 0.0, {2: 3.0}))


def test_planted_direction_gives_a_monotone_dose_response(tiny):
    d = _planted(tiny.info.d_model, seed=3)
    texts = [chat_text(tiny, q) for q in QUERIES]
    alphas = [-0.5, -0.25, 0.0, 0.25, 0.5]
    read = []
    for a in alphas:
        acts = text_activations(tiny, texts, layers=[1, 3],
                                intervention=lambda a=a: steer(tiny.bridge, {1: d}, a, {1: 2.0}))
        read.append(acts.astype(np.float64) @ d)  # [n, 2 layers]
    read = np.array(read)  # [alpha, n, layer]
    mean = read.mean(1)
    assert np.all(np.diff(mean[:, 0]) > 0)  # at the steered layer: exactly + α·σ
    np.testing.assert_allclose(np.diff(mean[:, 0]), 0.25 * 2.0, rtol=1e-3)
    assert np.all(np.diff(mean[:, 1]) > 0)  # and still monotone two blocks later


def test_fluency_measures_and_prompt_levels():
    care = load_values(["care"])[0]
    assert level_system(care, 0) is None and care.definition in level_system(care, 2)
    assert level_system(care, 2) != level_system(care, -2)
    with pytest.raises(ValueError):
        level_system(care, 3)
    assert repetition("to to to to to to") > 0.5 and repetition("a b c d e f") == 0.0
    assert distinct_n(["a b c", "a b c"]) == 0.5


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    folder = RunFolder(tmp_path_factory.mktemp("steer") / "run")
    cfg = Config(n_queries=3, max_new_tokens=4, n_heldout=4, pairwise_queries=2, pairwise_loao=5, n_neutral=3,
                 layers=(1, 2))
    ctx = StudyContext(tiny, folder, tmp_path_factory.mktemp("cache"), seed=0, batch_size=16, n_boot=50,
                       progress=False)
    result = run(ctx, cfg)
    result.save(folder)
    return folder, result, cfg


def test_a_steered_run_round_trips_through_the_run_folder(tiny_run):
    folder, result, cfg = tiny_run
    m = folder.metrics()["valueflow"]
    assert m == result.metrics["valueflow"] | {} or set(m) == set(result.metrics["valueflow"])
    assert set(m["values"]) == set(cfg.values)
    for name, df in result.tables.items():
        back = folder.table(name)
        assert back is not None and len(back) == len(df), name
        assert list(back.columns) == list(df.columns), name
    resp = folder.table("valueflow/responses")
    settings = resp.setting.unique()
    assert len(settings) == 1 + 2 * len(cfg.values) * 4 + 3
    assert resp.filter(like="I_probe_").abs().max().max() <= 10
    assert resp[f"I_pairwise_{cfg.pairwise_values[0]}"].notna().sum() > 0
    for v in cfg.values:
        d = load_direction(folder.path / "directions" / f"valueflow_{v}.safetensors")
        cal = d.meta["alpha_calibration"]
        assert cal["sigma"] > 0 and cal["alpha_grid"] == list(cfg.alphas)
        assert d.layers == [m["values"][v]["layer"]]
        assert load_direction(folder.path / "directions" / f"valueflow_{v}.gguf").layers == d.layers


def test_the_report_section_renders_from_the_folder(tiny_run):
    from entangle.report import build_report

    folder, _, _ = tiny_run
    page = build_report(folder.path).read_text()
    assert 'id="valueflow"' in page or "Value steering" in page
    assert "could not be rendered" not in page


def test_another_judge_model_reads_with_its_own_directions(tiny, tiny_dir, tmp_path):
    from entangle.models import load_model

    judge = load_model(str(tiny_dir))  # a second instance: the study takes the separate-judge path
    cfg = Config(values=("care", "achievement"), mix=("care", "achievement"), kinds=("moral",), n_queries=2,
                 max_new_tokens=3, n_heldout=4, n_pairs=16, pairwise_values=(), n_neutral=2, layers=(2,))
    ctx = StudyContext(tiny, RunFolder(tmp_path / "run"), tmp_path / "cache", n_boot=20, progress=False)
    m = run(ctx, cfg, judge).metrics["valueflow"]
    assert m["judge_model"] == judge.info.name
    assert {r["value"] for r in m["validity"]} == {"care", "achievement", "moral"}


def test_steer_cli_help_and_bad_input():
    from typer.testing import CliRunner

    from entangle.cli import app

    r = CliRunner().invoke(app, ["steer", "--help"])
    assert r.exit_code == 0 and "--judge-model" in r.output and "--valueflow-anchors" in r.output
    r = CliRunner().invoke(app, ["steer", "--values", "kindness", "--out", "/tmp/never"])
    assert r.exit_code == 2 and "unknown value" in r.output
    r = CliRunner().invoke(app, ["steer", "--alphas=-0.5,0,0.5", "--out", "/tmp/never"])
    assert r.exit_code == 2 and "leave 0 out" in r.output
