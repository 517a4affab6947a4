"""Bad input from a user's own data, through the real command line (issue: nothing silently wrong,
round 3). Each case exits 2 with a message naming the problem, before any long work, or behaves
correctly. The silently wrong cases (a truncated trajectory, positions in nm declared as Å, a run
folder of another system) exited 0 with wrong results before.

Files written by other programs: the MDAnalysisTests GROMACS cobrotoxin (TPR + TRR with forces)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import MDAnalysisTests.datafiles as mdat
import numpy as np
import pytest
import yaml

from cgexplain.aminoacids import AMINO_ACID_TYPES
from cgexplain.cli import main

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
