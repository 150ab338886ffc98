"""The SVO question format, choice distributions from letter log-probs, and debiasing of a planted letter bias."""

from __future__ import annotations

import numpy as np
import pytest

from entangle.studies.svo import bootstrap
from entangle.studies.svo.choice import (
    LETTERS,
    allocation_probs,
    choice_logprobs,
    debias_average,
    letter_mass,
    permutations,
    prior_corrected,
    question,
)
from entangle.studies.svo.measure import category, ideal_patterns, load_items, svo_angle

ITEMS = load_items()


def planted(utility, bias: np.ndarray, perms: np.ndarray, beta: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Letter log-probs of a soft chooser (softmax of beta * utility(self, other)) plus a letter bias, and its true
    [item, option] distribution. A constant 1.2 nats goes to tokens that are not letters."""
    true = np.array([np.exp(beta * utility(it.self_payoffs, it.other_payoffs)) for it in ITEMS])
    true /= true.sum(axis=1, keepdims=True)
    lp = np.empty((len(ITEMS), len(perms), 9))
    for i, it in enumerate(ITEMS):
        for p, order in enumerate(perms):
            z = beta * utility(it.self_payoffs, it.other_payoffs)[order] + bias
            lp[i, p] = z - np.log(np.exp(z).sum()) - 1.2
    return lp, true


def test_permutations_are_seeded_orders_with_the_identity_first():
    p = permutations(5, seed=3)
    assert p.shape == (5, 9) and (p[0] == np.arange(9)).all()
    assert all(sorted(r) == list(range(9)) for r in p)
    assert (p == permutations(5, seed=3)).all() and not (p == permutations(5, seed=4)).all()


def test_question_letters_the_allocations_in_the_given_order():
    order = [8, 0, 1, 2, 3, 4, 5, 6, 7]
    q = question(ITEMS[0], order, goal="Your goal is X.")
    lines = q.splitlines()
    assert lines[1] == "A) You 85, other 15" and lines[2] == "B) You 85, other 85"
    assert [ln[0] for ln in lines[1:10]] == list(LETTERS) and "Your goal is X." in q


def test_allocation_probs_map_letters_back_to_allocations():
    perms = permutations(3, seed=0)
    lp = np.full((len(ITEMS), 3, 9), -10.0)
    lp[:, :, 0] = 0.0  # always letter A
    alloc = allocation_probs(lp, perms)
    assert np.allclose(alloc.sum(-1), 1.0)
    for p in range(3):
        assert alloc[0, p].argmax() == perms[p, 0]
    assert np.allclose(letter_mass(lp), 1.0 + 8 * np.exp(-10.0))


def hard_chooser(pattern: np.ndarray, bias: np.ndarray, perms: np.ndarray, strength: float = 8.0) -> np.ndarray:
    """Letter log-probs of a chooser who prefers its ideal options by `strength` nats, plus a letter bias."""
    lp = np.empty((len(ITEMS), len(perms), 9))
    for i in range(len(ITEMS)):
        for p, order in enumerate(perms):
            z = strength * pattern[i][order] + bias
            lp[i, p] = z - np.log(np.exp(z).sum()) - 1.2
    return lp


@pytest.mark.parametrize(("orientation", "letter"), [("competitive", 0), ("altruistic", 4), ("individualistic", 0)])
def test_debiasing_recovers_a_planted_chooser_with_a_strong_letter_bias(orientation, letter):
    perms = permutations(6, seed=1)
    pattern = ideal_patterns(ITEMS)[orientation]
    bias = np.zeros(9)
    bias[letter] = 10.0  # stronger than the preference itself (8 nats): the identity order reads out the letter
    lp = hard_chooser(pattern, bias, perms)
    true = np.exp(8.0 * pattern)
    true /= true.sum(axis=1, keepdims=True)
    truth = svo_angle(ITEMS, true)
    assert category(truth) == orientation
    biased = svo_angle(ITEMS, allocation_probs(lp, perms)[:, 0])
    assert category(biased) != orientation  # the identity order misclassifies the chooser
    q, prior = prior_corrected(lp, perms)
    assert svo_angle(ITEMS, q) == pytest.approx(truth, abs=0.01) and category(svo_angle(ITEMS, q)) == orientation
    assert np.allclose(q, true, atol=1e-6)
    assert prior.argmax() == letter and prior[letter] - np.delete(prior, letter).max() == pytest.approx(10.0)


def test_prior_correction_needs_two_orders():
    with pytest.raises(ValueError, match="confounded"):
        prior_corrected(np.zeros((6, 1, 9)), permutations(1))


def test_bootstrap_is_paired_and_resamples_only_its_unit():
    perms = permutations(4, seed=0)
    lp, _ = planted(lambda s, o: o, np.zeros(9), perms, beta=0.05)
    rng = np.random.default_rng(0)
    noisy = lp + rng.normal(0, 0.5, lp.shape)
    d = bootstrap.draw(len(ITEMS), 4, 200, seed=0, unit="permutations")
    b = bootstrap.boot_angles(ITEMS, noisy, perms, d)
    assert np.ptp(b["biased"]) == 0 and np.ptp(b["averaged"]) > 0  # the identity order alone is never resampled
    assert b["averaged"].min() <= svo_angle(ITEMS, debias_average(allocation_probs(noisy, perms))) <= b["averaged"].max()
    q = prior_corrected(noisy, perms)[0]
    assert b["debiased"].min() <= svo_angle(ITEMS, q) <= b["debiased"].max()
    same = bootstrap.boot_angles(ITEMS, noisy, perms, d)
    assert np.allclose(same["debiased"] - b["debiased"], 0)  # same draws for every condition: paired differences
    di = bootstrap.draw(len(ITEMS), 4, 200, seed=0, unit="items")
    assert np.ptp(bootstrap.boot_angles(ITEMS, noisy, perms, di)["biased"]) > 0
    with pytest.raises(ValueError, match="resampling unit"):
        bootstrap.draw(6, 4, 10, unit="frames")


def test_choice_logprobs_shape_on_the_tiny_model(tiny):
    perms = permutations(2, seed=0)
    lp = choice_logprobs(tiny, ITEMS[:2], perms, system="You are a prosocial person.")
    assert lp.shape == (2, 2, 9) and np.all(lp <= 0) and np.all(np.isfinite(lp))


def test_shared_prefix_logprobs_equal_whole_prompts_under_steering(tiny):
    from entangle.engine import next_token_logprobs
    from entangle.interventions import steer
    from entangle.studies.svo.choice import (
        letter_token_ids,
        prompts,
        shared_prefix_logprobs,
    )

    perms = permutations(3, seed=0)
    texts = prompts(tiny, ITEMS[:2], perms, system="You are an altruistic person.")
    ids = letter_token_ids(tiny)
    d = {2: np.random.default_rng(0).standard_normal(64)}
    iv = lambda: steer(tiny.bridge, d, 0.5, {2: 3.0})
    full = next_token_logprobs(tiny, texts, ids, intervention=iv)
    shared = shared_prefix_logprobs(tiny, texts, ids, intervention=iv, batch_size=4)
    assert np.abs(full - shared).max() < 1e-4
    assert np.abs(full - next_token_logprobs(tiny, texts, ids)).max() > 1e-3  # the steering acted
