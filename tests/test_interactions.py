"""Ground-truth potentials (LJ, mW) against OpenMM, and the Harsanyi (Möbius) expansions:
deletion interactions and pure terms against enumeration of all subsets and against the
analytic potentials, for the potentials and for a network."""

import itertools

import numpy as np
import pytest
import torch

from cgexplain.lrp.interactions import SubsetEnergy, all_pure_terms, deletion_interactions, pairs_within, pure_terms, triplets_with_vertex
from cgexplain.reference.potentials import MW, LennardJones, openmm_system
from conftest import random_liquid, random_painn


def _liquid(n, box, min_dist, seed):
    """n beads in a cubic box with no pair closer than min_dist Å (random sequential addition)."""
    return random_liquid(n, box, min_dist, np.random.default_rng(seed))


def _openmm_energy_forces(pot, x, box, mass):
    import openmm as mm
    import openmm.unit as u

    sys_ = openmm_system(pot, len(x), np.eye(3) * box, mass)
    ctx = mm.Context(sys_, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(x * 0.1)
    st = ctx.getState(getEnergy=True, getForces=True)
    e = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole) / 4.184
    f = st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer) / 41.84
    return e, np.asarray(f)


@pytest.mark.parametrize("seed", [0, 1])
def test_lj_against_openmm(seed):
    pot = LennardJones()
    box = 22.0
    x = _liquid(60, box, 3.0, seed)
    e, f = _openmm_energy_forces(pot, x, box, 39.948)
    pairs, pe = pot.pair_energies(x, np.eye(3) * box)
    assert len(pairs) > 100 and np.any((pe != 0) & (pe > -pot.epsilon))  # pairs inside the switching range too
    assert pot.energy(x, np.eye(3) * box) == pytest.approx(e, rel=1e-6, abs=1e-6)
    assert pe.sum() == pytest.approx(e, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(pot.forces(x, np.eye(3) * box), f, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_mw_against_openmm(seed):
    pot = MW()
    box = 19.0
    x = _liquid(150, box, 2.3, seed)
    cell = np.eye(3) * box
    e, f = _openmm_energy_forces(pot, x, box, 18.015)
    tri, te = pot.triplet_energies(x, cell)
    pairs, pe = pot.pair_energies(x, cell)
    assert len(tri) > 50 and np.abs(te).max() > 0.1  # the three-body term is exercised
    assert pot.energy(x, cell) == pytest.approx(e, rel=1e-6)
    assert pe.sum() + te.sum() == pytest.approx(e, rel=1e-6)
    np.testing.assert_allclose(pot.forces(x, cell), f, rtol=1e-5, atol=1e-4)


def test_mw_known_values():
    """φ2 at fixed distances and φ3 of a right-angled triplet against the formula written out by
    hand; an angle of exactly θ0 carries no three-body energy."""
    pot = MW()
    r = torch.tensor([2.76, pot.cutoff, 5.0], dtype=torch.float64)
    sr = pot.sigma / 2.76
    hand = pot.A * pot.epsilon * (pot.B * sr**4 - 1) * np.exp(pot.sigma / (2.76 - pot.cutoff))
    np.testing.assert_allclose(pot.pair_energy(r).numpy(), [hand, 0.0, 0.0], rtol=1e-12, atol=1e-15)
    # an angle of exactly θ0 has no three-body energy; 90° has (cos 90° − cos θ0)² λ ε e^.. e^..
    th = np.radians(109.47)
    x = np.array([[0, 0, 0], [2.6, 0, 0], [2.6 * np.cos(th), 2.6 * np.sin(th), 0.0]])
    assert pot.energy(x) == pytest.approx(pot.pair_energies(x)[1].sum(), abs=1e-12)
    x[2] = [0, 2.6, 0]  # a right angle at bead 0, 45° at beads 1 and 2 (legs 2.6 and 2.6·√2 Å, both inside aσ)

    def g(r):
        return np.exp(pot.gamma * pot.sigma / (r - pot.cutoff))

    h = 2.6 * np.sqrt(2)
    three = pot.lam * pot.epsilon * ((0 - pot.cos0) ** 2 * g(2.6) ** 2 + 2 * (np.cos(np.pi / 4) - pot.cos0) ** 2 * g(2.6) * g(h))
    assert pot.triplet_energies(x)[1].sum() == pytest.approx(three, rel=1e-9)


def _small_frame(n=8, box=7.0, seed=0, min_dist=2.3):
    return _liquid(n, box, min_dist, seed), np.eye(3) * box


@pytest.mark.parametrize("pot", [LennardJones(sigma=2.0, epsilon=0.3, cutoff=4.0, switch=3.0), MW()])
def test_interactions_recover_the_analytic_potential(pot):
    """Exact recovery: I_ij = pair energy + Σ_k three-body energy of {i,j,k}, I_ijk = the triplet's
    three-body energy (0 for LJ); pure terms d(ij) = pair energy, d(ijk) = triplet energy; the
    same numbers from enumeration of all subsets."""
    x, cell = _small_frame(n=9, box=7.5, seed=3)
    E = pot.subset_energy(x, cell)
    n = len(x)
    pairs, pe = pot.pair_energies(x, cell)
    tri, te = pot.triplet_energies(x, cell)
    assert len(pairs) > 5
    tdict = {tuple(t): v for t, v in zip(tri.tolist(), te)}
    all_pairs = np.array(list(itertools.combinations(range(n), 2)))
    all_tri = np.array(list(itertools.combinations(range(n), 3)))
    pdict = {tuple(p): v for p, v in zip(pairs.tolist(), pe)}
    I2 = deletion_interactions(E, n, all_pairs)
    I3 = deletion_interactions(E, n, all_tri)
    exp3 = np.array([tdict.get(tuple(t), 0.0) for t in all_tri.tolist()])
    np.testing.assert_allclose(I3, exp3, atol=1e-10)
    exp2 = np.array(
        [pdict.get((i, j), 0.0) + sum(tdict.get(tuple(sorted((i, j, k))), 0.0) for k in range(n) if k not in (i, j)) for i, j in all_pairs.tolist()]
    )
    np.testing.assert_allclose(I2, exp2, atol=1e-10)
    np.testing.assert_allclose(pure_terms(E, n, all_pairs), [pdict.get(tuple(p), 0.0) for p in all_pairs.tolist()], atol=1e-10)
    np.testing.assert_allclose(pure_terms(E, n, all_tri), exp3, atol=1e-10)
    if isinstance(pot, MW):
        assert np.abs(exp3).max() > 1e-3  # the frame has three-body energy to recover


def test_expansions_of_a_network_against_enumeration():
    """For a PaiNN on 9 beads: I_S = Σ_{T ⊇ S} d(T) for pairs and triplets, Σ_S d(S) = E(X) − E(∅),
    and the batched SubsetEnergy equals one-subset-at-a-time evaluation."""
    m = random_painn(F=8, L=3, cutoff=3.0, seed=5)
    x, cell = _small_frame(n=9, box=6.0, seed=4, min_dist=1.2)
    types = np.array([1, 2] * 4 + [1])
    E = SubsetEnergy(m, x, types, cell, batch_size=7)
    n = len(x)
    d = all_pure_terms(E, n)
    full = E(np.ones((1, n), bool))[0]
    assert sum(d.values()) == pytest.approx(full, rel=1e-10)  # E(∅) = 0
    for S in [(0, 3), (2, 7), (1, 4, 8), (0, 5, 6)]:
        sup = sum(v for T, v in d.items() if set(S) <= T)
        assert deletion_interactions(E, n, [S])[0] == pytest.approx(sup, rel=1e-8, abs=1e-10)
        assert pure_terms(E, n, [S])[0] == pytest.approx(d[frozenset(S)], rel=1e-8, abs=1e-10)
    # a network on a connected frame has many-body terms: the expansion does not stop at pairs
    assert max(abs(v) for T, v in d.items() if len(T) == 3) > 1e-6
    # batching: the same energies one subset at a time
    rng = np.random.default_rng(0)
    keep = rng.random((10, n)) < 0.6
    fresh = SubsetEnergy(m, x, types, cell, batch_size=7)  # no memo shared with E
    one = np.array([fresh(k[None])[0] for k in keep])
    np.testing.assert_allclose(E(keep), one, rtol=1e-10, atol=1e-12)
    # the memo: a subset asked for again, in the same call or a later one, is not evaluated again
    before = fresh.n_evaluations
    again = fresh(np.concatenate([keep, keep[::-1]]))
    assert fresh.n_evaluations == before
    np.testing.assert_array_equal(again, np.concatenate([one, one[::-1]]))
    dup = SubsetEnergy(m, x, types, cell, batch_size=3)
    np.testing.assert_allclose(dup(np.concatenate([keep[:4], keep[:4]])), np.concatenate([one[:4], one[:4]]), rtol=1e-10, atol=1e-12)
    assert dup.n_evaluations == len({k.tobytes() for k in keep[:4]})


def test_subset_energy_matches_the_model_and_skips_priors():
    """SubsetEnergy of the whole frame equals the network energy that walk_relevance reports
    (E_model: the Atomwise head, no prior)."""
    from cgexplain.lrp import walk_relevance
    from cgexplain.mapping.maps import to_atoms

    m = random_painn(F=6, L=2, cutoff=3.0, seed=2)
    x, cell = _small_frame(n=10, box=6.0, seed=1, min_dist=1.2)
    types = np.ones(10, int)
    E = SubsetEnergy(m, x, types, cell)
    assert E(np.ones((1, 10), bool))[0] == pytest.approx(walk_relevance(m, to_atoms(x, types, cell))["E_model"], rel=1e-10)
    assert E(np.zeros((2, 10), bool)).tolist() == [0.0, 0.0]


def test_candidate_sets_and_errors():
    x, cell = _small_frame(n=10, box=7.0, seed=2)
    p = pairs_within(x, cell, 3.5)
    d = np.linalg.norm((x[p[:, 0]] - x[p[:, 1]]) - 7.0 * np.round((x[p[:, 0]] - x[p[:, 1]]) / 7.0), axis=1)
    assert len(p) and (d < 3.5).all() and (p[:, 0] < p[:, 1]).all()
    t = triplets_with_vertex(x, cell, 3.5)
    pset = {tuple(q) for q in p.tolist()}
    for a, b, c in t.tolist():  # some vertex has both legs inside the shell
        assert any({tuple(sorted((v, w))) for w in (a, b, c) if w != v} <= pset for v in (a, b, c))
    E = LennardJones().subset_energy(x, cell)
    with pytest.raises(ValueError, match="outside 0..9"):
        deletion_interactions(E, 10, [[0, 10]])
    with pytest.raises(ValueError, match="same bead twice"):
        deletion_interactions(E, 10, [[3, 3]])
    with pytest.raises(ValueError, match="too many"):
        all_pure_terms(E, 17)
