"""`entangle run` end to end on the tiny random Llama: the folder, metrics.json keys, report rebuild, CLI."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from entangle.cli import app
from entangle.studies.entanglement.pipeline import RunConfig, run, summary_lines


@pytest.fixture(scope="module")
def run_dir(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = RunConfig(model=str(tiny.info.source), out=str(out), frames=4, n_random=3, control_frames=4, n_boot=100,
                    n_splits=3, cache_dir=str(out / "cache"), progress=False)
    return run(cfg, model=tiny)


def test_run_writes_the_whole_folder(run_dir):
    for name in ("config.json", "metrics.json", "report.html", "run.log", "probes.csv", "cosine.csv",
                 "cross_decoding.csv", "leakage.csv", "readouts.csv", "ei.csv", "excess.csv", "ablation.csv",
                 "ablation_random.csv", "selectivity.csv"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "directions" / "moral_logistic.safetensors").exists()
    assert (run_dir / "directions" / "moral_logistic.json").exists()


def test_metrics_json_has_the_documented_keys(run_dir):
    m = json.loads((run_dir / "metrics.json").read_text())
    for kind in ("moral", "grammatical", "economic"):
        p = m["probe"][kind]
        assert {"best_layer", "cv_accuracy", "ci"} <= set(p) and p["ci"][0] <= p["cv_accuracy"] <= p["ci"][1]
    style = m["readout"]["style"]
    cell = m["entanglement"]["behavioural"][style]["moral_to_grammatical"]
    assert {"ei", "ci_low", "ci_high", "human_ei"} <= set(cell) and cell["human_ei"] == 0.0
    assert "logprob" in m["entanglement"]["behavioural"]
    primary = m["ablation"]["primary"]
    a = m["ablation"][primary]
    assert {"layers", "repair_fraction", "ci_low", "ci_high", "selectivity", "random_p_value", "loss_delta"} <= set(a)
    assert set(a["selectivity"]) == {"moral", "grammatical", "economic"}
    assert 1 / 4 <= a["random_p_value"] <= 1  # 3 random directions: p in {1/4, ..., 4/4}
    assert m["ablation"]["random"]["n"] == 3
    assert m["self_checks"]["padding_invariance"]["passed"] and m["self_checks"]["hook_semantics"]["passed"]
    assert m["entanglement"]["human_norm"]["source"] == "design"
    assert len(summary_lines(run_dir)) >= 6


def test_report_rebuilds_from_the_folder_without_a_model(run_dir, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("cache"))
    (copy / "report.html").unlink()
    import entangle.models

    monkeypatch.setattr(entangle.models, "load_model", lambda *a, **k: pytest.fail("report loaded a model"))
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    html = (copy / "report.html").read_text()
    assert "plotly" in html and "Verdict" in html


def test_second_run_reuses_the_capture_cache(run_dir, tiny):
    log = (run_dir / "run.log").read_text()
    assert "run_capture done" in log
    manifest_dirs = list((run_dir / "cache").rglob("manifest.json"))
    assert len(manifest_dirs) == 1


def test_cli_commands(run_dir, tmp_path):
    runner = CliRunner()
    for cmd in ("models", "capture", "probe", "export", "score", "run", "report", "compare"):
        res = runner.invoke(app, [cmd, "--help"] if cmd != "models" else [cmd])
        assert res.exit_code == 0, (cmd, res.output)
    res = runner.invoke(app, ["export", str(run_dir / "directions" / "moral_logistic.safetensors"),
                              "--out", str(tmp_path / "moral.gguf"), "--layers", "2,3"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", str(run_dir), str(run_dir), "--out", str(tmp_path / "cmp.html")])
    assert res.exit_code == 0 and (tmp_path / "cmp.html").exists()
    res = runner.invoke(app, ["export", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "missing.npz" in res.output
