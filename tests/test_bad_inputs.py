"""Bad input from a user's own data, through the real command line (issue: nothing silently wrong,
round 3). Each case exits 2 with a message naming the problem (file, key, frame, bead, option)
before any long work, or behaves correctly; a test per case asserts the exit code and the words.

1. a truncated trajectory (init, reference and map stages);  2. positions in nm declared as Å;
3. a model applied to a trajectory of another system (``cgexplain explain MODEL TRAJ``);
4. a run folder of another system;  5. non-periodic trajectories explained (no RDF);
6. an invalid ``init --select``;  7. paths, names and temperatures written quoted and exact;
8. a one-frame data set;  9. ``--out`` that is a file or cannot be written;  10. a broken YAML;
11. LAMMPS dumps set up from the command line (``--length-unit``, ``--force-unit``, ``--format``).
Cases 1-4 exited 0 with wrong results before (silently wrong).

Files written by other programs: the MDAnalysisTests GROMACS cobrotoxin (TPR + TRR with forces)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import MDAnalysisTests.datafiles as mdat
import numpy as np
import pytest
import yaml

from cgexplain.aminoacids import AMINO_ACID_TYPES, THREE_LETTER
from cgexplain.cli import main
from cgexplain.fileio import read_json
from cgexplain.lrp.engine import walk_relevance
from cgexplain.lrp.explain import explain_trajectory
from cgexplain.lrp.frames import FrameExplainer
from cgexplain.lrp.mutations import mutation_whatif
from cgexplain.lrp.sources import ArrayFrames
from cgexplain.mapping.maps import to_atoms, write_cg_dataset
from cgexplain.model.potential import BeadTypeError, SystemMismatchError, load_model, trained_system
from cgexplain.model.training import TrainSettings, train
from cgexplain.reference.external import open_reference
from cgexplain.workflow.config import load_system
from conftest import harmonic_frames

# ---------------------------------------------------------------------- test_bad_inputs
ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "model": {"n_atom_basis": 8, "n_interactions": 1, "cutoff": 6.0, "n_rbf": 8},
    "training": {"epochs": 1, "batch_size": 4},
    "simulation": {"n_steps": 20, "save_interval": 10, "n_replicas": 1},
    "analysis": {"tica_lag": 1},
    "lrp": {"n_frames": 1, "mutation_frames": 1},
}


def _ntl9_arrays(path: Path, n_frames: int = 12, scale: float = 1.0, seed: int = 0) -> Path:
    """An .npz of NTL9's 39 CA beads (from its PDB, jittered by 0.2 Å) with forces of 10 kcal/mol/Å
    scale; positions multiplied by ``scale`` (0.1: written in nm)."""
    import MDAnalysis as mda

    u = mda.Universe(str(ROOT / "systems" / "ntl9" / "ntl9_k12m.pdb"))
    ca = u.select_atoms("name CA")
    rng = np.random.default_rng(seed)
    x = ca.positions.astype(np.float64)[None] + rng.normal(0, 0.2, (n_frames, len(ca), 3))
    types = np.array([AMINO_ACID_TYPES.get(r, 1) for r in ca.resnames])
    np.savez(path, positions=x * scale, forces=rng.normal(0, 10.0, x.shape), bead_types=types)
    return path


def _arrays_system(d: Path, npz: Path, length_unit: str = "A", name: str | None = None) -> Path:
    """A protein system folder reading ``npz`` (source: arrays, kcal/mol/Å forces)."""
    d.mkdir(parents=True, exist_ok=True)
    cfg = {
        "name": name or d.name,
        "kind": "protein",
        "reference": {"source": "arrays", "positions": str(npz), "length_unit": length_unit, "force_unit": "kcal/mol/A", "temperature": 300.0},
        "profiles": {"quick": TINY},
    }
    (d / "system.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return d


def _run(capsys, *argv: str) -> tuple[int, str]:
    """Exit code and stderr of ``cgexplain argv``."""
    rc = main(list(argv))
    return rc, capsys.readouterr().err


# ---------------------------------------------------------------- silently wrong before
def test_truncated_trajectory_is_named(tmp_path, capsys):
    """Case 1: a TRR cut inside its frame 2 (MDAnalysis counts 3 frames from its size and stops early
    without a word). Before, init reported "3 frames with forces", map wrote 2 frames beside
    'reference_frames' 3 and everything exited 0. Now init, and the reference stage for a file cut
    after init, name the file and the frame."""
    cut = Path(mdat.TRR_xvf).read_bytes()[:1_500_000]
    trunc = tmp_path / "trunc.trr"
    trunc.write_bytes(cut)
    sysdir = tmp_path / "cobro"
    rc, err = _run(capsys, "init", str(sysdir), "--topology", mdat.TPR_xvf, "--trajectory", str(trunc), "--select", "protein", "--temperature", "300")
    assert rc == 2 and "trunc.trr" in err and "says 3 frames but frame 2 cannot be read" in err
    assert not (sysdir / "system.yaml").exists()
    # a file cut after init: the reference stage names it before anything is mapped
    later = tmp_path / "later.trr"
    shutil.copy(mdat.TRR_xvf, later)
    assert main(["init", str(sysdir), "--topology", mdat.TPR_xvf, "--trajectory", str(later), "--select", "protein", "--temperature", "300"]) == 0
    later.write_bytes(cut)
    rc, err = _run(capsys, "run", str(sysdir), "--out", str(tmp_path / "run"), "--no-progress")
    assert rc == 2 and "later.trr" in err and "frame 2 cannot be read" in err
    assert not (tmp_path / "run" / "cg" / "mapped.npz").exists()


def test_map_universe_refuses_a_trajectory_cut_short(tmp_path):
    """Where frames are read (the map stage's reader): fewer frames than selected is an error."""
    from cgexplain.mapping.maps import MappingError, load_universe, make_mapping, map_universe

    trunc = tmp_path / "trunc.trr"
    trunc.write_bytes(Path(mdat.TRR_xvf).read_bytes()[:1_500_000])
    u = load_universe(mdat.TPR_xvf, trunc)
    m = make_mapping(u, by="residue", method="atom", atom_name="CA", selection="protein")
    with pytest.raises(MappingError, match=r"3 frames selected but only 2 could be read"):
        map_universe(u, m, progress=False)


def test_positions_in_nm_declared_as_angstrom(tmp_path, capsys):
    """Case 2: lengths get a sanity check beside the forces': the map stage stops with the measured
    nearest-neighbour distance and the likely unit; before, train ran and fitted 0.38 Å CA–CA bonds."""
    npz = _ntl9_arrays(tmp_path / "ca_nm.npz", scale=0.1)
    sysdir = _arrays_system(tmp_path / "nm_as_A", npz, length_unit="A")
    rc, err = _run(capsys, "run", str(sysdir), "--out", str(tmp_path / "run"), "--no-progress")
    assert rc == 2
    assert "ca_nm.npz" in err and "reference.length_unit: A" in err and "nearest-neighbour bead distance is 0.3" in err and "declare nm" in err
    assert not (tmp_path / "run" / "model").exists() and not (tmp_path / "run" / "cg" / "mapped.npz").exists()
    # declared right, the same file runs
    ok = _arrays_system(tmp_path / "nm", npz, length_unit="nm")
    rc, err = _run(capsys, "run", str(ok), "--out", str(tmp_path / "run_ok"), "--no-progress")
    assert rc == 0, err


def test_run_folder_of_another_system(tmp_path, capsys):
    """Case 4: `cgexplain map B --out RUN_OF_A`: the run folder records its system and a stage of
    another system (or another source) is refused, naming both; before, the folder ended up with
    reference/ of one system and cg/ of the other."""
    a = _arrays_system(tmp_path / "sys_a", _ntl9_arrays(tmp_path / "a.npz", seed=1))
    b = _arrays_system(tmp_path / "sys_b", _ntl9_arrays(tmp_path / "b.npz", seed=2))
    run = tmp_path / "run_a"
    assert _run(capsys, "reference", str(a), "--out", str(run))[0] == 0
    rc, err = _run(capsys, "map", str(b), "--out", str(run))
    assert rc == 2
    assert "belongs to system 'sys_a'" in err and "not to 'sys_b'" in err and "give another --out" in err
    assert not (run / "cg").exists()
    # an older run folder without run.json: the earlier stage's inputs are compared instead
    (run / "run.json").unlink()
    rc, err = _run(capsys, "map", str(b), "--out", str(run))
    assert rc == 2 and "reference/ was made from other inputs" in err and "sys_b" in err
    # its own system maps there
    assert _run(capsys, "map", str(a), "--out", str(run))[0] == 0


def test_one_frame_is_refused_at_the_map_stage(tmp_path, capsys):
    """Case 8: a 1-frame .npz passed reference and map and ended in a traceback at train; now the
    map stage names the file and the count."""
    sysdir = _arrays_system(tmp_path / "one", _ntl9_arrays(tmp_path / "one.npz", n_frames=1))
    rc, err = _run(capsys, "run", str(sysdir), "--out", str(tmp_path / "run"), "--no-progress")
    assert rc == 2 and "one.npz" in err and "1 frame after the selection" in err and "at least 2" in err
    assert not (tmp_path / "run" / "model").exists()


def test_out_that_is_a_file_or_not_writable(tmp_path, capsys):
    """Case 9: --out that is a file, or below a file, or in a read-only folder: a named error."""
    sysdir = _arrays_system(tmp_path / "s", _ntl9_arrays(tmp_path / "s.npz"))
    f = tmp_path / "a_file"
    f.write_text("x")
    rc, err = _run(capsys, "reference", str(sysdir), "--out", str(f))
    assert rc == 2 and "a_file: is a file, not a folder" in err
    rc, err = _run(capsys, "reference", str(sysdir), "--out", str(f / "run"))
    assert rc == 2 and "cannot write the run folder" in err and "writable --out" in err
    if os.geteuid() == 0:
        return  # root writes into read-only folders; the case below needs an ordinary user
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, err = _run(capsys, "reference", str(sysdir), "--out", str(ro / "run"))
        assert rc == 2 and "cannot write the run folder" in err
    finally:
        ro.chmod(0o755)


def test_broken_yaml_names_file_and_line(tmp_path, capsys):
    """Case 10: a YAML syntax error is a named error (file, line, column), not a parser traceback."""
    d = tmp_path / "broken"
    shutil.copytree(ROOT / "systems" / "water", d, ignore=shutil.ignore_patterns("pretrained"))
    text = (d / "system.yaml").read_text().splitlines()
    text.insert(3, "model: [unclosed")
    (d / "system.yaml").write_text("\n".join(text) + "\n")
    rc, err = _run(capsys, "run", str(d), "--out", str(tmp_path / "run"))
    assert rc == 2 and "system.yaml: not valid YAML (line" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------- test_bad_inputs_init
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


# ---------------------------------------------------------------------- test_bad_inputs_model
REPO = Path(__file__).resolve().parents[1]
NTL9 = REPO / "systems" / "ntl9" / "pretrained"
NTL9_SEQUENCE = "MKVIFLKDVKGMGKKGEIKNVADGYANNFLFKQGLAIEA"
NTL9_TYPES = np.array([AMINO_ACID_TYPES[THREE_LETTER[c]] for c in NTL9_SEQUENCE])


def _cli(*args: str | Path) -> subprocess.CompletedProcess:
    """The real command line, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "cgexplain", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=600)


def _chain(n: int, seed: int = 0, bond: float = 3.8) -> np.ndarray:
    """A random-walk chain of n beads, ``bond`` Å apart, (n, 3) Å."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(n, 3))
    steps *= bond / np.linalg.norm(steps, axis=1, keepdims=True)
    return np.cumsum(steps, axis=0)


def _ntl9_native(seed: int = 1) -> np.ndarray:
    """NTL9's native Cα positions (39, 3) Å, slightly perturbed."""
    with np.load(NTL9 / "protein.npz") as z:
        native = z["native"]
    return native + np.random.default_rng(seed).normal(0.0, 0.1, native.shape)


def test_ntl9_model_on_a_62_bead_trajectory_is_refused(tmp_path):
    """Exit 2 naming the model folder, the trajectory and both bead counts; nothing written."""
    pos = _chain(62) + 40.0
    traj = tmp_path / "cobrotoxin_ca.npz"
    types = np.random.default_rng(2).integers(1, 21, 62)
    np.savez(traj, positions=pos[None], cells=np.eye(3)[None] * 80.0, bead_types=types)
    out = tmp_path / "lrp"
    r = _cli("explain", NTL9, traj, "--out", out, "--shell", "5", "--save-walks", "none", "--no-progress")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"model {NTL9} was trained for 39 beads (its priors belong to a fixed chain); {traj} has 62 beads" in r.stderr
    assert "relevances of the network alone would leave them out silently" in r.stderr
    assert not out.exists()


def test_ntl9_model_explains_a_non_periodic_ntl9_chain(tmp_path):
    """A trajectory without a box (cells zeros): relevances written, the 2-body and 3-body curves
    computed, no RDF, and the summary says so."""
    traj = tmp_path / "ntl9_ca.npz"
    np.savez(traj, positions=_ntl9_native()[None], cells=np.zeros((1, 3, 3)), bead_types=NTL9_TYPES)
    out = tmp_path / "lrp"
    r = _cli("explain", NTL9, traj, "--out", out, "--save-walks", "none", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no RDF: the frames are not periodic" in r.stdout
    for f in ("frame_0000.npz", "nbody_statistics.npz", "lrp.json", "figures/relevance_2body.png", "figures/relevance_3body.png"):
        assert (out / f).exists(), f
    summary = json.loads((out / "lrp.json").read_text())
    assert summary["structure"]["periodic"] is False
    assert summary["structure"]["rdf"].startswith("no RDF: the frames are not periodic")
    assert 3.9 < summary["structure"]["shell_A"] < 5.5  # just past the Cα-Cα bond, from the pair-distance density
    with np.load(out / "structure.npz") as st:
        assert "cg_r" not in st and st["cg_p"].sum() > 0
    with np.load(out / "nbody_statistics.npz") as st:
        assert st["two_norm_count"].sum() > 0 and st["three_norm_count"].sum() > 0


def test_python_entry_points_refuse_another_chain(tmp_path):
    """walk_relevance, mutation_whatif and FrameExplainer, given a 62-bead frame and the NTL9
    model, raise SystemMismatchError naming both counts, before any computation."""
    model, meta = load_model(NTL9)
    rec = trained_system(meta)  # model.json written before trained_for: inferred from the priors
    assert rec["n_beads"] == 39 and rec["fixed_chain"] and rec["periodic"] is None
    pos = _chain(62, seed=3)
    types = np.full(62, AMINO_ACID_TYPES["ALA"])
    msg = r"the model was trained for 39 beads \(its priors belong to a fixed chain\); the frame has 62 beads"
    with pytest.raises(SystemMismatchError, match=msg):
        walk_relevance(model, to_atoms(pos, types))
    with pytest.raises(SystemMismatchError, match=r"trained for 39 beads .*; the wild type has 62 beads"):
        mutation_whatif(model, pos[None], types, ["ALA"] * 62, "A5G", explain=False, progress=False)
    with pytest.raises(SystemMismatchError, match=rf"model {NTL9} was trained for 39 beads .*; each frame has 62 beads"):
        FrameExplainer(ArrayFrames(pos[None], np.zeros((1, 3, 3)), types), None, tmp_path / "fe", model_dir=NTL9)
    assert not (tmp_path / "fe").exists()
    # the chain it was trained for passes (a mutant is a warning about the priors' sequence, not an error)
    res = mutation_whatif(model, _ntl9_native()[None], NTL9_TYPES, [THREE_LETTER[c] for c in NTL9_SEQUENCE], "L6A", explain=False, progress=False)
    assert res["dE"].shape == (1,)


def test_trained_for_is_recorded_and_checked(tmp_path):
    """train writes model.json trained_for (bead count, types, periodicity); a non-periodic
    trajectory for a model trained on a periodic box warns (and lrp.json lists it); a bead type
    absent from the training data is refused."""
    data = tmp_path / "d.db"
    write_cg_dataset(data, harmonic_frames(8, 12, 7.0), progress=False)
    hp = {"representation": "painn", "n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0, "n_rbf": 8}
    train(data, tmp_path / "m", hp, TrainSettings(epochs=1, batch_size=4), progress=False)
    rec = read_json(tmp_path / "m" / "model.json")["trained_for"]
    assert rec == {"n_beads": 12, "fixed_chain": False, "bead_types": [1], "sequence": None, "periodic": True, "source": "training data"}
    pos = np.random.default_rng(0).uniform(0, 7.0, (1, 20, 3))  # another bead count: fine without priors
    np.savez(tmp_path / "drop.npz", positions=pos, cells=np.zeros((1, 3, 3)), bead_types=np.ones(20, int))
    with pytest.warns(UserWarning, match=r"drop.npz is not periodic but model .* was trained on periodic frames"):
        s = explain_trajectory(tmp_path / "m", tmp_path / "drop.npz", tmp_path / "lrp", shell=3.0, r_edges=(2.0, 6.0, 8), progress=False)
    assert s["warnings"] and "trained on periodic frames" in s["warnings"][0]
    np.savez(tmp_path / "two.npz", positions=pos, cells=np.zeros((1, 3, 3)), bead_types=np.r_[np.ones(19, int), 2])
    with pytest.raises(BeadTypeError, match=r"bead type 2 \(1 bead\) not known to the model, which was trained on types 1 .*training data"):
        explain_trajectory(tmp_path / "m", tmp_path / "two.npz", tmp_path / "lrp2", shell=3.0, progress=False)
    assert not (tmp_path / "lrp2").exists()


def test_library_warnings_a_user_cannot_act_on_stay_out_of_the_cli(tmp_path):
    """A protein run from the user's files, as a user starts it (a new process): MDAnalysis's notes on
    the CG topology's placeholder unit cell, the zeroed DCD cell and its reader internals reached
    stderr before; now stderr holds only cgexplain's own lines."""
    from test_own_data import _tiny

    sysdir = tmp_path / "cobro"
    assert main(["init", str(sysdir), "--topology", mdat.TPR_xvf, "--trajectory", mdat.TRR_xvf, "--select", "protein", "--temperature", "300"]) == 0
    _tiny(sysdir / "system.yaml")
    r = subprocess.run(
        [sys.executable, "-m", "cgexplain", "run", str(sysdir), "--out", str(tmp_path / "run"), "--no-progress"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    for note in ("CRYST1", "zeroed unitcell", "DCDReader", "UserWarning", "DeprecationWarning", "warnings.warn"):
        assert note not in r.stderr, (note, r.stderr)
    assert all(line.startswith("cgexplain") for line in r.stderr.splitlines() if line.strip()), r.stderr
