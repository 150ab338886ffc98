"""Fuzz the CLI with generated stimulus, ratings, texts and direction files and option values (hypothesis, bounded).

For every command and input: exit code 0 or 2, no traceback, at most one error line, and no file that existed
before changed unless the command succeeded. Nothing loads a model: `load_model` is a sentinel that raises a
`ModelLoadError` (exit 2), so a valid input that would load one ends there, after all of its validation ran.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import entangle.models
import entangle.report  # noqa: F401  (imported once here, so no example pays for it against the deadline)
import entangle.score  # noqa: F401
from entangle.cli import app
from entangle.schema import DATA_DIR
from entangle.studies.entanglement import pipeline

LINES = (DATA_DIR / "stimuli" / "factorial.jsonl").read_text(encoding="utf-8").splitlines()
TWO_FRAMES = [x for x in LINES if json.loads(x)["frame"] in
              list(dict.fromkeys(json.loads(line)["frame"] for line in LINES))[:2]]
IDS = [json.loads(x)["id"] for x in TWO_FRAMES]

json_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                        st.text(max_size=12), st.sampled_from(["x" * 5000, ""]), st.lists(st.integers(), max_size=2))


@st.composite
def stimulus_file(draw) -> bytes:
    """The two-frame stimulus set, with one or two lines mutated (a field, the line, or the bytes)."""
    lines = list(TWO_FRAMES)
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["field", "drop", "duplicate", "garbage"]))
        if op == "field" and lines[i].startswith("{"):
            record = json.loads(lines[i])
            record[draw(st.sampled_from([*record, "extra"]))] = draw(json_values)
            lines[i] = json.dumps(record)
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.append(lines[i])
        else:
            lines[i] = draw(st.text(max_size=20))
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    return data if cut is None else data[:cut]


@st.composite
def ratings_file(draw) -> bytes:
    header = draw(st.sampled_from(["item_id,kind,rating", "item_id,kind,rating,rater_id", "item,kind,rating", ""]))
    kinds = draw(st.lists(st.sampled_from(["moral", "grammatical", "economic", "beauty"]), min_size=1, max_size=3,
                          unique=True))
    value = st.one_of(st.integers(-3, 99).map(str), st.sampled_from(["4", "4.5", "nan", "", "seven"]))
    rows = [f"{i},{k},{draw(value) if n == 0 else '4'}" + (",r1" if "rater_id" in header else "")
            for n, (i, k) in enumerate((i, k) for i in draw(st.sampled_from([IDS, IDS[:3], ["nope"]])) for k in kinds)]
    return (header + "\n" + "\n".join(rows) + "\n").encode()


@st.composite
def texts_file(draw) -> tuple[str, bytes]:
    texts = draw(st.lists(st.one_of(st.text(max_size=30), st.just("y" * 5000)), max_size=4))
    if draw(st.booleans()):
        col = draw(st.sampled_from(["text", "sentence"]))
        body = col + ",id\n" + "".join('"' + t.replace('"', '""') + f'",{n}\n' for n, t in enumerate(texts))
        return "texts.csv", body.encode("utf-8", "surrogatepass")
    return "texts.txt", "\n".join(texts).encode("utf-8", "surrogatepass")


@st.composite
def direction_file(draw, folder: Path) -> Path:
    """A direction in some format: sound, degenerate, NaN, with contradicting or broken sidecar, or random bytes."""
    from entangle.directions import Direction, save_direction

    fmt = draw(st.sampled_from(["npz", "safetensors", "pt", "gguf"]))
    path = folder / f"d.{fmt}"
    n = draw(st.integers(1, 3))
    rows = np.random.default_rng(draw(st.integers(0, 9))).standard_normal((n, 8)).astype(np.float32)
    kind = draw(st.sampled_from(["good", "zero", "bytes", "sidecar"]))
    if kind == "zero":
        rows[0] = 0.0
    if kind == "bytes":
        path.write_bytes(draw(st.binary(max_size=64)))
        return path
    save_direction(Direction(rows, list(range(2, 2 + n)), "moral", "diff_means", {"model": "toy"}), path)
    if kind == "sidecar" and fmt == "safetensors":
        path.with_suffix(".json").write_text(draw(st.sampled_from(['{"kind": "economic", "method": "diff_means"}',
                                                                   "{trunc", "[]"])))
    return path


def setup_module() -> None:
    """Pay the one-off costs (transformers import, CUDA probe) before the examples' deadline starts counting."""
    from entangle.cli.app import quiet_hf
    from entangle.validate import device

    quiet_hf()
    device("cpu")
    __import__("torch").cuda.is_available()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def existing_run(folder: Path) -> Path:
    out = folder / "runs" / "x"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text('{"schema_version": 2}\n')
    (out / "report.html").write_text("<html>good</html>")
    (out / "metrics.safetensors.keep").write_text("unrelated")
    return out


