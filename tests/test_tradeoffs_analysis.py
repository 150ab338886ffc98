"""The trade-offs study's analysis pieces on planted data: Pareto sets, hypervolume (exact 2-D and pymoo), HSIC and
CKA, principal angles, value subspaces, Gram–Schmidt, LEACE-decorrelated and HSIC-penalised directions."""

from __future__ import annotations

import numpy as np
import pytest

from entangle.analysis.decorrelate import (
    decorrelate,
    gram_schmidt,
    hsic_probes,
    leace_directions,
    weight_hsic,
)
from entangle.analysis.pareto import (
    hypervolume,
    hypervolume_2d,
    hypervolume_pymoo,
    pareto_mask,
)
from entangle.analysis.subspaces import (
    hsic,
    interference,
    linear_cka,
    principal_angles,
    value_subspace,
)


def test_pareto_mask_on_a_planted_set():
    front = np.array([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
    dominated = np.array([[2.0, 1.0], [1.0, 1.0], [0.5, 2.5], [2.0, 2.0 - 1e-9]])
    pts = np.vstack([dominated[:2], front, dominated[2:], [[2.0, 2.0]], [[np.nan, 9.0]]])
    mask = pareto_mask(pts)
    assert mask.tolist() == [False, False, True, True, True, False, False, True, False]  # duplicate front point kept


def test_pareto_mask_three_objectives():
    rng = np.random.default_rng(1)
    pts = rng.random((60, 3))
    mask = pareto_mask(pts)
    for i in range(len(pts)):  # brute force definition
        dom = ((pts >= pts[i]).all(1) & (pts > pts[i]).any(1)).any()
        assert mask[i] == (not dom)


def test_hypervolume_2d_known_value():
    # staircase (1,3), (2,2), (3,1) against the origin: 3 + 2 + 1 = 6; a dominated point and one behind the
    # reference add nothing
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [1.5, 1.5], [-1.0, 5.0]])
    assert hypervolume_2d(pts, np.zeros(2)) == pytest.approx(6.0)
    # against (1, 1) only (2, 2) and (1.5, 1.5) dominate the reference; (1, 3) and (3, 1) sit on its edges
    assert hypervolume(pts, np.array([1.0, 1.0])) == pytest.approx(1.0)
    assert hypervolume(np.empty((0, 2)), np.zeros(2)) == 0.0


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_agrees_with_pymoo(m):
    rng = np.random.default_rng(m)
    pts = rng.random((40, m)) - 0.2
    ref = np.zeros(m)
    ours = hypervolume_2d(pts, ref) if m == 2 else hypervolume(pts, ref)
    assert ours == pytest.approx(hypervolume_pymoo(pts, ref), rel=1e-9)
    assert ours > 0
    # adding a point inside the dominated region changes nothing; one beyond the front increases it
    assert hypervolume(np.vstack([pts, np.full(m, 0.01)]), ref) == pytest.approx(ours)
    assert hypervolume(np.vstack([pts, np.full(m, 0.95)]), ref) > ours


def test_hsic_and_cka_identical_vs_independent():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    y = rng.standard_normal((200, 3))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ np.linalg.qr(rng.standard_normal((3, 3)))[0] * 5.0) == pytest.approx(1.0)  # rotation, scale
    assert linear_cka(x, y) < 0.05
    for kernel, sigma in (("rbf", 1.0), ("rbf", None), ("linear", None)):
        same, indep = hsic(x, x, kernel, sigma), hsic(x, y, kernel, sigma)
        assert same > 10 * indep > 0
    # HSIC sees a non-linear dependence that correlation misses
    z = x[:, :1] ** 2
    assert abs(np.corrcoef(x[:, 0], z[:, 0])[0, 1]) < 0.2
    assert hsic(x[:, :1], z, "rbf", None) > 5 * hsic(y[:, :1], z, "rbf", None)


def test_principal_angles_and_subspace():
    e = np.eye(5)
    assert np.degrees(principal_angles(e[:2], e[:2])) == pytest.approx([0.0, 0.0], abs=1e-6)
    assert np.degrees(principal_angles(e[:2], e[2:4])) == pytest.approx([90.0, 90.0])
    tilt = np.array([np.cos(0.3), np.sin(0.3), 0, 0, 0])
    assert principal_angles(e[:1], tilt[None])[0] == pytest.approx(0.3)
    rng = np.random.default_rng(0)
    diffs = 3.0 * e[1] + 0.1 * rng.standard_normal((50, 5))
    q = value_subspace(diffs, 2)
    assert q @ q.T == pytest.approx(np.eye(2), abs=1e-9)
    assert q[0] @ e[1] > 0.99  # the first direction is the (positive) mean difference


