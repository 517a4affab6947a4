"""Prior energy terms (cgexplain.model.priors): Boltzmann inversion, forces, invariances, batching,
dihedral convention, round trips, model integration and LRP (the walks explain the network only);
priors on any bead graph (several chains, branches), the choice of terms and the chirality warning."""

import json
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms

from cgexplain.geometry.internal import bond_angles, chain_indices, dihedral_angles, graph_indices
from cgexplain.model.potential import DEFAULT_HPARAMS, batch_inputs, build_model, load_model, save_model
from cgexplain.model.priors import (
    PriorEnergy,
    fit_fourier,
    fit_harmonic,
    fit_priors,
    is_reflection_odd,
    prior_energy,
    prior_forces,
)
from cgexplain.plots.priors import plot_priors
from cgexplain.units import KB_KCAL

T = 300.0
KT = KB_KCAL * T


# ---- helpers ------------------------------------------------------------------------------------


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def nerf(r, th, ph):
    """Chains (F, n, 3) Å from bond lengths r (F, n-1), angles th (F, n-2) and IUPAC dihedrals
    ph (F, n-3) rad (natural extension reference frame)."""
    F, nb = r.shape
    x = np.zeros((F, nb + 1, 3))
    x[:, 1, 0] = r[:, 0]
    x[:, 2] = x[:, 1] + r[:, 1:2] * np.stack([-np.cos(th[:, 0]), np.sin(th[:, 0]), np.zeros(F)], 1)
    for i in range(3, nb + 1):
        a, b, c = x[:, i - 3], x[:, i - 2], x[:, i - 1]
        bc = _unit(c - b)
        nn = _unit(np.cross(b - a, bc))
        m = np.cross(nn, bc)
        t, p = th[:, i - 2 : i - 1], ph[:, i - 3 : i - 2]
        x[:, i] = c + r[:, i - 1 : i] * (-np.cos(t) * bc + np.sin(t) * np.cos(p) * m + np.sin(t) * np.sin(p) * nn)
    return x


