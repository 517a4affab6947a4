"""Protein observables (cgexplain.analysis.protein): the maths against brute force and independent
implementations (numpy Kabsch, MDAnalysis soft_cut_q, mdtraj dihedrals), TICA on a synthetic
slow process, and the comparison numbers."""

from pathlib import Path

import numpy as np
import pytest

from cgexplain.analysis import protein as P
from cgexplain.plots import protein as PP
from cgexplain.units import KB_KCAL

ROOT = Path(__file__).resolve().parents[1]
NTL9_CANDIDATES = [ROOT / "systems" / "ntl9" / "ntl9_k12m.pdb", Path("/work/shared/data/ntl9/ntl9_k12m.pdb")]


def helix(n=24, noise=0.3, seed=0):
    """An α-helix-like Cα trace (radius 2.3 Å, rise 1.5 Å, 100° per residue) with small noise:
    chiral, compact, with i,i+4 contacts near 6.2 Å."""
    k = np.arange(n)
    t = np.radians(100.0) * k
    x = np.stack([2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * k], axis=1)
    return x + np.random.default_rng(seed).normal(0, noise, x.shape)


def rotations(n, seed=0):
    from scipy.spatial.transform import Rotation

    return Rotation.random(n, random_state=seed).as_matrix()


def mdtraj_rmsd(y, x):
    """mdtraj's QCP RMSD (independent implementation, single precision), Å."""
    import mdtraj as md

    top = md.Topology()
    ch = top.add_chain()
    for _ in range(x.shape[0]):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", ch))
    return md.rmsd(md.Trajectory(y / 10.0, top), md.Trajectory(x[None] / 10.0, top)) * 10.0


# ------------------------------------------------------------------------------ RMSD
def test_rmsd_zero_for_native_and_invariant_under_rigid_motion():
    x = helix()
    rng = np.random.default_rng(1)
    y = x[None] + rng.normal(0, 0.8, (6, *x.shape))
    base = P.ca_rmsd(y, x)
    assert P.ca_rmsd(x, x) == pytest.approx([0.0], abs=1e-10)
    moved = np.einsum("fij,fnj->fni", rotations(6), y) + rng.normal(0, 20.0, (6, 1, 3))
    np.testing.assert_allclose(P.ca_rmsd(moved, x), base, atol=1e-10)
    np.testing.assert_allclose(P.ca_rmsd(np.einsum("fij,nj->fni", rotations(4, 3), x) + 5.0, x), 0.0, atol=1e-10)
    # moving the reference rigidly changes nothing either
    np.testing.assert_allclose(P.ca_rmsd(y, x @ rotations(1, 5)[0].T - 7.0), base, atol=1e-10)
    assert (base > 0.5).all()
    np.testing.assert_allclose(P.ca_rmsd(y, x, chunk=4), base, rtol=1e-12)  # chunk boundaries


def test_rmsd_exact_for_uniform_scaling():
    """y = c + s (x − c): the optimal rotation is the identity (H = s Xᵀ X is symmetric PSD), so
    RMSD = |s − 1| · Rg (equal weights)."""
    x = helix(30, noise=0.5)
    rg = np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean())
    for s in (0.8, 0.999, 1.001, 1.05, 1.3):
        y = x.mean(0) + s * (x - x.mean(0))
        assert P.ca_rmsd(y, x)[0] == pytest.approx(abs(s - 1) * rg, rel=1e-9)


def test_rmsd_equals_mdtraj_qcp_and_excludes_reflections():
    x = helix() + 30.0
    rng = np.random.default_rng(2)
    y = x[None] + rng.normal(0, 1.5, (10, *x.shape))
    y = np.concatenate([y, x[None] * np.array([1.0, 1.0, -1.0])])  # last frame: the mirror image
    got = P.ca_rmsd(y, x)
    np.testing.assert_allclose(got, mdtraj_rmsd(y, x), atol=1e-3)  # mdtraj works in float32
    assert got[-1] > 1.0  # a chiral helix cannot be superposed on its mirror image by a rotation


def test_rmsd_shape_errors():
    with pytest.raises(ValueError):
        P.ca_rmsd(np.zeros((2, 5, 3)), np.zeros((4, 3)))


# ------------------------------------------------------------------------------ Q
def test_native_contacts_match_brute_force():
    x = helix(20)
    pairs, r0 = P.native_contacts(x, cutoff=8.0, min_separation=3)
    want = [(i, j) for i in range(20) for j in range(i + 4, 20) if np.linalg.norm(x[i] - x[j]) < 8.0]
    assert [tuple(p) for p in pairs] == want
    np.testing.assert_allclose(r0, [np.linalg.norm(x[i] - x[j]) for i, j in want])
    assert (pairs[:, 1] - pairs[:, 0] > 3).all()
    with pytest.raises(ValueError):
        P.native_contacts(x, cutoff=1.0)


