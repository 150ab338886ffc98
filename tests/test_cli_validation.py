"""Every bad path, option value and input file is refused before a model loads, with one clear line and exit 2.

`load_model` is replaced by a sentinel: a case that reaches it has passed validation (the last tests check that
valid settings do reach it, so the sentinel is live)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import entangle.models
from entangle.cli import app
from entangle.models import ModelLoadError
from entangle.schema import DATA_DIR
from entangle.studies.entanglement import pipeline

SENTINEL = "sentinel: the model would load now"


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise ModelLoadError(SENTINEL)

    monkeypatch.setattr(entangle.models, "load_model", refuse)
    monkeypatch.setattr(pipeline, "load_model", refuse)


@pytest.fixture
def files(tmp_path):
    """Two frames of the shipped stimuli, ratings of them, texts, a direction, a file and a folder."""
    lines = (DATA_DIR / "stimuli" / "factorial.jsonl").read_text(encoding="utf-8").splitlines()
    frames = list(dict.fromkeys(json.loads(line)["frame"] for line in lines))[:2]
    keep = [line for line in lines if json.loads(line)["frame"] in frames]
    (tmp_path / "stim.jsonl").write_text("\n".join(keep) + "\n", encoding="utf-8")
    ids = [json.loads(line)["id"] for line in keep]
    rows = [f"{i},{k},4" for i in ids for k in ("moral", "grammatical", "economic")]
    (tmp_path / "ratings.csv").write_text("item_id,kind,rating\n" + "\n".join(rows) + "\n")
    (tmp_path / "no_econ.csv").write_text("item_id,kind,rating\n" + "\n".join(r for r in rows if "economic" not in r))
    (tmp_path / "r99.csv").write_text("item_id,kind,rating\n" + "\n".join(rows) + f"\n{ids[0]},moral,99\n")
    (tmp_path / "texts.txt").write_text("She returned the wallet.\n", encoding="utf-8")
    (tmp_path / "huge.txt").write_text("ok\n" + "x" * 1_000_000 + "\n", encoding="utf-8")
    huge = json.loads(keep[0])
    huge["text"] = "While " + "very " * 200_000 + huge["text"]
    huge["judged_end"] = len(huge["text"])
    (tmp_path / "huge.jsonl").write_text("\n".join([json.dumps(huge), *keep[1:]]) + "\n", encoding="utf-8")
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "adir").mkdir()
    from entangle.directions import Direction, save_direction

    save_direction(Direction(torch.ones(2, 8).numpy(), [1, 2], "moral", "diff_means", {"model": "toy"}),
                   tmp_path / "d.npz")
    return tmp_path


def run_cli(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def expect_error(args, fragment):
    result = run_cli(args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    assert SENTINEL not in lines[0], f"validation let {args} through to the model load"
    assert fragment in lines[0], lines[0]


RUN_CASES = [
    (["--frames", "0"], "--frames: must be at least 2, got 0"),
    (["--frames", "-3"], "--frames: must be at least 2"),
    (["--frames", "3"], "--frames: 3 asked for, but"),
    (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["--batch-size", "-1"], "--batch-size: must be at least 1, got -1"),
    (["--readout", "foo"], "--readout: unknown value 'foo'"),
    (["--position", "middle"], "--position: unknown value 'middle'"),
    (["--dtype", "int8"], "--dtype: dtype must be one of"),
    (["--device", "tpu"], "--device: unknown device 'tpu'"),
    (["--n-null", "0"], "--n-null: must be at least 1"),
    (["--control-frames", "0"], "--control-frames: must be at least 1"),
    (["--n-boot", "0"], "--n-boot: must be at least 1"),
    (["--device-map", "everywhere"], "--device-map: unknown value 'everywhere'"),
    (["--norms", "{d}/missing.csv"], "missing.csv: ratings file not found"),
    (["--norms", "{d}/adir"], "adir: ratings file must be a file, but this is a folder"),
    (["--norms", "{d}/no_econ.csv"], "field 'kind': no item ratings of kind(s) ['economic']"),
    (["--norms", "{d}/r99.csv"], "field 'rating': 99 is outside the 1-7 scale"),
    (["--stimuli", "{d}/missing.jsonl"], "missing.jsonl: stimulus file not found"),
    (["--stimuli", "{d}/adir"], "adir: stimulus file must be a file"),
    (["--stimuli", "{d}/huge.jsonl"], "characters long; the limit is 4,000"),
    (["--out", "{d}/afile"], "afile: exists and is a file"),
    (["--out", "{d}/afile/run"], "is a file, not a folder"),
    (["--cache-dir", "{d}/afile"], "afile: exists and is a file; a folder is needed here"),
]


@pytest.mark.parametrize(("extra", "fragment"), RUN_CASES, ids=[" ".join(c[0]) for c in RUN_CASES])
def test_run_refuses_before_loading(files, extra, fragment):
    args = ["run", "--stimuli", files / "stim.jsonl", "--out", files / "new_run", "--frames", "2",
            *[a.format(d=files) for a in extra]]
    expect_error(args, fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal of --device cuda can only be seen where CUDA is absent (CI and this machine have none)")
def test_cuda_without_cuda_is_refused(files):
    expect_error(["run", "--stimuli", files / "stim.jsonl", "--out", files / "r", "--device", "cuda"],
                 "--device: 'cuda' asked for, but CUDA is not available")


@pytest.mark.parametrize(("args", "fragment"), [
    (["probe", "--position", "middle"], "--position: unknown value 'middle'"),
    (["probe", "--frames", "0"], "--frames: must be at least 2"),
    (["capture", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["capture", "--frames", "0"], "--frames: must be at least 1, got 0"),
    (["capture", "--readout", "likertish"], "--readout: unknown value 'likertish'"),
])
def test_probe_and_capture_refuse_before_loading(files, args, fragment):
    expect_error([*args, "--stimuli", files / "stim.jsonl", "--cache-dir", files / "cache"]
                 + (["--out", files / "p"] if args[0] == "probe" else []), fragment)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--texts", "{d}/missing.txt"], "missing.txt: texts file not found"),
    (["--texts", "{d}/huge.txt"], "text 2 is 1,000,000 characters long"),
    (["--out", "{d}/adir"], "adir: is a folder"),
    (["--out", "{d}/afile/x.csv"], "is a file, not a folder"),
    (["--out", "{d}/texts.txt", "--force"], "texts.txt: is also an input"),
    (["--out", "{d}/afile"], "afile: already exists; pass --force"),
    (["--direction", "{d}/missing.npz"], "direction file not found"),
    (["--device", "gpu"], "--device: unknown device 'gpu'"),
])
def test_score_refuses_before_loading(files, args, fragment):
    given = dict(zip(args[::2], args[1::2], strict=False))
    base = {"--direction": "{d}/d.npz", "--texts": "{d}/texts.txt", "--out": "{d}/scores.csv"}
    argv = ["score"] + [x for k, v in {**base, **given}.items() for x in (k, v.format(d=files))]
    expect_error(argv + (["--force"] if "--force" in args else []), fragment)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["--n-boot", "0"], "--n-boot: must be at least 1, got 0"),
    (["--out", "{d}/afile"], "afile: exists and is a file; a folder is needed here"),
    (["--cache-dir", "{d}/afile/cache"], "is a file, not a folder"),
    (["--device", "gpu"], "--device: unknown device 'gpu'"),
    (["--n-perm", "1"], "--n-perm"),
])
def test_svo_refuses_before_loading(files, args, fragment):
    expect_error(["svo", "--alphas", "", "--out", files / "svo", *[a.format(d=files) for a in args]], fragment)
    assert not (files / "svo").exists()
    result = run_cli(["svo", "--alphas", "", "--out", files / "svo", "--cache-dir", files / "cache"])
    assert result.exit_code == 2 and SENTINEL in result.stderr, result.output  # valid settings reach the load


def test_valid_settings_reach_the_model_load(files):
    """The sentinel is reached when everything is valid, so the refusals above happened before the load."""
    for args in (["run", "--stimuli", files / "stim.jsonl", "--out", files / "ok", "--frames", "2",
                  "--norms", files / "ratings.csv", "--cache-dir", files / "cache"],
                 ["capture", "--stimuli", files / "stim.jsonl", "--cache-dir", files / "cache"],
                 ["score", "--direction", files / "d.npz", "--texts", files / "texts.txt", "--out", files / "s.csv"]):
        result = run_cli(args)
        assert result.exit_code == 2 and SENTINEL in result.stderr, result.output
    assert not (files / "ok").exists() and not (files / "s.csv").exists()
    assert not [p for p in files.iterdir() if ".staging-" in p.name]
