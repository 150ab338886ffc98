"""notebooks/04_steering.ipynb executes top to bottom on the real model with a very small design (2 queries,
6-token responses, 16 contrast pairs, one candidate layer, no pairwise judge, 50 resamples) and writes a valueflow
run folder."""

from __future__ import annotations

import json

import pytest
from test_notebooks import _n_figures, _text, execute, nb_env  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_04_steering(nb_env):  # noqa: F811
    nb_env["env"].update({"ENTANGLE_NB_STEER_QUERIES": "2", "ENTANGLE_NB_STEER_TOKENS": "6",
                          "ENTANGLE_NB_STEER_PAIRS": "16", "ENTANGLE_NB_STEER_LAYERS": "18",
                          "ENTANGLE_NB_STEER_PAIRWISE": ""})  # the pairwise judge is covered on the tiny model
    _, outputs = execute("04_steering.ipynb", nb_env)
    out = nb_env["out"] / "steer"
    m = json.loads((out / "metrics.json").read_text())["valueflow"]
    assert set(m["values"]) == {"care", "achievement"}
    assert all(m["values"][v]["layer"] == 18 for v in m["values"])
    for name in ("valueflow/responses.csv", "valueflow/dose.csv", "valueflow/leakage.csv", "report.html",
                 "directions/valueflow_care.safetensors", "directions/valueflow_care.gguf"):
        assert (out / name).exists(), name
    assert _n_figures(outputs) >= 2  # dose-response and leakage
    assert "valueflow study:" in _text(outputs)
