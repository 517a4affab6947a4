"""Relevance per bead set (cgexplain.lrp.branching): the publication's rules against the walk
engine, and branching walks against a brute force that builds every walk and branching walk by
masks and autograd on the modified pass."""

from collections import defaultdict

import numpy as np
import pytest
import schnetpack.properties as P
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

from cgexplain.lrp import walk_relevance
from cgexplain.lrp.branching import BranchingPaiNN, connected_triplets, set_relevance
from cgexplain.lrp.engine import _inputs, enumerate_walks
from cgexplain.lrp.nbody import nbody_sums, pair_relevance, triplet_relevance
from conftest import random_painn


def _frame(n, seed, periodic=False, spread=3.5):
    rng = np.random.default_rng(seed)
    types = rng.integers(1, 3, n)
    if periodic:
        return Atoms(numbers=types, positions=rng.uniform(0, 5.0, (n, 3)), cell=np.eye(3) * 5.5, pbc=True)
    return Atoms(numbers=types, positions=rng.uniform(0, spread, (n, 3)))


def _as_dict(keys, values):
    return {tuple(k): float(v) for k, v in zip(np.asarray(keys).tolist(), values)}


@pytest.mark.parametrize("L", [2, 3])
@pytest.mark.parametrize("rule", [(0.1, True), (0.0, False)])
@pytest.mark.parametrize("periodic", [True, False])
def test_publication_sets_equal_grouped_walks(L, rule, periodic):
    """rule="publication": the Möbius sums of the restricted passes equal the engine's walks
    grouped by their distinct beads, set by set, and the totals per body order."""
    m = random_painn(F=8, L=L, cutoff=3.0, seed=1)
    at = _frame(7, 0 if periodic else 3, periodic)
    res = walk_relevance(m, at, gamma=rule[0], bias_rule=rule[1])
    sr = set_relevance(m, at, rule="publication", gamma=rule[0], bias_rule=rule[1])
    lp, lr, _ = pair_relevance(res["walks"], res["relevance"])
    lt, ltr = triplet_relevance(res["walks"], res["relevance"])
    d2, d3 = _as_dict(sr["pairs"], sr["pair_relevance"]), _as_dict(sr["triplets"], sr["triplet_relevance"])
    assert len(lt) > 10 and np.abs(ltr).max() > 1e-3
    for k, v in zip(lp.tolist(), lr):
        assert d2.get(tuple(k), 0.0) == pytest.approx(v, abs=1e-11)
    for k, v in zip(lt.tolist(), ltr):
        assert d3.get(tuple(k), 0.0) == pytest.approx(v, abs=1e-11)
    sums = nbody_sums(res["walks"], res["relevance"])
    for k in range(1, L + 2):
        assert sr["totals"].get(k, 0.0) == pytest.approx(sums.get(k, (0.0, 0))[0], abs=1e-10)
    assert sr["conserved"] == pytest.approx(res["sum_h0_grad"], abs=1e-10)
    assert sr["conserved_autograd"] == pytest.approx(res["sum_h0_grad"], abs=1e-10)


