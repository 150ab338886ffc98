"""The SVO slider measure: items from their endpoints, ideal angles and null baselines, category boundaries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from entangle.files import InputError
from entangle.studies.svo.measure import (
    category,
    ideal_patterns,
    load_items,
    null_patterns,
    one_hot,
    slider_options,
    svo_angle,
    value_rationality,
)

ENDPOINTS = [((85, 85), (85, 15)), ((85, 15), (100, 50)), ((50, 100), (85, 85)), ((50, 100), (85, 15)),
             ((100, 50), (50, 100)), ((100, 50), (85, 85))]


@pytest.fixture(scope="module")
def items():
    return load_items()


def test_items_are_the_six_primary_items_with_nine_evenly_spaced_options(items):
    assert [(it.start, it.end) for it in items] == ENDPOINTS
    for it in items:
        assert len(it.options) == 9 and it.options[0] == it.start and it.options[-1] == it.end
        steps = np.diff(np.array(it.options, float), axis=0)
        assert np.all(np.abs(steps - steps.mean(axis=0)) <= 1.0)  # evenly spaced up to whole-point rounding
    # the published allocations, e.g. item 2 and item 5 (rounded half up: 92.5 -> 93, 62.5 -> 63)
    assert items[1].options[4] == (93, 33) and items[4].options[2] == (88, 63) and items[3].options[3] == (63, 68)


def test_slider_options_round_half_up():
    assert slider_options((100, 50), (50, 100))[6] == (63, 88)
    assert slider_options((0, 0), (8, 4)) == tuple((k, math.floor(k / 2 + 0.5)) for k in range(9))


def test_items_file_whose_options_disagree_with_its_endpoints_is_refused(tmp_path):
    raw = json.loads(load_items.__defaults__[0].read_text())
    raw["items"][0]["options"][3] = [85, 60]
    bad = tmp_path / "items.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(InputError, match="evenly spaced"):
        load_items(bad)


@pytest.mark.parametrize(("name", "expected", "cat"), [
    ("altruistic", 61.39, "altruistic"), ("prosocial", 45.0, "prosocial"), ("competitive", -16.26, "competitive"),
    ("inequality_averse", 37.48, "prosocial"), ("individualistic", 0.0, "individualistic")])
def test_ideal_angles(items, name, expected, cat):
    theta = svo_angle(items, ideal_patterns(items)[name])
    assert theta == pytest.approx(expected, abs=0.05)
    assert category(theta) == cat


def test_prosocial_is_a_tie_between_41_and_49_degree_patterns(items):
    # joint gain is 151 at both (88, 63) and (63, 88) of item 5; the other items' joint maxima are unique
    base = [0, 8, 8, 0, None, 8]
    angles = [svo_angle(items, one_hot([c if c is not None else k for c in base])) for k in (2, 6)]
    assert angles == pytest.approx([41.03, 48.97], abs=0.01)
    assert np.mean(angles) == pytest.approx(svo_angle(items, ideal_patterns(items)["prosocial"]), abs=0.01)


def test_individualist_spans_minus_7_82_to_0_by_how_item_1_tie_is_broken(items):
    # item 1 gives 85 to self in every option: the self-maximiser is indifferent there
    base = [None, 8, 8, 8, 0, 0]
    theta = {k: svo_angle(items, one_hot([c if c is not None else k for c in base])) for k in (8, 4, 0)}
    assert theta[8] == pytest.approx(-7.82, abs=0.01)  # least to the other
    assert theta[4] == pytest.approx(0.0, abs=0.01)  # the middle option (85, 50)
    assert theta[0] == pytest.approx(7.82, abs=0.01)  # most to the other
    assert {category(t) for t in theta.values()} == {"individualistic"}


@pytest.mark.parametrize(("name", "expected"), [
    ("uniform_random", 22.70), ("always_first", 30.47), ("always_middle", 22.93), ("always_last", 14.74)])
def test_null_baselines(items, name, expected):
    # issue 12 lists middle 14.74 and last 22.93; the items as given put them the other way round
    assert svo_angle(items, null_patterns(items)[name]) == pytest.approx(expected, abs=0.01)


def test_uniform_random_sits_on_the_prosocial_side_of_the_boundary(items):
    assert category(svo_angle(items, null_patterns(items)["uniform_random"])) == "prosocial"


@pytest.mark.parametrize(("theta", "cat"), [
    (90.0, "altruistic"), (57.15 + 1e-9, "altruistic"), (57.15, "prosocial"), (22.45 + 1e-9, "prosocial"),
    (22.45, "individualistic"), (-12.04 + 1e-9, "individualistic"), (-12.04, "competitive"), (-45.0, "competitive"),
    (float("nan"), "undefined")])
def test_category_boundaries_follow_lo_hi_rule(theta, cat):
    assert category(theta) == cat


def test_value_rationality():
    assert value_rationality(45.0, 45.0) == 1.0
    assert value_rationality(0.0, 45.0) == pytest.approx(0.5)
    assert value_rationality(-60.0, 61.39) == 0.0  # more than 90 degrees away
    assert math.isnan(value_rationality(float("nan"), 45.0))