def test_q_native_exact_expansion_monotone_and_rotation_invariant():
    x = helix(24)
    pairs, r0 = P.native_contacts(x)
    q0 = P.fraction_native_contacts(x, pairs, r0)[0]
    assert q0 == pytest.approx(np.mean(1.0 / (1.0 + np.exp(-5.0 * (1.5 - 1.0) * r0))), rel=1e-12)
    assert 0.99 < q0 < 1.0
    scales = np.linspace(1.0, 3.0, 21)
    frames = x.mean(0) + scales[:, None, None] * (x - x.mean(0))
    q = P.fraction_native_contacts(frames, pairs, r0)
    assert (np.diff(q) < 0).all() and q[-1] < 0.01
    rng = np.random.default_rng(3)
    y = x[None] + rng.normal(0, 1.0, (5, *x.shape))
    moved = np.einsum("fij,fnj->fni", rotations(5, 7), y) + 11.0
    np.testing.assert_allclose(P.fraction_native_contacts(moved, pairs, r0), P.fraction_native_contacts(y, pairs, r0), atol=1e-12)


def test_q_equals_mdanalysis_soft_cut_q():
    from MDAnalysis.analysis.contacts import soft_cut_q

    x = helix(24)
    pairs, r0 = P.native_contacts(x)
    y = x + np.random.default_rng(4).normal(0, 1.5, x.shape)
    r = np.linalg.norm(y[pairs[:, 0]] - y[pairs[:, 1]], axis=1)
    assert P.fraction_native_contacts(y, pairs, r0)[0] == pytest.approx(soft_cut_q(r, r0, beta=5.0, lambda_constant=1.5), rel=1e-10)


# ------------------------------------------------------------------------------ Rg, internal coordinates
def test_radius_of_gyration_brute_force():
    rng = np.random.default_rng(5)
    y = rng.normal(0, 5.0, (4, 9, 3))
    m = rng.uniform(50, 200, 9)
    for masses, w in ((None, np.ones(9)), (m, m)):
        want = []
        for f in y:
            com = sum(w[k] * f[k] for k in range(9)) / w.sum()
            want.append(np.sqrt(sum(w[k] * np.dot(f[k] - com, f[k] - com) for k in range(9)) / w.sum()))
        np.testing.assert_allclose(P.radius_of_gyration(y, masses), want, rtol=1e-12)
    with pytest.raises(ValueError):
        P.radius_of_gyration(y, m[:3])


