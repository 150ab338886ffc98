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
    "readouts", "ei_matrix", "excess", "probe_accuracy", "cosine", "cross_decoding", "leakage", "ablation_cells",
    "repair_by_method", "random_controls", "layer_sweep", "selectivity",
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
def run_no(tmp_path_factory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("run_no") / "run", excess_significant=False,
                               repair_beats_random=False, seed=1)


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
    for heading in ("Summary", "1. Methods", "2. Results", "3. Caveats", "4. Self-checks", "Appendix: run folder"):
        assert heading in html
    assert 'id="study-entanglement"' in html
    assert "Quantised weights" in html and "Design norm" in html and "Small model" in html
    assert "moral_logistic.safetensors" in html  # directions are listed


def test_report_to_custom_path(run_yes, tmp_path):
    out = build_report(run_yes, tmp_path / "sub" / "r.html")
    assert out == tmp_path / "sub" / "r.html" and out.exists()


def test_verdicts_reflect_planted_significant_values(report_yes):
    html = report_yes.read_text(encoding="utf-8")
    a, text = _answer(html, "entanglement")
    assert a == "yes"
    assert "moral→grammatical EI exceeds the norm by +0.31" in text and "+0.19 to +0.43" in text
    assert "moral→economic EI exceeds the norm by +0.36" in text
    assert "design norm" in text
    a, text = _answer(html, "repair")
    assert a == "yes" and "58%" in text and "p = 0.048" in text and "moral_all" in text
    a, text = _answer(html, "cost")
    assert a == "small" and "94%" in text and "91%" in text and "+0.031 nats" in text


def test_verdicts_no_evidence_when_intervals_include_zero(run_no):
    html = build_report(run_no).read_text(encoding="utf-8")
    a, text = _answer(html, "entanglement")
    assert a == "no evidence"
    assert "includes 0" in text and "design norm" in text
    a, text = _answer(html, "repair")
    assert a == "no evidence" and "includes 0" in text and "caution" in text


def _metrics(excess_ci=(0.1, 0.3), repair=(0.5, 0.3, 0.7), p=0.01, norm="design", sel=(0.2, 0.95, 0.93),
             loss=0.01) -> dict:
    cell = dict(ei=0.2, ci_low=0.1, ci_high=0.3, human_ei=0.0, excess=sum(excess_ci) / 2,
                excess_ci_low=excess_ci[0], excess_ci_high=excess_ci[1], coef_p=0.01)
    return {
        "readout": {"style": "likert", "evidence": {}},
        "entanglement": {"behavioural": {"likert": {"moral_to_grammatical": cell, "moral_to_economic": cell}},
                         "human_norm": {"source": norm, "note": ""}},
        "ablation": {"primary": "moral_all", "random": {"n": 20, "repair_fraction_mean": 0.0, "repair_fraction_sd": 0.1},
                     "moral_all": {"rule": "all", "layers": [0, 1, 2], "repair_fraction": repair[0],
                                   "ci_low": repair[1], "ci_high": repair[2], "random_p_value": p,
                                   "selectivity": dict(zip(("moral", "grammatical", "economic"), sel, strict=True)),
                                   "loss_delta": loss}},
    }


def test_verdict_rules_on_metrics_dicts():
    v = verdicts(_metrics(excess_ci=(-0.4, -0.1)))
    assert v["entanglement"].answer == "yes" and "below the norm" in v["entanglement"].text
    assert v["entanglement"].facts["readout"] == "likert"
    v = verdicts(_metrics(norm="ratings:example_ratings.csv"))
    assert v["entanglement"].facts["design_norm"] is False
    assert "human ratings (example_ratings.csv)" in v["entanglement"].text
    assert verdicts(_metrics(p=0.3))["repair"].answer == "not beyond random"
    assert verdicts(_metrics(p=None))["repair"].answer == "not beyond random"
    assert verdicts(_metrics(repair=(0.1, -0.2, 0.4), p=0.01))["repair"].answer == "no evidence"
    assert verdicts(_metrics(repair=(-0.5, -0.8, -0.2), p=0.9))["repair"].answer == "no"
    assert verdicts(_metrics(sel=(0.2, 0.8, 0.95)))["cost"].answer == "moderate"
    assert verdicts(_metrics(sel=(0.2, 0.4, 0.95)))["cost"].answer == "large"
    assert verdicts(_metrics(loss=0.5))["cost"].answer == "large"
    empty = verdicts({})
    assert {x.answer for x in empty.values()} == {"not measured"}


