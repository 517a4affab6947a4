"""The body-ordered MACE model and its exact many-body terms (cgexplain.model.mace,
cgexplain.lrp.bodyorder): sum rule, vanishing 4- and 5-body terms, agreement with brute-force
Möbius transforms and with deletion interactions, invariance, file round trip, and training."""

import itertools

import numpy as np
import pytest
import torch

from cgexplain.lrp.bodyorder import body_order_terms, cluster_energies, vertex_points
from cgexplain.lrp.interactions import SubsetEnergy, all_pure_terms, deletion_interactions, pure_terms
from cgexplain.model.mace import body_order, complete_hparams
from cgexplain.model.potential import batch_inputs, build_model, load_model, save_model
from conftest import random_liquid

HP = {"representation": "mace", "n_atom_basis": 8, "n_interactions": 1, "cutoff": 4.0, "n_rbf": 6, "lmax": 2, "correlation": 2}


def _frame(n, box, seed, min_dist=2.0):
    rng = np.random.default_rng(seed)
    x = random_liquid(n, box, min_dist, rng)
    return x, rng.integers(1, 3, n)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    x, types = _frame(10, 8.0, 99)
    hp = complete_hparams({**HP, **kw}, x[None], (np.eye(3) * 8.0)[None], np.array([1, 2] * 5))
    m = build_model(hp).double().eval()
    with torch.no_grad():  # weights far from their initial scale, so every term is sizeable
        for p in m.parameters():
            p.mul_(1.5)
    return m, hp


@pytest.mark.parametrize("periodic", [True, False])
def test_sum_rule_and_brute_force(periodic):
    """Σ d(i) + Σ d(ij) + Σ d(ijk) = E(X) − E(∅) to round-off; every term equals the brute-force
    Möbius transform over all 2^n subsets, and every term of 4 or more beads is zero."""
    m, _ = _model()
    x, types = _frame(10, 8.0, 1)
    cell = np.eye(3) * 8.0 if periodic else None
    t = body_order_terms(m, x, types, cell)
    E = float(m(batch_inputs(x[None], types, cell[None] if periodic else None, 4.0, dtype=torch.float64))["energy"].detach())
    assert t.energy == pytest.approx(E, rel=1e-12, abs=1e-10)
    assert abs(t.remainder) < 1e-10 * max(1.0, abs(E))
    assert len(t.triplets) > 5 and np.abs(t.triplet_terms).max() > 1e-4  # the 3-body terms are not trivially zero
    d = all_pure_terms(SubsetEnergy(m, x, types, cell), len(x))
    assert max(abs(v) for S, v in d.items() if len(S) >= 4) < 1e-10
    np.testing.assert_allclose(t.singles, [d[frozenset([i])] for i in range(len(x))], atol=1e-10)
    np.testing.assert_allclose(t.pair_terms, [d[frozenset(p)] for p in t.pairs.tolist()], atol=1e-10)
    np.testing.assert_allclose(t.triplet_terms, [d[frozenset(p)] for p in t.triplets.tolist()], atol=1e-10)
    # every non-zero pair and triplet term is listed
    listed = {frozenset(p) for p in t.pairs.tolist()} | {frozenset(p) for p in t.triplets.tolist()}
    assert max((abs(v) for S, v in d.items() if len(S) in (2, 3) and S not in listed), default=0.0) < 1e-10


def test_random_4_and_5_bead_terms_vanish_in_a_liquid():
    """On a 64-bead periodic frame, the pure terms of random connected 4- and 5-bead subsets are 0."""
    m, _ = _model(seed=3)
    x, types = _frame(64, 14.0, 2)
    E = SubsetEnergy(m, x, types, np.eye(3) * 14.0)
    rng = np.random.default_rng(0)
    d = np.linalg.norm((x[:, None] - x[None]) - 14.0 * np.round((x[:, None] - x[None]) / 14.0), axis=-1)
    for k in (4, 5):
        sets = []
        while len(sets) < 6:  # connected within the cutoff, so the test could fail
            c = [int(rng.integers(64))]
            while len(c) < k:
                nb = [j for j in np.flatnonzero(d[c[-1]] < 4.0) if j not in c]
                if not nb:
                    break
                c.append(int(rng.choice(nb)))
            if len(c) == k:
                sets.append(c)
        assert np.abs(pure_terms(E, 64, np.array(sets))).max() < 1e-10
    assert np.abs(pure_terms(E, 64, np.array(sets)[:, :3])).max() > 1e-6  # their 3-bead subsets are not


def test_terms_equal_deletion_interactions():
    """For a body-order-3 model the in-context deletion interactions of
    cgexplain.lrp.interactions are I_ijk = d(ijk) and I_ij = d(ij) + Σ_k d(ijk)."""
    m, _ = _model(seed=1)
    x, types = _frame(24, 10.0, 4)
    cell = np.eye(3) * 10.0
    t = body_order_terms(m, x, types, cell)
    E = SubsetEnergy(m, x, types, cell)
    rows = np.random.default_rng(0).choice(len(t.triplets), 15, replace=False)
    np.testing.assert_allclose(deletion_interactions(E, len(x), t.triplets[rows]), t.triplet_terms[rows], atol=1e-9)
    prs = t.pairs[:12]
    want = t.pair_terms[:12].copy()
    for m_, (a, b) in enumerate(prs.tolist()):
        want[m_] += sum(v for tri, v in zip(t.triplets.tolist(), t.triplet_terms) if a in tri and b in tri)
    np.testing.assert_allclose(deletion_interactions(E, len(x), prs), want, atol=1e-9)


