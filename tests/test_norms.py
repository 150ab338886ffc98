"""Human-norm baselines: the design norm, the ratings importer's errors, and EI from simulated ratings."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entangle.analysis.entanglement import behavioural_ei
from entangle.analysis.norms import NormsError, design_norm, human_ei, load_ratings
from entangle.analysis.repair import excess_ei

EXAMPLE = Path(__file__).resolve().parent.parent / "data" / "norms" / "example_ratings.csv"
KINDS = ("moral", "grammatical", "economic")


def stimuli(n_frames: int = 30) -> pd.DataFrame:
    """A full factorial item table with the schema's ids (f01_m+1_e0_g1 ...)."""

    def lv(x: int) -> str:
        return f"{x:+d}" if x else "0"

    rows = [
        {"id": f"f{f:02d}_m{lv(m)}_e{lv(e)}_g{g}", "frame": f"f{f:02d}_x", "moral": m, "economic": e, "grammatical": g}
        for f in range(1, n_frames + 1)
        for m, e, g in product((1, 0, -1), (1, 0, -1), (1, 0))
    ]
    return pd.DataFrame(rows)


def write(tmp_path: Path, text: str | bytes, name: str = "r.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def test_design_norm_exact():
    res = design_norm(stimuli())
    assert res.source == "design" and res.boot is None
    ei = res.ei
    for i, f in enumerate(res.factors):
        for j, k in enumerate(res.kinds):
            assert ei[i, j] == (1.0 if f == k else 0.0)
    assert np.array_equal(res.ci_low, ei) and np.array_equal(res.ci_high, ei)
    assert res.n_frames == 30 and int(res.n_items[0]) == 30 * 18
    json.dumps(res.to_dict(), allow_nan=False)


def test_design_norm_accepts_stimulus_set():
    from entangle.stimuli import Item, StimulusSet

    items = [
        Item(
            id=r.id,
            frame=r.frame,
            moral=r.moral,
            economic=r.economic,
            grammatical=r.grammatical,
            text="x",
            judged_start=0,
            judged_end=1,
        )
        for r in stimuli(2).itertuples()
    ]
    res = design_norm(StimulusSet.from_items(items))
    assert res.n_frames == 2 and res.cell("moral", "grammatical") == 0.0


GOOD = "item_id,kind,rating,rater_id\nf01_m+1_e0_g1,moral,6,r1\n"


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("", 1, "<header>"),
        ("item_id,kind,rater_id\nf01_m+1_e0_g1,moral,r1\n", 1, "rating"),
        ("item_id,kind,rating,rater_id,extra\n", 1, "extra"),
        (GOOD + "f01_m+1_e0_g1,,5,r1\n", 3, "kind"),
        (GOOD + "f99_m+1_e0_g1,moral,5,r1\n", 3, "item_id"),
        (GOOD + "f01_m+1_e0_g1,aesthetic,5,r1\n", 3, "kind"),
        (GOOD + "f01_m+1_e0_g1,moral,good,r1\n", 3, "rating"),
        (GOOD + "f01_m+1_e0_g1,moral,nan,r1\n", 3, "rating"),
        (GOOD + "f01_m+1_e0_g1,moral,inf,r1\n", 3, "rating"),
        (GOOD + "f01_m+1_e0_g1,moral,5\n", 3, "<row>"),
        ("item_id,kind,rating,rater_id\n", 2, "<rows>"),
    ],
)
def test_load_ratings_errors_name_line_and_field(tmp_path, text, line, field):
    p = write(tmp_path, text)
    with pytest.raises(NormsError) as ei:
        load_ratings(p, stimuli(2))
    e = ei.value
    assert (e.line, e.field) == (line, field)
    assert str(e).startswith(f"{p}:{line}: field '{field}'")


def test_load_ratings_bad_utf8(tmp_path):
    p = write(tmp_path, GOOD.encode() + b"f01_m+1_e0_g1,moral,5,r\xff\n")
    with pytest.raises(NormsError, match=r":3: field '<encoding>'"):
        load_ratings(p, stimuli(2))


