"""The user's own simulation through `cgexplain init` + `cgexplain run`, on files written by other
programs (MDAnalysisTests: GROMACS cobrotoxin TPR + TRR, a protein in TIP4P water with forces;
AMBER prmtop + NetCDF with forces), and data sets already mapped (.npz arrays, mdCATH-layout HDF5)
through the same CLI. Tiny runs: every stage runs, nothing is claimed about the models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cgexplain.cli import main

mdat = pytest.importorskip("MDAnalysisTests.datafiles")

TINY = {
    "model": {"representation": "painn", "n_atom_basis": 8, "n_interactions": 2, "cutoff": 8.0, "n_rbf": 8},
    "training": {"epochs": 1, "batch_size": 1},
    "simulation": {"n_steps": 20, "save_interval": 5, "n_replicas": 1, "timestep": 0.001},
    "lrp": {"n_frames": 1},
}


def _tiny(path: Path, **extra) -> None:
    """What a user does after init: edit system.yaml (here: tiny settings for a test)."""
    cfg = yaml.safe_load(path.read_text())
    for k, v in {**TINY, **extra}.items():
        cfg[k] = {**(cfg.get(k) or {}), **v} if isinstance(v, dict) else v
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _every_stage(s: dict) -> None:
    assert set(s["wall_time_s"]) == {"reference", "map", "train", "simulate", "analyse", "explain"}
    d = s["map"]["diagnostics"]["unfittable_force_floor"]
    assert 0 <= d["floor_rmse"] <= d["zero_model_rmse"]
    assert s["train"]["prior_only"]["force_rmse"] > 0  # a protein: the prior's error beside the model's
    assert "timestep_check" in s["simulate"]


def test_cobrotoxin_solvent_integrated_out(tmp_path, capsys):
    """GROMACS TPR + TRR (protein in TIP4P water, with forces): CA beads of the protein, the water
    and ions integrated out; the map's force is the sum over each residue's atoms."""
    sysdir = tmp_path / "cobrotoxin"
    rc = main(["init", str(sysdir), "--topology", mdat.TPR_xvf, "--trajectory", mdat.TRR_xvf, "--select", "protein", "--temperature", "300"])
    assert rc == 0
    text = (sysdir / "system.yaml").read_text()
    assert "kind: protein" in text and "select: 'protein'" in text and "source: files" in text
    _tiny(sysdir / "system.yaml")
    run = tmp_path / "run"
    assert main(["run", str(sysdir), "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "force RMSE floor" in out and "prior alone" in out and "stiffest prior term" in out
    s = _summary(run)
    _every_stage(s)
    m = s["map"]
    assert m["n_beads"] == 62 and m["n_atoms_mapped"] == 918 and m["n_atoms"] == 19385 and m["selection"] == "protein"
    assert len(m["cg_bonds"]) == 61 and "none split" in m["constraint_check"]
    # the mapped force of a bead is the sum of the forces on its residue's atoms (kJ/mol/Å -> kcal/mol/Å)
    import MDAnalysis as mda

    u = mda.Universe(mdat.TPR_xvf, mdat.TRR_xvf)
    z = np.load(run / "cg" / "mapped.npz")
    prot = u.select_atoms("protein")
    for f in range(len(u.trajectory)):
        u.trajectory[f]
        want = np.array([r.atoms.forces.sum(0) for r in prot.residues]) / 4.184
        np.testing.assert_allclose(z["forces"][f], want, rtol=1e-4, atol=1e-3)
    # the chain is whole and without a box (the CG protein is not periodic)
    assert np.abs(z["cells"]).sum() == 0
    assert np.linalg.norm(np.diff(z["positions"][0], axis=0), axis=1).max() < 4.5  # consecutive CA ≈ 3.8 Å
    assert (run / "reference" / "native.pdb").exists() and (run / "lrp" / "relevance_2body.pdb").exists()


def test_amber_netcdf_with_forces(tmp_path):
    """AMBER prmtop + NetCDF with forces (no box): the whole protein, CA beads."""
    sysdir = tmp_path / "amber"
    assert main(["init", str(sysdir), "--topology", mdat.PFncdf_Top, "--trajectory", mdat.PFncdf_Trj, "--temperature", "300"]) == 0
    _tiny(sysdir / "system.yaml")
    run = tmp_path / "run"
    assert main(["run", str(sysdir), "--out", str(run), "--no-progress"]) == 0
    s = _summary(run)
    _every_stage(s)
    assert s["map"]["n_beads"] == 29 and s["reference"]["n_frames"] == 2


def _protein_yaml(sysdir: Path, reference: dict) -> None:
    sysdir.mkdir(parents=True, exist_ok=True)
    cfg = {
        "name": sysdir.name,
        "kind": "protein",
        "reference": reference,
        "priors": {"n_fourier": 3, "repulsion_exponent": 12, "repulsion_scale": 0.8},
        "analysis": {"tica_lag": 2},
        "simulation": {"temperature": 300.0},
        "profiles": {"quick": {}},
    }
    (sysdir / "system.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    _tiny(sysdir / "system.yaml")


def test_premapped_arrays_and_mdcath_through_the_cli(tmp_path):
    """Data already mapped: an .npz of CA-bead positions and forces (nm, kJ/mol/nm declared) and
    an mdCATH-layout HDF5 file, both built from a short OpenMM run, train through `cgexplain run`."""
    from test_premapped import LAYOUT, _write_mdcath, atomistic  # noqa: F401  (the fixture's builder)

    data = atomistic.__wrapped__()  # the fixture function itself: a 30-frame OpenMM run of NTL9
    from cgexplain.aminoacids import AMINO_ACID_TYPES

    npz = tmp_path / "ntl9_ca.npz"
    np.savez(
        npz,
        positions=data["cg_positions"] / 10.0,
        forces=data["cg_forces"] * 4.184 * 10.0,
        bead_types=np.array([AMINO_ACID_TYPES[n] for n in data["cg_names"]]),
        bead_masses=data["cg_masses"],
    )
    a = tmp_path / "arrays"
    _protein_yaml(a, {"source": "arrays", "positions": str(npz), "length_unit": "nm", "force_unit": "kJ/mol/nm", "temperature": 300.0})
    assert main(["run", str(a), "--out", str(tmp_path / "run_a"), "--no-progress"]) == 0
    sa = _summary(tmp_path / "run_a")
    _every_stage(sa)
    z = np.load(tmp_path / "run_a" / "cg" / "mapped.npz")
    np.testing.assert_allclose(z["forces"], data["cg_forces"], rtol=1e-4, atol=1e-4)  # units converted back
    h5 = _write_mdcath(tmp_path / "mdcath_dataset_9ntlA00.h5", data, LAYOUT)
    mc = tmp_path / "mdcath"
    _protein_yaml(mc, {"source": "mdcath", "file": str(h5), "temperatures": [320], "replicas": [0, 1], "chunk": 4})
    assert main(["run", str(mc), "--out", str(tmp_path / "run_m"), "--no-progress"]) == 0
    sm = _summary(tmp_path / "run_m")
    _every_stage(sm)
    assert sm["reference"]["n_frames"] == 17 and sm["reference"]["run_lengths"] == [10, 7]
    # a temperature the file does not hold: a named error, exit code 2, no mapped data written
    bad = tmp_path / "mdcath_bad"
    _protein_yaml(bad, {"source": "mdcath", "file": str(h5), "temperatures": [400]})
    assert main(["run", str(bad), "--out", str(tmp_path / "run_bad"), "--no-progress"]) == 2
    assert not (tmp_path / "run_bad" / "cg" / "mapped.npz").exists()


def test_declared_units_reach_every_consumer(tmp_path):
    """cobrotoxin read unconverted (nm, kJ/mol/nm declared): the mapped data, the CG bonds and the
    native structure are in Å exactly as with MDAnalysis's own conversion."""
    import MDAnalysis as mda

    runs = {}
    for tag, units in (("converted", {}), ("declared", {"length_unit": "nm", "force_unit": "kJ/mol/nm"})):
        sysdir = tmp_path / tag
        assert (
            main(["init", str(sysdir), "--topology", mdat.TPR_xvf, "--trajectory", mdat.TRR_xvf, "--select", "protein", "--temperature", "300"]) == 0
        )
        _tiny(sysdir / "system.yaml", reference=units)
        runs[tag] = tmp_path / f"run_{tag}"
        assert main(["map", str(sysdir), "--out", str(runs[tag]), "--no-progress"]) == 2  # the map stage needs the reference first
        assert main(["reference", str(sysdir), "--out", str(runs[tag]), "--no-progress"]) == 0
        assert main(["map", str(sysdir), "--out", str(runs[tag]), "--no-progress"]) == 0
    a, b = (np.load(runs[k] / "cg" / "mapped.npz") for k in ("converted", "declared"))
    np.testing.assert_allclose(b["positions"], a["positions"], atol=2e-3)
    np.testing.assert_allclose(b["forces"], a["forces"], rtol=1e-4, atol=1e-3)
    ma, mb = (json.loads((runs[k] / "cg" / "mapping.json").read_text()) for k in ("converted", "declared"))
    assert mb["cg_bonds"] == ma["cg_bonds"] and len(mb["cg_bonds"]) == 61
    na, nb = (mda.Universe(str(runs[k] / "reference" / "native.pdb")).select_atoms("name CA").positions for k in ("converted", "declared"))
    np.testing.assert_allclose(nb, na, atol=2e-3)