def test_verdicts_of_a_folder(run_yes):
    assert {k: v.answer for k, v in verdicts(run_yes).items()} == {
        "entanglement": "yes", "repair": "yes", "cost": "small"}


def test_missing_optional_files_leave_notes(tmp_path):
    omit = ["readouts.csv", "cross_decoding.csv", "ablation_random.csv", "selectivity.csv", "config.json",
            "directions", "run.log"]
    run = write_synthetic_run(tmp_path / "run", omit=omit)
    html = build_report(run).read_text(encoding="utf-8")
    present = _sections(html)
    assert "readouts" not in present and "cross_decoding" not in present and "random_controls" not in present
    assert "selectivity" in present  # falls back to metrics.json
    assert 'id="missing-readouts"' in html and "readouts.csv is missing" in html
    assert 'id="missing-cross_decoding"' in html and 'id="missing-random_controls"' in html
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
    RunFolder(run).write_metrics({"readout": {"style": "cloze"}, "ablation": {"primary": "moral_all"}})
    html = build_report(run).read_text(encoding="utf-8")
    assert _answer(html, "entanglement")[0] == "not measured"
    assert _answer(html, "repair")[0] == "not measured"
    assert "probe_accuracy" in _sections(html)  # CSV-based figures still drawn
    assert "metrics.json records no self-checks" in html


def test_a_block_of_the_wrong_type_is_refused_naming_the_field(tmp_path):
    run = write_synthetic_run(tmp_path / "run")
    folder = RunFolder(run)
    metrics = folder.metrics()
    metrics["probe"]["moral"]["best_layer"] = "fourteen"
    folder.write_metrics(metrics)
    with pytest.raises(RunFolderError, match=r"probe\.moral\.best_layer.*expected an integer"):
        build_report(run)
    assert not (run / "report.html").exists()


def test_text_from_the_folder_is_escaped(tmp_path):
    run = write_synthetic_run(tmp_path / "run", model="<script>alert(1)</script>")
    folder = RunFolder(run)
    metrics = folder.metrics()
    metrics["readout"]["evidence"] = {"reason": "a <b>bold</b> claim", "nested": {"a": [1, 2]}}
    folder.write_metrics(metrics)
    html = build_report(run).read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &lt;b&gt;bold&lt;/b&gt; claim" in html and "<b>bold</b>" not in html
    assert '{&#34;a&#34;: [1, 2]}' in html  # a nested evidence value is shown as JSON


def test_figures_api(run_yes):
    figs = figures(run_yes)
    assert list(figs) == EXPECTED and all(isinstance(f, go.Figure) for f in figs.values())
    assert set(FIGURES) >= set(EXPECTED)
    assert len(figs["cosine"].layout.sliders[0].steps) == N_LAYERS
    assert len(figs["cross_decoding"].layout.sliders[0].steps) == N_LAYERS
    # the EI matrix is annotated "ei [lo, hi]" and has one heatmap per readout (cloze, logprob)
    heat = [t for t in figs["ei_matrix"].data if t.type == "heatmap"]
    assert len(heat) == 2 and "0.31<br>[0.19, 0.43]" in {str(x) for row in heat[0].text for x in row}
    assert len(RunFolder(run_yes).directions()) == 12


def test_compare_runs(run_yes, run_no, tmp_path):
    out = compare_runs(run_yes, run_no, tmp_path / "cmp" / "compare.html")
    html = out.read_text(encoding="utf-8")
    assert _sections(html) == ["compare_probe_accuracy", "compare_ei"]
    assert html.count(BUNDLE_MARK) == 1 and not EXTERNAL.search(html)
    table = re.search(r'<table id="compare-table">.*?</table>', html, re.DOTALL).group(0)
    for label in ("probe accuracy: moral", "EI moral→grammatical (judgement)", "excess moral→economic",
                  "repair fraction", "random-direction p", "verdict: entanglement"):
        assert label in table
    row = re.search(r"verdict: entanglement</td><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td>", table)
    assert row.groups() == ("yes", "no evidence")
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
