"""`entangle survey`: serve the human rating study, export its data for `--norms`, simulate raters for demos."""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from entangle import validate
from entangle.cli.app import ForceOpt, FramesOpt, StimuliOpt, _fail, console
from entangle.files import InputError

survey_app = typer.Typer(help="A human rating study of the stimuli: serve it, export it, or simulate it (demos).",
                         no_args_is_help=True)

DbOpt = Annotated[Path, typer.Option(help="the study's SQLite database (created on first start)")]
RatersOpt = Annotated[int, typer.Option(help="raters wanted for each item and kind (N)")]
ItemsOpt = Annotated[int, typer.Option(help="items per participant (K, at most one per frame)")]
MaterialsOpt = Annotated[Path | None, typer.Option(help="study texts JSON (default: data/survey/materials.json)")]


def _study_inputs(stimuli: Path | None, frames: int | None, materials: Path | None, raters: int, items: int):
    from entangle.survey.design import StudyConfig  # noqa: PLC0415
    from entangle.survey.materials import load_materials  # noqa: PLC0415

    stim = validate.stimuli(stimuli, frames)  # --frames 0 is an error, not "all frames"
    if materials is not None:
        validate.input_file(materials, "materials file")
    return stim, load_materials(materials), StudyConfig(raters, items)


def _is_study_db(db: Path) -> bool:
    """Whether `db` is a database `entangle survey` created (read-only look: nothing is written to it)."""
    try:
        con = sqlite3.connect(db.absolute().as_uri() + "?mode=ro", uri=True)
        try:
            return con.execute("SELECT value FROM meta WHERE key = 'stimuli_sha256'").fetchone() is not None
        finally:
            con.close()
    except sqlite3.Error:
        return False


def _check_db(db: Path, *, must_exist: bool) -> None:
    """--db is an existing study database, or (unless `must_exist`) a new file in an existing, writable folder."""
    if db.is_dir():
        raise InputError(db, None, None, "is a folder; --db names the study's database file")
    if db.exists():
        if not _is_study_db(db):
            raise InputError(db, None, None, "exists and is not an entangle study database; choose another --db")
        return
    if must_exist:
        raise InputError(db, None, None, "no study database here")
    folder = db.absolute().parent
    if not folder.is_dir():
        raise InputError(db, None, None, f"cannot create the database: folder {folder} does not exist")
    validate.writable_folder(folder)


def _check_address(host: str, port: int) -> None:
    """--host and --port can be listened on now (so a busy or impossible port is one error line, not uvicorn's)."""
    if not 1 <= port <= 65535:
        raise validate.OptionError("--port", f"must be 1..65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise validate.OptionError("--host", f"cannot use {host!r} as an address ({exc})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            option = "--host" if exc.errno == errno.EADDRNOTAVAIL else "--port"
            raise validate.OptionError(option, f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _check_export_folder(out: Path, force: bool) -> None:
    """--out is a folder whose ratings.csv and trials.csv may be written: existing ones only with --force."""
    validate.writable_folder(out)
    for name in ("ratings.csv", "trials.csv"):
        validate.output_file(out / name, force=force)


@survey_app.command()
def serve(
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 exposes the study to the network")] = "127.0.0.1",
    stimuli: StimuliOpt = None,
    frames: FramesOpt = None,
    raters_per_item: RatersOpt = 5,
    items_per_participant: ItemsOpt = 40,
    db: DbOpt = Path("survey.sqlite3"),
    admin_token: Annotated[str | None, typer.Option(
        help="token for /admin and the exports (default: $ENTANGLE_SURVEY_TOKEN, else a new random one)")] = None,
    completion_url: Annotated[str | None, typer.Option(
        help="where a finished participant is sent, e.g. Prolific's completion URL; {code} is replaced")] = None,
    completion_code: Annotated[str | None, typer.Option(help="fixed when the study database is created")] = None,
    materials: MaterialsOpt = None,
) -> None:
    """Serve the rating study: consent, instructions, practice, items with attention checks, completion code."""
    from entangle.survey.server import open_study  # noqa: PLC0415
    from entangle.survey.server import serve as run_server  # noqa: PLC0415

    try:
        stim, mats, config = _study_inputs(stimuli, frames, materials, raters_per_item, items_per_participant)
        _check_db(db, must_exist=False)
        _check_address(host, port)
        settings = open_study(stim, mats, config, db, admin_token=admin_token or os.environ.get("ENTANGLE_SURVEY_TOKEN"),
                              completion_code=completion_code, completion_url=completion_url)
    except ValueError as exc:
        _fail(exc)
    base = f"http://{host}:{port}"
    for line in ((f"study: {len(stim)} items, {raters_per_item} raters per item and kind, {items_per_participant} "
                  f"items per participant; database {escape(str(db))}"),
                 f"participants: {base}/",
                 (f"Prolific study URL: {base}/?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}"
                  "&SESSION_ID={{%SESSION_ID%}}"),
                 f"admin: {base}/admin?token={escape(settings.admin_token)}",
                 f"completion code: {escape(settings.completion_code)}"):
        console.print(line, soft_wrap=True)
    run_server(settings, host=host, port=port)


@survey_app.command()
def export(
    out: Annotated[Path, typer.Option(help="folder for ratings.csv (the --norms file) and trials.csv")],
    db: DbOpt = Path("survey.sqlite3"),
    force: ForceOpt = False,
) -> None:
    """Write ratings.csv (for `entangle run --norms`) and trials.csv (every answered trial) from a study database."""
    from entangle.survey.export import write_exports  # noqa: PLC0415
    from entangle.survey.store import Store  # noqa: PLC0415

    _check_db(db, must_exist=True)
    _check_export_folder(out, force)
    ratings, trials = write_exports(Store(db), out)
    console.print(f"wrote {escape(str(ratings))} and {escape(str(trials))}")


@survey_app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="folder for the simulated ratings.csv and trials.csv")],
    stimuli: StimuliOpt = None,
    frames: FramesOpt = None,
    raters_per_item: RatersOpt = 3,
    items_per_participant: ItemsOpt = 40,
    leak: Annotated[float, typer.Option(help="planted effect of the moral act on the other kinds (scale points)")] = 0.3,
    seed: int = 0,
    db: Annotated[Path | None, typer.Option(help="keep the simulated database here (e.g. to try the admin page)")] = None,
    materials: MaterialsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Simulated raters (tests and demos only, never data): every row of both files says simulated=yes."""
    import tempfile  # noqa: PLC0415

    from entangle.survey.export import write_exports  # noqa: PLC0415
    from entangle.survey.simulate import RaterModel, simulate_study  # noqa: PLC0415

    try:
        stim, mats, config = _study_inputs(stimuli, frames, materials, raters_per_item, items_per_participant)
        config.validate(stim)
        if db is not None and db.exists():
            raise ValueError(f"{db} exists; the simulator writes a new database only")
        if db is not None:
            _check_db(db, must_exist=False)
        _check_export_folder(out, force)  # never over a real export (or any file) without --force
        with tempfile.TemporaryDirectory() as tmp:
            store = simulate_study(stim, mats, config, db or Path(tmp) / "simulated.sqlite3",
                                   model=RaterModel(leak=leak), seed=seed)
            ratings, trials = write_exports(store, out)
    except ValueError as exc:
        _fail(exc)
    console.print(f"wrote SIMULATED ratings {escape(str(ratings))} and {escape(str(trials))} (not human data)")
