"""The three notebooks execute top to bottom (2 frames, 2 random directions, 50 resamples) on the real model.

Each runs in a fresh kernel of this interpreter (a throw-away kernelspec pointing at `sys.executable`, so a fresh
clone needs no `ipykernel install` and no user-level kernel can shadow the venv). The notebooks share one cache and
one results folder, as they do interactively: 01 captures, 02 and 03 read the capture from the cache.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "entangle-test-python"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
CELL_TIMEOUT_S = 900
MODEL = os.environ.get("ENTANGLE_NB_MODEL", "smollm2-135m")  # the notebooks' default; override to try another

pytestmark = [pytest.mark.slow, pytest.mark.model]


@pytest.fixture(scope="module")
def nb_env(tmp_path_factory):
    """Paths, environment and kernel spec manager shared by the three notebook runs."""
    from jupyter_client.kernelspec import KernelSpecManager

    root = tmp_path_factory.mktemp("notebooks")
    spec_dir = root / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "entangle test kernel", "language": "python",
    }))
    env = {
        **os.environ,
        "ENTANGLE_NB_FRAMES": "2", "ENTANGLE_NB_N_RANDOM": "2", "ENTANGLE_NB_N_BOOT": "50",
        "ENTANGLE_NB_RULES": "all",  # the headline rule only: the sweep adds two ablations, not coverage
        "ENTANGLE_NB_CACHE": str(root / "cache"), "ENTANGLE_NB_OUT": str(root / "out"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    ksm = KernelSpecManager(kernel_dirs=[str(root / "kernels")], ensure_native_kernel=False)
    state = {"out": root / "out", "cache": root / "cache", "env": env, "ksm": ksm, "times": {}}
    yield state
    if state["times"]:  # shown with `pytest -s`
        print("\nnotebook wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in state["times"].items()))


def execute(name: str, nb_env: dict):
    """Run one notebook in a fresh kernel (cwd notebooks/); a failing cell raises CellExecutionError."""
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(c.get("outputs", []) == [] for c in nb.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=nb_env["ksm"])
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    t0 = time.perf_counter()
    try:
        client.execute(env=nb_env["env"])
    finally:  # a kernel manager passed in is not shut down by nbclient itself
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    nb_env["times"][name] = time.perf_counter() - t0
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return nb, outputs


def _text(outputs) -> str:
    parts = []
    for o in outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif "data" in o:
            parts.append(o.data.get("text/plain", ""))
    return "\n".join(parts)


def _n_figures(outputs) -> int:
    return sum(1 for o in outputs if PLOTLY_MIME in o.get("data", {}))


def test_01_quickstart(nb_env):
    _, outputs = execute("01_quickstart.ipynb", nb_env)
    text = _text(outputs)
    assert "ModelInfo" in text and MODEL in text
    if MODEL == "smollm2-135m":
        assert "cloze separates moral good from bad" in text  # choose_style's reason: Likert is flat on SmolLM2
    assert _n_figures(outputs) >= 1  # readout by factor level
    assert "padding_invariance" in text and "hook_semantics" in text
    assert any(nb_env["cache"].glob("*/*/manifest.json"))  # a complete capture in the cache


def test_02_directions(nb_env):
    _, outputs = execute("02_directions.ipynb", nb_env)
    out = nb_env["out"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["probe"]) == {"moral", "grammatical", "economic"}
    for name in ("probes.csv", "cosine.csv", "cross_decoding.csv", "directions/moral_logistic.safetensors",
                 "export/moral.gguf", "export/moral.npz"):
        assert (out / name).exists(), name
    assert _n_figures(outputs) >= 3  # probe accuracy, cosine, cross-decoding (+ leakage)
    assert "projection_L" in _text(outputs)  # the scored sentences


def test_03_ablation(nb_env):
    _, outputs = execute("03_ablation.ipynb", nb_env)
    out, text = nb_env["out"], _text(outputs)
    for name in ("selection.csv", "candidates.csv", "validity.csv", "steering_moral.csv"):
        assert (out / name).exists(), name
    selection = pd.read_csv(out / "selection.csv")
    assert {"estimated_kept", "moral_kept", "passes_filters"} <= set(selection.columns) and len(selection) >= 1
    assert "of the moral effect on" in text and ("-> passed" in text or "-> failed" in text)
    assert ("repair is untested" in text) or ("valid cells:" in text)  # never a negative without the control
    assert _n_figures(outputs) >= 1  # the steering dose-response
