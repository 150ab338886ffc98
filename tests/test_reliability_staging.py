"""A run is a transaction: staging beside the target, swap on success, the old folder untouched on any failure;
and the report refuses a folder it cannot read instead of replacing a good report (checked end to end)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from entangle.cli import app
from entangle.files import InputError
from entangle.schema import DATA_DIR
from entangle.staging import FolderInUseError, recover, staged
from entangle.studies.entanglement import pipeline


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def debris(parent):
    return sorted(p.name for p in parent.iterdir() if ".staging-" in p.name or ".old-" in p.name)


@pytest.fixture
def complete(tmp_path):
    """A folder holding a complete run (what `entangle run` leaves)."""
    out = tmp_path / "runs" / "x"
    (out / "directions").mkdir(parents=True)
    (out / "metrics.json").write_text('{"schema_version": 2, "probe": {}}\n')
    (out / "report.html").write_text("<html>the good report</html>")
    (out / "directions" / "moral_logistic.json").write_text("{}")
    return out


# ------------------------------------------------------------------------------------------------ staging itself


def test_success_moves_the_staging_folder_into_place(tmp_path):
    target = tmp_path / "new"
    with staged(target, overwrite=False) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".new.staging-")
        (staging / "metrics.json").write_text("{}")
        assert not target.exists()
    assert (target / "metrics.json").read_text() == "{}" and debris(tmp_path) == []


def test_failure_leaves_the_old_folder_and_no_debris(complete):
    before = snapshot(complete)
    with pytest.raises(RuntimeError, match="late failure"), staged(complete, overwrite=True) as staging:
        (staging / "metrics.json").write_text("half")
        raise RuntimeError("late failure")
    assert snapshot(complete) == before and debris(complete.parent) == []


def test_existing_results_need_overwrite_and_are_replaced_only_on_success(complete):
    with pytest.raises(FolderInUseError, match="already holds a complete run; pass --overwrite"), \
            staged(complete, overwrite=False):
        pytest.fail("a refused target must not start the work")
    with staged(complete, overwrite=True) as staging:
        (staging / "metrics.json").write_text("new")
        assert (complete / "report.html").exists()  # still the old folder while the new run works
    assert snapshot(complete) == {"metrics.json": b"new"} and debris(complete.parent) == []


def test_a_swap_cut_short_by_a_kill_is_put_back(complete):
    """SIGKILL between the two renames leaves the target missing and `.x.old-<pid>`: the next run restores it."""
    before = snapshot(complete)
    dead = 2**22 + 12345  # above the default pid_max: no such process
    os.rename(complete, complete.parent / f".x.old-{dead}")
    (complete.parent / f".x.staging-{dead}").mkdir()
    recover(complete)
    assert snapshot(complete) == before and debris(complete.parent) == []


# ------------------------------------------------------------------------------------------------ via the CLI


@pytest.fixture
def stim(tmp_path):
    lines = (DATA_DIR / "stimuli" / "factorial.jsonl").read_text(encoding="utf-8").splitlines()
    frames = list(dict.fromkeys(json.loads(line)["frame"] for line in lines))[:2]
    path = tmp_path / "stim.jsonl"
    path.write_text("\n".join(x for x in lines if json.loads(x)["frame"] in frames) + "\n", encoding="utf-8")
    return path


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def fake_pipeline(monkeypatch, fail: bool):
    """pipeline.run writing what a real run writes first (config, tables, directions), then failing or finishing."""
    seen = {}

    def fake_run(cfg, model=None):
        out = seen["out"] = Path(cfg.out)
        (out / "directions").mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"out": cfg.out, "model": cfg.model}))
        (out / "probes.csv").write_text("layer\n1\n")
        (out / "directions" / "moral_logistic.json").write_text('{"replaced": true}')
        if fail:
            raise InputError(cfg.norms, 7, "rating", "found only after capture (simulated)")
        (out / "metrics.json").write_text('{"schema_version": 2}')
        return out

    monkeypatch.setattr(pipeline, "run", fake_run)
    import entangle.studies.entanglement.summary as summary

    monkeypatch.setattr(summary, "summary_lines", lambda folder: ["summary"])
    import entangle.report

    monkeypatch.setattr(entangle.report, "build_report", lambda folder: folder / "report.html")
    return seen


def test_cli_run_refuses_a_complete_folder_without_overwrite(complete, stim):
    before = snapshot(complete)
    result = cli("run", "--out", complete, "--stimuli", stim, "--frames", "2")
    assert result.exit_code == 2 and "already holds a complete run; pass --overwrite" in result.stderr
    assert snapshot(complete) == before


def test_cli_run_failing_late_leaves_the_complete_folder_untouched(complete, stim, monkeypatch):
    seen = fake_pipeline(monkeypatch, fail=True)
    before = snapshot(complete)
    result = cli("run", "--out", complete, "--stimuli", stim, "--frames", "2", "--overwrite")
    assert result.exit_code == 2 and "found only after capture" in result.stderr, result.output
    assert seen["out"] != complete and seen["out"].parent == complete.parent  # it wrote into staging
    assert snapshot(complete) == before and debris(complete.parent) == []


def test_cli_run_overwrite_swaps_in_the_finished_run(complete, stim, monkeypatch):
    fake_pipeline(monkeypatch, fail=False)
    result = cli("run", "--out", complete, "--stimuli", stim, "--frames", "2", "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (complete / "report.html").exists()  # the old run's files are gone with the old folder
    assert json.loads((complete / "config.json").read_text())["out"] == str(complete)  # not the staging path
    assert debris(complete.parent) == []


def test_cli_probe_writes_through_staging_too(complete, stim, monkeypatch):
    before = snapshot(complete)
    result = cli("probe", "--out", complete, "--stimuli", stim, "--frames", "2")
    assert result.exit_code == 2 and "pass --overwrite" in result.stderr and snapshot(complete) == before

    class Failing:
        def __init__(self, cfg, model=None):
            (Path(cfg.out) / "probes.csv").write_text("partial")
            raise InputError(None, None, None, "probe failed (simulated)")

    monkeypatch.setattr(pipeline, "Experiment", Failing)
    result = cli("probe", "--out", complete, "--stimuli", stim, "--frames", "2", "--overwrite")
    assert result.exit_code == 2 and "probe failed" in result.stderr
    assert snapshot(complete) == before and debris(complete.parent) == []


@pytest.mark.parametrize("metrics", ['{"schema_version": 2, "probe": {', "[1, 2]", ""])
def test_report_and_compare_refuse_an_unreadable_metrics_json(complete, metrics, tmp_path):
    (complete / "metrics.json").write_text(metrics)
    before = snapshot(complete)
    result = cli("report", complete)
    assert result.exit_code == 2 and "metrics.json" in result.stderr and "Traceback" not in result.output
    assert snapshot(complete) == before
    result = cli("compare", complete, complete, "--out", tmp_path / "cmp.html")
    assert result.exit_code == 2 and "metrics.json" in result.stderr and not (tmp_path / "cmp.html").exists()


def test_compare_never_writes_over_a_run_folders_files(complete, tmp_path):
    """`compare --out` naming a file of a run folder is refused (results even with --force), and so is any existing
    file that is not an earlier compare page, unless --force; an earlier compare page is replaced."""
    before = snapshot(complete)
    for target, extra in ((complete / "metrics.json", ["--force"]),
                          (complete / "directions" / "moral_logistic.json", ["--force"]),
                          (complete / "report.html", [])):
        result = cli("compare", complete, complete, "--out", target, *extra)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert snapshot(complete) == before
    page = tmp_path / "cmp.html"
    assert cli("compare", complete, complete, "--out", page).exit_code == 0
    assert cli("compare", complete, complete, "--out", page).exit_code == 0  # its own page is replaced
    notes = tmp_path / "notes.html"
    notes.write_text("<html>mine</html>")
    result = cli("compare", complete, complete, "--out", notes)
    assert result.exit_code == 2 and "--force" in result.stderr and notes.read_text() == "<html>mine</html>"
    assert cli("compare", complete, complete, "--out", notes, "--force").exit_code == 0


def test_real_probe_on_the_tiny_model_is_staged(tiny_dir, tmp_path, monkeypatch):
    """The real pipeline through the CLI: a complete folder, refused without --overwrite, untouched by a run that
    fails after capture (which rewrote readouts.csv in its staging folder), replaced by one that finishes."""
    out = tmp_path / "runs" / "p"
    args = ["probe", "--model", tiny_dir, "--frames", "4", "--out", out, "--cache-dir", tmp_path / "cache"]
    assert cli(*args).exit_code == 0
    before = snapshot(out)
    assert {"probes.csv", "readouts.csv"} <= set(before) and any(n.startswith("directions/") for n in before)
    assert "pass --overwrite" in cli(*args).stderr and snapshot(out) == before

    def late_failure(self):
        raise InputError(None, None, None, "failed after capture (simulated)")

    monkeypatch.setattr(pipeline.Experiment, "run_probes", late_failure)
    result = cli(*args, "--overwrite")
    assert result.exit_code == 2 and "failed after capture" in result.stderr
    assert snapshot(out) == before and debris(out.parent) == []
    monkeypatch.undo()
    (out / "probes.csv").write_text("stale")
    assert cli(*args, "--overwrite").exit_code == 0
    assert (out / "probes.csv").read_text() != "stale" and debris(out.parent) == []
