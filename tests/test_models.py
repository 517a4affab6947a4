import numpy as np
import pytest
import torch

from cgexplain.model.potential import batch_inputs, load_model, save_model
from conftest import random_painn


def _ef(model, x, types, cell, cutoff=3.0):
    out = model(batch_inputs(x, types, cell, cutoff, dtype=torch.float64))
    return float(out["energy"].sum()), out["forces"].detach().numpy()


def _rot(seed=3):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_save_load_roundtrip(tmp_path):
    m = random_painn(F=8, L=2)
    hp = {"n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0}
    save_model(m.float(), hp, tmp_path / "mdl")
    m2, meta = load_model(tmp_path / "mdl")
    assert meta["hparams"]["n_atom_basis"] == 8 and meta["units"]["energy"] == "kcal/mol"
    sd = torch.load(tmp_path / "mdl" / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    x = np.random.default_rng(0).uniform(0, 5, (7, 3))
    types = [1, 2, 1, 1, 2, 1, 1]
    a = m.float()(batch_inputs(x, types, np.eye(3) * 6, 3.0))
    b = m2(batch_inputs(x, types, np.eye(3) * 6, 3.0))
    assert torch.equal(a["energy"], b["energy"]) and torch.equal(a["forces"], b["forces"])


def test_load_mismatch_is_clear(tmp_path):
    m = random_painn(F=8, L=2)
    save_model(m, {"n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0}, tmp_path / "mdl")
    import json

    meta = json.loads((tmp_path / "mdl" / "model.json").read_text())
    meta["hparams"]["n_atom_basis"] = 16
    (tmp_path / "mdl" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(RuntimeError, match="does not match the architecture"):
        load_model(tmp_path / "mdl")


def test_energy_invariance_force_equivariance():
    m = random_painn(F=8, L=2)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 4, (8, 3))
    types = [1, 2, 1, 2, 1, 1, 2, 1]
    e, f = _ef(m, x, types, None)
    Q = _rot()
    e2, f2 = _ef(m, x @ Q.T + np.array([1.0, -2, 3]), types, None)
    assert abs(e - e2) < 1e-9
    np.testing.assert_allclose(f2, f @ Q.T, atol=1e-9)
    perm = rng.permutation(8)
    e3, f3 = _ef(m, x[perm], np.array(types)[perm], None)
    assert abs(e - e3) < 1e-9
    np.testing.assert_allclose(f3, f[perm], atol=1e-9)
    # periodic: translation and wrapping leave energy unchanged
    cell = np.eye(3) * 7.0
    ep, fp = _ef(m, x, types, cell)
    ep2, fp2 = _ef(m, (x + 5.3) % 7.0, types, cell)
    assert abs(ep - ep2) < 1e-9
    np.testing.assert_allclose(fp, fp2, atol=1e-9)
    assert abs(f.sum(0)).max() < 1e-9  # Newton's third law


def test_damaged_model_folder_gives_an_error_naming_the_file(tmp_path):
    """A truncated model.pt, a model.json that is not JSON, and a folder without model.pt each give
    an error naming the file and the problem; the CLI prints it and exits 2 without a traceback."""
    import subprocess
    import sys

    from cgexplain.model.potential import ModelFolderError, load_model, save_model
    from conftest import random_painn

    d = tmp_path / "model"
    save_model(random_painn(F=8, L=2), {"representation": "painn", "n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0}, d)
    load_model(d)
    data = (d / "model.pt").read_bytes()
    (d / "model.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFolderError, match=r"model\.pt: cannot be read as a state_dict \(\d+ bytes; truncated or corrupted\?\)"):
        load_model(d)
    np.savez(tmp_path / "t.npz", positions=np.zeros((1, 4, 3)), cells=np.zeros((1, 3, 3)), bead_types=np.ones(4, int))
    p = subprocess.run(
        [sys.executable, "-m", "cgexplain", "explain", str(d), str(tmp_path / "t.npz"), "--out", str(tmp_path / "o"), "--shell", "3"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "model.pt: cannot be read as a state_dict" in p.stderr and "Traceback" not in p.stderr
    (d / "model.pt").write_bytes(data)
    (d / "model.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match=r"model\.json: not valid JSON"):
        load_model(d)
    (d / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.pt: no such file"):
        load_model(d)