def test_load_ratings_valid_without_rater(tmp_path):
    p = write(tmp_path, "item_id,kind,rating\r\nf01_m+1_e0_g1,moral,6\r\n\r\nf01_m-1_e0_g1,moral,1.5\r\n")
    df = load_ratings(p, stimuli(2))
    assert df["rating"].tolist() == [6.0, 1.5] and df["line"].tolist() == [2, 4]
    assert df["rater_id"].isna().all() and df.attrs["source"] == "ratings:r.csv"


def test_example_ratings_file_loads():
    from entangle.stimuli import STIMULI_V1, load_stimuli

    stim = load_stimuli(STIMULI_V1)  # the example ratings were simulated for the v1 items
    df = load_ratings(EXAMPLE, stim)
    assert set(df["kind"]) == set(KINDS) and df["rater_id"].nunique() >= 3
    res = human_ei(df, stim, n_boot=50)
    assert res.source == "ratings:example_ratings.csv"
    json.dumps(res.to_dict(), allow_nan=False)


def simulated_ratings(stim: pd.DataFrame, leak: float, n_raters: int = 6, seed: int = 0) -> pd.DataFrame:
    """1–7-ish ratings: 4 + 1.5·own(±) + leak·m on grammatical, rater bias, frame effect, noise."""
    rng = np.random.default_rng(seed)
    frame_fx = {f: rng.normal(0, 0.3) for f in stim["frame"].unique()}
    rows = []
    for r in range(n_raters):
        bias = rng.normal(0, 0.4)
        for it in stim.itertuples():
            for k in KINDS:
                own = getattr(it, k) if k != "grammatical" else 2 * it.grammatical - 1
                v = 4 + 1.5 * own + (leak * it.moral if k == "grammatical" else 0.0) + bias + frame_fx[it.frame]
                rows.append({"item_id": it.id, "kind": k, "rating": v + rng.normal(0, 1.0), "rater_id": f"r{r}"})
    df = pd.DataFrame(rows)
    df.attrs["source"] = "ratings:sim.csv"
    return df


def test_human_ei_recovers_planted_values():
    stim = stimuli(30)
    ratings = simulated_ratings(stim, leak=0.225)  # own gap g1−g0 = 3, moral contrast 2 × 0.225 → EI 0.15
    res = human_ei(ratings, stim, n_boot=300, seed=0)
    assert res.resampling_unit == "frame+rater" and res.source == "ratings:sim.csv"
    assert res.controls == []  # the stimuli carry no n_tokens
    t = res.table().set_index(["from_factor", "to_kind"])
    row = t.loc[("moral", "grammatical")]
    assert row["ci_low"] <= 0.15 <= row["ci_high"] and row["ci_low"] > 0
    assert abs(row["ei"] - 0.15) < 0.04
    assert t.loc[("moral", "economic"), "ci_low"] <= 0 <= t.loc[("moral", "economic"), "ci_high"]
    # rater resampling widens the interval compared with frames alone
    no_rater = human_ei(ratings.assign(rater_id=None), stim, n_boot=300, seed=0)
    nr = no_rater.table().set_index(["from_factor", "to_kind"]).loc[("moral", "grammatical")]
    assert nr["ei"] == pytest.approx(row["ei"])
    assert no_rater.resampling_unit == "frame"
    assert (row["ci_high"] - row["ci_low"]) > (nr["ci_high"] - nr["ci_low"])


def test_human_ei_pairs_with_model_on_same_frames():
    stim = stimuli(30)
    human = human_ei(simulated_ratings(stim, leak=0.45), stim, n_boot=200, seed=1)
    model_df = pd.concat(
        [
            stim.rename(columns={"id": "item_id"}).assign(
                kind=k,
                value=lambda d, k=k: (
                    d[k] + 0.2 * d["moral"] * (k == "grammatical") + np.random.default_rng(0).normal(0, 0.5, len(d))
                ),
            )
            for k in KINDS
        ],
        ignore_index=True,
    )
    model = behavioural_ei(model_df, n_boot=200, seed=1, control_tokens=False)
    assert model.boot.pairs_with(human.boot)
    ex = excess_ei(model, human).set_index(["from_factor", "to_kind"])
    assert ex.loc[("moral", "grammatical"), "pairing"] == "paired"
    assert ex.loc[("moral", "grammatical"), "excess"] == pytest.approx(
        model.cell("moral", "grammatical") - human.cell("moral", "grammatical")
    )
