"""notebooks/05_svo.ipynb executes top to bottom on the real model (one persona, one-step, one steering α, 2 orders)."""

from __future__ import annotations

import json

from test_notebooks import _n_figures, _text, execute, nb_env  # noqa: F401


def test_05_svo(nb_env):  # noqa: F811
    env = {**nb_env["env"], "ENTANGLE_NB_SVO_PERM": "2", "ENTANGLE_NB_SVO_PERSONAS": "altruistic",
           "ENTANGLE_NB_SVO_TWO_STEP": "0", "ENTANGLE_NB_SVO_ALPHAS": "0.5", "ENTANGLE_NB_N_BOOT": "50",
           "ENTANGLE_NB_OUT": str(nb_env["out"] / "svo")}
    _, outputs = execute("05_svo.ipynb", {**nb_env, "env": env})
    out = nb_env["out"] / "svo"
    svo = json.loads((out / "metrics.json").read_text())["svo"]
    assert set(svo["conditions"]) == {"none", "one_step:altruistic", "steer:prosocial:+0.5", "steer:moral:+0.5"}
    assert abs(svo["baselines"]["uniform_random"] - 22.70) < 0.01
    for name in ("svo/conditions.csv", "svo/choices.csv", "report.html"):
        assert (out / name).exists(), name
    assert _n_figures(outputs) >= 1  # the SVO angle plot
    assert "hvae_drift" in _text(outputs)
