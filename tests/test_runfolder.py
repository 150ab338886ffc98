"""The run-folder contract: versioned metrics.json round-trips, refusal of what does not validate, report sections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_run import write_synthetic_run

from entangle.report import build_report, compare_runs
from entangle.report.sections import SECTIONS, available, render_all
from entangle.runfolder import SCHEMA_VERSION, Block, RunFolder, RunFolderError


@pytest.fixture
def run(tmp_path) -> Path:
    return write_synthetic_run(tmp_path / "run")


def _good_report(run: Path) -> bytes:
    return build_report(run).read_bytes()


def test_round_trip_write_read_report(run):
    folder = RunFolder(run)
    metrics = folder.metrics()
    assert metrics["schema_version"] == SCHEMA_VERSION
    assert json.loads((run / "metrics.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert metrics["probe"]["moral"]["best_layer"] == 14
    assert folder.config()["model_info"]["name"] == "smollm2-135m"
    assert folder.table("probes") is not None and "probes" in folder.tables()
    # write what was read: the same folder, the same report
    first = _good_report(run)
    folder.write_metrics({k: v for k, v in metrics.items() if k != "schema_version"})
    assert folder.metrics() == metrics
    assert _good_report(run) == first
    folder.update_metrics("extra_study", {"answer": 42})
    assert folder.metrics()["extra_study"] == {"answer": 42} and folder.metrics()["probe"] == metrics["probe"]


@pytest.mark.parametrize("version", [None, 1, 3, "2"])
def test_old_or_unknown_version_is_a_clear_error_and_nothing_is_written(run, version):
    m = json.loads((run / "metrics.json").read_text())
    if version is None:
        del m["schema_version"]  # entangle 0.1 wrote no version
    else:
        m["schema_version"] = version
    (run / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(RunFolderError, match="schema_version") as exc:
        build_report(run)
    assert "not one this entangle reads" in str(exc.value)
    if version in (None, 1):
        assert "re-run" in str(exc.value)
    assert not (run / "report.html").exists()


@pytest.mark.parametrize("content", ['{"schema_version": 2, "probe": {', "[1, 2, 3]", "", "NaN"])
def test_unreadable_metrics_keep_the_existing_report_byte_identical(run, tmp_path, content):
    before = _good_report(run)
    (run / "metrics.json").write_text(content)
    with pytest.raises(RunFolderError, match="metrics.json"):
        build_report(run)
    assert (run / "report.html").read_bytes() == before
    other = write_synthetic_run(tmp_path / "other")
    with pytest.raises(RunFolderError):
        compare_runs(other, run, tmp_path / "compare.html")
    assert not (tmp_path / "compare.html").exists()


def test_unreadable_config_or_table_is_refused(run):
    before = _good_report(run)
    (run / "config.json").write_text('{"model": ')
    with pytest.raises(RunFolderError, match="config.json"):
        build_report(run)
    write_synthetic_run(run)
    (run / "probes.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(RunFolderError, match="probes.csv"):
        build_report(run)
    assert (run / "report.html").read_bytes() == before


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(RunFolderError, match="no such run folder"):
        build_report(tmp_path / "nowhere")


def test_block_getters_name_the_field():
    b = Block({"a": {"n": 1, "x": "y", "l": [1, None], "f": True}}, "", "m.json")
    a = b.block("a")
    assert a.integer("n") == 1 and a.number("n") == 1.0 and a.text("x") == "y" and a.flag("f") is True
    assert a.numbers("l") == (1.0, None) and a.number("absent") is None and b.block("absent") is None
    with pytest.raises(RunFolderError, match=r"m.json: field 'a.x': expected a number, got str"):
        a.number("x")
    with pytest.raises(RunFolderError, match="a.f"):
        a.integer("f")  # true is not an integer
    with pytest.raises(RunFolderError, match="a list of integers"):
        a.numbers("l", integers=True)


def test_absent_section_modules_are_skipped(run):
    names = [n for n, _ in available(("entanglement", "no_such_study"))]
    assert names == ["entanglement"]
    assert SECTIONS[0] == "entanglement"
    folder = RunFolder(run)
    rendered = render_all(folder, folder.metrics(), ("no_such_study", "entanglement"))
    assert [s.name for s in rendered] == ["entanglement"] and rendered[0].title


def test_a_study_that_did_not_run_has_no_section(run):
    RunFolder(run).write_metrics({"run": {"model": "m"}})
    html = build_report(run).read_text(encoding="utf-8")
    assert 'id="study-entanglement"' not in html and "holds no study results" in html
    assert "* plotly.js v" not in html  # no figures, no 5 MB of plotly.js


def test_one_failing_section_leaves_a_note_not_a_lost_report(run, monkeypatch):
    from entangle.report.sections import entanglement

    def broken(folder, metrics):
        raise KeyError("a bug in one section")

    monkeypatch.setattr(entanglement, "render", broken)
    html = build_report(run).read_text(encoding="utf-8")
    assert 'id="failed-entanglement"' in html and "a bug in one section" in html
