import pytest

from cgexplain.cli import build_parser
from cgexplain.workflow.config import load_system


@pytest.mark.parametrize("cmd", ["run", "reference", "map", "train", "simulate", "analyse", "explain"])
def test_help_every_command(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--profile" in out and "--out" in out and ("system_dir" in out or "SYSTEM_DIR" in out)


def test_parse_frames():
    from cgexplain.lrp.explain import parse_frames

    assert parse_frames("all", 4).tolist() == [0, 1, 2, 3]
    assert parse_frames("1:4:2", 10).tolist() == [1, 3]
    assert parse_frames("0,-1", 5).tolist() == [0, 4]
    with pytest.raises(ValueError, match="frame 7 is out of range"):
        parse_frames("0,7", 5)
    with pytest.raises(ValueError, match="selects no frame"):
        parse_frames("3:3", 5)
    with pytest.raises(ValueError, match="expected"):
        parse_frames("a-b", 5)


def test_explain_model_and_trajectory(tmp_path, capsys):
    """``cgexplain explain MODEL_DIR TRAJECTORY``: files, numbers equal to walk_relevance, resume,
    and clear errors for other inputs in the same folder and bad trajectories."""
    import numpy as np

    from cgexplain.cli import main
    from cgexplain.lrp import nbody_sums, walk_relevance
    from cgexplain.mapping.maps import to_atoms
    from cgexplain.model.potential import save_model
    from conftest import random_painn

    m = random_painn(F=8, L=2, cutoff=3.0, seed=3, dtype=__import__("torch").float32)
    save_model(m, {"representation": "painn", "n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0}, tmp_path / "model")
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 7.0, (3, 24, 3))
    cells = np.repeat(np.eye(3)[None] * 7.0, 3, axis=0)
    types = np.ones(24, int)
    np.savez(tmp_path / "traj.npz", positions=pos, cells=cells, bead_types=types)
    out = tmp_path / "lrp"
    argv = [
        "explain",
        str(tmp_path / "model"),
        str(tmp_path / "traj.npz"),
        "--frames",
        "0,2",
        "--shell",
        "3.0",
        "--out",
        str(out),
        "--no-progress",
        "--r-range",
        "2",
        "6",
        "8",
    ]
    assert main(argv) == 0
    for f in (
        "lrp.json",
        "nbody_statistics.npz",
        "walks_frame0.npz",
        "frame_0000.npz",
        "frame_0001.npz",
        "figures/relevance_2body.png",
        "figures/relevance_3body.png",
    ):
        assert (out / f).exists(), f
    st = np.load(out / "nbody_statistics.npz")
    from cgexplain.model.potential import load_model

    model, _ = load_model(tmp_path / "model")
    ref = walk_relevance(model, to_atoms(pos[2], types, cells[2]))
    sums = nbody_sums(ref["walks"], ref["relevance"])
    np.testing.assert_allclose(st["body_sum_per_frame"][1], [sums[k][0] for k in (1, 2, 3)], rtol=1e-5, atol=1e-7)
    w0 = np.load(out / "walks_frame0.npz")
    assert int(w0["frame"]) == 0 and len(w0["walks"]) == len(walk_relevance(model, to_atoms(pos[0], types, cells[0]))["walks"])
    # a second call reuses the finished frames; other settings in the same folder are refused
    assert main(argv) == 0
    assert main(argv[:-4] + ["--r-range", "2", "6", "9"]) == 2
    assert "differing: r_edges" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", positions=pos[:, :20], cells=cells, bead_types=types)
    assert main(["explain", str(tmp_path / "model"), str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o2"), "--shell", "3"]) == 2
    assert "20 beads per frame but 24 bead types" in capsys.readouterr().err


def test_config_profiles_and_errors(tmp_path):
    cfg = load_system("systems/water", "quick")
    assert cfg["model"]["representation"] == "painn" and cfg["reference"]["n_molecules"] >= 256
    full = load_system("systems/water", "full")
    assert full["model"]["n_atom_basis"] > cfg["model"]["n_atom_basis"]
    with pytest.raises(KeyError, match="no profile 'nope'"):
        load_system("systems/water", "nope")
    (tmp_path / "system.yaml").write_text("reference: {}\nbogus: 1\n")
    with pytest.raises(KeyError, match="unknown section"):
        load_system(tmp_path)
    with pytest.raises(FileNotFoundError, match="system.yaml"):
        load_system(tmp_path / "missing")


def test_types_as_comma_list_string(tmp_path):
    """--types '1,2,...' (the CLI's and the benchmark's form) is parsed in one place, open_cg_frames."""
    import MDAnalysis as mda
    import numpy as np

    from cgexplain.lrp.explain import open_cg_frames

    u = mda.Universe.empty(3, trajectory=True)
    u.add_TopologyAttr("names", ["W"] * 3)
    u.atoms.positions = np.eye(3)
    u.atoms.write(str(tmp_path / "t.pdb"))
    u.atoms.write(str(tmp_path / "t.dcd"))
    src = open_cg_frames(tmp_path / "t.dcd", tmp_path / "t.pdb", "1,2,1")
    assert src.types.tolist() == [1, 2, 1] and open_cg_frames(tmp_path / "t.dcd", tmp_path / "t.pdb", [1, 2, 1]).types.tolist() == [1, 2, 1]
    with pytest.raises(ValueError, match=r"types '1,x,1': expected an \.npz with bead_types or a comma list of integers"):
        open_cg_frames(tmp_path / "t.dcd", tmp_path / "t.pdb", "1,x,1")
