"""notebooks/06_tradeoffs.ipynb executes top to bottom on the real model with a very small design (two values, raw
and Gram–Schmidt directions, 8 training and 4 held-out pairs, one extrapolation bound, 50 resamples) and writes a
trade-offs run folder with its report."""

from __future__ import annotations

import json

import pytest
from test_notebooks import _n_figures, _text, execute, nb_env  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_06_tradeoffs(nb_env):  # noqa: F811
    nb_env["env"].update({"ENTANGLE_NB_TO_VALUES": "moral,economic", "ENTANGLE_NB_TO_METHODS": "none,gram_schmidt",
                          "ENTANGLE_NB_TO_TRAIN": "8", "ENTANGLE_NB_TO_HELDOUT": "4",
                          "ENTANGLE_NB_TO_EXTRAPOLATE": "2", "ENTANGLE_NB_TO_EVERY": "10"})
    _, outputs = execute("06_tradeoffs.ipynb", nb_env)
    out = nb_env["out"] / "tradeoffs"
    m = json.loads((out / "metrics.json").read_text())["tradeoffs"]
    assert m["frontier"] == ["moral", "economic"]
    assert {r["method"] for r in m["hypervolume"]} == {"none", "gram_schmidt"}
    assert {r["grid"] for r in m["hypervolume"] if r["method"] == "none"} == {"convex", "box", "box_2"}
    for name in ("tradeoffs/interference.csv", "tradeoffs/points.csv", "tradeoffs/hypervolume.csv", "report.html"):
        assert (out / name).exists(), name
    assert "Multi-value trade-offs" in (out / "report.html").read_text()
    assert _n_figures(outputs) >= 2  # interference heatmaps and the frontier
    assert "trade-offs study:" in _text(outputs)
