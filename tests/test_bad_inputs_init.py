"""User mistakes at `cgexplain init`, through the real command line: each one a named error (exit
code 2, the message on stderr names the option or file) before anything is written, or the right
behaviour (values written quoted and exact, LAMMPS dumps with declared units and format)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cgexplain.cli import main
from cgexplain.reference.external import open_reference
from cgexplain.workflow.config import load_system

mdat = pytest.importorskip("MDAnalysisTests.datafiles")

N_ATOMS, N_FRAMES, BOX = 8, 3, 10.0


def _init(*args: str) -> list[str]:
    return ["init", *args]


def _cobrotoxin(sysdir: Path, *extra: str) -> list[str]:
    return _init(str(sysdir), "--topology", mdat.TPR_xvf, "--trajectory", mdat.TRR_xvf, "--temperature", "300", *extra)


def _refused(capsys, argv: list[str], sysdir: Path) -> str:
    """Run init, expect exit 2 and no system folder; the stderr message."""
    assert main(argv) == 2
    assert not sysdir.exists(), "a failing init must write nothing"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------ 1. an invalid selection
def test_invalid_selection_is_named_before_anything_is_written(tmp_path):
    """`--select "protein and"`: exit 2 naming --select, the selection and MDAnalysis's reason (the
    real executable: no traceback)."""
    sysdir = tmp_path / "sys"
    argv = [sys.executable, "-m", "cgexplain", *_cobrotoxin(sysdir, "--select", "protein and")]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert "cgexplain init: error: --select 'protein and' is not a valid MDAnalysis selection for " in p.stderr
    assert "it ends where more is expected (Unknown selection token: 'None')" in p.stderr
    assert not sysdir.exists()


def test_unknown_selection_word_and_split_constraint_are_named(tmp_path, capsys):
    """An unknown keyword gives MDAnalysis's reason; a selection that cuts X–H bonds (constrained)
    names the bond, reading 'in bead N' / 'outside the selection ...' (not 'in outside')."""
    sysdir = tmp_path / "sys"
    err = _refused(capsys, _cobrotoxin(sysdir, "--select", "protien"), sysdir)
    assert "--select 'protien' is not a valid MDAnalysis selection" in err and "Unknown selection token: 'protien'" in err
    err = _refused(capsys, _cobrotoxin(sysdir, "--select", "protein and not name H*"), sysdir)
    where = r"(in bead \d+|outside the selection 'protein and not name H\*')"
    assert re.search(rf"the constrained bond \d+-\d+ \(.*; h-bonds\) has one atom {where} and the other {where}: its constraint force", err), err
    assert "in outside" not in err and "in bead" in err and "outside the selection" in err


# ------------------------------------------------------------------ 2. values written quoted and exact
def test_paths_name_and_temperature_read_back_exactly(tmp_path, capsys):
    """A topology outside the system folder (written absolute) and a trajectory inside it (written
    relative), both in folders whose names hold '#' and ': '; the name '123'; a temperature with
    many digits: system.yaml reads back exactly these, and load_system and the files open."""
    outside = tmp_path / "data #1: x"
    outside.mkdir()
    top = outside / "top #a: b.tpr"
    shutil.copy(mdat.TPR_xvf, top)
    sysdir = tmp_path / "sys # 2: y"
    inside = sysdir / "in #3: z"
    inside.mkdir(parents=True)
    trj = inside / "traj: #.trr"
    shutil.copy(mdat.TRR_xvf, trj)
    T = 298.123456789012
    argv = _init(str(sysdir), "--topology", str(top), "--trajectory", str(trj), "--select", "protein", "--temperature", repr(T), "--name", "123")
    assert main(argv) == 0, capsys.readouterr().err
    raw = yaml.safe_load((sysdir / "system.yaml").read_text())
    assert raw["name"] == "123"
    ref = raw["reference"]
    assert ref["topology"] == str(top.resolve())
    assert ref["trajectories"] == ["in #3: z/traj: #.trr"]
    assert ref["temperature"] == T and raw["simulation"]["temperature"] == T
    assert raw["mapping"]["select"] == "protein"
    cfg = load_system(sysdir)
    assert cfg["name"] == "123" and cfg["reference"]["temperature"] == T
    u = open_reference(cfg)
    assert u.atoms.n_atoms == 19385 and u.trajectory.n_frames > 1


def test_bad_temperature_is_named(tmp_path, capsys):
    sysdir = tmp_path / "sys"
    for bad in ("inf", "0", "-5"):
        err = _refused(capsys, _cobrotoxin(sysdir, "--temperature", bad), sysdir)
        assert f"--temperature {float(bad)}: must be a finite number > 0 (K)" in err


# ------------------------------------------------------------------ 3. LAMMPS: declared units and format
@pytest.fixture(scope="module")
def lammps(tmp_path_factory) -> dict:
    """A tiny LAMMPS fluid (8 argon atoms, 3 frames): a data file, the same atoms as a PDB (a
    topology with residue names) and a dump `id type x y z fx fy fz` (units real: Å, kcal/mol/Å)."""
    d = tmp_path_factory.mktemp("lammps")
    rng = np.random.default_rng(0)
    pos = rng.uniform(0.5, BOX - 0.5, (N_FRAMES, N_ATOMS, 3)).round(4)
    frc = rng.normal(0, 1, (N_FRAMES, N_ATOMS, 3)).round(4)
    data = ["LAMMPS data file", "", f"{N_ATOMS} atoms", "1 atom types", ""]
    data += [f"0.0 {BOX} {a}lo {a}hi" for a in "xyz"] + ["", "Masses", "", "1 39.948", "", "Atoms # full", ""]
    data += [f"{i + 1} {i + 1} 1 0.0 {x:.4f} {y:.4f} {z:.4f}" for i, (x, y, z) in enumerate(pos[0])]
    (d / "fluid.data").write_text("\n".join(data) + "\n")
    pdb = [f"CRYST1{BOX:9.3f}{BOX:9.3f}{BOX:9.3f}  90.00  90.00  90.00 P 1           1"]
    pdb += [f"ATOM  {i + 1:5d} AR   AR  X{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00          AR" for i, (x, y, z) in enumerate(pos[0])]
    (d / "fluid.pdb").write_text("\n".join([*pdb, "END"]) + "\n")
    dump = []
    for f in range(N_FRAMES):
        dump += ["ITEM: TIMESTEP", str(100 * f), "ITEM: NUMBER OF ATOMS", str(N_ATOMS), "ITEM: BOX BOUNDS pp pp pp"]
        dump += [f"0.0 {BOX}"] * 3 + ["ITEM: ATOMS id type x y z fx fy fz"]
        dump += [f"{i + 1} 1 " + " ".join(f"{v:.4f}" for v in (*pos[f, i], *frc[f, i])) for i in range(N_ATOMS)]
    (d / "traj.lammpstrj").write_text("\n".join(dump) + "\n")
    shutil.copy(d / "traj.lammpstrj", d / "traj.dump")
    return {"dir": d, "pos": pos, "frc": frc}


def _lammps_init(lmp: dict, sysdir: Path, *extra: str, top: str = "fluid.pdb", traj: str = "traj.lammpstrj") -> list[str]:
    d = lmp["dir"]
    return _init(str(sysdir), "--topology", str(d / top), "--trajectory", str(d / traj), "--temperature", "300", *extra)


def test_lammps_dump_without_units_names_the_options(tmp_path, capsys, lammps):
    sysdir = tmp_path / "sys"
    err = _refused(capsys, _lammps_init(lammps, sysdir), sysdir)
    assert "traj.lammpstrj: MDAnalysis does not know the units of this format" in err
    assert "declare them with --length-unit {A,nm} and --force-unit {kcal/mol/A,kJ/mol/A,kJ/mol/nm,kcal/mol/nm}" in err
    err = _refused(capsys, _lammps_init(lammps, sysdir, "--length-unit", "A"), sysdir)
    assert "--length-unit and --force-unit go together: only --length-unit is given" in err
    err = _refused(capsys, _lammps_init(lammps, sysdir, "--force-unit", "kcal/mol/A"), sysdir)
    assert "--length-unit and --force-unit go together: only --force-unit is given" in err
    with pytest.raises(SystemExit) as e:  # argparse: a unit not in the table
        main(_lammps_init(lammps, sysdir, "--length-unit", "parsec", "--force-unit", "kcal/mol/A"))
    assert e.value.code == 2 and "argument --length-unit: invalid choice: 'parsec'" in capsys.readouterr().err
    assert not sysdir.exists()


def test_lammps_dump_with_units_is_written_read_and_runs(tmp_path, capsys, lammps):
    """Units declared: system.yaml holds them and format LAMMPSDUMP (from .lammpstrj); the files
    open as the reference stage opens them (unconverted: the dump's numbers) and `cgexplain run` works."""
    sysdir = tmp_path / "lj"
    assert main(_lammps_init(lammps, sysdir, "--length-unit", "A", "--force-unit", "kcal/mol/A")) == 0, capsys.readouterr().err
    raw = yaml.safe_load((sysdir / "system.yaml").read_text())
    ref = raw["reference"]
    assert (ref["length_unit"], ref["force_unit"], ref["format"]) == ("A", "kcal/mol/A", "LAMMPSDUMP")
    assert raw["kind"] == "fluid" and "atom_name" not in raw["mapping"]
    cfg = load_system(sysdir)
    u = open_reference(cfg)
    assert u.trajectory.n_frames == N_FRAMES
    for f in range(N_FRAMES):
        u.trajectory[f]
        np.testing.assert_allclose(u.atoms.positions, lammps["pos"][f], atol=1e-3)
        np.testing.assert_allclose(u.atoms.forces, lammps["frc"][f], atol=1e-3)
    tiny = {
        "model": {"n_atom_basis": 8, "n_interactions": 1, "cutoff": 4.5, "n_rbf": 8},
        "training": {"epochs": 1, "batch_size": 1},
        "simulation": {"n_steps": 20, "save_interval": 5, "timestep": 0.001},
        "analysis": {"rdf_r_max": 4.5, "rdf_bins": 45},
        "lrp": {"n_frames": 1},
    }
    for k, v in tiny.items():
        raw[k] = {**raw[k], **v}
    (sysdir / "system.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["run", str(sysdir), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert (tmp_path / "run" / "summary.json").exists()


def test_lammps_format_option(tmp_path, capsys, lammps):
    """A dump named .dump: MDAnalysis does not know it, --format names it; an unknown --format,
    a .lammpstrj among other formats and a LAMMPS data topology (no residue names) are named."""
    sysdir = tmp_path / "sys"
    units = ("--length-unit", "nm", "--force-unit", "kJ/mol/nm")
    err = _refused(capsys, _lammps_init(lammps, sysdir, *units, traj="traj.dump"), sysdir)
    assert "traj.dump: MDAnalysis does not know the format; name the trajectory format with --format NAME" in err
    err = _refused(capsys, _lammps_init(lammps, sysdir, *units, "--format", "NOPE"), sysdir)
    assert "--format 'NOPE': MDAnalysis has no trajectory reader of that name" in err
    d = lammps["dir"]
    argv = _init(str(sysdir), "--topology", str(d / "fluid.pdb"), "--trajectory", str(d / "traj.lammpstrj"), mdat.TRR_xvf, *units)
    err = _refused(capsys, argv, sysdir)
    assert "LAMMPS dumps mixed with other formats; give files of one format" in err
    err = _refused(capsys, _lammps_init(lammps, sysdir, *units, top="fluid.data"), sysdir)
    assert "fluid.data: the topology has no residue names (a LAMMPS data file has none)" in err
    assert main(_lammps_init(lammps, sysdir, *units, "--format", "lammpsdump", traj="traj.dump")) == 0, capsys.readouterr().err
    ref = load_system(sysdir)["reference"]
    assert (ref["format"], ref["length_unit"], ref["force_unit"]) == ("LAMMPSDUMP", "nm", "kJ/mol/nm")
    assert ref["trajectories"] == [str(lammps["dir"] / "traj.dump")]