def sample_grid(rng, grid, dens, size):
    """Samples of an (unnormalised) density tabulated on a fine grid (inverse CDF)."""
    cdf = np.concatenate([[0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    return np.interp(rng.uniform(0, cdf[-1], size), cdf, grid)


def sample_angle(rng, k, theta0, size):
    """θ from p(θ) ∝ sin θ exp(-k(θ-θ0)²/2kT)."""
    g = np.linspace(0, np.pi, 20001)
    return sample_grid(rng, g, np.sin(g) * np.exp(-0.5 * k * (g - theta0) ** 2 / KT), size)


def fourier(phi, a, b):
    n = np.arange(1, np.shape(a)[-1] + 1)
    phi = np.asarray(phi)[..., None]
    return (a * np.cos(n * phi) + b * np.sin(n * phi)).sum(-1)


def sample_dihedral(rng, a, b, size):
    g = np.linspace(-np.pi, np.pi, 20001)
    return sample_grid(rng, g, np.exp(-fourier(g, a, b) / KT), size)


def random_chain(n=8, F=3, seed=0, step=3.8):
    """Self-avoiding-ish random chains (F, n, 3) Å with CA-like spacing."""
    rng = np.random.default_rng(seed)
    r = rng.normal(step, 0.05, (F, n - 1))
    th = rng.uniform(1.6, 2.4, (F, n - 2))
    ph = rng.uniform(-np.pi, np.pi, (F, n - 3))
    return nerf(r, th, ph) + rng.normal(0, 0.01, (F, n, 3))


def random_params(n=8, seed=0, n_fourier=3):
    """Params with random (non-trivial) values of every kind, for a chain of n beads."""
    rng = np.random.default_rng(seed)
    idx = chain_indices(n)
    p = fit_priors(random_chain(n, F=40, seed=seed + 1), T, n_fourier=n_fourier)
    p["bonds"]["k"] = rng.uniform(20, 80, len(idx["bonds"])).tolist()
    p["angles"]["k"] = rng.uniform(5, 30, len(idx["angles"])).tolist()
    p["dihedrals"]["a"] = rng.normal(0, 0.5, (len(idx["dihedrals"]), n_fourier)).tolist()
    p["dihedrals"]["b"] = rng.normal(0, 0.5, (len(idx["dihedrals"]), n_fourier)).tolist()
    p["repulsion"]["sigma"] = rng.uniform(4.0, 6.0, len(idx["repulsion"])).tolist()
    return p


def _rot(seed=3):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def _net(F=8, L=2, cutoff=5.0, seed=0, priors=None, scale=0.3):
    torch.manual_seed(seed)
    hp = {"n_atom_basis": F, "n_interactions": L, "cutoff": cutoff, "priors": priors}
    m = build_model(hp).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn_like(p))
    return m.eval(), hp


# ---- Boltzmann inversion ------------------------------------------------------------------------


def test_fit_harmonic_bond_and_angle_jacobian():
    rng = np.random.default_rng(0)
    r = rng.normal(3.8, np.sqrt(KT / 60.0), (200_000, 2))
    k, r0 = fit_harmonic(r, KT)
    np.testing.assert_allclose(r0, 3.8, atol=2e-3)
    np.testing.assert_allclose(k, 60.0, rtol=0.02)
    # angles: p(θ) ∝ sin θ exp(-k(θ-θ0)²/2kT); the sin θ Jacobian shifts the plain mean by
    # ≈ σ² cot θ0 ≈ -0.03 rad, the weighted fit removes it
    th = sample_angle(rng, 15.0, 2.2, 200_000)
    k, t0 = fit_harmonic(th, KT, jacobian="sin")
    assert abs(t0[0] - 2.2) < 5e-3
    assert k[0] == pytest.approx(15.0, rel=0.03)
    _, naive = fit_harmonic(th, KT)
    assert abs(naive[0] - 2.2) > 0.02  # the test would catch a missing Jacobian
    with pytest.raises(ValueError, match="jacobian"):
        fit_harmonic(th, KT, jacobian="r2")


def test_fit_fourier_recovers_dihedral_potential():
    rng = np.random.default_rng(1)
    a, b = np.array([0.6, 0.3, 0.0]), np.array([-0.4, 0.0, 0.2])
    phi = sample_dihedral(rng, a, b, 100_000)
    fa, fb = fit_fourier(phi, KT, n_fourier=3)
    np.testing.assert_allclose(fa[0], a, atol=0.04)
    np.testing.assert_allclose(fb[0], b, atol=0.04)
    g = np.linspace(-np.pi, np.pi, 361)
    diff = fourier(g, fa[0], fb[0]) - fourier(g, a, b)
    assert np.abs(diff - diff.mean()).max() < 0.06  # the curve up to a constant
    # few samples and empty bins: still finite, and the well stays where the data are
    few = sample_dihedral(rng, np.array([-1.5]), np.array([0.0]), 300)
    fa, fb = fit_fourier(few, KT, n_fourier=3)
    assert np.all(np.isfinite(fa)) and fa[0, 0] < -0.5
    with pytest.raises(ValueError, match="bins"):
        fit_fourier(phi, KT, n_fourier=3, bins=6)


def test_fit_priors_recovers_chain_parameters():
    """Chains built from independent internal coordinates with known Boltzmann distributions."""
    rng = np.random.default_rng(2)
    F, n = 40_000, 6
    kb, r0 = np.array([40.0, 60.0, 80.0, 50.0, 70.0]), np.array([3.8, 3.75, 3.85, 3.8, 3.9])
    ka, t0 = np.array([10.0, 15.0, 20.0, 12.0]), np.array([1.9, 2.1, 1.6, 2.3])
    A = np.array([[0.6, 0.3, 0.0], [-0.5, 0.0, 0.2], [0.2, -0.3, 0.0]])
    B = np.array([[-0.4, 0.0, 0.2], [0.5, 0.2, 0.0], [0.0, 0.3, -0.2]])
    r = rng.normal(r0, np.sqrt(KT / kb), (F, n - 1))
    th = np.stack([sample_angle(rng, ka[i], t0[i], F) for i in range(n - 2)], 1)
    ph = np.stack([sample_dihedral(rng, A[i], B[i], F) for i in range(n - 3)], 1)
    x = nerf(r, th, ph)
    # the builder follows the IUPAC convention of cgexplain.model.priors
    np.testing.assert_allclose(dihedral_angles(torch.from_numpy(x[:50]), torch.from_numpy(chain_indices(n)["dihedrals"])).numpy(), ph[:50], atol=1e-9)
    p = fit_priors(x, T, n_fourier=3)
    assert p["n_beads"] == n and p["temperature"] == T
    np.testing.assert_allclose(p["bonds"]["r0"], r0, atol=3e-3)
    np.testing.assert_allclose(p["bonds"]["k"], kb, rtol=0.04)
    np.testing.assert_allclose(p["angles"]["theta0"], t0, atol=6e-3)
    np.testing.assert_allclose(p["angles"]["k"], ka, rtol=0.04)
    np.testing.assert_allclose(p["dihedrals"]["a"], A, atol=0.05)
    np.testing.assert_allclose(p["dihedrals"]["b"], B, atol=0.05)
    # repulsion: pairs j - i >= 3, σ = 1st percentile of the pair distance, ε = kT, p = 6
    assert [tuple(ij) for ij in p["repulsion"]["index"]] == [(0, 3), (0, 4), (0, 5), (1, 4), (1, 5), (2, 5)]
    d03 = np.linalg.norm(x[:, 3] - x[:, 0], axis=-1)
    assert p["repulsion"]["sigma"][0] == pytest.approx(np.quantile(d03, 0.01))
    assert p["repulsion"]["epsilon"] == [pytest.approx(KT)] * 6 and p["repulsion"]["exponent"] == 6.0
    g = fit_priors(x[:200], T, repulsion_sigma=4.5, repulsion_exponent=12, min_separation=4)
    assert g["repulsion"]["sigma"] == [4.5] * 3 and g["repulsion"]["exponent"] == 12.0


def test_fit_priors_errors():
    x = random_chain(6, F=5)
    with pytest.raises(ValueError, match="shape"):
        fit_priors(x[0], T)
    with pytest.raises(ValueError, match="at least 4 beads"):
        fit_priors(x[:, :3], T)
    bad = x.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="frame 3"):
        fit_priors(bad, T)
    for t in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            fit_priors(x, t)
    with pytest.raises(ValueError, match="at least 2 frames"):
        fit_priors(x[:1], T)


# ---- energies and forces --------------------------------------------------------------------------


def test_forces_match_finite_differences():
    p = random_params(8, seed=3)
    x = random_chain(8, F=2, seed=4)
    f = prior_forces(p, x)
    assert f.shape == x.shape
    h = 1e-5
    fd = np.zeros_like(x)
    for fr in range(2):
        for i in range(8):
            for c in range(3):
                xp, xm = x[fr].copy(), x[fr].copy()
                xp[i, c] += h
                xm[i, c] -= h
                fd[fr, i, c] = -(prior_energy(p, xp) - prior_energy(p, xm)) / (2 * h)
    assert np.abs(f).max() > 0.1
    np.testing.assert_allclose(f, fd, rtol=1e-6, atol=1e-6)
    # each kind contributes (the test is not dominated by one term)
    terms = PriorEnergy.from_params(p).energy_terms(x)
    assert all(float(v.abs().min()) > 1e-3 for v in terms.values())


def test_rotation_translation():
    p = random_params(8, seed=5)
    x = random_chain(8, F=3, seed=6)
    q, t = _rot(), np.array([3.0, -7.0, 1.5])
    y = x @ q.T + t
    np.testing.assert_allclose(prior_energy(p, y), prior_energy(p, x), rtol=1e-12)
    np.testing.assert_allclose(prior_forces(p, y), prior_forces(p, x) @ q.T, atol=1e-10)


def test_batch_equals_one_by_one_and_wrong_bead_count():
    p = random_params(8, seed=7)
    mod = PriorEnergy.from_params(p)
    x = random_chain(8, F=3, seed=8)
    inp = batch_inputs(x, np.arange(1, 9), None, 5.0, dtype=torch.float64)
    inp["energy"] = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out = mod(inp)
    one = [float(mod(batch_inputs(x[f], np.arange(1, 9), None, 5.0, dtype=torch.float64))["prior_energy"][0]) for f in range(3)]
    np.testing.assert_allclose(out["prior_energy"].numpy(), one, rtol=1e-13)
    np.testing.assert_allclose(out["energy"].numpy(), np.array([1.0, 2.0, 3.0]) + one, rtol=1e-13)
    np.testing.assert_allclose(one, prior_energy(p, x), rtol=1e-13)
    with pytest.raises(ValueError, match=r"8 beads.*7 beads"):
        mod(batch_inputs(x[:, :7], np.arange(1, 8), None, 5.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="8 beads"):
        prior_energy(p, x[:, :7])


def test_dihedral_convention_equals_mdtraj():
    md = pytest.importorskip("mdtraj")
    n = 12
    x = np.cumsum(np.random.default_rng(9).normal(0, 2.2, (4, n, 3)), axis=1)
    top = md.Topology()
    ch = top.add_chain()
    for _ in range(n):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", ch))
    traj = md.Trajectory(x / 10.0, top)  # nm
    idx = chain_indices(n)
    ref = md.compute_dihedrals(traj, idx["dihedrals"]).astype(np.float64)
    phi = dihedral_angles(torch.from_numpy(x), torch.from_numpy(idx["dihedrals"])).numpy()
    d = np.angle(np.exp(1j * (phi - ref)))
    assert np.abs(d).max() < 1e-5
    assert (phi > 0).any() and (phi < 0).any()
    th = bond_angles(torch.from_numpy(x), torch.from_numpy(idx["angles"])).numpy()
    np.testing.assert_allclose(th, md.compute_angles(traj, idx["angles"]), atol=1e-5)
    # the energy is the Fourier series of that φ
    p = random_params(n, seed=10)
    e = PriorEnergy.from_params(p).energy_terms(x)["dihedrals"].numpy()
    ref_e = fourier(ref, np.asarray(p["dihedrals"]["a"]), np.asarray(p["dihedrals"]["b"])).sum(-1)
    np.testing.assert_allclose(e, ref_e, atol=1e-4)


def test_degenerate_geometries_are_finite():
    p = random_params(6, seed=11)
    x = random_chain(6, F=1, seed=12)[0]
    col = x.copy()
    col[2] = col[1] + 1.2 * (col[1] - col[0])  # beads 0, 1, 2 collinear
    same = x.copy()
    same[4] = same[1]  # a repulsion pair at r = 0
    for y in (col, same):
        t = torch.tensor(y, requires_grad=True)
        e = PriorEnergy.from_params(p).energy(t)
        (g,) = torch.autograd.grad(e, t)
        assert torch.isfinite(e) and torch.isfinite(g).all()
        t32 = torch.tensor(y, dtype=torch.float32, requires_grad=True)
        (g32,) = torch.autograd.grad(PriorEnergy.from_params(p).energy(t32), t32)
        assert torch.isfinite(g32).all()


# ---- serialisation and models ---------------------------------------------------------------------


def test_params_round_trip_and_dtype(tmp_path):
    p = random_params(8, seed=13)
    p2 = json.loads(json.dumps(p))
    mod = PriorEnergy.from_params(p2)
    assert mod.params() == p and mod.n_beads == 8
    x = random_chain(8, F=2, seed=14)
    assert np.array_equal(prior_energy(mod.params(), x), prior_energy(p, x))
    # float64 buffers stay exact when the module is cast; the computation follows R's dtype
    mod.float()
    assert all(v.dtype == torch.float64 for v in mod.state_dict().values())
    assert mod.params() == p
    e32 = mod.energy(torch.tensor(x, dtype=torch.float32))
    assert e32.dtype == torch.float32
    np.testing.assert_allclose(e32.numpy(), prior_energy(p, x), rtol=1e-4)
    with pytest.raises(ValueError, match="one per instance"):
        PriorEnergy.from_params({**p, "bonds": {**p["bonds"], "k": p["bonds"]["k"][:-1]}})
    with pytest.raises(ValueError, match="outside"):
        PriorEnergy.from_params({**p, "n_beads": 5})


def test_model_with_priors_energy_forces_and_save_load(tmp_path):
    assert DEFAULT_HPARAMS["priors"] is None
    p = random_params(8, seed=15)
    m, hp = _net(cutoff=5.0, priors=p)
    m0, _ = _net(cutoff=5.0, priors=None)
    missing, unexpected = m0.load_state_dict(m.state_dict(), strict=False)
    assert not missing and all(k.startswith("output_modules.1.") for k in unexpected)
    assert not any("prior" in k or "output_modules.1." in k for k in m0.state_dict())
    x = random_chain(8, F=2, seed=16)
    types = np.arange(1, 9)
    out = m(batch_inputs(x, types, None, 5.0, dtype=torch.float64))
    net = m0(batch_inputs(x, types, None, 5.0, dtype=torch.float64))
    np.testing.assert_allclose(out["prior_energy"].detach().numpy(), prior_energy(p, x), rtol=1e-12)
    np.testing.assert_allclose(out["energy"].detach().numpy(), net["energy"].detach().numpy() + prior_energy(p, x), rtol=1e-12)
    np.testing.assert_allclose(
        out["forces"].detach().numpy(), net["forces"].detach().numpy() + prior_forces(p, x).reshape(-1, 3), rtol=1e-10, atol=1e-10
    )
    # save (float32) / load round trip: params in model.json, buffers in model.pt, same numbers
    save_model(m.float(), hp, tmp_path / "mdl")
    m2, meta = load_model(tmp_path / "mdl")
    assert meta["hparams"]["priors"] == p
    a = m(batch_inputs(x, types, None, 5.0))
    b = m2(batch_inputs(x, types, None, 5.0))
    assert a["energy"].dtype == torch.float32
    assert torch.equal(a["energy"], b["energy"]) and torch.equal(a["forces"], b["forces"])
    assert torch.equal(a["prior_energy"], b["prior_energy"])


@pytest.mark.parametrize("arch", ["painn", "so3net"])
def test_walk_relevance_explains_the_network_only(arch):
    from cgexplain.lrp.engine import walk_relevance

    n = 7
    p = random_params(n, seed=17)
    torch.manual_seed(0)
    hp = {"representation": arch, "n_atom_basis": 6, "n_interactions": 2, "cutoff": 5.0}
    m0 = build_model(hp).double()
    with torch.no_grad():
        for q in m0.parameters():
            q.add_(0.3 * torch.randn_like(q))
    m = build_model({**hp, "priors": p}).double()
    m.load_state_dict({**m0.state_dict(), **{f"output_modules.1.{k}": v for k, v in PriorEnergy.from_params(p).state_dict().items()}})
    m0.eval(), m.eval()
    x = random_chain(n, F=1, seed=18)[0]
    at = Atoms(numbers=np.arange(1, n + 1), positions=x)  # bead types 1..n, not periodic
    r0, r1 = walk_relevance(m0, at), walk_relevance(m, at)
    assert np.array_equal(r0["walks"], r1["walks"])
    np.testing.assert_allclose(r1["relevance"], r0["relevance"], rtol=1e-12, atol=1e-14)
    assert abs(r1["relevance"].sum() - r1["sum_h0_grad"]) < 1e-10  # conservation as without priors
    full = m(batch_inputs(x, at.numbers, None, 5.0, dtype=torch.float64))
    e_net = float((full["energy"] - full["prior_energy"]).detach())
    assert abs(float(full["prior_energy"].detach())) > 1e-3
    assert r1["E_model"] == pytest.approx(e_net, abs=1e-10) and r1["E_model"] == pytest.approx(r0["E_model"], abs=1e-12)
    g0 = walk_relevance(m, at, gamma=0.0, bias_rule=False)
    assert abs(g0["E_modified"] - g0["E_model"]) < 1e-10


def test_plot_priors(tmp_path):
    x = random_chain(8, F=200, seed=19)
    p = fit_priors(x, T)
    out = plot_priors(p, x, T, tmp_path / "fig" / "priors.png")
    assert out == tmp_path / "fig" / "priors.png" and out.stat().st_size > 10_000


def test_repulsion_scale_moves_the_wall_inside_the_sampled_distances():
    """σ = scale × the per-pair quantile distance; with scale 0.8 and p = 12 the repulsion at the
    quantile distance is 0.8^12 ε, so it does not push the sampled contacts apart."""
    import numpy as np

    from cgexplain.model.priors import PriorEnergy, fit_priors

    rng = np.random.default_rng(3)
    n, F = 8, 400
    steps = rng.normal(size=(F, n, 3))
    steps = 3.8 * steps / np.linalg.norm(steps, axis=-1, keepdims=True)
    pos = np.cumsum(steps, axis=1)
    p1 = fit_priors(pos, 300.0, repulsion_exponent=12)
    p08 = fit_priors(pos, 300.0, repulsion_exponent=12, repulsion_scale=0.8)
    s1, s08 = np.asarray(p1["repulsion"]["sigma"]), np.asarray(p08["repulsion"]["sigma"])
    assert np.allclose(s08, 0.8 * s1) and p08["fit"]["repulsion_scale"] == 0.8
    e = PriorEnergy.from_params(p08).energy_terms(torch.as_tensor(pos, dtype=torch.float64))["repulsion"]
    e1 = PriorEnergy.from_params(p1).energy_terms(torch.as_tensor(pos, dtype=torch.float64))["repulsion"]
    assert float(e.mean()) < 0.1 * float(e1.mean())
    with pytest.raises(ValueError, match="repulsion_scale"):
        fit_priors(pos, 300.0, repulsion_scale=0.0)


# ---- priors on any bead graph -----------------------------------------------------------------------


def _as_set(a):
    return {tuple(r) for r in np.asarray(a).tolist()}


def _chain_bonds(start, n):
    return [(i, i + 1) for i in range(start, start + n - 1)]


def two_chains(F=200, seed=20):
    """Frames (F, 9, 3) Å of two chains, beads 0-4 and 5-8, starting 40 Å apart (so > 13 Å between
    the chains); and their bonds."""
    x = np.concatenate([random_chain(5, F, seed=seed), random_chain(4, F, seed=seed + 1) + np.array([0.0, 40.0, 0.0])], axis=1)
    return x, _chain_bonds(0, 5) + _chain_bonds(5, 4)


def test_graph_indices_of_a_chain_equal_chain_indices():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5, 8, 13):
        b = np.array(_chain_bonds(0, n), dtype=np.int64).reshape(-1, 2)
        # any order, either way round, duplicated: the same instances
        messy = np.concatenate([b, b[:, ::-1]])[rng.permutation(2 * len(b))] if len(b) else b
        for ms in (1, 2, 3, 4):
            c = chain_indices(n, ms)
            for bonds in (b, messy, b.tolist()):
                g = graph_indices(n, bonds, ms)
                assert set(g) == set(c)
                for k in c:
                    assert g[k].dtype == np.int64 and g[k].shape == c[k].shape, (n, ms, k)
                    assert np.array_equal(g[k], c[k]), (n, ms, k)


def test_graph_indices_of_two_chains():
    _, bonds = two_chains(F=1)
    chain = np.array([0] * 5 + [1] * 4)
    g = graph_indices(9, bonds)
    assert (len(g["bonds"]), len(g["angles"]), len(g["dihedrals"])) == (4 + 3, 3 + 2, 2 + 1)
    for k in ("bonds", "angles", "dihedrals"):  # never across chains
        assert all(len(set(chain[r])) == 1 for r in g[k])
    # per chain, the chain's own instances (the second shifted by 5)
    for k in ("bonds", "angles", "dihedrals"):
        assert _as_set(g[k]) == _as_set(chain_indices(5)[k]) | _as_set(chain_indices(4)[k] + 5)
    rep = _as_set(g["repulsion"])
    inter = {(i, j) for i in range(5) for j in range(5, 9)}
    assert inter <= rep  # every inter-chain pair repels (disconnected: graph distance ∞)
    intra = rep - inter
    assert intra == {(0, 3), (0, 4), (1, 4), (5, 8)}  # within a chain only pairs >= 3 bonds apart
    assert all(chain[i] != chain[j] or j - i >= 3 for i, j in rep)
    assert len(rep) == len(g["repulsion"]) == 24 and all(i < j for i, j in rep)
    # min_separation counts bonds along the graph: 4 leaves (0, 4) in chain 1, nothing in chain 2
    assert _as_set(graph_indices(9, bonds, min_separation=4)["repulsion"]) - inter == {(0, 4)}
    # no bonds at all: every pair repels
    assert len(graph_indices(9, [])["repulsion"]) == 36 and len(graph_indices(9, np.zeros((0, 2)))["bonds"]) == 0


def test_graph_indices_of_a_branched_graph_and_a_ring():
    # bead 0 has three neighbours (1, 2, 3); 3-4 continues one branch
    g = graph_indices(5, [(0, 1), (2, 0), (0, 3), (3, 4)])
    assert g["bonds"].tolist() == [[0, 1], [0, 2], [0, 3], [3, 4]]
    assert g["angles"].tolist() == [[1, 0, 2], [1, 0, 3], [2, 0, 3], [0, 3, 4]]  # the 3 angles at the branch bead
    assert g["dihedrals"].tolist() == [[1, 0, 3, 4], [2, 0, 3, 4]]
    assert g["repulsion"].tolist() == [[1, 4], [2, 4]]
    # rings: a triangle has no dihedral (a path may not repeat a bead), a square has four, once each
    assert len(graph_indices(3, [(0, 1), (1, 2), (2, 0)])["dihedrals"]) == 0
    sq = graph_indices(4, [(0, 1), (1, 2), (2, 3), (3, 0)])
    assert len(sq["angles"]) == 4 and len(sq["dihedrals"]) == 4 and len(sq["repulsion"]) == 0
    rev = {tuple(d[::-1]) for d in sq["dihedrals"].tolist()}
    assert not rev & _as_set(sq["dihedrals"])  # never also listed reversed


def test_fit_priors_on_two_chains():
    x, bonds = two_chains()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default terms keep the sine parts: no warning
        p = fit_priors(x, T, bonds=bonds)
    g = graph_indices(9, bonds)
    for k in ("bonds", "angles", "dihedrals", "repulsion"):
        assert p[k]["index"] == g[k].tolist()
    assert p["n_beads"] == 9 and p["fit"]["graph"] == "bonds" and "terms" not in p["fit"]
    assert is_reflection_odd(p)
    # the fitted bonds are those of the frames (3.8 Å), and the inter-chain pairs are > 13 Å apart
    np.testing.assert_allclose(p["bonds"]["r0"], 3.8, atol=0.02)
    assert min(p["repulsion"]["sigma"][i] for i, (a, b) in enumerate(p["repulsion"]["index"]) if (a < 5) != (b < 5)) > 13.0
    e, f = prior_energy(p, x[:4]), prior_forces(p, x[:4])
    assert e.shape == (4,) and f.shape == (4, 9, 3) and np.isfinite(e).all() and np.isfinite(f).all()
    assert np.abs(f).max() > 0
    # forces are -dE/dR (central differences on one coordinate of each chain)
    h = 1e-5
    for i in (2, 7):
        xp, xm = x[0].copy(), x[0].copy()
        xp[i, 1] += h
        xm[i, 1] -= h
        assert f[0, i, 1] == pytest.approx(-(prior_energy(p, xp) - prior_energy(p, xm)) / (2 * h), rel=1e-5, abs=1e-6)
    mod = PriorEnergy.from_params(json.loads(json.dumps(p)))
    assert mod.params() == p
    # the chain's own bonds give exactly the default fit (only the fit record says how)
    y = random_chain(7, F=100, seed=21)
    q0, q1 = fit_priors(y, T), fit_priors(y, T, bonds=[(i + 1, i) for i in range(6)])
    assert q1["fit"].pop("graph") == "bonds" and q1 == q0


def test_fit_priors_terms_and_empty_kinds():
    x, bonds = two_chains(F=100)
    with pytest.warns(UserWarning, match="mirror-symmetric"):
        p = fit_priors(x, T, bonds=bonds, terms=["angles", "bonds"])
    assert p["fit"]["terms"] == ["bonds", "angles"]
    assert p["dihedrals"] == {"index": [], "a": [], "b": []}
    assert p["repulsion"]["index"] == [] and p["repulsion"]["sigma"] == [] and p["repulsion"]["epsilon"] == []
    assert len(p["bonds"]["index"]) == 7 and len(p["angles"]["index"]) == 5
    mod = PriorEnergy.from_params(p)
    terms = mod.energy_terms(x[:3])
    assert float(terms["dihedrals"].abs().max()) == 0 and float(terms["repulsion"].abs().max()) == 0
    assert float(terms["bonds"].min()) > 0 and np.isfinite(prior_forces(p, x[:3])).all()
    assert PriorEnergy.from_params(json.loads(json.dumps(mod.params()))).params() == mod.params()
    # repulsion only (no bonded terms); and nothing at all: zero energy and forces
    r = fit_priors(x, T, bonds=bonds, terms=("repulsion", "dihedrals"))
    assert r["bonds"]["index"] == [] and r["angles"]["index"] == [] and len(r["repulsion"]["index"]) == 24
    assert np.isfinite(prior_energy(r, x[:3])).all()
    with pytest.warns(UserWarning):
        z = fit_priors(x, T, bonds=bonds, terms=())
    assert np.array_equal(prior_energy(z, x[:3]), np.zeros(3)) and np.array_equal(prior_forces(z, x[:3]), np.zeros((3, 9, 3)))


def test_chirality_warning_and_is_reflection_odd():
    x = random_chain(6, F=100, seed=22)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = fit_priors(x, T)
    assert is_reflection_odd(p) and is_reflection_odd(PriorEnergy.from_params(p))
    with pytest.warns(UserWarning, match=r"'dihedrals' is not in terms.*mirror-symmetric"):
        even = fit_priors(x, T, terms=("bonds", "angles", "repulsion"))
    assert not is_reflection_odd(even)
    with pytest.warns(UserWarning, match=r"3 dihedrals.*n_fourier = 0.*mirror-symmetric"):
        f0 = fit_priors(x, T, n_fourier=0)
    assert not is_reflection_odd(f0) and len(f0["dihedrals"]["index"]) == 3
    # cosine parts only are reflection-even too
    cos_only = {**p, "dihedrals": {**p["dihedrals"], "b": np.zeros((3, 3)).tolist()}}
    assert not is_reflection_odd(cos_only)
    # no dihedral in the graph (chains of 3 beads): nothing to lose, no warning
    y = np.concatenate([random_chain(3, F=50, seed=23), random_chain(3, F=50, seed=24) + 9.0], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = fit_priors(y, T, bonds=[(0, 1), (1, 2), (3, 4), (4, 5)], terms=("bonds", "angles", "repulsion"))
    assert q["dihedrals"]["index"] == [] and not is_reflection_odd(q)


def test_graph_and_terms_errors():
    x, bonds = two_chains(F=10)
    with pytest.raises(ValueError, match=r"bond 1 \(3, 9\).*out of range 0..8"):
        fit_priors(x, T, bonds=[(0, 1), (3, 9)])
    with pytest.raises(ValueError, match="out of range"):
        graph_indices(9, [(-1, 2)])
    with pytest.raises(ValueError, match=r"bond 0 \(4, 4\) is a self-bond"):
        fit_priors(x, T, bonds=[(4, 4), (0, 1)])
    with pytest.raises(ValueError, match=r"shape \(m, 2\)"):
        graph_indices(9, [(0, 1, 2)])
    with pytest.raises(ValueError, match="integer"):
        graph_indices(9, [(0, 1.5)])
    with pytest.raises(ValueError, match=r"unknown prior term\(s\) \['dihedral'\]"):
        fit_priors(x, T, bonds=bonds, terms=("bonds", "dihedral"))
    with pytest.raises(ValueError, match="not the string"):
        fit_priors(x, T, terms="bonds")
    with pytest.raises(ValueError, match="min_separation"):
        graph_indices(9, bonds, min_separation=0)
    with pytest.raises(ValueError, match="n_beads"):
        graph_indices(0, [])
    with pytest.raises(ValueError, match="at least 2 beads"):
        fit_priors(x[:, :1], T, bonds=[])
    assert graph_indices(9, np.array([(0, 1.0)]))["bonds"].tolist() == [[0, 1]]  # integral floats are bead indices