def test_invariance():
    """Rotating and translating a non-periodic frame leaves every term unchanged."""
    m, _ = _model(seed=2)
    x, types = _frame(12, 8.0, 5)
    t0 = body_order_terms(m, x, types)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    t1 = body_order_terms(m, x @ q.T + np.array([3.0, -7.0, 11.0]), types)
    np.testing.assert_array_equal(t0.triplets, t1.triplets)
    np.testing.assert_allclose(t1.pair_terms, t0.pair_terms, atol=1e-10)
    np.testing.assert_allclose(t1.triplet_terms, t0.triplet_terms, atol=1e-10)


def test_deeper_model_is_not_closed():
    """Two layers (a non-linear last readout in mace-torch): body order unbounded, and the cluster
    terms leave a remainder; one layer of correlation ν is (1 + ν)-body."""
    m, hp = _model(seed=4, n_interactions=2)
    assert body_order(hp["n_interactions"], hp["correlation"]) is None
    assert body_order(1, 2) == 3 and body_order(1, 3) == 4
    x, types = _frame(10, 8.0, 6)
    t = body_order_terms(m, x, types, np.eye(3) * 8.0)
    assert abs(t.remainder) > 1e-6


def test_cluster_energies_checks_input():
    m, _ = _model()
    x, types = _frame(5, 8.0, 7)
    with pytest.raises(ValueError, match="outside"):
        cluster_energies(m, x, types, None, np.array([[0, 7]]))
    with pytest.raises(ValueError, match="twice"):
        cluster_energies(m, x, types, None, np.array([[1, 1]]))


def test_vertex_points_match_angles():
    """A right-angled triplet gives its 90° vertex (legs inside the shell) and no other."""
    x = np.array([[0.0, 0, 0], [3.0, 0, 0], [0, 3.0, 0]])
    th, v = vertex_points(x, None, np.array([[0, 1, 2]]), np.array([0.5]), shell=3.5)
    np.testing.assert_allclose(th, [90.0])
    np.testing.assert_allclose(v, [0.5])


def test_save_load_round_trip(tmp_path):
    """state_dict + JSON, loaded with weights_only: the same energies and forces."""
    m, hp = _model(seed=5)
    save_model(m.float(), hp, tmp_path / "model")
    m2, meta = load_model(tmp_path / "model")
    assert meta["hparams"]["representation"] == "mace" and meta["hparams"]["n_types"] == 3
    x, types = _frame(10, 8.0, 8)
    inp = lambda: batch_inputs(x[None], types, (np.eye(3) * 8.0)[None], 4.0, dtype=torch.float32)  # noqa: E731
    a, b = m.float()(inp()), m2(inp())
    torch.testing.assert_close(a["energy"], b["energy"])
    torch.testing.assert_close(a["forces"], b["forces"])


def test_unknown_bead_type_is_refused():
    m, _ = _model()
    x, _ = _frame(4, 8.0, 9)
    with pytest.raises(ValueError, match="bead types must lie in 0..2"):
        m(batch_inputs(x[None], np.array([1, 2, 5, 1]), None, 4.0, dtype=torch.float64))


def test_forces_are_minus_gradient():
    """The schnetpack Forces module on the MACE energy: F = −∂E/∂R by finite differences."""
    m, _ = _model(seed=6)
    x, types = _frame(8, 8.0, 10)
    f = m(batch_inputs(x[None], types, None, 4.0, dtype=torch.float64))["forces"].detach().numpy()
    h = 1e-5
    for a, c in itertools.product(range(2), range(3)):
        xp, xm = x.copy(), x.copy()
        xp[a, c] += h
        xm[a, c] -= h
        ep = float(m(batch_inputs(xp[None], types, None, 4.0, dtype=torch.float64))["energy"])
        em = float(m(batch_inputs(xm[None], types, None, 4.0, dtype=torch.float64))["energy"])
        assert f[a, c] == pytest.approx(-(ep - em) / (2 * h), abs=1e-6)


def test_residue_maps_budget():
    """The residue maps of a chain hold the whole energy: Σ_{i<j} pair map + Σ triplet projection +
    Σ 1-body = mean E(X) over the frames, and the pair map is symmetric."""
    from cgexplain.lrp.bodyorder import residue_maps

    m, _ = _model(seed=7)
    rng = np.random.default_rng(3)
    steps = rng.normal(size=(2, 12, 3))
    chain = np.cumsum(3.0 * steps / np.linalg.norm(steps, axis=-1, keepdims=True), axis=1)  # 3 Å bonds
    types = np.array([1, 2] * 6)
    r = residue_maps(m, chain, types, k_top=3)
    pm = r["pair_map"]
    np.testing.assert_allclose(pm, pm.T)
    E = [body_order_terms(m, c, types).energy for c in chain]
    total = np.triu(pm, 1).sum() + r["triplet_projection"].sum() + r["body_sum_mean"][1]
    assert total == pytest.approx(np.mean(E), abs=1e-9)
    np.testing.assert_allclose(r["conservation"][:, 0], r["conservation"][:, 1], atol=1e-9)
    assert r["top_stabilising"].shape == (3, 3) and r["top_stabilising_relevance"][0] <= r["top_destabilising_relevance"][0]
