"""Bead types the model never saw are refused (check_bead_types), in Python and by ``cgexplain explain``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cgexplain.model.potential import BeadTypeError, check_bead_types, save_model, trained_bead_types
from conftest import random_painn

HP = {"representation": "painn", "n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0}


def test_check_bead_types_from_type_table():
    meta = {"type_table": {"W": 1}}
    assert check_bead_types(meta, [1, 1, 1], "traj.npz").tolist() == [1, 1, 1]
    with pytest.raises(BeadTypeError, match=r"traj.npz: bead type 7 \(2 beads\) not known to the model, which was trained on types 1 \(W\)"):
        check_bead_types(meta, [1, 7, 7], "traj.npz")
    with pytest.raises(ValueError, match=r"bead types 0 \(1 bead\), 3 \(1 bead\) not known .* types 1 \(A\), 2 \(B\)"):
        check_bead_types({"type_table": {"A": 1, "B": 2}}, [0, 1, 2, 3], "x")
    assert trained_bead_types({"type_table": "amino_acids"})[0][20] == "VAL"
    with pytest.raises(ValueError, match="integers"):
        check_bead_types(meta, [1.5], "x")


def test_check_bead_types_without_table_uses_the_embedding_size():
    assert check_bead_types({}, [0, 99], "x", n_embeddings=100).tolist() == [0, 99]
    with pytest.raises(BeadTypeError, match=r"100 \(1 bead\), -1 \(1 bead\)|-1 \(1 bead\), 100 \(1 bead\)"):
        check_bead_types({}, [1, 100, -1], "x", n_embeddings=100)
    assert check_bead_types({}, [1000], "x").tolist() == [1000]  # nothing recorded: nothing to check


def _model_and_frames(tmp_path, type_table):
    m = random_painn(F=8, L=2, cutoff=3.0, seed=3, dtype=torch.float32)
    save_model(m, HP, tmp_path / "model", extra={"type_table": type_table})
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 7.0, (2, 12, 3))
    cells = np.repeat(np.eye(3)[None] * 7.0, 2, axis=0)
    return pos, cells


def test_explain_trajectory_refuses_unknown_type_before_any_work(tmp_path):
    from cgexplain.lrp.explain import explain_trajectory

    pos, cells = _model_and_frames(tmp_path, {"W": 1})
    types = np.ones(12, int)
    types[3] = 7
    np.savez(tmp_path / "traj.npz", positions=pos, cells=cells, bead_types=types)
    out = tmp_path / "lrp"
    with pytest.raises(BeadTypeError, match=r"bead type 7 \(1 bead\) not known to the model, which was trained on types 1 \(W\)"):
        explain_trajectory(tmp_path / "model", tmp_path / "traj.npz", out, shell=3.0, progress=False)
    assert not out.exists()
    # the same through --types (a comma list overriding the file's types)
    with pytest.raises(BeadTypeError, match=r"with --types 2,2,.*: bead type 2 \(12 beads\)"):
        explain_trajectory(tmp_path / "model", tmp_path / "traj.npz", out, types=",".join(["2"] * 12), shell=3.0, progress=False)


def test_cli_explain_unknown_type_exit_code_2(tmp_path, capsys):
    from cgexplain.cli import main

    pos, cells = _model_and_frames(tmp_path, {"W": 1})
    np.savez(tmp_path / "traj.npz", positions=pos, cells=cells, bead_types=np.full(12, 7))
    argv = ["explain", str(tmp_path / "model"), str(tmp_path / "traj.npz"), "--out", str(tmp_path / "o"), "--shell", "3", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cgexplain explain: error:" in err and "bead type 7 (12 beads)" in err and "trained on types 1 (W)" in err
    assert not (tmp_path / "o").exists()


def test_explain_without_type_table_checks_the_embedding(tmp_path):
    """A model.json without type_table (saved outside the train stage): types the embedding cannot hold are refused."""
    from cgexplain.lrp.explain import explain_trajectory

    m = random_painn(F=8, L=2, cutoff=3.0, seed=3, dtype=torch.float32)
    save_model(m, HP, tmp_path / "model")
    pos = np.random.default_rng(0).uniform(0, 7.0, (1, 4, 3))
    np.savez(tmp_path / "traj.npz", positions=pos, cells=np.eye(3)[None] * 7.0, bead_types=[1, 1, 1, 100])
    with pytest.raises(BeadTypeError, match=r"bead type 100 \(1 bead\) .* trained on types 0..99 \(from the model's type embedding"):
        explain_trajectory(tmp_path / "model", tmp_path / "traj.npz", tmp_path / "o", shell=3.0, progress=False)
