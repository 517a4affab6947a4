"""A model folder records what it was trained for, and every entry point checks frames against it.

- ``cgexplain explain MODEL TRAJ`` with the NTL9 model (39 beads, priors of a fixed chain) on a
  62-bead trajectory is refused (exit 2, both bead counts named, nothing written); it used to
  exit 0 with the priors silently left out.
- A non-periodic trajectory (a protein without a box) is explained: no RDF, said so.
- ``walk_relevance``, ``mutation_whatif`` and ``FrameExplainer`` refuse a frame of another chain.
- ``train`` writes ``trained_for`` into model.json; its bead types and periodicity are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cgexplain.aminoacids import AMINO_ACID_TYPES, THREE_LETTER
from cgexplain.fileio import read_json
from cgexplain.lrp.engine import walk_relevance
from cgexplain.lrp.explain import explain_trajectory
from cgexplain.lrp.frames import FrameExplainer
from cgexplain.lrp.mutations import mutation_whatif
from cgexplain.lrp.sources import ArrayFrames
from cgexplain.mapping.maps import to_atoms, write_cg_dataset
from cgexplain.model.potential import BeadTypeError, SystemMismatchError, load_model, trained_system
from cgexplain.model.training import TrainSettings, train
from conftest import harmonic_frames

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
