"""Mapping of real files written by GROMACS (MDAnalysisTests cobrotoxin: a protein in TIP4P water
with forces): selections with the solvent integrated out, constraint groups, virtual sites,
sparse against dense maps, and each bad input with its named error."""

from __future__ import annotations

import numpy as np
import pytest

from cgexplain.mapping.maps import MappingError, check_constraint_groups, constrained_bonds, load_universe, make_mapping, map_positions, map_universe

mdat = pytest.importorskip("MDAnalysisTests.datafiles")


@pytest.fixture(scope="module")
def cobro():
    return load_universe(mdat.TPR_xvf, mdat.TRR_xvf)


def _constraint_forces(u, bonds, seed=0):
    """Equal and opposite forces λ_k (r_a − r_b) on the atoms of each constrained bond (what a
    SHAKE/SETTLE/LINCS constraint adds), random λ."""
    x = u.atoms.positions.astype(np.float64)
    lam = np.random.default_rng(seed).normal(size=len(bonds))
    f = np.zeros_like(x)
    d = x[bonds[:, 0]] - x[bonds[:, 1]]
    np.add.at(f, bonds[:, 0], lam[:, None] * d)
    np.add.at(f, bonds[:, 1], -lam[:, None] * d)
    return f


def test_solvent_integrated_out_consistency_and_constraint_cancellation(cobro):
    """Protein CA beads: D Cᵀ = 1 over the beads, the solvent's columns are zero, and random
    constraint forces on every constrained group (X–H bonds inside residues; rigid waters wholly
    outside the selection) give zero mapped force."""
    m = make_mapping(cobro, by="residue", method="atom", atom_name="CA", type_table="amino_acids", selection="protein")
    assert m.n_beads == 62 and m.n_atoms == 19385
    np.testing.assert_allclose((m.force_map @ m.position_map.T).toarray(), np.eye(62), atol=1e-12)
    solvent = cobro.select_atoms("not protein").indices
    assert m.force_map[:, solvent].nnz == 0 and m.position_map[:, solvent].nnz == 0
    bonds, note = constrained_bonds(cobro, "h-bonds")
    water = np.isin(cobro.atoms.resnames[bonds[:, 0]], ["SOL"])
    assert water.sum() > 1000 and (~water).sum() > 400  # both kinds of group are there
    f = _constraint_forces(cobro, bonds)
    assert np.abs(f).max() > 1.0
    np.testing.assert_allclose(m.force_map @ f, 0.0, atol=1e-9)
    # a force on a solvent atom does not reach any bead; one on a protein atom reaches its residue's bead only
    g = np.zeros((cobro.atoms.n_atoms, 3))
    g[solvent[5]] = [1.0, 2.0, 3.0]
    assert np.abs(m.force_map @ g).max() == 0
    g[:] = 0
    i = cobro.select_atoms("protein and resid 10").indices[2]
    g[i] = [1.0, 0, 0]
    assert np.flatnonzero(np.abs(m.force_map @ g).sum(1)).tolist() == [int(np.flatnonzero([i in b for b in m.bead_atoms])[0])]


def test_split_constrained_groups_are_refused(cobro):
    """Half a water selected, or an X–H bond cut by a bead boundary: a named error (the constraint
    force would stay in the mapped force)."""
    with pytest.raises(MappingError, match=r"constrained bond .*OW SOL.*HW1 SOL.*outside the selection"):
        make_mapping(cobro, by="residue", method="com", selection="protein or name OW")
    # one bead per heavy atom with its hydrogens elsewhere: every X–H bond split
    prot = cobro.select_atoms("protein")
    groups = [[int(a.index)] for a in prot]
    with pytest.raises(MappingError, match=r"constrained bond .* has one atom in bead \d+ and the other in bead \d+"):
        make_mapping(cobro, groups=groups, method="cog", selection="protein")
    # declared as unconstrained, the same mapping is accepted
    assert make_mapping(cobro, groups=groups, method="cog", selection="protein", constraints="none").n_beads == prot.n_atoms
    note = check_constraint_groups(cobro, [r.atoms.indices for r in prot.residues], "h-bonds", "protein")
    assert "none split" in note