def _brute_force_sets(model, at, gamma, bias_rule):
    """Relevance per distinct-bead set by building every term of the branching decomposition
    (cgexplain.lrp.branching's docstring) one at a time: ordinary walks by masks on the pass
    whose products are constant; each top chain's covector by autograd from a leaf at its layer;
    each sub-walk's contribution to the vector factors A, B by a full Jacobian under masks of the
    split pass; the unexplained parts Ã, B̃ from the unmasked Jacobian."""
    lrp = BranchingPaiNN(model, gamma=gamma, bias_rule=bias_rule)
    inp = _inputs(model, at, None, float(lrp.rep.cutoff))
    n, L, F = len(at), lrp.L, lrp.F
    geo = lrp.geometry(inp)
    ii, jj = inp[P.idx_i].numpy(), inp[P.idx_j].numpy()
    nbrs = [sorted(set(jj[ii == a].tolist())) for a in range(n)]  # senders of bead a
    out: dict = defaultdict(float)

    def onehot(b):
        return torch.zeros(n, dtype=torch.float64).index_fill_(0, torch.tensor([int(b)]), 1.0)

    # (a) ordinary walks: products constant
    for w in enumerate_walks(n, ii, jj, L):
        E, h0 = lrp.forward_modified(inp, "constant", masks=[onehot(b) for b in w])
        (g,) = torch.autograd.grad(E, h0)
        out[frozenset(w.tolist())] += float((h0[w[0]] * g[w[0]]).sum().detach())
    # values at every boundary
    h0 = lrp.embedding(inp[P.Z]).detach()
    qs, mus = [h0], [torch.zeros((n, 3, F), dtype=h0.dtype)]
    with torch.no_grad():
        for t in range(L):
            q, mu = lrp.layers(qs[-1], mus[-1], geo, t, t + 1, "split")
            qs.append(q), mus.append(mu)
    for t in range(1, L + 1):  # branch in 1-based layer t (its mixing makes q^t)
        # top chains (beads at boundaries t..L), covector on q^t at their first bead
        tops = [w for w in enumerate_walks(n, ii, jj, L - t)] if L > t else [np.array([a]) for a in range(n)]
        V = {}
        for tau in tops:
            leaf = qs[t].clone().requires_grad_(True)
            masks = [None] * t + [onehot(b) for b in tau]
            q = lrp.boundary(leaf, masks, t)
            q, _ = lrp.layers(q, mus[t], geo, t, L, "constant", masks)
            (g,) = torch.autograd.grad(lrp.head(q).sum(), leaf)
            V[tuple(tau.tolist())] = g[tau[0]].detach()

        def factors(h, masks, t=t):
            q = lrp.boundary(h, masks, 0)
            q, mu = lrp.layers(q, torch.zeros((n, 3, F), dtype=h.dtype), geo, 0, t - 1, "split", masks)
            _, _, A, B = lrp.factors_of_layer(t - 1, q, mu, geo)
            q_mid, mu_mid, A0, B0 = lrp.factors_of_layer(t - 1, qs[t - 1], mus[t - 1], geo)
            _, _, dqmu = lrp.mix_layer(t - 1, q_mid.detach(), mu_mid.detach(), A0.detach(), B0.detach(), "split")
            return A, B, dqmu

        def contribution(a, masks, start, factors=factors):
            """Σ_{a0} ∂(A_a, B_a)/∂h0[a0] · h0[a0] over a0 in ``start`` under ``masks``: ((3, F), (3, F))."""
            h = h0.clone().requires_grad_(True)
            A, B, _ = factors(h, masks)
            res = []
            for X in (A[a], B[a]):
                c = torch.zeros(3, F, dtype=torch.float64)
                for x in range(3):
                    for f in range(F):
                        (gr,) = torch.autograd.grad(X[x, f], h, retain_graph=True, allow_unused=True)
                        if gr is not None:
                            c[x, f] = (gr[start] * h0[start]).sum()
                res.append(c)
            return res

        A, B, dqmu = factors(h0, None)
        for a in range(n):
            Ahat, Bhat = contribution(a, None, list(range(n)))
            At, Bt = A[a].detach() - Ahat, B[a].detach() - Bhat
            subs = [w for w in enumerate_walks(n, ii, jj, t - 1) if w[-1] in nbrs[a]]
            cw = {}
            for w in subs:
                masks = [onehot(b) for b in w] + [None] * (L + 1 - t)
                cw[tuple(w.tolist())] = contribution(a, masks, [int(w[0])])
            for tau, v in V.items():
                if tau[0] != a:
                    continue
                vd = v * dqmu[a]
                for w, (ca, cb) in cw.items():
                    out[frozenset(tau + w)] += float(0.5 * (vd * (ca * Bt).sum(0)).sum())
                    out[frozenset(tau + w)] += float(0.5 * (vd * (At * cb).sum(0)).sum())
                    for w2, (_, cb2) in cw.items():
                        out[frozenset(tau + w + w2)] += float((vd * (ca * cb2).sum(0)).sum())
    return out


@pytest.mark.parametrize("rule", [(0.1, True), (0.0, False)])
@pytest.mark.parametrize("n, seed, spread", [(3, 11, 2.2), (4, 4, 3.3)])
def test_branching_equals_brute_force(rule, n, seed, spread):
    """On 3- and 4-bead toys (two layers), every bead set's relevance from the restricted passes
    equals the brute-force sum over its walks and branching walks, and both sum to Σ h0·∂E_b/∂h0
    of the modified pass."""
    m = random_painn(F=4, L=2, cutoff=3.0, seed=seed)
    at = _frame(n, seed, spread=spread)
    bf = _brute_force_sets(m, at, *rule)
    sr = set_relevance(m, at, rule="branching", gamma=rule[0], bias_rule=rule[1])
    got = {frozenset([i]): v for i, v in enumerate(sr["singles"])}
    got.update({frozenset(k): v for k, v in _as_dict(sr["pairs"], sr["pair_relevance"]).items()})
    got.update({frozenset(k): v for k, v in _as_dict(sr["triplets"], sr["triplet_relevance"]).items()})
    assert any(len(k) == 3 and abs(v) > 1e-3 for k, v in bf.items())  # the 3-body branching terms are there
    for k, v in bf.items():
        if len(k) <= 3:
            assert got.get(k, 0.0) == pytest.approx(v, abs=1e-10), sorted(k)
    four = sum(v for k, v in bf.items() if len(k) == 4)
    assert sr["totals"].get(4, 0.0) == pytest.approx(four, abs=1e-10)
    assert sum(bf.values()) == pytest.approx(sr["conserved_autograd"], abs=1e-10)
    assert sr["conserved"] == pytest.approx(sr["conserved_autograd"], abs=1e-10)