def options(draw, names: list[str]) -> list[str]:
    values = {
        "--frames": st.one_of(st.integers(-2, 4).map(str), st.just("many")),
        "--batch-size": st.integers(-2, 3).map(str),
        "--readout": st.sampled_from(["auto", "cloze", "likert", "foo", ""]),
        "--position": st.sampled_from(["last", "judged_mean", "middle"]),
        "--device": st.sampled_from(["cpu", "cuda", "cuda:7", "mps", "tpu"]),
        "--dtype": st.sampled_from(["float32", "bfloat16", "int8"]),
        "--n-null": st.integers(-1, 3).map(str),
        "--control-frames": st.integers(-1, 3).map(str),
        "--layers": st.sampled_from(["2", "2,3", "9", "x", "2,2"]),
        "--column": st.sampled_from(["text", "sentence", "nope"]),
    }
    return [x for name in names if draw(st.booleans()) for x in (name, draw(values[name]))]


def out_choice(draw, folder: Path, run: Path, suffix: str) -> Path:
    return draw(st.sampled_from([run, run / f"new{suffix}", folder / "runs" / f"fresh{suffix}",
                                 run / "report.html" / f"under{suffix}", run / "metrics.json",
                                 run / f"metrics{suffix}" if suffix else run]))


@settings(max_examples=60, deadline=5000, database=None, phases=[Phase.explicit, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_cli_under_generated_input(data):
    def sentinel(*args, **kwargs):
        raise entangle.models.ModelLoadError("sentinel: a model would load here")

    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(entangle.models, "load_model", sentinel), \
            mock.patch.object(pipeline, "load_model", sentinel):
        folder = Path(tmp)
        run = existing_run(folder)
        command = data.draw(st.sampled_from(["run", "probe", "capture", "score", "export", "report", "compare"]))
        (folder / "stim.jsonl").write_bytes(data.draw(stimulus_file()))
        args: list[str] = [command]
        if command in ("run", "probe", "capture"):
            args += ["--stimuli", str(folder / "stim.jsonl"), "--cache-dir", str(folder / "cache")]
            args += options(data.draw, ["--frames", "--readout", "--device", "--dtype"])
            if command != "capture":
                args += ["--out", str(out_choice(data.draw, folder, run, "")), *options(data.draw, ["--position"])]
                args += ["--overwrite"] if data.draw(st.booleans()) else []
            if command == "run":
                (folder / "ratings.csv").write_bytes(data.draw(ratings_file()))
                args += ["--norms", str(folder / "ratings.csv")] if data.draw(st.booleans()) else []
                args += options(data.draw, ["--batch-size", "--n-null", "--control-frames"])
        elif command in ("score", "export"):
            direction = data.draw(direction_file(folder))
            out = out_choice(data.draw, folder, run, ".csv" if command == "score" else ".safetensors")
            args += ["--force"] if data.draw(st.booleans()) else []
            if command == "score":
                name, body = data.draw(texts_file())
                (folder / name).write_bytes(body)
                args += ["--direction", str(direction), "--texts", str(folder / name), "--out", str(out),
                         *options(data.draw, ["--column", "--device"])]
            else:
                args += [str(direction), "--out", str(out), *options(data.draw, ["--layers"])]
        else:
            targets = [str(data.draw(st.sampled_from([run, folder / "missing", folder / "stim.jsonl", folder])))
                       for _ in range(1 if command == "report" else 2)]
            args += targets
            if command == "compare":
                args += ["--out", str(out_choice(data.draw, folder, run, ".html"))]

        before = snapshot(folder)
        result = CliRunner().invoke(app, args)
        assert result.exit_code in (0, 2), (args, result.stderr)
        assert "Traceback" not in result.output, (args, result.output)
        if result.exit_code == 2:
            errors = [line for line in result.stderr.splitlines() if line.strip()]
            usage = "Usage:" in result.stderr  # typer's own report of a value it cannot convert (e.g. --frames x)
            assert usage or (len(errors) == 1 and errors[0].startswith("error: ")), (args, result.stderr)
            after = snapshot(folder)
            changed = [name for name, blob in before.items() if after.get(name) != blob]
            assert not changed, (args, changed, result.output)
