import numpy as np
import pytest
import torch
from ase import Atoms

from cgexplain.lrp import brute_force_relevance, enumerate_walks, nbody_sums, walk_relevance
from cgexplain.lrp.engine import _inputs
from cgexplain.lrp.nbody import body_order, pair_relevance, three_body_points, two_body_points
from cgexplain.lrp.rules import silu_rule
from conftest import random_painn


def _frame(periodic, n=7, seed=0):
    rng = np.random.default_rng(seed)
    types = rng.integers(1, 3, n)
    if periodic:
        return Atoms(numbers=types, positions=rng.uniform(0, 5.0, (n, 3)), cell=np.eye(3) * 5.5, pbc=True)
    return Atoms(numbers=types, positions=rng.uniform(0, 3.5, (n, 3)))


def _sorted(res):
    w = res["walks"]
    o = np.lexsort(w.T[::-1])
    return w[o], res["relevance"][o]


@pytest.mark.parametrize("arch", ["painn", "so3net"])
@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("rule", [(0.1, True), (0.0, False), (0.25, True)])
def test_engine_equals_brute_force(arch, periodic, rule):
    m = random_painn(F=8, L=2, cutoff=3.0, seed=1, arch=arch)
    at = _frame(periodic)
    res = walk_relevance(m, at, gamma=rule[0], bias_rule=rule[1])
    w, r = _sorted(res)
    inp = _inputs(m, at, None, 3.0)
    assert np.array_equal(w, enumerate_walks(len(at), inp["_idx_i"].numpy(), inp["_idx_j"].numpy(), 2))
    bf = brute_force_relevance(m, at, w, gamma=rule[0], bias_rule=rule[1])
    assert np.abs(bf).max() > 1e-3  # not trivially zero
    np.testing.assert_allclose(r, bf, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("arch", ["painn", "so3net"])
def test_engine_three_layers_sample(arch):
    m = random_painn(F=6, L=3, cutoff=3.0, seed=2, arch=arch)
    at = _frame(True, n=6, seed=3)
    res = walk_relevance(m, at)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(res["walks"]), 40, replace=False)
    bf = brute_force_relevance(m, at, res["walks"][pick])
    np.testing.assert_allclose(res["relevance"][pick], bf, rtol=1e-10, atol=1e-12)
    # the walk-subset path gives the same numbers
    sub = walk_relevance(m, at, walks=res["walks"][pick])
    np.testing.assert_allclose(sub["relevance"], res["relevance"][pick], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("arch", ["painn", "so3net"])
def test_self_images_in_a_small_box(arch):
    """A box shorter than the cutoff: beads neighbour their own periodic images, which the
    engine folds into the self step (each walk appears once)."""
    m = random_painn(F=6, L=2, cutoff=3.0, seed=7, arch=arch)
    rng = np.random.default_rng(1)
    at = Atoms(numbers=[1, 2, 1], positions=rng.uniform(0, 2.6, (3, 3)), cell=np.eye(3) * 2.6, pbc=True)
    inp = _inputs(m, at, None, 3.0)
    ii, jj = inp["_idx_i"].numpy(), inp["_idx_j"].numpy()
    assert np.any(ii == jj)  # the case under test
    w, r = _sorted(walk_relevance(m, at))
    assert np.array_equal(w, enumerate_walks(len(at), ii, jj, 2))
    np.testing.assert_allclose(r, brute_force_relevance(m, at, w), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("arch", ["painn", "so3net"])
def test_sum_rules_and_conservation(arch):
    m = random_painn(F=8, L=2, seed=4, arch=arch)
    at = _frame(True, seed=5)
    for gamma, br in ((0.0, False), (0.1, True)):
        res = walk_relevance(m, at, gamma=gamma, bias_rule=br)
        # all walks together give the unmasked gradient x input
        assert abs(res["relevance"].sum() - res["sum_h0_grad"]) < 1e-10
        sums = nbody_sums(res["walks"], res["relevance"])
        assert abs(sum(s for s, _ in sums.values()) - res["relevance"].sum()) < 1e-10
        assert sum(c for _, c in sums.values()) == len(res["walks"])
    # gamma = 0 without the bias rule keeps the forward values: modified energy = model energy
    res0 = walk_relevance(m, at, gamma=0.0, bias_rule=False)
    assert abs(res0["E_modified"] - res0["E_model"]) < 1e-10


@pytest.mark.parametrize("arch", ["painn", "so3net"])
def test_invariance_rotation_translation_permutation(arch):
    m = random_painn(F=8, L=2, seed=6, arch=arch)
    at = _frame(False, seed=7)
    base = walk_relevance(m, at)
    w0, r0 = _sorted(base)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    at2 = at.copy()
    at2.positions = at.positions @ q.T + np.array([3.0, -1.0, 2.0])
    w1, r1 = _sorted(walk_relevance(m, at2))
    assert np.array_equal(w0, w1)
    # schnetpack builds SO3net's Clebsch-Gordan coefficients in complex64, so that model is
    # rotation-equivariant only to ~1e-7 relative; PaiNN is exact in float64.
    tol = 1e-10 if arch == "painn" else 1e-6 * np.abs(r0).max()
    np.testing.assert_allclose(r1, r0, rtol=0, atol=tol)
    perm = np.random.default_rng(2).permutation(len(at))
    at3 = at[perm]
    res3 = walk_relevance(m, at3)
    inv = np.argsort(perm)  # new index k holds old bead perm[k]
    mapped = perm[res3["walks"]]
    o = np.lexsort(mapped.T[::-1])
    assert np.array_equal(mapped[o], w0)
    np.testing.assert_allclose(res3["relevance"][o], r0, atol=1e-10)
    assert inv.shape == perm.shape


@pytest.mark.parametrize("arch", ["painn", "so3net"])
def test_periodic_translation_invariance(arch):
    m = random_painn(F=8, L=2, seed=8, arch=arch)
    at = _frame(True, seed=9)
    w0, r0 = _sorted(walk_relevance(m, at))
    at2 = at.copy()
    at2.positions = at.positions + np.array([2.2, 4.1, -3.3])
    at2.wrap()
    w1, r1 = _sorted(walk_relevance(m, at2))
    assert np.array_equal(w0, w1)
    np.testing.assert_allclose(r1, r0, atol=1e-10)


def test_precomputed_neighbors_and_bad_walk():
    m = random_painn(F=8, L=2, seed=10)
    at = _frame(True, seed=11)
    inp = _inputs(m, at, None, 3.0)
    nb = (inp["_idx_i"].numpy(), inp["_idx_j"].numpy(), inp["_offsets"].numpy())
    a, b = _sorted(walk_relevance(m, at)), _sorted(walk_relevance(m, at, neighbors=nb))
    np.testing.assert_allclose(a[1], b[1])
    far = [(i, j) for i in range(len(at)) for j in range(len(at)) if i != j and not np.any((nb[0] == i) & (nb[1] == j))]
    if far:
        i, j = far[0]
        with pytest.raises(ValueError, match="not neighbours"):
            walk_relevance(m, at, walks=np.array([[j, i, i]]))


def test_unsupported_rule_and_representation():
    m = random_painn(F=8, L=2)
    with pytest.raises(ValueError, match="not a supported LRP setting"):
        walk_relevance(m, _frame(True), gamma=0.1, bias_rule=False)
    from schnetpack.representation import SchNet

    from cgexplain.model.potential import build_model

    schnet = build_model({"n_atom_basis": 8, "n_interactions": 1, "cutoff": 3.0})
    schnet.representation = SchNet(8, 1, schnet.representation.radial_basis, schnet.representation.cutoff_fn)
    with pytest.raises(TypeError, match="unsupported representation SchNet"):
        walk_relevance(schnet, _frame(True))


def test_silu_rule_forward_and_gamma_zero_identity():
    torch.manual_seed(0)
    a = torch.randn(5, 4, dtype=torch.float64)
    W = torch.randn(3, 4, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    y = torch.nn.functional.silu(a @ W.T + b)
    np.testing.assert_allclose(silu_rule(a, W, b, 0.0, False).detach(), y, atol=1e-12)
    # bias rule with gamma: brute-force evaluation of the README formula for one output
    out = silu_rule(a, W, b, 0.1, True).detach()
    g = 0.1
    for s in range(5):
        for o in range(3):
            z = float(a[s] @ W[o] + b[o])
            yy = float(y[s, o])
            ap, am = a[s].clamp(min=0), a[s].clamp(max=0)
            wp, wm = W[o].clamp(min=0), W[o].clamp(max=0)
            if yy > 1e-6:
                x = float((W[o] + g * wp) @ ap + (W[o] + g * wm) @ am)
                bb = float(b[o] + g * max(float(b[o]), 0))
                n, d = x + bb, max(x, bb)
            elif yy < -1e-6:
                x = float((W[o] + g * wm) @ ap + (W[o] + g * wp) @ am)
                bb = float(b[o] + g * min(float(b[o]), 0))
                n, d = x + bb, min(x, bb)
            else:
                n, d = 0.0, 0.0
            ref = n * (yy / d) if d != 0 else 0.0
            assert abs(float(out[s, o]) - ref) < 1e-10, (s, o, z)


def test_nbody_helpers_bruteforce():
    walks = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [0, 1, 2], [2, 2, 0]])
    rel = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert body_order(walks).tolist() == [1, 2, 2, 3, 2]
    s = nbody_sums(walks, rel)
    assert s == {1: (1.0, 1), 2: (10.0, 3), 3: (4.0, 1)}
    pairs, pr, cnt = pair_relevance(walks, rel)
    assert pairs.tolist() == [[0, 1], [0, 2]] and pr.tolist() == [5.0, 5.0] and cnt.tolist() == [2, 1]
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [0.0, 2.0, 0]])
    d, r2 = two_body_points(walks, rel, pos)
    np.testing.assert_allclose(np.sort(d), [1.0, 1.0, 2.0], atol=1e-6)
    ang, r3 = three_body_points(walks, rel, pos, shell=2.1)
    # triangle 0-1-2: angle at 0 is 90°, at 1 is atan2(2,1), at 2 is atan2(1,2); legs 1-2 = sqrt5 > 2.1
    np.testing.assert_allclose(sorted(ang), [90.0], atol=1e-4)
    ang, r3 = three_body_points(walks, rel, pos, shell=2.5)
    np.testing.assert_allclose(sorted(ang), sorted([90.0, np.degrees(np.arctan2(2, 1)), np.degrees(np.arctan2(1, 2))]), atol=1e-3)
    assert r3.tolist() == [4.0, 4.0, 4.0]
