import numpy as np
import pytest

from cgexplain.mapping.maps import (
    MappingError,
    load_universe,
    make_mapping,
    map_positions,
    map_universe,
    validate_groups,
    write_cg_dataset,
    write_cg_topology,
)
from conftest import water_universe


def test_force_map_consistency_and_sum():
    u = water_universe()
    m = make_mapping(u, by="residue", method="com")
    # Noid consistency condition D C^T = 1 for non-overlapping beads
    np.testing.assert_allclose((m.force_map @ m.position_map.T).toarray(), np.eye(m.n_beads), atol=1e-12)
    f = np.random.default_rng(0).normal(size=(m.n_atoms, 3))
    np.testing.assert_allclose((m.force_map @ f).sum(0), f.sum(0), atol=1e-12)


def test_constraint_forces_cancel():
    """Internal (constraint-like) pair forces within a molecule map to zero bead force."""
    u = water_universe()
    m = make_mapping(u, by="residue")
    x = u.atoms.positions.astype(float)
    f = np.zeros_like(x)
    for r in range(m.n_beads):
        o, h1, h2 = 3 * r, 3 * r + 1, 3 * r + 2
        for a, b, k in ((o, h1, 2.0), (o, h2, -1.3), (h1, h2, 0.7)):
            fab = k * (x[b] - x[a])
            f[a] += fab
            f[b] -= fab
    np.testing.assert_allclose(m.force_map @ f, 0.0, atol=1e-10)


@pytest.mark.parametrize("method", ["com", "cog"])
def test_rigid_translation_and_pbc(method):
    u = water_universe()
    m = make_mapping(u, by="residue", method=method)
    x = u.atoms.positions.astype(float)
    box = np.array([8.0, 8, 8, 90, 90, 90])
    R = map_positions(x, m, box)
    shift = np.array([0.3, -1.1, 2.5])
    np.testing.assert_allclose(map_positions(x + shift, m, box), R + shift, atol=1e-5)
    # wrapping one atom into the other side of the box does not move its bead
    xw = x.copy()
    xw[1] += np.array([8.0, 0, 0])
    np.testing.assert_allclose(map_positions(xw, m, box), R, atol=1e-4)
    if method == "com":
        mass = u.atoms.masses
        np.testing.assert_allclose(R[0], (mass[:3, None] * x[:3]).sum(0) / mass[:3].sum(), atol=1e-5)


def test_single_atom_map():
    u = water_universe()
    m = make_mapping(u, by="residue", method="atom", atom_name="O")
    x = u.atoms.positions.astype(float)
    np.testing.assert_allclose(map_positions(x, m), x[::3], atol=1e-6)
    np.testing.assert_allclose((m.force_map @ m.position_map.T).toarray(), np.eye(m.n_beads))


def test_map_universe_units_and_roundtrip(small_water, tmp_path):
    u = load_universe(small_water["pdb"], small_water["trr"])
    m = make_mapping(u, by="residue")
    t = map_universe(u, m, progress=False)
    # forces written in kcal/mol/Å come back in kcal/mol/Å after TRR's unit conversions
    expect = small_water["forces"].reshape(3, 4, 3, 3).sum(2)
    np.testing.assert_allclose(t.forces, expect, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(t.cells[0], np.eye(3) * 8.0, atol=1e-4)
    t.save(tmp_path / "m.npz")
    t2 = type(t).load(tmp_path / "m.npz")
    np.testing.assert_array_equal(t2.forces, t.forces)
    db = write_cg_dataset(tmp_path / "cg.db", t, progress=False)
    assert len(db) == 3
    props = db[1]
    np.testing.assert_allclose(props["forces"].numpy(), t.forces[1], atol=1e-5)
    np.testing.assert_allclose(props["_cell"].numpy().reshape(3, 3), t.cells[1], atol=1e-5)
    assert bool(props["_pbc"].all())
    write_cg_topology(tmp_path / "cg.pdb", m, t.positions[0], t.cells[0])
    import MDAnalysis as mda

    cu = mda.Universe(str(tmp_path / "cg.pdb"))
    assert cu.atoms.n_atoms == 4
    np.testing.assert_allclose(cu.dimensions[:3], 8.0, atol=1e-3)


def test_bad_input_no_forces(tmp_path):
    import MDAnalysis as mda

    u = water_universe()
    u.atoms.write(str(tmp_path / "w.pdb"))
    with mda.Writer(str(tmp_path / "w.dcd"), n_atoms=u.atoms.n_atoms) as w:
        w.write(u.atoms)
    with pytest.raises(MappingError, match="no forces"):
        load_universe(tmp_path / "w.pdb", tmp_path / "w.dcd")


def test_bad_input_atom_count(small_water, tmp_path):
    u = water_universe(n_mol=3)
    u.atoms.write(str(tmp_path / "small.pdb"))
    with pytest.raises(MappingError, match="atom counts differ"):
        load_universe(tmp_path / "small.pdb", small_water["trr"])


def test_bad_input_nan(small_water, tmp_path):
    from cgexplain.reference.fluids import write_trajectory_with_forces

    pos = small_water["positions"].copy()
    pos[2, 5, 1] = np.nan
    write_trajectory_with_forces(small_water["pdb"], tmp_path / "nan.trr", pos, small_water["forces"], small_water["cells"], 0.1)
    u = load_universe(small_water["pdb"], tmp_path / "nan.trr")
    m = make_mapping(u, by="residue")
    with pytest.raises(MappingError, match=r"frame 2 has NaN/inf coordinates \(atom 5"):
        map_universe(u, m, progress=False)


def test_bad_groups():
    with pytest.raises(MappingError, match="in no bead; the first is atom 2"):
        validate_groups([[0, 1], [3]], 4)
    with pytest.raises(MappingError, match="atom 1 is in two beads"):
        validate_groups([[0, 1], [1, 2, 3]], 4)
    u = water_universe()
    with pytest.raises(MappingError, match="in no bead"):
        make_mapping(u, groups=[[0, 1, 2], [3, 4, 5]])
    with pytest.raises(MappingError, match="needs bonds"):
        make_mapping(u, by="fragment")
