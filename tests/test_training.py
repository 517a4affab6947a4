import numpy as np
import torch

from cgexplain.mapping import write_cg_dataset
from cgexplain.models import load_model
from cgexplain.training import TrainSettings, train
from conftest import harmonic_frames


def _dataset(tmp_path, n_frames=12, n=16, L=7.0, seed=0):
    """Toy CG data (harmonic pair forces) as an ASEAtomsData file."""
    return write_cg_dataset(tmp_path / "d.db", harmonic_frames(n_frames, n, L, seed), progress=False)


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