def test_virtual_sites_weight_zero_and_massless_bead_refused(cobro):
    """TIP4P: the M site (mass 0) gets weight 0 in the centre of mass of its water; GROMACS writes
    its force as 0 (spread onto O, H, H before output). A bead of massless atoms only is an error."""
    w = cobro.select_atoms("resname SOL").residues[:20]
    sel = "resname SOL and resid " + " ".join(str(r.resid) for r in w)
    m = make_mapping(cobro, by="residue", method="com", selection=sel)
    assert m.n_beads == 20
    mw = cobro.select_atoms("name MW").indices
    assert np.all(cobro.atoms.masses[mw] == 0)
    assert m.position_map[:, mw].sum() == 0
    r = w[0].atoms
    heavy = r[r.masses > 0]
    x = cobro.atoms.positions.astype(float)
    np.testing.assert_allclose(map_positions(x, m)[0], (heavy.masses[:, None] * heavy.positions).sum(0) / heavy.masses.sum(), atol=1e-4)
    assert np.abs(cobro.atoms.forces[mw]).max() == 0  # what GROMACS writes for a virtual site
    with pytest.raises(MappingError, match="total mass 0"):
        make_mapping(cobro, by="residue", method="com", selection="name MW")


def test_sparse_maps_equal_dense(cobro):
    """The CSR maps against dense ones built from bead_atoms and masses, on every frame."""
    m = make_mapping(cobro, by="residue", method="com", type_table="amino_acids", selection="protein")
    C = np.zeros((m.n_beads, m.n_atoms))
    D = np.zeros_like(C)
    mass = cobro.atoms.masses
    for b, g in enumerate(m.bead_atoms):
        C[b, g] = mass[g] / mass[g].sum()
        D[b, g] = 1.0
    np.testing.assert_allclose(m.position_map.toarray(), C, atol=1e-14)
    np.testing.assert_allclose(m.force_map.toarray(), D, atol=0)
    t = map_universe(cobro, m, progress=False)
    for k, ts in enumerate(cobro.trajectory):
        np.testing.assert_allclose(t.forces[k], D @ ts.forces.astype(float) / 4.184, rtol=1e-5, atol=1e-4)
        # residues are whole in this file: the minimum-image map equals the plain dense product
        np.testing.assert_allclose(t.positions[k], C @ ts.positions.astype(float), atol=2e-3)
    assert m.position_map.nnz == sum(len(g) for g in m.bead_atoms)  # O(atoms) memory, not O(beads × atoms)


def test_bad_inputs_name_the_problem(cobro, tmp_path):
    with pytest.raises(MappingError, match="no such file"):
        load_universe(tmp_path / "missing.tpr", mdat.TRR_xvf)
    with pytest.raises(MappingError, match="no forces"):
        load_universe(mdat.TPR_xvf, mdat.XTC_sub_sol)  # XTC holds positions only
    with pytest.raises(MappingError, match="atom counts differ"):
        load_universe(mdat.PFncdf_Top, mdat.TRR_xvf)
    with pytest.raises(MappingError, match="selects no atoms"):
        make_mapping(cobro, by="residue", selection="resname XYZ")
    with pytest.raises(MappingError, match="not a valid MDAnalysis selection"):
        make_mapping(cobro, by="residue", selection="protein and (")


