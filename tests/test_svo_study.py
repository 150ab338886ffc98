"""The SVO study end to end on the tiny random model: run folder, metrics, findings, report section, CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from entangle.runfolder import RunFolder
from entangle.studies.base import StudyContext
from entangle.studies.svo import Config, run
from entangle.studies.svo.measure import category


@pytest.fixture(scope="module")
def result(tiny, tmp_path_factory):
    folder = RunFolder(tmp_path_factory.mktemp("svo_run"))
    ctx = StudyContext(tiny, folder, folder.path / "cache", n_boot=60, progress=False)
    cfg = Config(n_perm=2, personas=("altruistic", "competitive"), describe_tokens=4, alphas=(-0.5, 0.0, 0.5),
                 n_neutral=4)
    res = run(ctx, cfg)
    res.save(folder)
    return res, folder


def test_every_condition_has_angles_intervals_and_a_category(result):
    res, folder = result
    s = res.metrics["svo"]
    names = set(s["conditions"])
    assert {"none", "one_step:altruistic", "two_step:competitive", "steer:prosocial:+0.5", "steer:moral:-0.5"} <= names
    for c in s["conditions"].values():
        assert c["ci_low_debiased"] <= c["angle_debiased"] <= c["ci_high_debiased"]
        assert c["category_debiased"] in ("altruistic", "prosocial", "individualistic", "competitive")
        assert 0 < c["letter_mass"] <= 1 and math.isnan(c["ci_low_biased"])  # one order: no interval
    assert s["conditions"]["one_step:altruistic"]["target"] == pytest.approx(61.39, abs=0.01)
    assert 0 <= s["conditions"]["one_step:altruistic"]["rationality"] <= 1
    assert s["conditions"]["one_step:altruistic"]["rationality_uniform"] == pytest.approx(1 - (61.39 - 22.70) / 90, abs=1e-3)
    assert s["baselines"]["uniform_random"] == pytest.approx(22.70, abs=0.01)
    json.loads((folder.path / "metrics.json").read_text())  # strict JSON (NaN written as null)
    for t in ("conditions", "choices", "letters", "baselines", "personas"):
        assert folder.table(f"svo/{t}") is not None, t
    choices = folder.table("svo/choices")
    sums = choices.groupby(["condition", "item"])[["p_biased", "p_averaged", "p_debiased"]].sum()
    assert np.allclose(sums.to_numpy(), 1.0)


def test_zero_alpha_steering_equals_no_steering_and_nonzero_moves_something(result):
    res, _ = result
    c = res.metrics["svo"]["conditions"]
    for key in ("biased", "averaged", "debiased"):
        assert c["steer:prosocial:+0"][f"angle_{key}"] == pytest.approx(c["none"][f"angle_{key}"], abs=1e-6)
    assert c["steer:prosocial:+0"]["neutral_loss_delta"] == pytest.approx(0.0, abs=1e-6)
    assert abs(c["steer:prosocial:+0.5"]["neutral_loss_delta"]) > 1e-4


def test_findings_rest_on_paired_intervals(result):
    res, _ = result
    f = res.metrics["svo"]["findings"]
    assert isinstance(f["hvae_drift"]["holds"], bool)
    pc = f["persona_control"]["one_step"]["debiased"]
    assert pc["ci_low"] <= pc["estimate"] <= pc["ci_high"]
    st = f["steering"]["moral"]
    assert st["conditions"] == ["steer:moral:+0.5", "steer:moral:-0.5"]
    personas = res.tables["svo/personas"]
    assert (personas["form"] == "two_step").sum() == 2 and personas["system"].str.len().min() > 0


def test_report_section_renders_from_the_folder(result):
    from entangle.report import build_report
    from entangle.report.sections import svo as section

    _, folder = result
    metrics = folder.metrics()
    assert section.present(metrics)
    html = section.render(folder, metrics)
    assert 'class="plotly-graph-div"' in html and "two_step:altruistic" in html and "HVAE finding" in html
    page = build_report(folder.path).read_text()
    assert "Social value orientation" in page


def test_n_perm_below_two_is_refused(tiny, tmp_path):
    ctx = StudyContext(tiny, RunFolder(tmp_path), tmp_path / "cache")
    with pytest.raises(ValueError, match="n_perm"):
        run(ctx, Config(n_perm=1))


def test_cli_writes_a_run_folder_and_refuses_bad_input(tiny_dir, tmp_path):
    from entangle.cli import app

    out = tmp_path / "svo"
    r = CliRunner().invoke(app, ["svo", "--model", str(tiny_dir), "--out", str(out), "--n-perm", "2",
                                 "--personas", "altruistic", "--no-two-step", "--alphas", "0.5", "--n-boot", "20"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert {"svo", "run"} <= set(m) and (out / "report.html").exists() and (out / "svo" / "conditions.csv").exists()
    bad = CliRunner().invoke(app, ["svo", "--model", str(tiny_dir), "--out", str(tmp_path / "x"), "--personas", "saintly"])
    assert bad.exit_code == 2 and "saintly" in bad.output


def _synthetic(angles: dict[str, float], spread: float = 0.5):
    import pandas as pd

    rng = np.random.default_rng(0)
    boots = {k: {"debiased": v + rng.normal(0, spread, 200), "averaged": v + rng.normal(0, spread, 200)}
             for k, v in angles.items()}
    rows = []
    for k, v in angles.items():
        lo, hi = np.quantile(boots[k]["debiased"], [0.025, 0.975])
        rows.append({"condition": k, "arm": "baseline" if k == "none" else "prompt_one_step", "angle_debiased": v,
                     "angle_averaged": v, "ci_low_debiased": lo, "ci_high_debiased": hi,
                     "category_debiased": category(v)})
    return pd.DataFrame(rows), boots


@pytest.mark.parametrize(("angles", "verdict"), [
    ({"none": 22.7, "one_step:altruistic": 22.8, "one_step:competitive": 22.6}, "untested"),  # no preference at all
    ({"none": 25.0, "one_step:altruistic": 45.0, "one_step:competitive": 5.0}, "holds"),
    ({"none": 25.0, "one_step:altruistic": 61.0, "one_step:competitive": 5.0}, "does not hold"),
    ({"none": 30.0, "one_step:altruistic": 31.0, "one_step:competitive": 30.0}, "untested"),  # control below 5 deg
])
def test_hvae_verdict_needs_a_working_prompt_arm(angles, verdict):
    from entangle.studies.svo.findings import findings

    table, boots = _synthetic(angles)
    f = findings(table, boots, (), uniform=22.70)
    assert f["hvae_drift"]["verdict"] == verdict


def test_moral_direction_source_may_be_a_saved_direction_file(tiny, tmp_path):
    from entangle.directions import Direction, save_direction
    from entangle.files import InputError
    from entangle.studies.svo.induction import DirectionSource, contrast_direction

    v = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    save_direction(Direction(v, [1, 2], "moral", "dom", {}), tmp_path / "moral.safetensors")
    got = contrast_direction(tiny, DirectionSource(str(tmp_path / "moral.safetensors")))
    assert sorted(got) == [1, 2] and np.allclose(got[2], v[1])
    pairs = contrast_direction(tiny, DirectionSource("data/svo/prosocial_pairs.jsonl", "prosocial", "proself"))
    assert len(pairs) == tiny.info.n_layers + 1 and all(np.linalg.norm(d) > 0 for d in pairs.values())
    (tmp_path / "bad.jsonl").write_text('{"prosocial": "a", "proself": "b"}\n{"prosocial": "c"}\n')
    with pytest.raises(InputError, match="proself"):
        contrast_direction(tiny, DirectionSource(str(tmp_path / "bad.jsonl"), "prosocial", "proself"))


def test_a_run_hands_its_causal_moral_direction_to_svo_and_tradeoffs(tiny, tmp_path):
    """`entangle run --studies all`: the entanglement study's one-layer `moral_causal` direction is what SVO steers
    along (at its own layer, with σ measured there) and what the trade-off study ablates."""
    from entangle.directions import Direction, save_direction
    from entangle.studies import study_config
    from entangle.studies.svo.study import steering_setup

    assert study_config("svo", tmp_path) == Config()           # no causal direction written: the defaults
    v = np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32)
    (tmp_path / "directions").mkdir()
    save_direction(Direction(v, [3], "moral", "dom", {}), tmp_path / "directions" / "moral_causal.safetensors")
    svo_cfg = study_config("svo", tmp_path)
    assert svo_cfg.moral.path.endswith("moral_causal.safetensors")
    assert study_config("tradeoffs", tmp_path).moral_direction.endswith("moral_causal.safetensors")
    ctx = StudyContext(tiny, RunFolder(tmp_path), tmp_path / "cache")
    sigmas, at, record = steering_setup(ctx, replace(svo_cfg, layer=1, n_neutral=4))
    assert at["moral"][0] == 3 and np.allclose(at["moral"][1], v[0]) and at["prosocial"][0] == 1
    assert set(sigmas) == {1, 3} and all(s > 0 for s in sigmas.values())
    assert record["layers"] == {"prosocial": 1, "moral": 3}