def test_branching_moves_the_product_into_triplets():
    """The branching rule gives the vector products' relevance to bead triplets: on a frame whose
    product terms are switched off (vector channel mixes zero) both rules agree set by set; with
    them on, the 3-body sets differ."""
    m = random_painn(F=6, L=2, cutoff=3.0, seed=2)
    at = _frame(6, 2, periodic=True)
    on = [set_relevance(m, at, rule=r) for r in ("publication", "branching")]
    assert np.abs(on[0]["triplet_relevance"] - on[1]["triplet_relevance"]).max() > 1e-3
    with torch.no_grad():
        for mix in m.representation.mixing:
            mix.mu_channel_mix.weight.zero_()
    off = [set_relevance(m, at, rule=r) for r in ("publication", "branching")]
    np.testing.assert_allclose(off[0]["triplet_relevance"], off[1]["triplet_relevance"], atol=1e-12)
    np.testing.assert_allclose(off[0]["pair_relevance"], off[1]["pair_relevance"], atol=1e-12)
    np.testing.assert_allclose(off[0]["singles"], off[1]["singles"], atol=1e-12)


def test_set_relevance_invariance():
    """Rotating and translating the frame and permuting the beads leave every set's relevance
    unchanged (relabelled)."""
    m = random_painn(F=6, L=2, cutoff=3.0, seed=3)
    at = _frame(6, 4, spread=3.0)
    ref = set_relevance(m, at)
    perm = np.random.default_rng(0).permutation(len(at))
    inv = np.argsort(perm)
    x = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).apply(at.positions) + 1.7
    moved = Atoms(numbers=at.numbers[perm], positions=x[perm])
    res = set_relevance(m, moved)
    np.testing.assert_allclose(res["singles"][inv], ref["singles"], atol=1e-10)
    d_ref = _as_dict(ref["triplets"], ref["triplet_relevance"])
    d_new = {tuple(sorted(perm[list(k)].tolist())): v for k, v in _as_dict(res["triplets"], res["triplet_relevance"]).items()}
    assert d_ref.keys() == d_new.keys()
    for k, v in d_ref.items():
        assert d_new[k] == pytest.approx(v, abs=1e-10)


def test_connected_triplets_and_errors():
    pairs = np.array([[0, 1], [1, 2], [3, 4]])
    np.testing.assert_array_equal(connected_triplets(pairs, 5), [[0, 1, 2]])
    m = random_painn(F=4, L=2, cutoff=3.0, seed=0, arch="so3net")
    with pytest.raises(TypeError, match="PaiNN only"):
        set_relevance(m, _frame(3, 0))
    with pytest.raises(ValueError, match="rule must be one of"):
        set_relevance(random_painn(F=4, L=2), _frame(3, 0), rule="bilrp")


def test_explain_stage_with_the_branching_rule(tmp_path):
    """lrp.rule: branching in the explain stage: the body-order sums are the per-set totals and sum
    to the conserved quantity; frames written under the other rule are recomputed, not reused; a
    normalisation that needs every walk's |R| is refused."""
    from cgexplain.lrp.settings import LrpSection
    from cgexplain.lrp.statistics import explain_frames

    m = random_painn(F=6, L=2, cutoff=3.0, seed=5)
    rng = np.random.default_rng(0)
    n = 8
    P = rng.uniform(0, 5.0, (2, n, 3))
    C = np.repeat(np.eye(3)[None] * 5.0, 2, 0)
    T = rng.integers(1, 3, n)
    lc = {"r_edges": [0.5, 3.0, 10], "rule": "publication"}
    pub = explain_frames(m, P, C, T, tmp_path, lc, shell=2.5, progress=False)
    br = explain_frames(m, P, C, T, tmp_path, {**lc, "rule": "branching"}, shell=2.5, progress=False)
    assert pub["rule"] == "publication" and br["rule"] == "branching"
    with np.load(tmp_path / "frame_0000.npz") as z:
        assert str(z["rule"]) == "branching"
        body, cons = z["body_sum"], z["conservation"]
    ref = set_relevance(m, Atoms(numbers=T, positions=P[0], cell=C[0], pbc=True), rule="branching")
    # branching walks reach more than L + 1 beads: 4 is every set of 4 or more, also for L = 2
    np.testing.assert_allclose(body, [ref["totals"][k] for k in (1, 2, 3, 4)], atol=1e-8)
    assert body.sum() == pytest.approx(cons[1], abs=1e-8)
    assert br["relevance_by_body_order_kcal_mol_mean"] != pub["relevance_by_body_order_kcal_mol_mean"]
    with pytest.raises(ValueError, match="branching rule gives relevance per bead set"):
        LrpSection(rule="branching", normalise="mean_abs")
