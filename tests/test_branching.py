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
    for k in set(bf) | set(got):  # every set either side gives relevance to
        if len(k) <= 3:
            assert got.get(k, 0.0) == pytest.approx(bf.get(k, 0.0), abs=1e-10), sorted(k)
    four = sum(v for k, v in bf.items() if len(k) == 4)
    assert sr["totals"].get(4, 0.0) == pytest.approx(four, abs=1e-10)
    assert sum(bf.values()) == pytest.approx(sr["conserved_autograd"], abs=1e-10)
    assert sr["conserved"] == pytest.approx(sr["conserved_autograd"], abs=1e-10)
    # E_b keeps the forward value of the publication's modified pass
    assert sr["E_modified"] == pytest.approx(walk_relevance(m, at, gamma=rule[0], bias_rule=rule[1])["E_modified"], abs=1e-10)


def _jacobian_brute_force(model, at, tree: bool):
    """Two layers: every term of the decomposition built from explicit per-bead Jacobians
    (autograd, one function per layer) and enumerated object by object. Level-1 objects (the
    explained part of q^1_j): ordinary steps Jo0[j,a]·h0_a, one-leg product steps and branch
    points at j. Top level: ordinary steps Jo1[i,j]·X, one-leg steps and branch points at i whose
    legs are the level-1 objects (``tree``) or the J_b walks Jb0[j,a]·h0_a (topmost branching)."""
    lrp = BranchingPaiNN(model, gamma=0.1, bias_rule=True)
    inp = _inputs(model, at, None, float(lrp.rep.cutoff))
    n, F = len(at), lrp.F
    geo = lrp.geometry(inp)
    h0 = lrp.embedding(inp[P.Z]).detach()
    zero = torch.zeros((n, 3, F), dtype=h0.dtype)

    def layer(t, q, mu, product):
        q_mid, mu_mid, A, B = lrp.factors_of_layer(t, q, mu, geo)
        q_out, mu_out, dqmu = lrp.mix_layer(t, q_mid, mu_mid, A, B, product)
        return q_out, A, B, dqmu, mu_out

    def jac(fn, x):  # fn: (n, F) -> (n, ...) ; returns J[i, ..., a, f]
        return torch.autograd.functional.jacobian(fn, x)

    q1, A0, B0, dqmu0, mu1 = (v.detach() for v in layer(0, h0, zero, "split"))
    Jo0 = jac(lambda h: layer(0, h, zero, "constant")[0], h0)  # (n, F, n, F)
    Jb0 = jac(lambda h: layer(0, h, zero, "split")[0], h0)
    DA0, DB0 = jac(lambda h: layer(0, h, zero, "split")[1], h0), jac(lambda h: layer(0, h, zero, "split")[2], h0)
    _, A1, B1, dqmu1, _ = (v.detach() for v in layer(1, q1, mu1, "split"))
    Jo1 = jac(lambda q: layer(1, q, mu1, "constant")[0], q1)
    DA1, DB1 = jac(lambda q: layer(1, q, mu1, "split")[1], q1), jac(lambda q: layer(1, q, mu1, "split")[2], q1)
    qL = layer(1, q1, mu1, "split")[0].detach().requires_grad_(True)
    (g,) = torch.autograd.grad(lrp.head(qL).sum(), qL)
    ii, jj = inp[P.idx_i].numpy(), inp[P.idx_j].numpy()
    nb = [sorted(set(jj[ii == a].tolist())) for a in range(n)]

    def lin(J, i, a, x):  # J[i, ..., a, :] @ x
        return torch.tensordot(J[i][..., a, :], x, dims=1)

    Ah0 = [sum(lin(DA0, j, a, h0[a]) for a in range(n)) for j in range(n)]
    Bh0 = [sum(lin(DB0, j, a, h0[a]) for a in range(n)) for j in range(n)]
    x1 = [sum(lin(Jb0, j, a, h0[a]) for a in range(n)) for j in range(n)]
    Ah1 = [sum(lin(DA1, i, j, x1[j]) for j in range(n)) for i in range(n)]
    Bh1 = [sum(lin(DB1, i, j, x1[j]) for j in range(n)) for i in range(n)]
    objs: list[list] = [[] for _ in range(n)]  # level 1: (beads, vector (F,)) per bead j
    for j in range(n):
        for a in [j, *nb[j]]:
            objs[j].append(({j, a}, lin(Jo0, j, a, h0[a])))
        for a in nb[j]:
            ca, cb = lin(DA0, j, a, h0[a]), lin(DB0, j, a, h0[a])
            objs[j].append(({j, a}, 0.5 * dqmu0[j] * (ca * (B0[j] - Bh0[j])).sum(0)))
            objs[j].append(({j, a}, 0.5 * dqmu0[j] * ((A0[j] - Ah0[j]) * cb).sum(0)))
            for b in nb[j]:
                objs[j].append(({j, a, b}, dqmu0[j] * (ca * lin(DB0, j, b, h0[b])).sum(0)))
        assert torch.allclose(sum(v for _, v in objs[j]), x1[j], atol=1e-10)  # the objects add up to the explained part
    legs = objs if tree else [[({j, a}, lin(Jb0, j, a, h0[a])) for a in [j, *nb[j]]] for j in range(n)]
    out: dict = defaultdict(float)
    for i in range(n):
        for j in [i, *nb[i]]:
            for beads, x in objs[j]:
                out[frozenset(beads | {i})] += float(g[i] @ lin(Jo1, i, j, x))
        for j in nb[i]:
            for beads, x in legs[j]:
                ca = lin(DA1, i, j, x)
                out[frozenset(beads | {i})] += float(0.5 * (g[i] * dqmu1[i] * (ca * (B1[i] - Bh1[i])).sum(0)).sum())
                out[frozenset(beads | {i})] += float(0.5 * (g[i] * dqmu1[i] * ((A1[i] - Ah1[i]) * lin(DB1, i, j, x)).sum(0)).sum())
                for k in nb[i]:
                    for beads2, x2 in legs[k]:
                        out[frozenset(beads | beads2 | {i})] += float((g[i] * dqmu1[i] * (ca * lin(DB1, i, k, x2)).sum(0)).sum())
    return out


