"""cgexplain.model.kernels: the fast PaiNN interaction computes exactly schnetpack's function."""

import copy

import numpy as np
import pytest
import torch
from schnetpack.representation.painn import PaiNNInteraction

from cgexplain.model.kernels import FastPaiNNInteraction, accelerate, is_accelerated
from cgexplain.model.potential import batch_inputs, build_model
from conftest import random_painn


def _pair(F=8, L=3, cutoff=3.0, seed=0):
    """(fast, stock): the same weights, fast kernels and schnetpack's own modules."""
    fast = random_painn(F=F, L=L, cutoff=cutoff, seed=seed)
    stock = copy.deepcopy(fast)
    for m in stock.modules():
        if type(m) is FastPaiNNInteraction:
            m.__class__ = PaiNNInteraction
    assert is_accelerated(fast) and not is_accelerated(stock)
    return fast, stock


def _frames(seed=1):
    """Two periodic frames of 14 beads in different cells (one triclinic), types 1..3 (a batch)."""
    rng = np.random.default_rng(seed)
    xs = np.stack([rng.uniform(0, 5.0, (14, 3)), rng.uniform(0, 6.0, (14, 3))])
    ts = rng.integers(1, 4, 14)
    cells = np.stack([np.eye(3) * 5.0, np.array([[6.0, 0, 0], [1.0, 6.0, 0], [0.5, -0.7, 6.0]])])
    return xs, ts, cells


def test_build_model_is_fast_by_default_and_keeps_state_dict_keys():
    hp = {"n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0}
    fast, stock = build_model(hp), build_model(hp, fast=False)
    assert sum(isinstance(m, FastPaiNNInteraction) for m in fast.modules()) == 2
    assert not any(isinstance(m, FastPaiNNInteraction) for m in stock.modules())
    assert list(fast.state_dict()) == list(stock.state_dict())
    stock.load_state_dict(fast.state_dict())  # the files are interchangeable


def test_energies_and_forces_equal_schnetpack():
    fast, stock = _pair()
    xs, ts, cells = _frames()
    inp = batch_inputs(xs, ts, cells, 3.0, dtype=torch.float64)
    a = fast({k: v.clone() for k, v in inp.items()})
    b = stock({k: v.clone() for k, v in inp.items()})
    assert a["energy"].shape == (2,)
    np.testing.assert_allclose(a["energy"].detach(), b["energy"].detach(), rtol=1e-12, atol=1e-12)
    fa, fb = a["forces"].detach().numpy(), b["forces"].detach().numpy()
    assert np.abs(fb).max() > 1e-2  # a non-trivial model
    np.testing.assert_allclose(fa, fb, rtol=0, atol=1e-12 * np.abs(fb).max())


def test_training_gradients_equal_schnetpack():
    """Force matching differentiates the forces again (second order): the weight gradients agree."""
    fast, stock = _pair(seed=2)
    xs, ts, cells = _frames(seed=3)
    inp = batch_inputs(xs, ts, cells, 3.0, dtype=torch.float64)
    target = torch.from_numpy(np.random.default_rng(4).normal(size=(28, 3)))
    grads = []
    for m in (fast, stock):
        m.train()
        m.zero_grad()
        out = m({k: v.clone() for k, v in inp.items()})
        ((out["forces"] - target) ** 2).mean().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for n in grads[0]:
        np.testing.assert_allclose(grads[0][n], grads[1][n], rtol=1e-9, atol=1e-12, err_msg=n)


def test_without_autograd_the_zero_first_layer_shortcut_is_exact():
    """Under no_grad the first layer skips the mu_j term (mu == 0); later layers must not."""
    fast, stock = _pair(seed=5)
    xs, ts, cells = _frames(seed=6)
    inp = batch_inputs(xs, ts, cells, 3.0, dtype=torch.float64)
    with torch.no_grad():
        qa = fast.representation(fast.input_modules[0]({k: v.clone() for k, v in inp.items()}))
        qb = stock.representation(stock.input_modules[0]({k: v.clone() for k, v in inp.items()}))
    for key in ("scalar_representation", "vector_representation"):
        assert qb[key].abs().max() > 1e-3
        np.testing.assert_allclose(qa[key], qb[key], rtol=0, atol=1e-12 * float(qb[key].abs().max()))


def test_accelerate_leaves_so3net_alone():
    m = random_painn(F=4, L=1, arch="so3net", lmax=1)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    accelerate(m)
    assert not is_accelerated(m)
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize("angle", [0.7])
def test_fast_forces_rotate_with_the_frame(angle):
    """Equivariance holds for the fast kernels on an open (non-periodic) cluster."""
    fast, _ = _pair(seed=7)
    x = np.random.default_rng(8).uniform(0, 4.0, (9, 3))
    t = [1, 2, 3, 1, 2, 3, 1, 2, 3]
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    a = fast(batch_inputs(x, t, None, 3.0, dtype=torch.float64))
    b = fast(batch_inputs(x @ rot.T, t, None, 3.0, dtype=torch.float64))
    np.testing.assert_allclose(float(a["energy"].sum().detach()), float(b["energy"].sum().detach()), rtol=1e-12)
    np.testing.assert_allclose(a["forces"].detach().numpy() @ rot.T, b["forces"].detach().numpy(), atol=1e-11)
