"""Pre-mapped data sets (cgexplain.reference.premapped): plain arrays and mdCATH HDF5 files.

The files are built from real atomistic data: a short vacuum OpenMM run (amber14) of the bundled
NTL9 K12M (39 residues + a C-terminal amide cap, 624 atoms), with forces converted from
kJ/mol/nm. The mdCATH files follow the layout documented in the module (domain group, per-atom
datasets, ``<T>/<replica>/coords|forces|box``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from cgexplain import units
from cgexplain.aminoacids import AMINO_ACID_TYPES, CAP_RESIDUES
from cgexplain.fileio import atomic_path, save_npz
from cgexplain.mapping.maps import amino_acid_name
from cgexplain.reference.premapped import PremappedError, mdcath_info, read_arrays, read_mdcath

ROOT = Path(__file__).resolve().parents[1]
PDB = ROOT / "systems" / "ntl9" / "ntl9_k12m.pdb"
N_FRAMES = 30
DOMAIN = "9ntlA00"


@pytest.fixture(scope="module")
def atomistic():
    """A 30-frame vacuum OpenMM trajectory of NTL9 (positions Å, forces kcal/mol/Å) and its
    one-CA-bead-per-residue map computed densely from the OpenMM topology."""
    import openmm
    import openmm.app as app
    import openmm.unit as u

    pdb = app.PDBFile(str(PDB))
    ff = app.ForceField("amber14-all.xml")
    system = ff.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    integ = openmm.LangevinMiddleIntegrator(300 * u.kelvin, 1 / u.picosecond, 0.002 * u.picoseconds)
    integ.setRandomNumberSeed(7)
    sim = app.Simulation(pdb.topology, system, integ, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    sim.context.setPositions(pdb.positions)
    sim.minimizeEnergy(maxIterations=50)
    sim.context.setVelocitiesToTemperature(300 * u.kelvin, 1)
    xs, fs = [], []
    for _ in range(N_FRAMES):
        sim.step(5)
        st = sim.context.getState(getPositions=True, getForces=True)
        xs.append(st.getPositions(asNumpy=True).value_in_unit(u.nanometer))
        fs.append(st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer))
    x_a = np.asarray(xs) * units.ANGSTROM_PER_NM
    f_kcal = units.kj_nm_to_kcal_a(np.asarray(fs))

    top = pdb.topology
    atoms = list(top.atoms())
    residues = list(top.residues())
    # dense map: one bead per non-cap residue; caps join their neighbour
    bead_of_res = {}
    kept = [r for r in residues if r.name not in CAP_RESIDUES]
    for b, r in enumerate(kept):
        bead_of_res[r.index] = b
    for r in residues:
        if r.name in CAP_RESIDUES:
            bead_of_res[r.index] = bead_of_res[r.index + CAP_RESIDUES[r.name]]
    D = np.zeros((len(kept), len(atoms)))
    masses = np.zeros(len(kept))
    for a in atoms:
        b = bead_of_res[a.residue.index]
        D[b, a.index] = 1.0
        masses[b] += a.element.mass.value_in_unit(u.dalton)
    ca = np.array([next(a.index for a in r.atoms() if a.name == "CA") for r in kept])
    text = io.StringIO()
    app.PDBFile.writeFile(top, pdb.positions, text)
    return {
        "positions": x_a,
        "forces": f_kcal,
        "pdb_text": text.getvalue(),
        "z": np.array([a.element.atomic_number for a in atoms]),
        "element": [a.element.symbol for a in atoms],
        "resname": [a.residue.name for a in atoms],
        "resid": np.array([int(a.residue.id) for a in atoms]),
        "cg_positions": x_a[:, ca],
        "cg_forces": np.einsum("ba,fai->fbi", D, f_kcal),
        "cg_masses": masses,
        "owner": D.argmax(axis=0),
        "cg_names": [amino_acid_name(r.name) for r in kept],
    }


# ---------------------------------------------------------------------------------------------
# plain arrays


def test_read_arrays_npz_both_unit_systems(atomistic, tmp_path):
    x, f = atomistic["cg_positions"], atomistic["cg_forces"]
    names = np.array(atomistic["cg_names"])
    box = np.array([50.0, 50.0, 50.0])
    save_npz(tmp_path / "a.npz", positions=x, forces=f, cells=box, bead_types=names, bead_masses=atomistic["cg_masses"])
    save_npz(
        tmp_path / "nm.npz",
        positions=x / units.ANGSTROM_PER_NM,
        forces=f * units.KJ_PER_KCAL * units.ANGSTROM_PER_NM,
        cells=box / units.ANGSTROM_PER_NM,
        bead_types=np.array([AMINO_ACID_TYPES[n] for n in names]),
        bead_masses=atomistic["cg_masses"],
    )
    a, info_a = read_arrays(tmp_path / "a.npz")
    b, info_b = read_arrays(tmp_path / "nm.npz", length_unit="nm", force_unit="kJ/mol/nm")
    assert a.positions.dtype == np.float32 and a.forces.dtype == np.float32 and a.positions.shape == (N_FRAMES, 39, 3)
    np.testing.assert_allclose(a.positions, x, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(a.forces, f, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(b.positions, a.positions, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(b.forces, a.forces, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(b.cells, a.cells, rtol=1e-6)
    np.testing.assert_allclose(a.cells[3], np.diag(box))
    np.testing.assert_array_equal(a.bead_types, b.bead_types)
    assert a.bead_types[0] == AMINO_ACID_TYPES["MET"]
    np.testing.assert_allclose(a.bead_masses, atomistic["cg_masses"])
    assert info_a["notes"] == [] and info_b["mean_abs_force"] == pytest.approx(info_a["mean_abs_force"], rel=1e-6)
    assert 1.0 < info_a["mean_abs_force"] < 100.0  # residue forces of a protein, kcal/mol/Å


def test_read_arrays_npy_pair_units_slicing_defaults(atomistic, tmp_path):
    x, f = atomistic["cg_positions"], atomistic["cg_forces"]
    np.save(tmp_path / "x_nm.npy", (x / units.ANGSTROM_PER_NM).astype(np.float32))
    np.save(tmp_path / "f_kjnm.npy", (f * units.KJ_PER_KCAL * units.ANGSTROM_PER_NM).astype(np.float32))
    np.save(tmp_path / "x_a.npy", x)
    np.save(tmp_path / "f_kja.npy", f * units.KJ_PER_KCAL)
    cells = np.repeat(np.eye(3)[None] * 5.0, N_FRAMES, axis=0) * (1 + 0.01 * np.arange(N_FRAMES))[:, None, None]
    np.save(tmp_path / "cells_nm.npy", cells)
    sel = dict(start=2, stop=25, step=3)
    a, info_a = read_arrays(
        tmp_path / "x_nm.npy", tmp_path / "f_kjnm.npy", length_unit="nm", force_unit="kJ/mol/nm", cells=tmp_path / "cells_nm.npy", **sel
    )
    b, info_b = read_arrays(tmp_path / "x_a.npy", tmp_path / "f_kja.npy", length_unit="Å", force_unit="kJ/mol/Å", cells=cells * 10.0, **sel)
    frames = np.arange(2, 25, 3)
    np.testing.assert_array_equal(info_a["frames"], frames)
    np.testing.assert_allclose(a.positions, x[frames], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(a.forces, f[frames], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(b.positions, a.positions, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(b.forces, a.forces, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(a.cells, cells[frames] * 10.0, rtol=1e-6)
    np.testing.assert_allclose(b.cells, a.cells, rtol=1e-6)
    # defaults: type 1, 100 amu, recorded
    np.testing.assert_array_equal(a.bead_types, np.ones(39, int))
    np.testing.assert_array_equal(a.bead_masses, np.full(39, 100.0))
    assert any("100 amu" in n for n in info_a["notes"]) and any("type 1" in n for n in info_a["notes"])
    assert info_a["sources"]["bead_masses"] == "default"
    c, _ = read_arrays(tmp_path / "x_a.npy", tmp_path / "f_kja.npy", force_unit="kJ/mol/A", default_mass=42.0, start=-4)
    np.testing.assert_allclose(c.positions, x[-4:], rtol=1e-6, atol=1e-5)
    assert np.all(c.cells == 0) and np.all(c.bead_masses == 42.0)


def _arrays_error_cases(atomistic, tmp: Path):
    x, f = atomistic["cg_positions"], atomistic["cg_forces"]
    np.save(tmp / "x.npy", x)
    np.save(tmp / "f.npy", f)
    np.save(tmp / "f_short.npy", f[:, :-1])
    np.save(tmp / "x_rank2.npy", x[0])
    xn = x.copy()
    xn[7, 11, 1] = np.nan
    np.save(tmp / "x_nan.npy", xn)
    fi = f.copy()
    fi[4, 20, 0] = np.inf
    np.save(tmp / "f_inf.npy", fi)
    # forces in J/mol/nm declared as kJ/mol/nm: a factor 1000 too large
    np.save(tmp / "f_jnm.npy", f * units.KJ_PER_KCAL * units.ANGSTROM_PER_NM * 1000.0)
    save_npz(tmp / "noforces.npz", positions=x, cells=np.ones(3))
    return [
        ("missing npy", lambda: read_arrays(tmp / "nope.npy", tmp / "f.npy"), r"nope\.npy: no such file"),
        ("missing forces npy", lambda: read_arrays(tmp / "x.npy", tmp / "nope_f.npy"), r"nope_f\.npy: no such file \(forces\)"),
        ("npy without forces", lambda: read_arrays(tmp / "x.npy"), r"need a forces \.npy"),
        ("missing key", lambda: read_arrays(tmp / "noforces.npz"), r"noforces\.npz: no key 'forces'; the keys present are \['positions', 'cells'\]"),
        (
            "shape mismatch",
            lambda: read_arrays(tmp / "x.npy", tmp / "f_short.npy"),
            r"positions have shape \(30, 39, 3\) .*f_short\.npy: forces have shape \(30, 38, 3\)",
        ),
        ("rank", lambda: read_arrays(tmp / "x_rank2.npy", tmp / "f.npy"), r"x_rank2\.npy: positions has shape \(39, 3\) \(rank 2\)"),
        ("nan", lambda: read_arrays(tmp / "x_nan.npy", tmp / "f.npy"), r"x_nan\.npy: NaN/inf at frame 7, bead 11"),
        ("nan after start", lambda: read_arrays(tmp / "x_nan.npy", tmp / "f.npy", start=5, step=2), r"x_nan\.npy: NaN/inf at frame 7, bead 11"),
        ("inf", lambda: read_arrays(tmp / "x.npy", tmp / "f_inf.npy"), r"f_inf\.npy: NaN/inf at frame 4, bead 20"),
        ("length unit", lambda: read_arrays(tmp / "x.npy", tmp / "f.npy", length_unit="pm"), r"unknown length_unit 'pm'"),
        ("force unit", lambda: read_arrays(tmp / "x.npy", tmp / "f.npy", force_unit="eV/A"), r"unknown force_unit 'eV/A'"),
        (
            "absurd forces",
            lambda: read_arrays(tmp / "x.npy", tmp / "f_jnm.npy", force_unit="kJ/mol/nm"),
            r"mean \|F\| = [0-9.e+]+ kcal/mol/Å .*'kJ/mol/nm'.*probably wrong",
        ),
        ("no frames", lambda: read_arrays(tmp / "x.npy", tmp / "f.npy", start=40), r"no frames selected from 30"),
        ("bad step", lambda: read_arrays(tmp / "x.npy", tmp / "f.npy", step=0), r"step=0"),
        ("types shape", lambda: read_arrays(tmp / "x.npy", tmp / "f.npy", bead_types=[1, 2]), r"bead_types has shape \(2,\); expected \(39,\)"),
        ("types name", lambda: read_arrays(tmp / "x.npy", tmp / "f.npy", bead_types=["XXX"] * 39), r"bead_types: residue name 'XXX'"),
        ("masses", lambda: read_arrays(tmp / "x.npy", tmp / "f.npy", bead_masses=np.zeros(39)), r"bead_masses\[0\] = 0\.0"),
        ("cells shape", lambda: read_arrays(tmp / "x.npy", tmp / "f.npy", cells=np.ones((2, 3))), r"cells has shape \(2, 3\)"),
        ("file type", lambda: read_arrays(tmp / "x.npy", tmp / "f.npz"), r"f\.npz: forces must be a \.npy file"),
    ]


def test_read_arrays_errors(atomistic, tmp_path):
    for name, call, pattern in _arrays_error_cases(atomistic, tmp_path):
        with pytest.raises(PremappedError, match=pattern):
            call()
            pytest.fail(f"case {name!r} raised nothing")
    # the check can be switched off for data that really are unusual
    t, info = read_arrays(tmp_path / "x.npy", tmp_path / "f_jnm.npy", force_unit="kJ/mol/nm", force_scale_range=None)
    assert info["mean_abs_force"] > 1e3


# ---------------------------------------------------------------------------------------------
# mdCATH


def _write_mdcath(path: Path, atomistic, layout: dict, naming: str = "{T}", drop: tuple[str, ...] = (), edit=None) -> Path:
    """Write an mdCATH-layout file; ``layout`` is {T: {replica: frame indices}} into the
    atomistic trajectory. ``drop`` removes datasets (paths relative to the domain group);
    ``edit(h5)`` changes the open file before it is closed."""
    import h5py

    pdb_lines = [ln for ln in atomistic["pdb_text"].splitlines(keepends=True) if ln.startswith(("MODEL", "ATOM", "HETATM"))]
    n = len(atomistic["z"])
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["layout"] = "mdcath-only-protein-v1.0"
        dom = h5.create_group(DOMAIN)
        dom.create_dataset("pdbProteinAtoms", data="".join(pdb_lines).encode("utf-8"))
        dom.create_dataset("z", data=atomistic["z"])
        dom.create_dataset("element", data=np.array(atomistic["element"], dtype=object), dtype=h5py.string_dtype())
        dom.create_dataset("resname", data=np.array(atomistic["resname"], dtype=object), dtype=h5py.string_dtype())
        dom.create_dataset("resid", data=atomistic["resid"])
        dom.create_dataset("chain", data=np.array(["0"] * n, dtype=object), dtype=h5py.string_dtype())
        dom.attrs["numProteinAtoms"] = n
        dom.attrs["numResidues"] = 40
        dom.attrs["numChains"] = 1
        for T, reps in layout.items():
            tg = dom.create_group(naming.format(T=T))
            for r, frames in reps.items():
                g = tg.create_group(str(r))
                g.attrs["numFrames"] = len(frames)
                g.create_dataset("coords", data=atomistic["positions"][frames].astype(np.float32), chunks=(2, n, 3))
                g.create_dataset("forces", data=atomistic["forces"][frames].astype(np.float32), chunks=(2, n, 3))
                g.create_dataset("box", data=np.eye(3) * 5.0)
                g["coords"].attrs["unit"] = "Angstrom"
                g["forces"].attrs["unit"] = "kcal/mol/Angstrom"
                g["box"].attrs["unit"] = "nm"
                g.create_dataset("rmsd", data=np.zeros(len(frames), np.float32))
        for d in drop:
            del dom[d]
        if edit is not None:
            edit(h5)
    return path


LAYOUT = {320: {0: np.arange(0, 10), 1: np.arange(10, 17)}, 348: {0: np.arange(17, 30)}}


def test_read_mdcath_against_dense_map(atomistic, tmp_path):
    path = _write_mdcath(tmp_path / f"mdcath_dataset_{DOMAIN}.h5", atomistic, LAYOUT)
    info0 = mdcath_info(path)
    assert info0["domain"] == DOMAIN and info0["n_atoms"] == 624 and info0["n_residues"] == 40
    assert info0["temperatures"] == [320, 348] and info0["replicas"] == {320: [0, 1], 348: [0]}
    assert info0["n_frames"] == {320: {0: 10, 1: 7}, 348: {0: 13}} and info0["layout"] == "mdcath-only-protein-v1.0"

    traj, info = read_mdcath(path, temperatures=(320,), replicas=(0,))
    np.testing.assert_allclose(traj.positions, atomistic["cg_positions"][:10], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(traj.forces, atomistic["cg_forces"][:10], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(traj.bead_masses, atomistic["cg_masses"], rtol=1e-3)
    np.testing.assert_array_equal(traj.bead_types, [AMINO_ACID_TYPES[n] for n in atomistic["cg_names"]])
    assert traj.positions.dtype == np.float32 and traj.cells.shape == (10, 3, 3) and not traj.cells.any()
    assert info["residues"][0] == "MET 1 chain 0" and info["bead_names"][-1] == "ALA"
    # every atom in the bead of the dense map; the C-terminal amide cap (NH2) joins the last residue
    np.testing.assert_array_equal(info["bead_atoms"], atomistic["owner"])
    assert set(info["bead_atoms"][np.array(atomistic["resname"]) == "NH2"]) == {38}
    np.testing.assert_allclose(info["box"][(320, 0)], np.eye(3) * 50.0)
    np.testing.assert_array_equal(info["source"], np.c_[np.full(10, 320), np.zeros(10), np.arange(10)])


def test_read_mdcath_chunks_slicing_order(atomistic, tmp_path):
    path = _write_mdcath(tmp_path / "any_name.h5", atomistic, LAYOUT, naming="sims{T}K")
    assert mdcath_info(path)["temperature_groups"] == {320: "sims320K", 348: "sims348K"}
    once, info_once = read_mdcath(path, temperatures=(348, 320), replicas=(0,), chunk=256)
    chunked, info_chunked = read_mdcath(path, temperatures=(348, 320), replicas=(0,), chunk=3)
    np.testing.assert_array_equal(chunked.positions, once.positions)
    np.testing.assert_array_equal(chunked.forces, once.forces)
    np.testing.assert_array_equal(info_chunked["source"], info_once["source"])
    strided, _ = read_mdcath(path, temperatures=(348, 320), replicas=(0,), step=4, chunk=2)  # chunks end past a trajectory's end
    np.testing.assert_array_equal(strided.forces, once.forces[np.r_[np.arange(0, 13, 4), 13 + np.arange(0, 10, 4)]])
    order = np.r_[LAYOUT[348][0], LAYOUT[320][0]]
    np.testing.assert_allclose(once.positions, atomistic["cg_positions"][order], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(once.forces, atomistic["cg_forces"][order], rtol=1e-5, atol=1e-3)

    # start/stop/step per trajectory, temperatures then replicas in the order given
    sl, info = read_mdcath(path, temperatures=("320",), replicas=(1, 0), start=1, stop=9, step=3, chunk=2)
    src = info["source"]
    np.testing.assert_array_equal(src[:, 0], 320)
    np.testing.assert_array_equal(src[:, 1], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(src[:, 2], [1, 4, 1, 4, 7])
    expect = np.r_[LAYOUT[320][1][[1, 4]], LAYOUT[320][0][[1, 4, 7]]]
    np.testing.assert_allclose(sl.positions, atomistic["cg_positions"][expect], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(sl.forces, atomistic["cg_forces"][expect], rtol=1e-5, atol=1e-3)
    both, info = read_mdcath(path, temperatures=(320, 348), replicas=(0,), start=-2, chunk=1)
    np.testing.assert_array_equal(info["source"], [[320, 0, 8], [320, 0, 9], [348, 0, 11], [348, 0, 12]])


def test_read_mdcath_errors(atomistic, tmp_path):
    good = _write_mdcath(tmp_path / "good.h5", atomistic, {320: {0: np.arange(4)}})

    def nan_edit(h5):
        h5[f"{DOMAIN}/320/0/forces"][2, 100, 1] = np.nan

    def wrong_atoms(h5):
        del h5[f"{DOMAIN}/320/0/coords"]
        h5[f"{DOMAIN}/320/0"].create_dataset("coords", data=atomistic["positions"][:4, :600].astype(np.float32))

    nan = _write_mdcath(tmp_path / "nan.h5", atomistic, {320: {0: np.arange(4)}}, edit=nan_edit)
    no_z = _write_mdcath(tmp_path / "no_z.h5", atomistic, {320: {0: np.arange(4)}}, drop=("z",))
    no_forces = _write_mdcath(tmp_path / "no_forces.h5", atomistic, {320: {0: np.arange(4)}}, drop=("320/0/forces",))
    mismatch = _write_mdcath(tmp_path / "mismatch.h5", atomistic, {320: {0: np.arange(4)}}, edit=wrong_atoms)
    cases = [
        (lambda: read_mdcath(tmp_path / "nope.h5"), r"nope\.h5: no such file"),
        (lambda: mdcath_info(tmp_path / "nope.h5"), r"nope\.h5: no such file"),
        (lambda: read_mdcath(no_z), rf"no dataset '/{DOMAIN}/z'; '/{DOMAIN}' holds: 320, chain, element, pdbProteinAtoms, resid, resname"),
        (lambda: read_mdcath(no_forces), rf"no dataset '/{DOMAIN}/320/0/forces'; '/{DOMAIN}/320/0' holds: box, coords, rmsd"),
        (lambda: read_mdcath(good, temperatures=(348,)), r"temperature 348 K not in /9ntlA00; present: 320 K"),
        (lambda: read_mdcath(good, replicas=(0, 3)), r"replica 3 not in /9ntlA00/320 \(320 K\); present: 0"),
        (lambda: read_mdcath(mismatch), rf"/{DOMAIN}/320/0/coords has 600 atoms but /{DOMAIN}/z has 624"),
        (lambda: read_mdcath(nan, chunk=1), rf"/{DOMAIN}/320/0/forces: NaN/inf at frame 2 \(320 K, replica 0\), atom 100"),
        (lambda: read_mdcath(good, domain="1abcA00"), r"no domain group '1abcA00'; the file holds: 9ntlA00"),
        (lambda: read_mdcath(good, start=10), r"no frames selected"),
    ]
    for call, pattern in cases:
        with pytest.raises(PremappedError, match=pattern):
            call()