def test_declared_units_and_their_sanity_check():
    """The raw TRR (nm, kJ/mol/nm, read unconverted) declared as Å and kcal/mol/Å: absurd forces, a
    named error; declared right: the same numbers as MDAnalysis's own conversion."""
    u = load_universe(mdat.TPR_xvf, mdat.TRR_xvf, convert_units=False)
    m = make_mapping(u, by="residue", method="atom", atom_name="CA", selection="protein")
    with pytest.raises(MappingError, match=r"cobrotoxin.trr: frame 0: the mean \|force component\| .* the declared units are probably wrong"):
        map_universe(u, m, progress=False, length_unit="A", force_unit="kcal/mol/A")
    u = load_universe(mdat.TPR_xvf, mdat.TRR_xvf, convert_units=False)  # MDAnalysis closes a reader left by an exception
    t = map_universe(u, m, progress=False, length_unit="nm", force_unit="kJ/mol/nm")
    u2 = load_universe(mdat.TPR_xvf, mdat.TRR_xvf)
    ref = map_universe(u2, make_mapping(u2, by="residue", method="atom", atom_name="CA", selection="protein"), progress=False)
    np.testing.assert_allclose(t.forces, ref.forces, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(t.positions, ref.positions, atol=1e-3)


def test_two_chains_keep_their_break(tmp_path):
    """Two copies of the AMBER protein as chains A and B: CG bonds only inside each chain, the CG
    topology keeps both chain IDs and the bonds (CONECT), and the priors fitted on that bond graph
    have no bond, angle or dihedral across the chains (repulsion between them instead)."""
    import MDAnalysis as mda

    from cgexplain.mapping.maps import write_cg_topology
    from cgexplain.model.priors import fit_priors

    src = load_universe(mdat.PFncdf_Top, mdat.PFncdf_Trj)
    a, b = src.atoms, src.atoms
    u = mda.Merge(a, b)
    u.add_TopologyAttr("chainIDs", ["A"] * a.n_atoms + ["B"] * b.n_atoms)
    x = np.concatenate([a.positions, b.positions + 30.0])
    u.atoms.positions = x
    m = make_mapping(u, by="residue", method="atom", atom_name="CA", type_table="amino_acids", constraints="none")
    n1 = src.atoms.n_residues
    assert m.n_beads == 2 * n1 and sorted(set(m.chains)) == ["A", "B"]
    assert len(m.bonds) == 2 * (n1 - 1) and not any(i < n1 <= j for i, j in m.bonds.tolist())
    write_cg_topology(tmp_path / "cg.pdb", m, map_positions(x, m))
    cg = mda.Universe(str(tmp_path / "cg.pdb"))
    assert list(dict.fromkeys(cg.atoms.chainIDs)) == ["A", "B"] and len(cg.bonds) == len(m.bonds)
    pos = np.stack([map_positions(x + np.random.default_rng(k).normal(0, 0.1, x.shape), m) for k in range(6)])
    pr = fit_priors(pos, 300.0, bonds=m.bonds.tolist())
    for kind in ("bonds", "angles", "dihedrals"):
        idx = np.asarray(pr[kind]["index"])
        assert len(idx) and np.all((idx < n1).all(1) | (idx >= n1).all(1))  # never across the chains
    rep = np.asarray(pr["repulsion"]["index"])
    assert np.any((rep[:, 0] < n1) & (rep[:, 1] >= n1))


def test_lammps_dump_without_declared_force_unit_is_refused():
    """A LAMMPS dump's force unit depends on its 'units' setting, which MDAnalysis cannot know:
    without declared units a named error, not forces silently divided by 4.184."""
    with pytest.raises(MappingError, match="does not know this format's force unit"):
        load_universe(mdat.LAMMPS_image_vf, mdat.LAMMPSDUMP_image_vf, format="LAMMPSDUMP")
    u = load_universe(mdat.LAMMPS_image_vf, mdat.LAMMPSDUMP_image_vf, format="LAMMPSDUMP", convert_units=False, force_unit_declared=True)
    assert u.trajectory.ts.has_forces


def test_whole_chains_across_the_box():
    """Two chains split by the periodic boundary: each is made whole along its bonds, the second
    is placed at the minimum image of its centroid from the first's, and the box is dropped."""
    from cgexplain.mapping.maps import MappedTrajectory
    from cgexplain.workflow.sources import _whole_chains

    L = 30.0
    a = np.array([[1.0, 5, 5], [-2.8, 5, 5], [-6.6, 5, 5]]) % L  # chain A runs across x = 0
    b = np.array([[L - 12.0, 5, 5], [L - 12.0, 8.8, 5], [L - 12.0, 12.6, 5]])  # chain B: 13 Å from A's first bead, through the boundary
    x = np.concatenate([a, b])[None]
    t = MappedTrajectory(
        positions=x.astype(np.float32),
        forces=np.zeros_like(x, np.float32),
        cells=(np.eye(3) * L)[None].astype(np.float32),
        bead_types=np.ones(6, int),
        bead_masses=np.ones(6),
    )
    w = _whole_chains(t, np.array([[0, 1], [1, 2], [3, 4], [4, 5]]))
    p = w.positions[0].astype(float)
    np.testing.assert_allclose(np.linalg.norm(np.diff(p[:3], axis=0), axis=1), 3.8, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(np.diff(p[3:], axis=0), axis=1), 3.8, atol=1e-4)
    d = p[3:].mean(0) - p[:3].mean(0)
    assert np.all(np.abs(d) <= L / 2 + 1e-4) and np.abs(w.cells).sum() == 0
    np.testing.assert_allclose(np.linalg.norm(d), np.linalg.norm(np.array([-12.0 + 2.8, 3.8, 0.0])), atol=1e-3)
