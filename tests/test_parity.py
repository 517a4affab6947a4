"""Parity with the publication's reference GNN-LRP (shared/parity/README.md)."""

from pathlib import Path

import numpy as np
import pytest

from cgexplain.lrp import walk_relevance
from cgexplain.lrp.nbody import body_order, nbody_sums
from cgexplain.lrp.parity import load_parity

DATA = Path(__file__).parent / "data" / "parity"
# figures of the reference implementation on this frame (parity README)
FAMILY = {
    "gamma=0.1,bias_rule=True": (-0.179196, [-0.57322, 0.41549, -0.02147]),
    "gamma=0.0,bias_rule=False": (-0.192698, [-0.62611, 0.45691, -0.02350]),
}
SUM_H0_GRAD = {"gamma=0.1,bias_rule=True": -18.870, "gamma=0.0,bias_rule=False": -19.051}


@pytest.fixture(scope="module")
def parity():
    return load_parity(DATA)


@pytest.mark.parametrize("key,gamma,bias_rule", [("gamma=0.1,bias_rule=True", 0.1, True), ("gamma=0.0,bias_rule=False", 0.0, False)])
def test_parity_with_reference(parity, key, gamma, bias_rule):
    model, atoms, nb, ref = parity
    res = walk_relevance(model, atoms, gamma=gamma, bias_rule=bias_rule, neighbors=nb)
    W, R = res["walks"], res["relevance"]
    assert len(W) == ref["n_walks"]
    assert len({tuple(w) for w in W.tolist()}) == len(W)
    counts = np.bincount(body_order(W), minlength=5)[1:]
    assert counts.tolist() == [ref["walk_counts_by_body_order"][str(k)] for k in (1, 2, 3, 4)]
    assert res["E_model"] == pytest.approx(ref["energy"], abs=1e-4)
    # the rule-modified forward: γ = 0 keeps the model's energy; γ = 0.1 gives the reference's -19.769
    assert res["E_modified"] == pytest.approx(-19.769 if gamma else ref["energy"], abs=1e-3)
    # every reference walk within 1e-5 + 1e-4 |R|
    index = {tuple(w): k for k, w in enumerate(W.tolist())}
    rw = ref["settings"][key]
    mine = np.array([R[index[tuple(w)]] for w in rw["walks"]])
    rr = np.array(rw["relevance"])
    np.testing.assert_array_less(np.abs(mine - rr), 1e-5 + 1e-4 * np.abs(rr))
    # the family (*, *, 0, 0) and its split by body order
    fam = (W[:, 2] == 0) & (W[:, 3] == 0)
    assert fam.sum() == 92
    total, by_order = FAMILY[key]
    assert R[fam].sum() == pytest.approx(total, abs=2e-6)
    sums = nbody_sums(W[fam], R[fam])
    np.testing.assert_allclose([sums[k][0] for k in (1, 2, 3)], by_order, atol=1e-5)
    assert sums[4] == (0.0, 0)
    # conservation figures as the reference reports them
    assert res["sum_h0_grad"] == pytest.approx(SUM_H0_GRAD[key], abs=1e-3)
    assert R.sum() == pytest.approx(res["sum_h0_grad"], rel=1e-5)


@pytest.fixture(scope="module")
def parity_painn():
    from cgexplain.lrp.parity import load_parity_painn

    return load_parity_painn(DATA)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("key,gamma,bias_rule", [("gamma=0.1,bias_rule=True", 0.1, True), ("gamma=0.0,bias_rule=False", 0.0, False)])
def test_painn_parity_with_reference(parity_painn, key, gamma, bias_rule, dtype):
    """The random-weight PaiNN fixture (shared/parity): every reference walk within
    1e-5 + 1e-4·|R| (float32) or 1e-8 relative (float64), the walk counts, the modified-pass
    energy and Σ h0·∂E/∂h0 of the reference."""
    import torch

    model, atoms, nb, ref = parity_painn
    model = model.to(getattr(torch, dtype))
    res = walk_relevance(model, atoms, gamma=gamma, bias_rule=bias_rule, neighbors=nb)
    W, R = res["walks"], res["relevance"]
    assert len(W) == ref["n_walks"] == 124351
    counts = np.bincount(body_order(W), minlength=5)[1:]
    assert counts.tolist() == [ref["walk_counts_by_body_order"][str(k)] for k in (1, 2, 3, 4)]
    rw = ref["settings"][key]
    index = {tuple(w): k for k, w in enumerate(W.tolist())}
    mine = np.array([R[index[tuple(w)]] for w in rw["walks"]])
    rr = np.array(rw["relevance"])
    assert np.abs(rr).max() > 1e-3  # the fixture's walks are not trivially zero
    if dtype == "float32":
        np.testing.assert_array_less(np.abs(mine - rr), 1e-5 + 1e-4 * np.abs(rr))
        rel = 1e-5
    else:
        np.testing.assert_allclose(mine, rr, rtol=1e-8, atol=1e-10)
        rel = 1e-9
    assert res["E_model"] == pytest.approx(ref["energy"], rel=rel)
    assert res["E_modified"] == pytest.approx(rw["E_modified"], rel=rel)
    assert res["sum_h0_grad"] == pytest.approx(rw["sum_h0_grad"], rel=rel)
    assert R.sum() == pytest.approx(rw["sum_h0_grad"], rel=10 * rel)
    # the pruned enumeration's 4-body total from the sum rule equals the enumerated one
    pr = walk_relevance(model, atoms, gamma=gamma, bias_rule=bias_rule, neighbors=nb, max_order=3)
    four = body_order(W) == 4
    assert pr["remainder"] == pytest.approx(R[four].sum(), rel=10 * rel, abs=1e-4 if dtype == "float32" else 1e-9)