@pytest.mark.parametrize("rule", ["branching", "branching-tree"])
def test_branching_and_trees_equal_a_jacobian_brute_force(rule):
    """Topmost branching and branching trees, two layers, on a 4-bead toy with one pair outside
    the cutoff: the per-set relevances equal an explicit enumeration over per-bead Jacobians."""
    m = random_painn(F=4, L=2, cutoff=3.0, seed=4)
    at = _frame(4, 4, spread=3.3)
    bf = _jacobian_brute_force(m, at, tree=rule == "branching-tree")
    sr = set_relevance(m, at, rule=rule)
    got = {frozenset([i]): v for i, v in enumerate(sr["singles"])}
    got.update({frozenset(k): v for k, v in _as_dict(sr["pairs"], sr["pair_relevance"]).items()})
    got.update({frozenset(k): v for k, v in _as_dict(sr["triplets"], sr["triplet_relevance"]).items()})
    assert any(len(k) == 3 and abs(v) > 1e-3 for k, v in bf.items())
    for k in set(bf) | set(got):
        if len(k) <= 3:
            assert got.get(k, 0.0) == pytest.approx(bf.get(k, 0.0), abs=1e-10), sorted(k)
    assert sum(bf.values()) == pytest.approx(sr["conserved_autograd"], abs=1e-10)
    assert sr["totals"][4] == pytest.approx(sum(v for k, v in bf.items() if len(k) >= 4), abs=1e-10)


def test_trees_differ_from_topmost_branching():
    """Three layers: the two branching rules conserve the same C_b and differ set by set (lower
    products branch only in trees)."""
    m = random_painn(F=6, L=3, cutoff=3.0, seed=6)
    at = _frame(7, 0, periodic=True)
    a, b = set_relevance(m, at, rule="branching"), set_relevance(m, at, rule="branching-tree")
    assert a["conserved"] == pytest.approx(b["conserved"], abs=1e-9)
    assert b["conserved"] == pytest.approx(b["conserved_autograd"], abs=1e-9)
    assert np.abs(a["triplet_relevance"] - b["triplet_relevance"]).max() > 1e-4


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
