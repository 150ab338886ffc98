"""The HTML report and run comparison, built from synthetic run folders (no model)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import plotly.graph_objects as go
import pytest
from fixtures_run import N_LAYERS, write_synthetic_run

from entangle.report import (
    FIGURES,
    build_report,
    compare_runs,
    figures,
    verdicts,
)
from entangle.runfolder import RunFolder, RunFolderError

EXPECTED = [
    "level_means", "ei_matrix", "excess", "probe_accuracy", "cosine", "cross_decoding", "leakage", "candidate_screen",
    "effects_kept", "amnesic", "null_distributions", "steering", "patching",
]
BUNDLE_MARK = "* plotly.js v"
EXTERNAL = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']?\s*(https?:)?//", re.IGNORECASE)


def _answer(html: str, key: str) -> tuple[str, str]:
    m = re.search(rf'id="verdict-{key}".*?<span class="answer [^"]*">([^<]+)</span>'
                  r'<span class="verdict-text">([^<]*)</span>', html, re.DOTALL)
    assert m, f"verdict {key} not found"
    return m.group(1), m.group(2)


def _sections(html: str) -> list[str]:
    return re.findall(r'<section class="figure" id="fig-([\w-]+)"', html)


@pytest.fixture(scope="module")
def run_yes(tmp_path_factory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("run_yes") / "run")


@pytest.fixture(scope="module")
def run_failed(tmp_path_factory) -> Path:
    """The positive control fails: repair must read "untested", never a negative."""
    return write_synthetic_run(tmp_path_factory.mktemp("run_failed") / "run", control_passed=False, seed=1)


@pytest.fixture(scope="module")
def run_no(tmp_path_factory) -> Path:
    """Control passes; no excess, no repair beyond the nulls, the cloze grammatical readout deaf, no patching."""
    return write_synthetic_run(tmp_path_factory.mktemp("run_no") / "run", excess_significant=False,
                               repair_beats_nulls=False, grammatical_valid=False, patching=False, seed=2)


@pytest.fixture(scope="module")
def report_yes(run_yes) -> Path:
    return build_report(run_yes)


def test_report_has_every_figure_once_and_plotly_inlined_once(run_yes, report_yes):
    assert report_yes == run_yes / "report.html" and report_yes.exists()
    html = report_yes.read_text(encoding="utf-8")
    assert _sections(html) == EXPECTED
    assert html.count(BUNDLE_MARK) == 1, "plotly.js must be inlined exactly once"
    assert html.count('class="plotly-graph-div"') == len(EXPECTED)
    assert not EXTERNAL.search(html), "no external resources: the report must open offline"
    assert 'class="note missing"' not in html
    assert html.lstrip().startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert html.count("<html") == 1 and html.count("<body") == 1
    for heading in ("Summary", "1. Methods", "2. Results", "2.3 The positive control", "2.4 Repair of the valid",
                    "3. Caveats", "4. Self-checks", "Appendix: run folder"):
        assert heading in html
    assert 'id="study-entanglement"' in html
    assert "Quantised weights" in html and "Design norm" in html and "Small model" in html
    assert "moral_causal.safetensors" in html  # directions are listed
    for phrase in ("selection frames", "held-out frames", "variance-matched", "resolution is 1 / (1 + n) = 0.010",
                   "LEACE", "Effect coding", "Validity gate", "orthogonalised weights", "Activation patching"):
        assert phrase in html, phrase
    assert "shared_prefix" in html and "readout max abs error 9.0e-08" in html  # the shared-prefix self-check
    assert "2.6 Where moral value enters" in html and "v1 stimuli carry no spans" in html
    peak = re.search(r"<td>economic_cloze</td><td[^>]*>(\d+)</td><td[^>]*>(\w+)</td>", html)
    assert peak and peak.group(2) == "act" and int(peak.group(1)) < 15  # the planted entry point
    for old in ("ablation_random", "selectivity.csv", "random-direction", "layer rule"):
        assert old not in html, old


def test_report_to_custom_path(run_yes, tmp_path):
    out = build_report(run_yes, tmp_path / "sub" / "r.html")
    assert out == tmp_path / "sub" / "r.html" and out.exists()


def test_verdicts_around_the_positive_control(report_yes):
    html = report_yes.read_text(encoding="utf-8")
    a, text = _answer(html, "entanglement")
    assert a == "yes" and "design norm" in text
    assert "moral→grammatical EI +0.31 [+0.19, +0.43]" in text and "raw b_m +0.062 [+0.038, +0.086]" in text
    assert "Holm p &lt; 0.001" in text
    a, text = _answer(html, "direction")
    assert a == "yes" and "dom at judged_mean, layer 14" in text and "0.12 [0.05, 0.19]" in text
    assert "8 held-out frames" in text and "4 other frames" in text and "threshold 0.50" in text
    assert "Amnesic check (held-out control frames, 96 moral prompts, last token): at the direction's layer 14" in html
    a, text = _answer(html, "repair")
    assert a == "yes" and "moral→economic repairs 62% [47%, 77%]" in text
    assert "raw b_m +0.120 [+0.080, +0.160] → +0.046 [+0.006, +0.086]" in text
    assert "99 variance-matched random directions p = 0.010 (resolution 0.010" in text
    assert "99 shuffled-label DoM directions p = 0.010" in text
    a, text = _answer(html, "cost")
    assert a == "small" and "economic own effect keeps 0.95 [0.90, 1.00]" in text
    assert "grammatical (sentence log-prob) own effect keeps 0.98" in text and "+0.020 nats" in text
    assert "orthogonalised weights equal to the all-layer hook ablation" in text


def test_failed_positive_control_makes_repair_untested(run_failed):
    html = build_report(run_failed).read_text(encoding="utf-8")
    a, text = _answer(html, "direction")
    assert a == "no" and "No causal moral direction found" in text and "0.77 [0.70, 0.84]" in text
    a, text = _answer(html, "repair")
    assert a == "untested" and "no causal moral direction" in text
    assert "the best candidate, which did not pass the positive control" in _answer(html, "cost")[1]
    assert 'id="missing-null_distributions"' in html and "repair was not tested" in html
    assert "Repair is untested: no causal moral direction was found" in html
    assert "candidate_screen" in _sections(html)  # the best candidates are shown


def test_gate_nulls_and_no_evidence(run_no):
    html = build_report(run_no).read_text(encoding="utf-8")
    a, text = _answer(html, "entanglement")
    assert a == "no evidence" and "includes 0" not in text  # the sentence gives the interval itself
    assert "Not valid on this readout" in text and "moral→grammatical" in text.split("Not valid")[1]
    assert "moral→grammatical EI" not in text.split("Not valid")[0]  # the gated cell is not judged
    a, text = _answer(html, "repair")
    assert a == "no evidence" and "(moral→economic)" in text and "resolution 0.010" in text
    assert "grammatical (sentence log-prob) own effect" in _answer(html, "cost")[1]
    assert "A cell the gate drops" in html and "cloze.moral_to_grammatical" in html
    assert 'id="missing-patching"' in html and "activation patching was not run" in html
    assert "not monotone" in html


def _metrics(excess_ci=(0.1, 0.3), valid=(True, True), passed=True, tested=True, repair=(0.5, 0.3, 0.7),
             p=(0.01, 0.01), kept=(0.95, 0.97), loss=0.01, norm="design") -> dict:
    def cell(v: bool) -> dict:
        return dict(ei=0.2, ci_low=0.1, ci_high=0.3, human_ei=0.0, excess=sum(excess_ci) / 2,
                    excess_ci_low=excess_ci[0], excess_ci_high=excess_ci[1], coef_p=0.01, b_from=0.05,
                    b_from_ci=[0.02, 0.08], valid=v, p_holm=0.02 if v else None)

    nulls = {k: {"kind": k, "n": 99, "p_value": pv, "p_resolution": 0.01, "median_repair": 0.0}
             for k, pv in zip(("variance_matched", "shuffled_dom"), p, strict=True) if pv is not None}
    primary = {"tested": tested, "repair_fraction": repair[0], "ci_low": repair[1], "ci_high": repair[2],
               "valid_cells": ["moral_to_economic"], "null": {"observed_repair": repair[0], **nulls},
               "cells": {"moral_to_economic": {"repair_fraction": repair[0], "ci_low": repair[1],
                                               "ci_high": repair[2], "ei_before": 0.2, "ei_after": 0.1,
                                               "b_from_before": 0.05, "b_from_after": 0.02,
                                               "b_from_before_ci": [0.03, 0.07], "b_from_after_ci": [0.0, 0.04]}}}
    if not tested:
        primary = {"tested": False, "reason": "no valid cell: no target readout responds to its own factor"}
    return {
        "readout": {"style": "likert", "evidence": {}},
        "entanglement": {
            "behavioural": {"likert": {"moral_to_grammatical": cell(valid[0]), "moral_to_economic": cell(valid[1])}},
            "human_norm": {"source": norm, "note": ""},
            "validity": {"cells": {}, "grammatical_cloze_valid": True},
            "positive_control": {"method": "dom", "position": "last", "layer": 3, "moral_effect_kept": 0.2,
                                 "ci_low": 0.1, "ci_high": 0.3 if passed else 0.7, "passed": passed,
                                 "threshold": 0.5, "selection_frames": 4, "heldout_frames": 8, "loss_delta": loss,
                                 "kept": {"economic": {"kept": kept[0]}, "grammatical": {"kept": kept[1]}}}},
        "ablation": {"primary": "moral_dom", "moral_dom": primary},
    }


def test_verdict_rules_on_metrics_dicts():
    v = verdicts(_metrics(excess_ci=(-0.4, -0.1)))
    assert v["entanglement"].answer == "yes" and "below (moral value pushes" in v["entanglement"].text
    assert v["entanglement"].facts["readout"] == "likert"
    v = verdicts(_metrics(norm="ratings:example_ratings.csv"))
    assert v["entanglement"].facts["design_norm"] is False
    assert "human ratings (example_ratings.csv)" in v["entanglement"].text
    assert verdicts(_metrics(valid=(False, False)))["entanglement"].answer == "no valid cell"
    assert verdicts(_metrics(valid=(False, True)))["entanglement"].facts["invalid"] == ["moral_to_grammatical"]
    assert verdicts(_metrics())["repair"].answer == "yes"
    assert verdicts(_metrics(p=(0.01, 0.3)))["repair"].answer == "not beyond nulls"
    assert verdicts(_metrics(p=(None, None)))["repair"].answer == "not beyond nulls"
    assert verdicts(_metrics(repair=(0.1, -0.2, 0.4)))["repair"].answer == "no evidence"
    assert verdicts(_metrics(repair=(-0.5, -0.8, -0.2), p=(0.9, 0.9)))["repair"].answer == "no"
    failed = verdicts(_metrics(passed=False, repair=(-0.5, -0.8, -0.2)))
    assert failed["direction"].answer == "no" and failed["repair"].answer == "untested"
    untested = verdicts(_metrics(tested=False))["repair"]
    assert untested.answer == "untested" and "no valid cell" in untested.text
    assert verdicts(_metrics(kept=(0.8, 0.95)))["cost"].answer == "moderate"
    assert verdicts(_metrics(kept=(0.3, 0.95)))["cost"].answer == "large"
    assert verdicts(_metrics(kept=(1.7, 0.95)))["cost"].answer == "large"  # amplifying is a cost too
    assert verdicts(_metrics(loss=0.5))["cost"].answer == "large"
    empty = verdicts({})
    assert {x.answer for x in empty.values()} == {"not measured"}


def test_cost_reads_the_grammatical_contrast_the_filter_recorded():
    m = _metrics(kept=(0.95, 0.97))  # the cloze grammatical effect is kept, and the gate admits the cloze readout
    pc = m["entanglement"]["positive_control"]
    pc["kept"]["grammatical_logprob"] = {"kept": 0.3}
    pc["filters"] = {"max_loss_delta": 0.1, "min_other_kept": 0.5, "grammar_contrast": "grammatical_logprob"}
    v = verdicts(m)["cost"]
    assert v.answer == "large" and v.facts["kept"]["grammatical"] == 0.3 and "sentence log-prob" in v.text


def test_a_model_whose_weights_cannot_be_orthogonalised_says_why():
    m = _metrics()
    m["ablation"]["controls"] = {"orthogonalized_weights": {"skipped": "Gemma3ForCausalLM normalises its outputs"}}
    v = verdicts(m)["cost"]
    assert "orthogonalised weights not run: Gemma3ForCausalLM normalises its outputs" in v.text
    assert v.facts["weights_equal"] is None


def test_verdicts_of_a_folder(run_yes):
    assert {k: v.answer for k, v in verdicts(run_yes).items()} == {
        "entanglement": "yes", "direction": "yes", "repair": "yes", "cost": "small"}


def test_missing_optional_files_leave_notes(tmp_path):
    omit = ["level_means.csv", "cross_decoding.csv", "ablation_nulls.csv", "selection.csv", "candidates.csv",
            "config.json", "directions", "run.log"]
    run = write_synthetic_run(tmp_path / "run", omit=omit)
    html = build_report(run).read_text(encoding="utf-8")
    present = _sections(html)
    for name in ("level_means", "cross_decoding", "null_distributions", "candidate_screen"):
        assert name not in present and f'id="missing-{name}"' in html
    assert "effects_kept" in present and "steering" in present  # from metrics.json and steering_moral.csv
    assert "level_means.csv is missing" in html and "ablation_nulls.csv is missing" in html
    assert html.count(BUNDLE_MARK) == 1 and html.count('class="plotly-graph-div"') == len(present)
    assert "config.json is missing" in html
    assert set(figures(run)) == set(present)


def test_metrics_json_is_required(tmp_path):
    run = write_synthetic_run(tmp_path / "run", omit=["metrics.json"])
    with pytest.raises(RunFolderError, match="metrics.json"):
        build_report(run)
    assert not (run / "report.html").exists()


def test_missing_blocks_are_not_measured_each_on_its_own(tmp_path):
    run = write_synthetic_run(tmp_path / "run")
    RunFolder(run).write_metrics({"readout": {"style": "cloze"}, "ablation": {"primary": "moral_dom"}})
    html = build_report(run).read_text(encoding="utf-8")
    for key in ("entanglement", "direction", "repair", "cost"):
        assert _answer(html, key)[0] == "not measured", key
    assert "probe_accuracy" in _sections(html)  # CSV-based figures still drawn
    assert "metrics.json records no self-checks" in html


@pytest.mark.parametrize(("path", "value", "message"), [
    (("probe", "moral", "best_layer"), "fourteen", r"probe\.moral\.best_layer.*expected an integer"),
    (("entanglement", "positive_control", "layer"), "L14", r"positive_control\.layer.*expected an integer"),
    (("ablation", "moral_dom", "null", "variance_matched", "p_value"), "low", r"variance_matched\.p_value"),
    (("ablation", "moral_dom", "cells", "moral_to_economic", "b_from_after_ci"), [1.0], r"b_from_after_ci"),
    (("patching", "position_groups"), "act", r"patching\.position_groups"),
])
def test_a_block_of_the_wrong_type_is_refused_naming_the_field(tmp_path, path, value, message):
    run = write_synthetic_run(tmp_path / "run")
    folder = RunFolder(run)
    metrics = folder.metrics()
    d = metrics
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    folder.write_metrics(metrics)
    with pytest.raises(RunFolderError, match=message):
        build_report(run)
    assert not (run / "report.html").exists()


def test_text_from_the_folder_is_escaped(tmp_path):
    run = write_synthetic_run(tmp_path / "run", model="<script>alert(1)</script>")
    folder = RunFolder(run)
    metrics = folder.metrics()
    metrics["readout"]["evidence"] = {"reason": "a <b>bold</b> claim", "nested": {"a": [1, 2]}}
    metrics["entanglement"]["positive_control"]["method"] = "<i>dom</i>"
    folder.write_metrics(metrics)
    html = build_report(run).read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &lt;b&gt;bold&lt;/b&gt; claim" in html and "<b>bold</b>" not in html
    assert "<i>dom</i>" not in html and "&lt;i&gt;dom&lt;/i&gt;" in html
    assert '{&#34;a&#34;: [1, 2]}' in html  # a nested evidence value is shown as JSON


def test_figures_api(run_yes):
    figs = figures(run_yes)
    assert list(figs) == EXPECTED and all(isinstance(f, go.Figure) for f in figs.values())
    assert set(FIGURES) == set(EXPECTED)
    for name in EXPECTED:  # every caption states its interval and resampling unit (cosine is a point value)
        assert name == "cosine" or ("95%" in FIGURES[name][1] and ("frames" in FIGURES[name][1]
                                                                   or "direction" in FIGURES[name][1])), name
    assert len(figs["cosine"].layout.sliders[0].steps) == N_LAYERS
    heat = [t for t in figs["ei_matrix"].data if t.type == "heatmap"]
    assert len(heat) == 2 and "0.31<br>[0.19, 0.43]" in {str(x) for row in heat[0].text for x in row}
    # nulls: one histogram per null kind with the observed repair and p in the panel titles
    titles = [a.text for a in figs["null_distributions"].layout.annotations]
    assert any("variance-matched random directions: p = 0.010 (resolution 0.010)" in t for t in titles)
    assert sum(t.type == "histogram" for t in figs["null_distributions"].data) == 2
    # steering: one curve per kind through α = 0, with error bars
    assert {t.name for t in figs["steering"].data} == {"moral readout", "economic readout", "grammatical readout"}
    assert all(0.0 in list(t.x) and t.error_y.array is not None for t in figs["steering"].data)
    # patching: one heatmap per readout, layers × position groups
    heat = [t for t in figs["patching"].data if t.type == "heatmap"]
    assert len(heat) == 2 and list(heat[0].x) == ["context", "act", "outcome", "violation", "template", "last"]
    assert len(RunFolder(run_yes).directions()) == 13


def test_compare_runs(run_yes, run_failed, tmp_path):
    out = compare_runs(run_yes, run_failed, tmp_path / "cmp" / "compare.html")
    html = out.read_text(encoding="utf-8")
    assert _sections(html) == ["compare_probe_accuracy", "compare_ei"]
    assert html.count(BUNDLE_MARK) == 1 and not EXTERNAL.search(html)
    table = re.search(r'<table id="compare-table">.*?</table>', html, re.DOTALL).group(0)
    for label in ("probe accuracy: moral", "EI moral→grammatical (judgement)", "excess moral→economic",
                  "causal moral direction", "moral effect kept (held out)", "repair of the valid cells",
                  "p vs variance-matched null", "interventional EI economic", "verdict: direction"):
        assert label in table, label
    for label, a, b in (("positive control", "passed", "failed"), ("verdict: repair", "yes", "untested"),
                        ("repair of the valid cells", "58% [40%, 77%]", "untested")):
        row = re.search(rf"{re.escape(label)}</td><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td>", table)
        assert row.groups() == (a, b), label
    assert "+0.31 [+0.19, +0.43]" in table


def _chromium() -> str:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if exe is None:
        pytest.fail("chromium not found: install it (apt-get update && apt-get install -y chromium) to run the "
                    "report's headless DOM check; CI installs it")
    return exe


def _rendered_dom(exe: str, html_file: Path, profile: Path) -> str:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", html_file.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.mark.slow
def test_report_renders_offline_in_chromium(report_yes, run_yes, run_no, tmp_path):
    exe = _chromium()
    html = report_yes.read_text(encoding="utf-8")
    n = len(_sections(html))
    dom = _rendered_dom(exe, report_yes, tmp_path / "profile")
    assert dom.count('class="plot-container plotly"') == n, "plotly did not render every figure offline"
    assert dom.count('class="main-svg"') >= n
    cmp = compare_runs(run_yes, run_no, tmp_path / "compare.html")
    dom = _rendered_dom(exe, cmp, tmp_path / "profile2")
    assert dom.count('class="plot-container plotly"') == 2
