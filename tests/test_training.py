import numpy as np
import torch

from cgexplain.mapping import MappedTrajectory, write_cg_dataset
from cgexplain.models import load_model
from cgexplain.training import TrainSettings, train


def _dataset(tmp_path, n_frames=12, n=16, L=7.0, seed=0):
    """Toy CG data: harmonic pair forces, so the model has something real to fit."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, L, (n_frames, n, 3)).astype(np.float32)
    frc = np.zeros_like(pos)
    for f in range(n_frames):
        d = pos[f][None] - pos[f][:, None]
        d -= L * np.round(d / L)
        r = np.linalg.norm(d, axis=-1) + np.eye(n)
        w = np.where((r < 3.0) & (r > 0), (r - 2.0) / r, 0.0)
        frc[f] = (w[..., None] * d).sum(1)
    t = MappedTrajectory(pos, frc, np.repeat(np.eye(3)[None] * L, n_frames, 0).astype(np.float32), np.ones(n, int), np.full(n, 16.0))
    return write_cg_dataset(tmp_path / "d.db", t, progress=False)


HP = {"representation": "painn", "n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0, "n_rbf": 8}


def test_train_checkpoint_resume_and_metrics(tmp_path):
    _dataset(tmp_path)
    out = tmp_path / "m"
    r1 = train(tmp_path / "d.db", out, HP, TrainSettings(epochs=1, batch_size=4), progress=False)
    assert r1["epochs_run"] == 1
    v = r1["validation"]
    assert v["force_rmse"] >= v["force_mae"] > 0
    # simulate a run killed after epoch 1: keep the Lightning checkpoint, drop the final outputs
    (out / "training.json").unlink()
    (out / "model.pt").unlink()
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    r2 = train(tmp_path / "d.db", out, HP, TrainSettings(epochs=3, batch_size=4), progress=False)
    assert r2["epochs_run"] == 3
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    model, meta = load_model(out)
    assert meta["training"]["validation"]["force_mae"] == r2["validation"]["force_mae"]
    # a finished stage is reused
    assert train(tmp_path / "d.db", out, HP, TrainSettings(epochs=3, batch_size=4), progress=False) == r2
