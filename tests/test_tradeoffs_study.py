"""The trade-offs study: grids, the frontier analysis on planted scores, the whole study on the tiny model (tables,
metrics, report section), and the CLI's refusals before a model loads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from entangle.files import InputError
from entangle.studies.tradeoffs import Config
from entangle.studies.tradeoffs.config import grids, method_points
from entangle.studies.tradeoffs.config import in_grid
from entangle.studies.tradeoffs.evaluate import Scores, steering_vector
from entangle.studies.tradeoffs.frontier import Point, analyse, compare, cross_effects


def test_grids_nest_and_methods_get_their_points():
    cfg = Config()
    raw, gs = method_points(cfg, "none"), method_points(cfg, "gram_schmidt")
    assert (0.5, 0.5) in raw and (1.0, 0.0) in raw and (2.0, 2.0) in raw and (1.5, 1.0) in raw
    assert max(max(p) for p in gs) == 1.0 and set(gs) == {(0.0, 1.0), (1.0, 0.0), (0.5, 0.5), (1.0, 1.0)}
    assert (0.0, 0.0) not in raw
    bounds = grids(cfg)
    assert list(bounds) == ["convex", "box", "box_1.5", "box_2"]
    for p in raw:  # convex ⊂ box ⊂ box_1.5 ⊂ box_2
        inside = [in_grid(np.array(p), b) for b in bounds.values()]
        assert inside == sorted(inside) or inside[0]
        if inside[0]:
            assert all(inside)
    fine = Config.fine()
    assert len(method_points(fine, "hsic")) > len(method_points(cfg, "none"))
    with pytest.raises(InputError, match="none"):
        Config(methods=("gram_schmidt",)).check()
    with pytest.raises(InputError, match="frontier"):
        Config(frontier=("liberty",)).check()


def test_steering_vector_is_the_weighted_sum_of_unit_directions():
    d = {"a": np.array([2.0, 0.0]), "b": np.array([0.0, 5.0])}
    assert steering_vector(d, {"a": 1.0, "b": 0.5}, alpha=0.5, sigma=4.0) == pytest.approx([2.0, 1.0])


def _scores(gain_a: float, gain_b: float, loss: float, rng: np.random.Generator, n: int = 16) -> Scores:
    return Scores({"a": gain_a + 0.01 * rng.standard_normal(n), "b": gain_b + 0.01 * rng.standard_normal(n)},
                  5.0 + loss + 0.01 * rng.standard_normal(n))


def test_frontier_analysis_on_planted_scores():
    """Planted: each value gains linearly with its weight, loss grows with the total push; the raw directions
    interfere (each costs the other 0.3 per unit), the decorrelated ones do not."""
    rng = np.random.default_rng(0)
    cfg = Config(values=("a", "b"), methods=("none", "gram_schmidt"))
    pts = [Point("unsteered", (0.0, 0.0), _scores(0, 0, 0, rng))]
    for m, cross in (("none", 0.3), ("gram_schmidt", 0.0)):
        for wa, wb in method_points(cfg, m):
            pts.append(Point(m, (wa, wb), _scores(wa - cross * wb, wb - cross * wa, 0.1 * (wa + wb) ** 2, rng)))
    ptable, hv_table, hv = analyse(pts, ("a", "b"), grids(cfg), ["none", "gram_schmidt"], 0.5, 50, 0)
    h = hv_table.set_index(["method", "grid"])["hv"]
    assert h[("none", "convex")] <= h[("none", "box")] <= h[("none", "box_1.5")] <= h[("none", "box_2")]
    assert ("gram_schmidt", "box_2") not in h.index  # not extrapolated: no extrapolated grids
    assert h[("gram_schmidt", "box")] > h[("none", "box")]
    comp = compare(hv, ["none", "gram_schmidt"], list(grids(cfg)))
    dec = comp[(comp.comparison == "decorrelation") & (comp.a == "gram_schmidt/box")].iloc[0]
    assert dec.estimate > 0 and dec.ci_low > 0
    assert set(comp.comparison) == {"decorrelation", "box_vs_convex", "extrapolation", "extrapolated_vs_convex"}
    est = comp.set_index(["comparison", "a"])["estimate"]  # extrapolated − convex = (extrap. − box) + (box − convex)
    assert est[("extrapolated_vs_convex", "none/box_2")] == pytest.approx(
        est[("extrapolation", "none/box_2")] + est[("box_vs_convex", "none/box")])
    # the unsteered point is the origin; gains carry intervals around their estimates
    base = ptable[ptable.method == "unsteered"].iloc[0]
    assert base.gain_a == 0 and base.loss_increase == 0
    row = ptable[(ptable.method == "none") & (ptable.w_a == 1.0) & (ptable.w_b == 0.0)].iloc[0]
    assert row.gain_a_low < row.gain_a < row.gain_a_high
    assert row.gain_a == pytest.approx(1.0, abs=0.02)
    assert row.gain_b == pytest.approx(-0.3, abs=0.02)


def test_cross_effects_mark_the_positive_control():
    rng = np.random.default_rng(1)
    base = _scores(0, 0, 0, rng)
    singles = {("none", "a"): _scores(0.2, -0.1, 0.1, rng), ("none", "b"): _scores(0.0, 0.3, 0.1, rng)}
    fx = cross_effects(["a", "b"], base, singles, 100, 0).set_index(["steered", "readout"])
    assert fx.loc[("a", "a"), "own"] and fx.loc[("a", "a"), "ci_low"] > 0.15
    assert fx.loc[("a", "b"), "ci_high"] < 0
    assert abs(fx.loc[("b", "a"), "estimate"]) < 0.02


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    """The study on the 3-layer random model with a small grid (plumbing, not science)."""
    from entangle.runfolder import RunFolder
    from entangle.studies.base import StudyContext
    from entangle.studies.tradeoffs import run

    root = tmp_path_factory.mktemp("tradeoffs")
    folder = RunFolder(root / "run")
    ctx = StudyContext(tiny, folder, root / "cache", n_boot=20, progress=False)
    cfg = Config(values=("moral", "economic"), methods=("none", "gram_schmidt"), layer=2, n_train=6, n_heldout=4,
                 n_neutral=4, n_boot=20, interference_boot=10, extrapolate=(2.0,))
    result = run(ctx, cfg)
    result.save(folder)
    return folder, result, ctx, cfg


def test_study_on_the_tiny_model(tiny_run):
    folder, _result, _, cfg = tiny_run
    m = folder.metrics()["tradeoffs"]
    assert set(m["positive_control"]) == set(cfg.values)
    assert {r["method"] for r in m["hypervolume"]} == set(cfg.methods)
    assert m["moral_ablation_direction"].startswith("DoM")
    for name in ("interference", "directions", "cross_effects", "points", "hypervolume", "comparisons"):
        assert folder.table(f"tradeoffs/{name}") is not None
    pts = folder.table("tradeoffs/points")
    assert {"unsteered", "moral_ablation", *cfg.methods} == set(pts.method)
    inter = folder.table("tradeoffs/interference")
    assert set(inter.layer) == {0, 2, 3} and (inter.ci_low <= inter.ci_high).all()
    d = folder.table("tradeoffs/directions").set_index(["method", "value"])
    assert d.loc[("gram_schmidt", "economic"), "cos_moral"] == pytest.approx(0.0, abs=1e-9)
    assert d.loc[("gram_schmidt", "moral"), "cos_raw"] == pytest.approx(1.0)
    json.dumps(m, allow_nan=False)  # strict JSON
    from entangle.directions import load_direction

    assert len(folder.directions()) == 2 * len(cfg.methods) * len(cfg.values)  # safetensors + JSON sidecar
    gs = load_direction(folder.path / "directions" / "tradeoffs_gram_schmidt_economic.safetensors")
    assert gs.layers == [cfg.layer] and gs.meta["alpha_calibration"]["alpha"] == cfg.alpha
    assert abs(float(gs.vectors[0] @ load_direction(folder.path / "directions" / "tradeoffs_gram_schmidt_moral"
                                                    ".safetensors").vectors[0])) < 1e-5


def test_study_resumes_from_its_cache(tiny_run, monkeypatch):
    """A second run with the same cache scores nothing again (every setting is read back) and agrees."""
    from entangle.studies.tradeoffs import evaluate, run

    _folder, result, ctx, cfg = tiny_run
    monkeypatch.setattr(evaluate, "text_loss", lambda *a, **k: pytest.fail("scored again despite the cache"))
    again = run(ctx, cfg)
    pd.testing.assert_frame_equal(again.tables["tradeoffs/points"], result.tables["tradeoffs/points"])


def test_report_section_renders_from_the_folder(tiny_run):
    from entangle.report.sections import tradeoffs as section

    folder, *_ = tiny_run
    metrics = folder.metrics()
    assert section.present(metrics)
    html = section.render(folder, metrics)
    for text in ("Interference per layer", "Steering frontier per method", "Hypervolume against the unsteered",
                 "moral ablation", "positive control"):
        assert text.lower() in html.lower()
    assert len(html) < 300_000  # plotly fragments only: the page inlines plotly.js once
    broken = {**metrics, "tradeoffs": {k: v for k, v in metrics["tradeoffs"].items() if k != "hypervolume"}}
    with pytest.raises(Exception, match="hypervolume"):
        section.render(folder, broken)


def test_cli_refuses_bad_input_before_loading_a_model(tmp_path, monkeypatch):
    from entangle.cli import app

    monkeypatch.setattr("entangle.models.load_model", lambda *a, **k: pytest.fail("model loaded"))
    runner = CliRunner()
    for args, msg in ((["--values", "moral,nope"], "no such value"), (["--methods", "none,pca"], "methods"),
                      (["--extrapolate", "1.5,x"], "comma-separated"), (["--heldout", "40"], "fewer than")):
        res = runner.invoke(app, ["tradeoff", "--out", str(tmp_path / "r"), *args])
        assert res.exit_code == 2, res.output
        assert msg in res.output
    assert "tradeoff" in runner.invoke(app, ["--help"]).output