def test_bonds_angles_dihedrals():
    import mdtraj as md

    rng = np.random.default_rng(6)
    y = helix(12)[None] + rng.normal(0, 1.0, (3, 12, 3))
    b, a, d = P.bond_lengths(y), P.bond_angles(y), P.dihedrals(y)
    assert b.shape == (3, 11) and a.shape == (3, 10) and d.shape == (3, 9)
    for f in range(3):
        for i in range(11):
            assert b[f, i] == pytest.approx(np.linalg.norm(y[f, i + 1] - y[f, i]))
        for i in range(10):
            u, v = y[f, i] - y[f, i + 1], y[f, i + 2] - y[f, i + 1]
            assert a[f, i] == pytest.approx(np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v))), abs=1e-9)
    top = md.Topology()
    ch = top.add_chain()
    for _ in range(12):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", ch))
    quads = np.array([[i, i + 1, i + 2, i + 3] for i in range(9)])
    want = np.degrees(md.compute_dihedrals(md.Trajectory(y / 10.0, top), quads, periodic=False))
    np.testing.assert_allclose(d, want, atol=1e-3)
    # hand-made cases: cis 0°, trans 180°, and the IUPAC sign (clockwise seen along b→c is +)
    cis = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1], [1, 0, 1]])
    trans = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1], [-1, 0, 1]])
    plus90 = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 1]])
    assert P.dihedrals(cis)[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert abs(P.dihedrals(trans)[0, 0]) == pytest.approx(180.0)
    assert P.dihedrals(plus90)[0, 0] == pytest.approx(90.0)
    assert P.dihedrals(plus90 * np.array([1.0, -1.0, 1.0]))[0, 0] == pytest.approx(-90.0)
    # α-helix geometry gives the textbook Cα virtual angles (~90°) and positive dihedrals (~50°)
    h = helix(12, noise=0.0)
    assert np.all((P.bond_angles(h) > 80) & (P.bond_angles(h) < 100))
    assert np.all((P.dihedrals(h) > 40) & (P.dihedrals(h) < 60))


# ------------------------------------------------------------------------------ secondary structure
def test_ss_segments_naming_and_element_of():
    codes = "CCEEEECCCHHHHHHCCEBEECCHHHHC"
    segs = P.ss_segments(codes)
    assert [s["name"] for s in segs] == ["N-term", "β1", "loop1", "α1", "loop2", "β2", "loop3", "α2", "C-term"]
    # every residue exactly once, in order
    assert segs[0]["start"] == 1 and segs[-1]["end"] == len(codes)
    assert all(a["end"] + 1 == b["start"] for a, b in zip(segs, segs[1:]))
    # 'B' counts as coil, and the one-residue 'E' at 18 is below min_length=2: loop2 is 16-19
    assert segs[5] == {"name": "β2", "kind": "E", "start": 20, "end": 21}
    assert P.element_of(3, segs) == "β1" and P.element_of(12, segs) == "α1" and P.element_of(28, segs) == "C-term"
    assert [s["name"] for s in P.ss_segments("EEECEC", min_length=1)] == ["β1", "loop1", "β2", "C-term"]
    assert P.ss_segments("CCC") == [{"name": "coil", "kind": "C", "start": 1, "end": 3}]
    with pytest.raises(ValueError):
        P.element_of(99, segs)


def test_secondary_structure_ntl9():
    pdb = next((p for p in NTL9_CANDIDATES if p.exists()), None)
    if pdb is None:
        pytest.skip("NTL9 structure not available")
    codes = P.secondary_structure(pdb)
    assert len(codes) == 39  # the NHE cap is dropped
    assert "".join(codes) == "CEEEECCCCCCCCCCCCEEECCHHHHHHHHHHHCCEEEC"
    segs = {s["name"]: (s["start"], s["end"]) for s in P.ss_segments(codes)}
    assert segs == {
        "N-term": (1, 1),
        "β1": (2, 5),
        "loop1": (6, 17),
        "β2": (18, 20),
        "loop2": (21, 22),
        "α1": (23, 33),
        "loop3": (34, 35),
        "β3": (36, 38),
        "C-term": (39, 39),
    }


# ------------------------------------------------------------------------------ TICA, FES
def two_state_runs(n_runs=2, T=20000, seed=0):
    """A slow two-state jump process (switch probability 0.003 per step) plus fast noise of larger
    variance, mixed by a random rotation so no feature is the slow coordinate by itself."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    runs, slow = [], []
    for _ in range(n_runs):
        flips = rng.random(T) < 0.003
        s = np.where(np.cumsum(flips) % 2 == 0, 1.0, -1.0) * rng.choice([-1.0, 1.0])
        raw = np.column_stack([s + 0.3 * rng.normal(size=T), 2.0 * rng.normal(size=(T, 5))])
        runs.append(raw @ q.T)
        slow.append(s)
    return runs, slow


def test_tica_recovers_slow_coordinate():
    runs, slow = two_state_runs()
    model = P.tica_fit(runs, lagtime=10, dim=2)
    proj = P.tica_project(model, runs)
    assert isinstance(proj, list) and proj[0].shape == (20000, 2)
    ic1, s = np.concatenate([p[:, 0] for p in proj]), np.concatenate(slow)
    assert abs(np.corrcoef(ic1, s)[0, 1]) > 0.9
    # the slow coordinate is not the direction of largest variance (PCA would miss it)
    x = np.concatenate(runs)
    pc1 = np.linalg.eigh(np.cov(x.T))[1][:, -1]
    assert abs(np.corrcoef(x @ pc1, s)[0, 1]) < 0.5
    # a single array is accepted as well and projects to an array
    single = P.tica_project(model, runs[0])
    np.testing.assert_allclose(single, proj[0])


def test_tica_list_has_no_pairs_across_runs():
    """Fitting a list of runs equals fitting the explicit per-run time-lagged pairs, and differs
    from fitting the runs glued together."""
    from deeptime.decomposition import TICA

    runs, _ = two_state_runs(n_runs=3, T=400, seed=1)
    lag = 7
    pairs = (np.concatenate([r[:-lag] for r in runs]), np.concatenate([r[lag:] for r in runs]))
    explicit = TICA(lagtime=lag, dim=2).fit(pairs).fetch_model()
    model = P.tica_fit(runs, lagtime=lag, dim=2)
    x = np.concatenate(runs)
    np.testing.assert_allclose(model.transform(x), explicit.transform(x), rtol=1e-8, atol=1e-8)
    glued = P.tica_fit(x, lagtime=lag, dim=2)
    assert not np.allclose(glued.transform(x), explicit.transform(x))
    with pytest.raises(ValueError):
        P.tica_fit([runs[0], runs[1][:lag]], lagtime=lag)


def test_tica_features():
    rng = np.random.default_rng(8)
    y = rng.normal(0, 5.0, (3, 8, 3))
    f = P.tica_features(y)
    i, j = np.triu_indices(8, 3)
    assert f.shape == (3, len(i)) and len(i) == (8 - 3) * (8 - 2) // 2
    np.testing.assert_allclose(f, np.linalg.norm(y[:, i] - y[:, j], axis=2), rtol=1e-6)
    np.testing.assert_allclose(P.tica_features(y, inverse=True), 1.0 / f, rtol=1e-6)


def test_free_energy_surface():
    rng = np.random.default_rng(9)
    proj = rng.normal(size=(5000, 2))
    T = 300.0
    xe, ye, F = P.free_energy_surface([proj[:2000], proj[2000:]], T, bins=20, range=[[-4, 4], [-4, 4]])
    assert F.shape == (20, 20) and len(xe) == len(ye) == 21
    assert np.nanmin(F) == 0.0 and np.isinf(F).any()
    h = np.histogram2d(proj[:, 0], proj[:, 1], bins=20, range=[[-4, 4], [-4, 4]])[0]
    ok = h > 0
    np.testing.assert_allclose(F[ok], -KB_KCAL * T * np.log(h[ok] / h.max()), atol=1e-12)
    assert np.all(np.isinf(F[~ok]) & (F[~ok] > 0))


# ------------------------------------------------------------------------------ comparison, plots
def ensembles():
    x = helix(16)
    rng = np.random.default_rng(10)
    ref = x[None] + rng.normal(0, 0.7, (200, *x.shape))
    cg = 1.2 * (x[None] + rng.normal(0, 0.7, (150, *x.shape)))
    pairs, r0 = P.native_contacts(x)
    return x, pairs, r0, P.protein_observables(ref, x, pairs, r0), P.protein_observables(cg, x, pairs, r0)


def test_protein_observables_and_compare():
    x, pairs, r0, ref, cg = ensembles()
    assert {k: v.shape for k, v in ref.items()} == {
        "rmsd": (200,),
        "q": (200,),
        "rg": (200,),
        "bonds": (200, 15),
        "angles": (200, 14),
        "dihedrals": (200, 13),
    }
    same = P.compare_protein(ref, ref)
    for key in ("rmsd", "q", "rg", "bond", "angle", "dihedral"):
        assert same[f"{key}_js_distance"] == pytest.approx(0.0, abs=1e-7)
    for key, unit in (("rmsd", "_A"), ("q", ""), ("rg", "_A")):
        assert same[f"{key}_mean_reference{unit}"] == same[f"{key}_mean_cg{unit}"] == pytest.approx(np.mean(ref[key]))
    assert same["fraction_rmsd_le_3A_reference"] == same["fraction_rmsd_le_3A_cg"] == np.mean(ref["rmsd"] <= 3.0)
    diff = P.compare_protein(ref, cg)
    assert 0.0 < diff["rmsd_js_distance"] <= 1.0 and diff["rg_mean_cg_A"] > diff["rg_mean_reference_A"]
    # an outlier far outside the reference range falls into the overflow bin instead of
    # squeezing all reference values into one bin
    cg_bad = dict(ref, bonds=np.concatenate([ref["bonds"], [[1e4] * 15]]))
    assert P.compare_protein(ref, cg_bad)["bond_js_distance"] < 0.1
    shifted = dict(ref, rg=ref["rg"] + 100.0)
    assert P.compare_protein(ref, shifted)["rg_js_distance"] == pytest.approx(1.0)


def test_plots(tmp_path):
    x, pairs, r0, ref, cg = ensembles()
    PP.plot_protein_distributions(ref, cg, tmp_path / "obs.png")
    PP.plot_internal_distributions(ref, cg, tmp_path / "internal.png")
    proj = np.random.default_rng(11).normal(size=(500, 2))
    fes = P.free_energy_surface(proj, 300.0, bins=15, range=[[-3, 3], [-3, 3]])
    fig = PP.plot_tica_fes(fes, fes, tmp_path / "fes.png")
    meshes = [c for ax in fig.axes[:2] for c in ax.collections]
    assert len(meshes) == 2 and meshes[0].get_clim() == meshes[1].get_clim()
    assert all((tmp_path / n).stat().st_size > 0 for n in ("obs.png", "internal.png", "fes.png"))
    assert not list(tmp_path.glob(".*tmp*"))