def test_interference_separates_shared_from_distinct_values():
    rng = np.random.default_rng(0)
    d, n = 32, 30
    shared, other = rng.standard_normal(d), rng.standard_normal(d)

    def acts(u):
        base = rng.standard_normal((n, 1, d))
        return base + u + 0.3 * rng.standard_normal((n, 1, d)), base - u

    ea, ra = acts(shared)
    eb, rb = acts(shared)
    ec, rc = acts(other)
    df = interference({"a": ea, "b": eb, "c": ec}, {"a": ra, "b": rb, "c": rc}, [5], k=2, n_boot=30)
    cos = df[df.measure == "cosine"].set_index(["value_a", "value_b"])
    assert cos.loc[("a", "b"), "estimate"] > 0.9 > abs(cos.loc[("a", "c"), "estimate"]) + 0.5
    assert cos.loc[("a", "b"), "ci_low"] > cos.loc[("a", "c"), "ci_high"]
    assert set(df.measure) == {"cosine", "angle_first", "angle_mean", "cka", "hsic_rbf", "hsic_linear"}


def test_gram_schmidt_orthonormal_and_spanning_in_order():
    rng = np.random.default_rng(0)
    d = rng.standard_normal((4, 10))
    q = gram_schmidt(d, order=[2, 0, 3, 1])
    assert q @ q.T == pytest.approx(np.eye(4), abs=1e-12)
    assert q[2] == pytest.approx(d[2] / np.linalg.norm(d[2]))  # first in the order: only normalised
    # same span: projecting the originals onto span(q) leaves nothing
    assert d - (d @ q.T) @ q == pytest.approx(np.zeros_like(d), abs=1e-10)
    # each output lies in the span of its predecessors-in-order plus itself
    prefix = d[[2, 0]]
    assert q[0] - (q[0] @ np.linalg.pinv(prefix)) @ prefix == pytest.approx(np.zeros(10), abs=1e-10)
    with pytest.raises(ValueError, match="span"):
        gram_schmidt(np.vstack([d[0], 2 * d[0]]))


def _planted(seed: int = 0, d: int = 48, n: int = 40):
    """Two values whose contrasts share most of their direction (cosine about 0.8)."""
    rng = np.random.default_rng(seed)
    shared, a, b = (rng.standard_normal(d) for _ in range(3))

    def pairs(u):
        base = rng.standard_normal((n, d))
        return base + 0.5 * u + 0.3 * rng.standard_normal((n, d)), base - 0.5 * u

    return {"a": pairs(shared + 0.5 * a), "b": pairs(shared + 0.5 * b)}


def test_hsic_penalised_probes_reduce_the_penalty():
    train = _planted()
    free = hsic_probes(train, lam=0.0, steps=150)
    tied = hsic_probes(train, lam=10.0, steps=150)
    assert tied.penalty < 0.25 * free.penalty
    assert weight_hsic(tied.directions) == pytest.approx(tied.penalty, rel=1e-6)
    assert abs(tied.directions[0] @ tied.directions[1]) < abs(free.directions[0] @ free.directions[1])
    # the probes still separate their own value's texts
    for i, v in enumerate(train):
        e, r = train[v]
        assert ((e - r) @ tied.directions[i] > 0).mean() > 0.9


def test_decorrelation_methods_reduce_overlap():
    train = _planted(1)
    raw = decorrelate("none", train)
    cos_raw = raw["a"] @ raw["b"]
    assert cos_raw > 0.5
    gs = decorrelate("gram_schmidt", train, order=["b", "a"])
    assert abs(gs["a"] @ gs["b"]) < 1e-10 and gs["b"] == pytest.approx(raw["b"])
    le = leace_directions(train)
    assert le["a"] @ le["b"] / (np.linalg.norm(le["a"]) * np.linalg.norm(le["b"])) < cos_raw
    for m in ("leace", "hsic"):
        dm = decorrelate(m, train)
        assert all(np.linalg.norm(v) == pytest.approx(1.0) for v in dm.values())
        assert dm["a"] @ raw["a"] > 0  # still points towards its own value
    with pytest.raises(ValueError, match="unknown"):
        decorrelate("pca", train)
