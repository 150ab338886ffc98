"""`entangle survey` under hostile but fair use: every bad option, path or database is one error line and exit 2
before a server starts or a file is written, and exports never replace existing files without --force."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from entangle.cli import app


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error(result, fragment: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def not_a_db(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"schema_version": 2}\n')
    return path


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--frames", "0"], "--frames: must be at least 1"),
    (["--frames", "-1"], "--frames: must be at least 1"),
    (["--frames", "999"], "has only 64 frames"),
    (["--port", "99999"], "--port: must be 1..65535"),
    (["--port", "0"], "--port: must be 1..65535"),
    (["--host", "192.0.2.1"], "--host: cannot listen on 192.0.2.1"),  # TEST-NET: not this machine, no DNS
    (["--stimuli", "{tmp}/stim[v2].jsonl"], "stim[v2].jsonl: stimulus file not found"),
    (["--stimuli", "{tmp}"], "must be a file, but this is a folder"),
    (["--materials", "{tmp}/missing[1].json"], "missing[1].json: materials file not found"),
    (["--raters-per-item", "0"], "--raters-per-item must be 1..1000"),
    (["--db", "{tmp}"], "is a folder"),
    (["--db", "{tmp}/no/such/folder/s.sqlite3"], "does not exist"),
])
def test_serve_refuses_before_starting(tmp_path, extra, fragment):
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    db = [] if "--db" in args else ["--db", tmp_path / "s.sqlite3"]
    one_error(cli("survey", "serve", *db, *args), fragment)
    assert not (tmp_path / "s.sqlite3").exists()


def test_serve_refuses_a_file_that_is_not_a_study_database_and_leaves_it_alone(not_a_db):
    before = not_a_db.read_bytes()
    one_error(cli("survey", "serve", "--db", not_a_db), "is not an entangle study database")
    one_error(cli("survey", "export", "--db", not_a_db, "--out", not_a_db.parent / "ex"),
              "is not an entangle study database")
    assert not_a_db.read_bytes() == before and not (not_a_db.parent / "ex").exists()


def test_serve_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        one_error(cli("survey", "serve", "--db", tmp_path / "s.sqlite3", "--port", port), "cannot listen on")


def test_exports_never_replace_existing_files_without_force(tmp_path):
    sim = ["survey", "simulate", "--frames", "2", "--items-per-participant", "2", "--raters-per-item", "1"]
    assert cli(*sim, "--out", tmp_path / "a", "--db", tmp_path / "a.sqlite3").exit_code == 0
    human = tmp_path / "human"
    human.mkdir()
    (human / "ratings.csv").write_text("item_id,kind,rating\nreal,moral,4\n")
    one_error(cli(*sim, "--out", human), "ratings.csv: already exists; pass --force")
    one_error(cli("survey", "export", "--db", tmp_path / "a.sqlite3", "--out", human), "already exists")
    assert (human / "ratings.csv").read_text() == "item_id,kind,rating\nreal,moral,4\n"
    assert not (human / "trials.csv").exists()
    one_error(cli("survey", "export", "--db", tmp_path / "missing.sqlite3", "--out", human), "no study database")
    one_error(cli("survey", "export", "--db", tmp_path / "a.sqlite3", "--out", human / "ratings.csv"),
              "a folder is needed here")
    result = cli("survey", "export", "--db", tmp_path / "a.sqlite3", "--out", human, "--force")
    assert result.exit_code == 0 and (human / "ratings.csv").read_text() == (tmp_path / "a" / "ratings.csv").read_text()
