"""Diagnostics: the net force/torque floor, the stiffest prior frequency and the time-step check,
and the prior's own force error (cgexplain.diagnostics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cgexplain.diagnostics import (
    OMEGA_DT_BOUND,
    baoab_kinetic_temperature_bias,
    check_timestep,
    net_force_torque_floor,
    prior_force_error,
    stiffest_prior_frequency,
)
from cgexplain.units import KCAL_IN_AMU_A2_PS2


def _rigid_basis(x: np.ndarray) -> np.ndarray:
    """(3n, 6) design matrix of the rigid patterns of one frame x (n, 3): translations and ω × (x - c)."""
    d = x - x.mean(0)
    cols = []
    for a in range(3):
        e = np.zeros(3)
        e[a] = 1.0
        cols.append(np.tile(e, (len(x), 1)).ravel())
    for a in range(3):
        e = np.zeros(3)
        e[a] = 1.0
        cols.append(np.cross(e, d).ravel())
    return np.stack(cols, 1)


def _random_frames(nf=4, n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 3.0, (nf, n, 3)), rng.normal(0, 5.0, (nf, n, 3))


def _pair_forces(x: np.ndarray) -> np.ndarray:
    """Forces of a pairwise central potential (Morse-like), one frame x (n, 3) Å -> (n, 3)."""
    d = x[:, None, :] - x[None, :, :]  # r_i - r_j
    r = np.linalg.norm(d, axis=-1) + np.eye(len(x))
    mag = -2.0 * (np.exp(-(r - 3.0)) - np.exp(-2 * (r - 3.0)))  # -dU/dr of a Morse pair
    np.fill_diagonal(mag, 0.0)
    return ((mag / r)[..., None] * d).sum(1)


def test_floor_recovers_a_known_net_force_and_torque():
    """Zero-net forces plus a known rigid pattern t + ω × (R - c): the floor is exactly that pattern."""
    x, g = _random_frames(nf=5, n=9, seed=1)
    rng = np.random.default_rng(2)
    f = np.empty_like(g)
    want_frame, want_net, want_tau = [], [], []
    for k in range(len(x)):
        A = _rigid_basis(x[k])
        coef, *_ = np.linalg.lstsq(A, g[k].ravel(), rcond=None)
        g0 = g[k].ravel() - A @ coef  # "conservative-looking": zero net force and torque
        t, w = rng.normal(0, 2.0, 3), rng.normal(0, 0.3, 3)
        d = x[k] - x[k].mean(0)
        rigid = t + np.cross(w, d)
        f[k] = g0.reshape(-1, 3) + rigid
        want_frame.append(np.sqrt((rigid**2).sum() / rigid.size))
        want_net.append(len(d) * t)
        inertia = (d * d).sum() * np.eye(3) - d.T @ d
        want_tau.append(inertia @ w)
    r = net_force_torque_floor(x, f)
    np.testing.assert_allclose(r["per_frame"]["floor_rmse"], want_frame, rtol=1e-10)
    np.testing.assert_allclose(r["per_frame"]["net_force"], want_net, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(r["per_frame"]["net_torque"], want_tau, rtol=1e-10, atol=1e-10)
    assert r["floor_rmse"] == pytest.approx(np.sqrt(np.mean(np.square(want_frame))), rel=1e-12)
    assert r["floor_rmse"] ** 2 == pytest.approx(r["floor_rmse_net_force"] ** 2 + r["floor_rmse_net_torque"] ** 2, rel=1e-12)
    assert r["net_force_mean"] == pytest.approx(np.linalg.norm(want_net, axis=1).mean())
    # masses move only the point of the reported torque (about the centre of mass), not the floor
    m = rng.uniform(1, 20, 9)
    rm = net_force_torque_floor(x, f, masses=m)
    assert rm["floor_rmse"] == pytest.approx(r["floor_rmse"], rel=1e-12)
    com = np.einsum("n,fni->fi", m / m.sum(), x)
    np.testing.assert_allclose(rm["per_frame"]["net_torque"], np.cross(x - com[:, None], f).sum(1), atol=1e-9)


def test_floor_is_zero_for_pair_forces_and_matches_lstsq():
    x, g = _random_frames(nf=3, n=12, seed=3)
    f = np.stack([_pair_forces(xi) for xi in x])
    r = net_force_torque_floor(x, f)
    assert r["floor_rmse"] < 1e-10 * r["zero_model_rmse"] and r["zero_model_rmse"] > 0.1
    assert r["net_force_mean"] < 1e-10 and r["net_torque_mean"] < 1e-9
    # random forces: the closed form equals the least-squares projection onto the 6 patterns
    r = net_force_torque_floor(x, g)
    for k in range(len(x)):
        A = _rigid_basis(x[k])
        coef, *_ = np.linalg.lstsq(A, g[k].ravel(), rcond=None)
        assert r["per_frame"]["floor_rmse"][k] == pytest.approx(np.sqrt(np.mean((A @ coef) ** 2)), rel=1e-10)


def test_floor_invariant_under_rotation_translation_and_bounded_by_zero_model():
    from scipy.spatial.transform import Rotation

    x, f = _random_frames(nf=4, n=6, seed=4)
    r0 = net_force_torque_floor(x, f)
    R = Rotation.random(random_state=5).as_matrix()
    r1 = net_force_torque_floor(x @ R.T + np.array([10.0, -3.0, 7.0]), f @ R.T)
    np.testing.assert_allclose(r1["per_frame"]["floor_rmse"], r0["per_frame"]["floor_rmse"], rtol=1e-10)
    assert r1["net_torque_mean"] == pytest.approx(r0["net_torque_mean"], rel=1e-10)
    assert r0["floor_rmse"] <= r0["zero_model_rmse"]
    # any invariant model (zero net force and torque) is at least the floor away; the best one reaches it
    rng = np.random.default_rng(9)
    for _ in range(5):
        g = rng.normal(0, 5.0, f.shape)
        model = np.stack([g[k] - _lstsq_rigid(x[k], g[k]) for k in range(len(x))])
        assert r0["floor_rmse"] <= np.sqrt(np.mean((model - f) ** 2))
    best = np.stack([f[k] - _lstsq_rigid(x[k], f[k]) for k in range(len(x))])
    assert np.sqrt(np.mean((best - f) ** 2)) == pytest.approx(r0["floor_rmse"], rel=1e-10)
    assert 0 < r0["floor_fraction_of_zero_mse"] < 1


def _lstsq_rigid(x, f):
    A = _rigid_basis(x)
    coef, *_ = np.linalg.lstsq(A, f.ravel(), rcond=None)
    return (A @ coef).reshape(-1, 3)


def test_floor_degenerate_and_periodic_cases():
    # collinear beads: rotation about the axis is no pattern; the pseudo-inverse handles it
    x = np.zeros((1, 4, 3))
    x[0, :, 0] = [0.0, 1.0, 2.5, 4.0]
    f = np.random.default_rng(6).normal(0, 1, (1, 4, 3))
    r = net_force_torque_floor(x, f)
    assert r["per_frame"]["floor_rmse"][0] == pytest.approx(np.sqrt(np.mean(_lstsq_rigid(x[0], f[0]) ** 2)), rel=1e-8)
    # one bead: everything is net force
    r = net_force_torque_floor(np.zeros((2, 1, 3)), np.ones((2, 1, 3)))
    assert r["floor_rmse"] == pytest.approx(1.0)
    # periodic: a pure torque field is fittable (rotation invariance is broken by the box), a net force is not
    x, _ = _random_frames(nf=2, n=5, seed=7)
    d = x - x.mean(1, keepdims=True)
    torque_field = np.cross(np.array([0.0, 0.0, 0.5]), d)
    rp = net_force_torque_floor(None, torque_field, periodic=True)
    assert rp["floor_rmse"] < 1e-12 and rp["net_torque_mean"] is None and rp["per_frame"]["net_torque"] is None
    assert net_force_torque_floor(x, torque_field)["floor_rmse"] > 0.1
    rp = net_force_torque_floor(x, torque_field + np.array([1.0, 2.0, 2.0]), periodic=True)
    assert rp["floor_rmse"] == pytest.approx(np.sqrt(9.0 / 3.0), rel=1e-10)  # |t|² n / (3n) = 9/3
    with pytest.raises(ValueError, match="differ in shape"):
        net_force_torque_floor(x[:, :4], torque_field)
    with pytest.raises(ValueError, match="positions are needed"):
        net_force_torque_floor(None, torque_field)
    with pytest.raises(ValueError, match="masses"):
        net_force_torque_floor(x, torque_field, masses=np.ones(3))


def _two_bead_prior(k=200.0, r0=3.8):
    return {"format": "cgexplain.priors/1", "n_beads": 2, "bonds": {"index": [[0, 1]], "k": [k], "r0": [r0]}}


def test_stiffest_prior_frequency_two_bead_bond():
    """ω = sqrt(k/μ) for a two-bead harmonic bond, analytic, and the timestep check flags a long step."""
    k, m1, m2 = 200.0, 12.0, 36.0
    mu = m1 * m2 / (m1 + m2)
    want = math.sqrt(k / mu * KCAL_IN_AMU_A2_PS2)
    r = stiffest_prior_frequency(_two_bead_prior(k), [m1, m2])
    assert r["omega_max"] == pytest.approx(want, rel=1e-12)
    assert r["term"] == {"kind": "bonds", "index": [0, 1], "k": k, "omega": pytest.approx(want)}
    assert r["period_ps"] == pytest.approx(2 * math.pi / want)
    # the Hessian of the prior at a stretched geometry (r != r0: a bond is still k along the axis) agrees
    x = np.array([[[0.0, 0.0, 0.0], [4.2, 0.0, 0.0]]])
    rh = stiffest_prior_frequency(_two_bead_prior(k), [m1, m2], positions=x)
    assert rh["omega_max_hessian"] == pytest.approx(want, rel=1e-9) and rh["hessian_mode_beads"] == [0, 1]
    ok, msg = check_timestep(r["omega_max"], 0.002)
    assert ok, msg
    dt_long = 1.5 * OMEGA_DT_BOUND / want
    ok, msg = check_timestep(r["omega_max"], dt_long)
    assert not ok and "too long" in msg and f"{OMEGA_DT_BOUND / want:.3g} ps" in msg
    ok, msg = check_timestep(r["omega_max"], 2.5 / want)
    assert not ok and "unstable" in msg
    with pytest.raises(ValueError, match="timestep_ps"):
        check_timestep(want, 0.0)
    with pytest.raises(ValueError, match="bead_masses"):
        stiffest_prior_frequency(_two_bead_prior(k), [1.0])


def test_stiffest_prior_frequency_angle_matches_wilson_g():
    """The angle term's G_θθ equals Σ_a |∂θ/∂R_a|²/m_a (autograd), and the coupled Hessian estimate
    of a bonds+angle prior at its equilibrium geometry is at least the per-term one."""
    import torch

    from cgexplain.geometry.internal import bond_angles

    th0, r1, r2, ka = np.radians(105.0), 3.8, 3.6, 30.0
    x = np.array([[r1, 0, 0], [0, 0, 0], [r2 * np.cos(th0), r2 * np.sin(th0), 0]])
    m = np.array([50.0, 110.0, 80.0])
    params = {
        "format": "cgexplain.priors/1",
        "n_beads": 3,
        "bonds": {"index": [[1, 0], [1, 2]], "k": [1e-6, 1e-6], "r0": [r1, r2]},
        "angles": {"index": [[0, 1, 2]], "k": [ka], "theta0": [th0]},
    }
    t = torch.tensor(x, requires_grad=True)
    (b,) = torch.autograd.grad(bond_angles(t, torch.tensor([[0, 1, 2]])).sum(), t)
    G = float(((b.numpy() ** 2).sum(1) / m).sum())
    r = stiffest_prior_frequency(params, m)
    assert r["omega_angles"][0] == pytest.approx(math.sqrt(ka * G * KCAL_IN_AMU_A2_PS2), rel=1e-10)
    assert r["term"]["kind"] == "angles" and r["term"]["index"] == [0, 1, 2]
    # with stiff bonds: the coupled estimate (Hessian at equilibrium) is >= the largest per-term ω
    params["bonds"]["k"] = [150.0, 150.0]
    rh = stiffest_prior_frequency(params, m, positions=x)
    assert rh["omega_max_hessian"] >= rh["omega_max_terms"] * (1 - 1e-9)
    assert rh["omega_max"] == max(rh["omega_max_hessian"], rh["omega_max_terms"])


def _baoab_harmonic(omega_dt: float, n=4000, steps=4000, seed=0) -> tuple[float, float]:
    """1-D harmonic oscillators (ω = 1, m = kT = 1) under BAOAB (cgexplain.md.langevin's splitting,
    friction γΔt = ωΔt): relative errors of the kinetic and configurational temperatures."""
    rng = np.random.default_rng(seed)
    h = omega_dt
    c = math.exp(-h)
    s = math.sqrt(1 - c * c)
    q, v = rng.normal(0, 1, n), rng.normal(0, 1, n)
    sv = sq = 0.0
    burn = steps // 10
    for k in range(steps):
        v -= 0.5 * h * q
        q += 0.5 * h * v
        v = c * v + s * rng.standard_normal(n)
        q += 0.5 * h * v
        v -= 0.5 * h * q
        if k >= burn:
            sv += float(v @ v)
            sq += float(q @ q)
    nn = n * (steps - burn)
    return sv / nn - 1.0, sq / nn - 1.0


def test_baoab_harmonic_oscillator_temperature_error_above_the_bound():
    """Above the bound the kinetic temperature is off by more than 1 % (as predicted), well below it not."""
    hi = 1.4 * OMEGA_DT_BOUND
    kin, conf = _baoab_harmonic(hi)
    assert kin < -0.01 and kin == pytest.approx(baoab_kinetic_temperature_bias(hi), abs=0.01)
    assert abs(conf) < 0.01  # BAOAB samples a harmonic configuration exactly
    kin, conf = _baoab_harmonic(0.1)
    assert abs(kin) < 0.01 and abs(conf) < 0.01
    assert not check_timestep(hi, 1.0)[0] and check_timestep(0.1, 1.0)[0]


def test_prior_force_error_on_synthetic_data():
    rng = np.random.default_rng(8)
    mapped = rng.normal(0, 4.0, (50, 6, 3))
    prior = 0.8 * mapped + rng.normal(0, 0.5, mapped.shape)
    r = prior_force_error(mapped, prior, chunk=7)
    d = prior - mapped
    assert r["force_rmse"] == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-12)
    assert r["force_mae"] == pytest.approx(np.mean(np.abs(d)), rel=1e-12)
    assert r["zero_model_rmse"] == pytest.approx(np.sqrt(np.mean(mapped**2)), rel=1e-12)
    assert r["mse_fraction_removed"] == pytest.approx(1 - np.mean(d**2) / np.mean(mapped**2), rel=1e-12)
    assert 0.9 < r["mse_fraction_removed"] < 0.97  # 1 - (0.04·16 + 0.25)/16 ≈ 0.944
    assert prior_force_error(mapped, mapped)["mse_fraction_removed"] == 1.0
    assert prior_force_error(mapped, np.zeros_like(mapped))["mse_fraction_removed"] == pytest.approx(0.0)
    assert prior_force_error(mapped, -mapped)["mse_fraction_removed"] == pytest.approx(-3.0)  # worse than zero
    with pytest.raises(ValueError, match="same shape"):
        prior_force_error(mapped, prior[:, :5])
    bad = prior.copy()
    bad[3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="frame 3"):
        prior_force_error(mapped, bad)
