"""Importing survey exports for --norms: validation, exclusion rules, reliability, metrics and the report section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from entangle.analysis.norms import NormsError, human_ei, load_norms, load_ratings
from entangle.cli import app
from entangle.files import dumps
from entangle.report.sections import norms as section
from entangle.runfolder import RunFolder, RunFolderError
from entangle.stimuli import load_stimuli
from entangle.survey.quality import ExclusionRules

HEADER = "item_id,kind,rating,rater_id,trial,expected_min,expected_max,rt_ms\n"


@pytest.fixture(scope="module")
def stim():
    return load_stimuli().subset(6)


def rater(rid: str, kind: str, ids: list[str], ratings: list[int], rt: int = 3000,
          checks: tuple[tuple[str, int, int, int], ...] = (("catch_x", 1, 1, 3), ("instructed", 2, 2, 2))) -> str:
    rows = [f"{i},{kind},{r},{rid},item,,,{rt}" for i, r in zip(ids, ratings, strict=True)]
    rows += [f"{cid},{kind},{r},{rid},{'instructed' if cid == 'instructed' else 'catch'},{lo},{hi},{rt}"
             for cid, r, lo, hi in checks]
    return "\n".join(rows) + "\n"


def handmade(stim) -> str:
    ids = [it.id for it in stim][:5]
    varied = [1, 3, 5, 7, 4]
    return HEADER + "".join([
        rater("pm1", "moral", ids, varied), rater("pm2", "moral", ids, [2, 3, 6, 7, 5]),
        rater("pg1", "grammatical", ids, varied),
        rater("pg2", "grammatical", ids, varied, checks=(("instructed", 5, 2, 2),)),  # failed check
        rater("pe1", "economic", ids, varied).replace(f"{ids[0]},economic,1,pe1,item,,,3000",
                                                       f"{ids[0]},economic,1,pe1,item,,,500"),  # one fast answer
        rater("pe2", "economic", ids, varied, rt=300),  # all too fast
        rater("pe3", "economic", ids, [4] * 5),  # the same rating throughout
    ])


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ratings.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_exclusions_applied_and_reported(tmp_path, stim):
    imp = load_norms(write(tmp_path, handmade(stim)), stim, n_boot=20)
    ex = imp.exclusions
    assert (ex.n_participants, ex.n_participants_kept) == (7, 4)
    assert ex.participants_by_reason == {"failed_checks": 1, "too_fast": 1, "constant": 1}
    assert ex.excluded == {"pe2": ("too_fast",), "pe3": ("constant",), "pg2": ("failed_checks",)}
    assert ex.trials_dropped == {"participant_excluded": 15, "too_fast": 1}
    assert ex.n_trials == 35 and ex.n_trials_kept == 19 and (ex.n_checks, ex.n_checks_failed) == (13, 1)
    assert set(imp.ratings["rater_id"]) == {"pm1", "pm2", "pg1", "pe1"} and len(imp.ratings) == 19
    # looser rules keep more
    loose = load_norms(write(tmp_path, handmade(stim)), stim,
                       ExclusionRules(max_failed_checks=1, min_rt_ms=0, constant_min_items=10), n_boot=0)
    assert loose.exclusions.n_participants_kept == 7 and len(loose.ratings) == 35
    m = imp.to_metrics()
    json.loads(dumps(m))
    assert m["per_kind"]["moral"] == {"raters": 2, "ratings": 10, "items": 5, "raters_per_item": 2.0}
    assert m["reliability"]["moral"]["alpha"] > 0.8 and m["reliability"]["moral"]["n_raters"] == 2


@pytest.mark.parametrize(("bad", "field"), [("99", "rating"), ("-3", "rating"), ("0", "rating"), ("7.5", "rating")])
def test_ratings_outside_the_scale_name_file_line_field(tmp_path, stim, bad, field):
    text = handmade(stim).splitlines()
    cells = text[3].split(",")
    cells[2] = bad
    text[3] = ",".join(cells)
    p = write(tmp_path, "\n".join(text) + "\n")
    for load in (load_norms, load_ratings):
        with pytest.raises(NormsError) as e:
            load(p, stim)
        assert (e.value.line, e.value.field) == (4, field) and str(e.value).startswith(f"{p}:4: field 'rating'")
        assert "outside the 1-7 scale" in str(e.value)


def test_every_kind_must_be_rated(tmp_path, stim):
    no_econ = "".join(line + "\n" for line in handmade(stim).splitlines() if ",economic," not in line)
    with pytest.raises(NormsError, match=r"no item ratings of kind\(s\) \['economic'\] in the file"):
        load_norms(write(tmp_path, no_econ), stim)
    only_bad_econ = "".join(line + "\n" for line in handmade(stim).splitlines() if ",pe1," not in line)
    with pytest.raises(NormsError, match=r"\['economic'\] after exclusions"):
        load_norms(write(tmp_path, only_bad_econ), stim)


@pytest.mark.parametrize(("row", "field"), [
    ("catch_x,moral,3,pm1,catch,,3,3000", "expected_min"),
    ("catch_x,moral,3,pm1,catch,5,3,3000", "expected_max"),
    ("catch_x,moral,3,pm1,warmup,1,3,3000", "trial"),
    ("f99_nope,moral,3,pm1,item,,,3000", "item_id"),
    ("catch_x,moral,3,pm1,catch,1,3,-5", "rt_ms"),
])
def test_export_rows_validated(tmp_path, stim, row, field):
    with pytest.raises(NormsError) as e:
        load_norms(write(tmp_path, handmade(stim) + row + "\n"), stim)
    assert e.value.field == field and e.value.line == len(handmade(stim).splitlines()) + 1


def test_simulate_cli_then_import_and_report(tmp_path, stim):
    runner = CliRunner()
    res = runner.invoke(app, ["survey", "simulate", "--out", str(tmp_path / "sim"), "--frames", "6",
                              "--raters-per-item", "4", "--items-per-participant", "6", "--leak", "0.6",
                              "--db", str(tmp_path / "sim.sqlite3")])
    assert res.exit_code == 0, res.output
    assert "SIMULATED" in res.output
    for name in ("ratings.csv", "trials.csv"):
        lines = (tmp_path / "sim" / name).read_text().splitlines()
        assert lines[0].endswith(",simulated") and all(line.endswith(",yes") for line in lines[1:])
    # export from the kept database gives the same ratings file
    res = runner.invoke(app, ["survey", "export", "--db", str(tmp_path / "sim.sqlite3"), "--out", str(tmp_path / "ex")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ex" / "ratings.csv").read_text() == (tmp_path / "sim" / "ratings.csv").read_text()

    imp = load_norms(tmp_path / "sim" / "ratings.csv", stim, n_boot=50)
    # the plain importer (today's `--norms` path) reads the export too: its item rows, no exclusions
    plain = load_ratings(tmp_path / "sim" / "ratings.csv", stim)
    assert len(plain) == imp.exclusions.n_trials > len(imp.ratings) and set(plain.columns) == set(imp.ratings.columns)
    assert imp.simulated and imp.ratings.attrs["simulated"]
    assert all(imp.reliability[k].alpha > 0.5 and imp.reliability[k].ci_low < imp.reliability[k].alpha
               for k in ("moral", "grammatical", "economic"))
    ei = human_ei(imp.ratings, stim.to_frame().rename(columns={"id": "item_id"}), n_boot=100, control_tokens=False)
    assert ei.resampling_unit == "frame+rater" and ei.cell("moral", "grammatical") > 0  # the planted leak
    metrics = imp.to_metrics(ei)
    assert metrics["ei_human"]["cells"]["moral_to_grammatical"]["ei"] == pytest.approx(ei.cell("moral", "grammatical"))

    folder = RunFolder(tmp_path / "run")
    folder.write_metrics({"norms": metrics})
    m = folder.metrics()
    assert section.present(m) and not section.present({})
    out = section.render(folder, m)
    assert "Simulated ratings" in out and "moral → grammatical" in out and "Krippendorff" in out


def test_report_section_escapes_and_refuses_malformed(tmp_path):
    folder = RunFolder(tmp_path)
    norms = {"source": "ratings:<script>alert(1)</script>.csv", "simulated": False, "participants": 3,
             "participants_kept": 3, "ratings": 30, "per_kind": {}, "exclusions": {}, "reliability": {}}
    out = section.render(folder, {"norms": norms})
    assert "<script>" not in out and "&lt;script&gt;" in out and "Simulated" not in out
    del norms["reliability"]
    with pytest.raises(RunFolderError, match="norms.reliability"):
        section.render(folder, {"norms": norms})
