"""Science checks on the real embedded SmolLM2-135M (no mocks): readouts and probes on a frame subset."""

from __future__ import annotations

import numpy as np
import pytest

from entangle.analysis.probing import fit_probes, kind_labels
from entangle.analysis.stats import frame_bootstrap_indices, percentile_ci
from entangle.engine.capture import capture, choose_style
from entangle.stimuli import load_stimuli

pytestmark = pytest.mark.model
FRAMES = 12


@pytest.fixture(scope="module")
def moral_capture(smollm, tmp_path_factory):
    stim = load_stimuli().subset(FRAMES)
    return capture(smollm, stim, kinds=["moral"], cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def _frame_effect(values: np.ndarray, frames: np.ndarray, labels: np.ndarray, n_boot: int = 2000):
    """Good-minus-bad difference of a readout, averaged within frames, with a frame-bootstrap interval."""
    levels = np.unique(frames)
    per_frame = np.array([values[(frames == f) & (labels > 0)].mean() - values[(frames == f) & (labels < 0)].mean()
                          for f in levels])
    draws = frame_bootstrap_indices(levels, n_boot, seed=0)
    lo, hi = percentile_ci(per_frame[draws].mean(axis=1))
    sd = values[labels != 0].std(ddof=1)
    return per_frame.mean(), float(lo), float(hi), per_frame.mean() / sd


def test_moral_cloze_readout_separates_good_from_bad(moral_capture):
    table = moral_capture.readout_table()
    cloze = table[(table.readout == "cloze") & (table.kind == "moral")]
    diff, lo, hi, d = _frame_effect(cloze.value.to_numpy(), cloze.frame.to_numpy(), cloze.moral.to_numpy())
    print(f"moral cloze log-odds, good - bad: {diff:.3f} nats [{lo:.3f}, {hi:.3f}] (95% CI over {FRAMES} frames); "
          f"standardised effect {d:.2f}")
    assert lo > 0


def test_capture_self_checks_pass_on_the_real_model(moral_capture):
    checks = moral_capture.manifest["self_checks"]
    assert checks["padding_invariance"]["max_rel_error"] <= 1e-4
    assert checks["hook_semantics"]["max_rel_error"] <= 1e-4


def test_likert_is_flat_so_cloze_is_chosen(smollm):
    style, evidence = choose_style(smollm, load_stimuli().subset(6))
    print(evidence["reason"])
    assert style == "cloze"
    assert abs(evidence["likert"]["good_minus_bad"]) < 0.25


def test_moral_probe_beats_its_shuffle_control(moral_capture):
    rows = moral_capture.rows("moral")
    meta = moral_capture.prompts.iloc[rows]
    x = np.asarray(moral_capture.acts["last"][rows])
    res = fit_probes(x, kind_labels(meta, "moral"), meta.frame.to_numpy(), "moral", n_boot=500, n_splits=4,
                     layers=list(range(0, 31, 3)))
    best = res.layers.index(res.best_layer)
    print(f"moral probe: best layer {res.best_layer}, CV accuracy {res.accuracy[best]:.3f} "
          f"[{res.acc_ci_low[best]:.3f}, {res.acc_ci_high[best]:.3f}], shuffled {res.shuffled_accuracy[best]:.3f}")
    assert res.acc_ci_low[best] > res.shuffled_accuracy[best]
    assert res.acc_ci_low[best] > 0.5  # above chance with a frame-bootstrap interval (12 frames)
