"""`entangle run` end to end on the tiny random Llama: the folder, metrics.json keys, report rebuild, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from entangle.cli import app
from entangle.studies.entanglement.pipeline import RunConfig, run
from entangle.studies.entanglement.summary import summary_lines


@pytest.fixture(scope="module")
def run_dir(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = RunConfig(model=str(tiny.info.source), out=str(out), frames=8, selection_frames=3, n_null=9, null_frames=3,
                    control_frames=3, kept_threshold=100.0, n_boot=50, n_splits=3, cache_dir=str(out / "cache"),
                    progress=False)
    return run(cfg, model=tiny)


def test_run_writes_the_whole_folder(run_dir):
    for name in ("config.json", "metrics.json", "report.html", "run.log", "probes.csv", "cosine.csv",
                 "cross_decoding.csv", "leakage.csv", "readouts.csv", "ei.csv", "excess.csv", "validity.csv",
                 "level_means.csv", "candidates.csv", "selection.csv", "ablation_controls.csv", "steering_moral.csv"):
        assert (run_dir / name).exists(), name
    for old in ("ablation.csv", "ablation_random.csv", "selectivity.csv"):
        assert not (run_dir / old).exists(), old
    assert (run_dir / "directions" / "moral_diff_means.safetensors").exists()
    assert (run_dir / "directions" / "moral_causal.safetensors").exists()


def test_metrics_json_has_the_documented_keys(run_dir):
    m = json.loads((run_dir / "metrics.json").read_text())
    for kind in ("moral", "grammatical", "economic"):
        p = m["probe"][kind]
        assert {"best_layer", "cv_accuracy", "ci"} <= set(p) and p["ci"][0] <= p["cv_accuracy"] <= p["ci"][1]
    style = m["readout"]["style"]
    ent = m["entanglement"]
    cell = ent["behavioural"][style]["moral_to_grammatical"]
    assert {"ei", "ci_low", "ci_high", "human_ei", "b_from", "b_from_ci", "valid", "p_holm"} <= set(cell)
    assert cell["human_ei"] == 0.0 and len(cell["b_from_ci"]) == 2
    assert "logprob" in ent["behavioural"] and {"cells", "grammatical_cloze_valid", "rule"} <= set(ent["validity"])
    assert {"violation_effect", "moral_interaction", "valid"} <= set(ent["logprob_minimal_pair"])
    assert all(isinstance(v, bool) for v in ent["monotonicity"].values())
    pc = ent["positive_control"]
    assert {"method", "position", "layer", "moral_effect_kept", "ci_low", "ci_high", "passed", "threshold",
            "threshold_rule", "selection_frames", "heldout_frames", "kept", "separates_on", "filters",
            "selection_estimate_rank_spearman"} <= set(pc)
    assert pc["passed"] is True and pc["threshold"] == 100.0 and pc["selection_frames"] == 3
    assert pc["heldout_frames"] == 5 and "moral" in pc["kept"]
    am = pc["amnesic"]  # the chosen direction is projected out, so the moral difference shrinks at its layer
    assert am["layer"] == pc["layer"] and am["n_frames"] >= 2 and am["removed_share"] > 0
    assert am["removed_ci"][0] <= am["removed_share"] <= am["removed_ci"][1]
    assert 0 <= am["accuracy_after"] <= 1 and (run_dir / "amnesic.csv").exists()
    abl = m["ablation"]
    a = abl[abl["primary"]]
    assert abl["primary"] == f"moral_{pc['method']}" and isinstance(a["tested"], bool)
    if a["tested"]:  # only where the tiny model happens to have a valid cell
        assert {"repair_fraction", "ci_low", "ci_high", "cells", "valid_cells"} <= set(a)
        assert {"variance_matched", "shuffled_dom"} <= set(a["null"]) and a["null"]["variance_matched"]["n"] == 9
        assert a["null"]["variance_matched"]["p_resolution"] == pytest.approx(0.1)
    else:
        assert a["reason"]
    ctl = abl["controls"]
    assert {"economic_direction", "grammatical_direction", "leace_groups", "orthogonalized_weights"} <= set(ctl)
    assert ctl["orthogonalized_weights"]["equal"] is True and "moral_kept" in ctl["economic_direction"]
    lg = ctl["leace_groups"]  # fitted per position group: its cost on neutral text is measured
    assert "moral_kept" in lg and np.isfinite(lg["loss_delta"]) and set(lg["groups"]) == {"sentence", "template", "last"}
    assert ctl["moral_subspace"]["rank"] == min(4, pc["selection_frames"]) and "moral_kept" in ctl["moral_subspace"]
    st = m["steering"]["moral"]
    assert st["alphas"] == [-1.0, -0.5, 0.5, 1.0] and set(st["interventional_ei"]) == {"economic", "grammatical"}
    assert {"estimate", "ci_low", "ci_high"} <= set(st["interventional_ei"]["economic"])
    checks = m["self_checks"]
    assert checks["padding_invariance"]["passed"] and checks["hook_semantics"]["passed"]
    assert checks["shared_prefix"]["passed"]
    assert ent["human_norm"]["source"] == "design"
    assert len(summary_lines(run_dir)) >= 6


def test_report_verdicts_of_the_tiny_run(run_dir):
    from entangle.report import verdicts

    v = verdicts(run_dir)
    assert v["direction"].answer == "yes"  # kept_threshold=100: the control passes by construction
    a = json.loads((run_dir / "metrics.json").read_text())["ablation"]
    if not a[a["primary"]]["tested"]:
        assert v["repair"].answer == "untested"
    html = (run_dir / "report.html").read_text()
    assert 'id="verdict-direction"' in html and 'id="fig-candidate_screen"' in html
    assert 'id="fig-effects_kept"' in html and 'id="fig-steering"' in html and "shared_prefix" in html


def test_report_rebuilds_from_the_folder_without_a_model(run_dir, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("cache"))
    (copy / "report.html").unlink()
    import entangle.models

    monkeypatch.setattr(entangle.models, "load_model", lambda *a, **k: pytest.fail("report loaded a model"))
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    html = (copy / "report.html").read_text()
    assert "plotly" in html and "Verdict" in html and 'id="verdict-repair"' in html


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
    res = runner.invoke(app, ["export", str(run_dir / "directions" / "moral_causal.safetensors"),
                              "--out", str(tmp_path / "moral.gguf")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", str(run_dir), str(run_dir), "--out", str(tmp_path / "cmp.html")])
    assert res.exit_code == 0 and (tmp_path / "cmp.html").exists()
    res = runner.invoke(app, ["export", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "missing.npz" in res.output
