"""`entangle export` never destroys what it cannot replace: its input, a file it did not create, or an existing
output without --force; bad directions (contradicting sidecar, all-zero rows) are refused. No model needed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from entangle.cli import app
from entangle.directions import Direction, load_direction, save_direction


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(result, fragment):
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and "Traceback" not in result.output, result.output


@pytest.fixture
def run_dir(tmp_path):
    """A run folder's metrics.json beside a direction, as `entangle run` leaves them."""
    rows = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    save_direction(Direction(rows, [1, 2, 3], "moral", "logistic", {"model": "toy"}), tmp_path / "moral.safetensors")
    (tmp_path / "metrics.json").write_text('{"schema_version": 2, "probe": {"moral": {"best_layer": 2}}}\n')
    return tmp_path


def test_export_converts_and_keeps_layers(run_dir):
    result = cli("export", run_dir / "moral.safetensors", "--out", run_dir / "moral2.npz", "--layers", "2,3")
    assert result.exit_code == 0, result.output
    assert load_direction(run_dir / "moral2.npz").layers == [2, 3]


def test_export_refuses_to_overwrite_its_input_even_with_force(run_dir):
    before = (run_dir / "moral.safetensors").read_bytes()
    refused(cli("export", run_dir / "moral.safetensors", "--out", run_dir / "moral.safetensors", "--layers", "2",
                "--force"), "is also an input")
    assert (run_dir / "moral.safetensors").read_bytes() == before


def test_export_refuses_a_sidecar_over_a_file_it_did_not_create(run_dir):
    before = (run_dir / "metrics.json").read_bytes()
    for force in ([], ["--force"]):
        refused(cli("export", run_dir / "moral.safetensors", "--out", run_dir / "metrics.safetensors", *force),
                "metrics.json: exists without metrics.safetensors")
    assert (run_dir / "metrics.json").read_bytes() == before and not (run_dir / "metrics.safetensors").exists()
    (run_dir / "metrics.safetensors").write_bytes(b"junk")  # a tensor file beside it does not make it a sidecar
    refused(cli("export", run_dir / "moral.safetensors", "--out", run_dir / "metrics.safetensors", "--force"),
            "is not a direction sidecar")
    assert (run_dir / "metrics.json").read_bytes() == before


def test_export_needs_force_to_replace_an_existing_output(run_dir):
    assert cli("export", run_dir / "moral.safetensors", "--out", run_dir / "m.npz").exit_code == 0
    before = (run_dir / "m.npz").read_bytes()
    refused(cli("export", run_dir / "moral.safetensors", "--out", run_dir / "m.npz", "--layers", "1"),
            "already exists; pass --force")
    assert (run_dir / "m.npz").read_bytes() == before
    assert cli("export", run_dir / "moral.safetensors", "--out", run_dir / "m.npz", "--layers", "1",
               "--force").exit_code == 0
    assert load_direction(run_dir / "m.npz").layers == [1]
    # a safetensors pair written by export may be replaced with --force, sidecar included
    assert cli("export", run_dir / "m.npz", "--out", run_dir / "p.safetensors").exit_code == 0
    assert cli("export", run_dir / "moral.safetensors", "--out", run_dir / "p.safetensors", "--force").exit_code == 0
    assert load_direction(run_dir / "p.safetensors").layers == [1, 2, 3]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--layers", "2,9"], "--layers: layer(s) [9] not in the direction"),
    (["--layers", "two"], "--layers: expected comma-separated layer numbers"),
    (["--out", "{d}/x.onnx"], "--out: the suffix picks the format: use .safetensors, .npz, .pt, .gguf (got '.onnx')"),
    (["--out", "{d}"], "is a folder"),
    (["--out", "{d}/metrics.json/x.npz"], "is a file, not a folder"),
])
def test_export_option_errors(run_dir, args, fragment):
    given = dict(zip(args[::2], args[1::2], strict=True))
    out = given.pop("--out", "{d}/o.npz").format(d=run_dir)
    refused(cli("export", run_dir / "moral.safetensors", "--out", out, *[x for kv in given.items() for x in kv]),
            fragment)


def test_contradicting_sidecar_and_zero_direction_are_refused(run_dir):
    side = run_dir / "moral.json"
    side.write_text(json.dumps({**json.loads(side.read_text()), "kind": "economic"}))
    refused(cli("export", run_dir / "moral.safetensors", "--out", run_dir / "o.npz"), "field 'kind'")
    rows = np.zeros((2, 8), np.float32)
    rows[0, 0] = 1.0
    save_direction(Direction(rows, [1, 2], "moral", "logistic", {}), run_dir / "z.npz")
    refused(cli("export", run_dir / "z.npz", "--out", run_dir / "o.npz"), "degenerate direction")
