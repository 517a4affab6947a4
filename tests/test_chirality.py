"""A chiral bead chain keeps its handedness under the default prior (cgexplain.model.priors, "Chirality").

PaiNN and SO3net energies are invariant under reflection, so a CG model whose network is zero is
just its prior, and only the prior's reflection-odd terms (the dihedral sine parts b_m sin(mφ))
can tell a chain from its mirror image. Reference: a 6-bead chain sampled by Langevin dynamics
under harmonic bonds and angles and E = k_d (1 - cos(φ - φ0)) per dihedral with φ0 = +60°
(mean sin φ = sin φ0 I1(βk_d)/I0(βk_d) ≈ 0.52 > 0). The default prior fitted to it, sampled by the
same integrator from the mirror images of the reference frames (mean sin φ ≈ -0.5), goes back to
the reference's hand; a prior without dihedrals (reflection-even) started from the reference's hand
loses it (mean sin φ ≈ 0).
"""

import warnings

import numpy as np
import pytest
import torch
from scipy.special import i0, i1

from cgexplain.geometry.internal import chain_indices, dihedral_angles
from cgexplain.model.priors import PriorEnergy, fit_priors, is_reflection_odd, kT_kcal, prior_forces
from cgexplain.units import KCAL_IN_AMU_A2_PS2

T = 300.0  # K
KT = kT_kcal(T)  # kcal/mol
N = 6  # beads
IDX = chain_indices(N)
KD, PHI0 = 1.5 * KT, np.radians(60.0)  # dihedral well depth (kcal/mol) and position (rad)


def reference_params() -> dict:
    """The reference potential as a prior params dict: bonds k = 10 kcal/mol/Å², r0 = 3.8 Å; angles
    k = 10 kcal/mol/rad², θ0 = 1.9 rad; dihedrals k_d (1 - cos(φ - φ0)) = -k_d cos φ0 cos φ
    - k_d sin φ0 sin φ + const; no repulsion (then φ is independent of the rest)."""
    nb, na, nd = len(IDX["bonds"]), len(IDX["angles"]), len(IDX["dihedrals"])
    return {
        "n_beads": N,
        "bonds": {"index": IDX["bonds"].tolist(), "k": [10.0] * nb, "r0": [3.8] * nb},
        "angles": {"index": IDX["angles"].tolist(), "k": [10.0] * na, "theta0": [1.9] * na},
        "dihedrals": {"index": IDX["dihedrals"].tolist(), "a": [[-KD * np.cos(PHI0)]] * nd, "b": [[-KD * np.sin(PHI0)]] * nd},
    }


def sin_phi(x: np.ndarray) -> np.ndarray:
    """sin φ (..., n_dihedrals) of chains x (..., N, 3) Å (IUPAC φ of cgexplain.model.priors)."""
    return np.sin(dihedral_angles(torch.from_numpy(x), torch.from_numpy(IDX["dihedrals"])).numpy())


def langevin(params: dict, x0: np.ndarray, steps: int, seed: int, every: int = 10, dt: float = 0.02, gamma: float = 2.0, mass: float = 12.0):
    """BAOAB Langevin of R independent chains x0 (R, N, 3) Å under the prior ``params`` at T
    (dt ps, gamma 1/ps, mass amu; forces by prior_forces); returns frames (steps // every, R, N, 3).
    Runs torch on one thread: its ops on (96, 6, 3) tensors gain nothing from more, and on a busy
    machine two threads made each force call about 20 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _langevin(params, x0, steps, seed, every, dt, gamma, mass)
    finally:
        torch.set_num_threads(threads)


def _langevin(params, x0, steps, seed, every, dt, gamma, mass):
    mod = PriorEnergy.from_params(params)
    rng = np.random.default_rng(seed)
    acc = KCAL_IN_AMU_A2_PS2 / mass  # (kcal/mol/Å) -> Å/ps²
    vth = np.sqrt(KT * acc)  # thermal velocity, Å/ps
    c1 = np.exp(-gamma * dt)
    c2 = vth * np.sqrt(1.0 - c1 * c1)
    x = x0.copy()
    v = rng.normal(0.0, vth, x.shape)
    f = prior_forces(mod, x)
    frames = []
    for t in range(steps):
        v += 0.5 * dt * acc * f
        x += 0.5 * dt * v
        v = c1 * v + c2 * rng.normal(size=x.shape)
        x += 0.5 * dt * v
        f = prior_forces(mod, x)
        v += 0.5 * dt * acc * f
        if t % every == every - 1:
            frames.append(x.copy())
    return np.asarray(frames)


@pytest.fixture(scope="module")
def reference():
    """Planar zig-zag starts (φ = 180°, no hand), 1600 steps; frames after the first 400 steps."""
    R = 96
    x0 = np.zeros((R, N, 3))
    x0[:, :, 0] = np.arange(N) * 3.8 * np.sin(0.95)
    x0[:, :, 1] = (np.arange(N) % 2) * 3.8 * np.cos(0.95)
    x0 += np.random.default_rng(1).normal(0.0, 0.1, x0.shape)
    frames = langevin(reference_params(), x0, 1600, seed=2)
    return frames[40:]


def test_reference_is_chiral(reference):
    """The reference sampler is canonical: mean sin φ equals the exact sin φ0 I1(βk_d)/I0(βk_d)."""
    s = sin_phi(reference).mean()
    exact = np.sin(PHI0) * i1(KD / KT) / i0(KD / KT)
    assert exact > 0.5
    assert s == pytest.approx(exact, abs=0.04)


def test_default_prior_keeps_handedness_and_even_prior_loses_it(reference):
    data = reference.reshape(-1, N, 3)
    s_ref = sin_phi(data).mean()
    assert s_ref > 0.4  # clearly chiral, or the test below would pass trivially

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default prior does not warn
        p = fit_priors(data, T)
    assert is_reflection_odd(p) and p["fit"]["n_fourier"] == 3
    b1 = np.asarray(p["dihedrals"]["b"])[:, 0]
    np.testing.assert_allclose(b1, -KD * np.sin(PHI0), atol=0.15)  # the sine part of the well

    with pytest.warns(UserWarning, match="mirror-symmetric"):
        even = fit_priors(data, T, terms=("bonds", "angles", "repulsion"))
    assert not is_reflection_odd(even) and even["dihedrals"]["index"] == []

    # the default prior, started from the mirror images (the other hand), returns to the reference's hand
    mirror = -reference[-1]
    assert sin_phi(mirror).mean() < -0.3
    s_odd = sin_phi(langevin(p, mirror, 1200, seed=3)[60:]).mean()
    assert s_odd > 0 and s_odd == pytest.approx(s_ref, abs=0.1)

    # without dihedrals (a reflection-even prior) the hand of the reference's own frames is lost
    start = reference[-1]
    assert sin_phi(start).mean() > 0.3
    s_even = sin_phi(langevin(even, start, 1200, seed=4)[60:]).mean()
    assert abs(s_even) < 0.1 and abs(s_even) < 0.2 * s_ref
