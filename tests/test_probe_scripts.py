"""The probes/ scripts: `--help` works for each, and probe_directions.py runs end to end on the tiny random Llama."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBES = Path(__file__).resolve().parents[1] / "probes"
SCRIPTS = ("probe_directions.py", "ablate_moral.py", "score_texts.py")


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=PROBES.parent)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    res = _run(str(PROBES / script), "--help", timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage:") and "--model" in res.stdout


def test_score_texts_needs_a_direction():
    res = _run(str(PROBES / "score_texts.py"), timeout=60)
    assert res.returncode == 2 and "--direction" in res.stderr


@pytest.fixture(scope="module")
def probed(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe_out")
    res = _run(str(PROBES / "probe_directions.py"), "--model", str(tiny_dir), "--frames", "2", "--n-boot", "50",
               "--out", str(out), "--cache-dir", str(out / "cache"))
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res.stdout


def test_probe_directions_end_to_end(probed):
    out, stdout = probed
    for kind in ("moral", "grammatical", "economic"):
        assert f"{kind}" in stdout and "best layer" in stdout
        for method in ("logistic", "diff_means"):
            assert (out / "directions" / f"{kind}_{method}.safetensors").exists()
            assert (out / "directions" / f"{kind}_{method}.json").exists()
    for name in ("probes.csv", "cosine.csv", "cross_decoding.csv", "leakage.csv", "readouts.csv", "config.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())  # strict JSON: NaN written as null
    assert set(metrics["probe"]) == {"moral", "grammatical", "economic"}
    assert metrics["self_checks"]["padding_invariance"]["passed"]
    assert json.loads((out / "config.json").read_text())["frames"] == 2


def test_score_texts_with_the_exported_direction(probed, tiny_dir, tmp_path):
    out, _ = probed
    texts = tmp_path / "texts.txt"
    texts.write_text("She returned the lost wallet to its owner.\nHe kept the lost wallet.\n", encoding="utf-8")
    res = _run(str(PROBES / "score_texts.py"), "--direction", str(out / "directions" / "moral_logistic.safetensors"),
               "--texts", str(texts), "--model", str(tiny_dir), "--out", str(tmp_path / "scores.csv"))
    assert res.returncode == 0, res.stderr[-3000:]
    import pandas as pd

    df = pd.read_csv(tmp_path / "scores.csv")
    assert len(df) == 2 and {"cloze_moral", "cloze_grammatical", "cloze_economic"} <= set(df.columns)
    assert any(c.startswith("projection_L") for c in df.columns)
