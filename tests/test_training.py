import torch

from cgexplain.mapping.maps import write_cg_dataset
from cgexplain.model.potential import load_model
from cgexplain.model.training import TrainSettings, train
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
    # the log of the first start survives the resume and the merged log has every epoch once
    import csv

    assert (out / "log" / "version_0" / "metrics.csv").exists() and (out / "log" / "version_1" / "metrics.csv").exists()
    with open(out / "training_log.csv", newline="") as fh:
        val_epochs = [int(r["epoch"]) for r in csv.DictReader(fh) if r.get("val_loss")]
    assert val_epochs == [0, 1, 2]
    # a finished stage is reused
    assert train(tmp_path / "d.db", out, HP, TrainSettings(epochs=3, batch_size=4), progress=False) == r2


def test_merge_training_logs_drops_rolled_back_rows(tmp_path):
    import csv

    from cgexplain.model.training import merge_training_logs

    log = tmp_path / "log"
    (log / "version_0").mkdir(parents=True)
    (log / "version_1").mkdir()
    # first start: epochs 0, 1 finished, killed inside epoch 2 (steps 25, 28 are rolled back)
    (log / "version_0" / "metrics.csv").write_text("epoch,step,train_loss,val_loss\n0,4,5.0,\n0,9,,4.0\n1,14,3.0,\n1,19,,2.9\n2,25,2.5,\n2,28,2.4,\n")
    # resume from the end of epoch 1: epoch 2 again, with a new column
    (log / "version_1" / "metrics.csv").write_text("epoch,step,train_loss,val_loss,val_force_mae\n2,24,2.6,,\n2,29,,2.1,1.2\n")
    n = merge_training_logs(log, tmp_path / "training_log.csv")
    with open(tmp_path / "training_log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert n == len(rows) == 6
    assert [int(r["step"]) for r in rows] == [4, 9, 14, 19, 24, 29]
    assert rows[-1]["val_force_mae"] == "1.2" and rows[0]["val_force_mae"] == ""
    try:
        merge_training_logs(tmp_path / "nothing", tmp_path / "x.csv")
    except FileNotFoundError as e:
        assert "metrics.csv" in str(e)
    else:
        raise AssertionError("missing logs must raise")


def test_stale_best_checkpoint_without_last_is_not_trusted(tmp_path):
    """A run killed in its first epoch after best.ckpt but before last.ckpt was written starts
    afresh: the final model equals a clean run's, not the stale best.ckpt's weights."""
    _dataset(tmp_path)
    stale, clean = tmp_path / "stale", tmp_path / "clean"
    train(tmp_path / "d.db", stale, HP, TrainSettings(epochs=1, batch_size=4, lr=0.01), progress=False)
    for f in ("training.json", "model.pt", "checkpoints/last.ckpt"):
        (stale / f).unlink()
    assert (stale / "checkpoints" / "best.ckpt").exists()
    train(tmp_path / "d.db", stale, HP, TrainSettings(epochs=3, batch_size=4, lr=0.01), progress=False)
    train(tmp_path / "d.db", clean, HP, TrainSettings(epochs=3, batch_size=4, lr=0.01), progress=False)
    wa, wb = torch.load(stale / "model.pt", weights_only=True), torch.load(clean / "model.pt", weights_only=True)
    for k in wb:
        torch.testing.assert_close(wa[k], wb[k], msg=k)


def test_max_minutes_stops_training_and_keeps_a_model(tmp_path):
    """training.max_minutes: Lightning's max_time ends the run early; the model that was saved is
    the best validated one, and training.json says how many epochs ran."""
    import pytest

    _dataset(tmp_path, n_frames=16)
    out = tmp_path / "m"
    r = train(tmp_path / "d.db", out, HP, TrainSettings(epochs=500, batch_size=4, max_minutes=0.05), progress=False)
    assert 1 <= r["epochs_run"] < 500
    model, meta = load_model(out)
    assert meta["training"]["validation"]["force_mae"] == r["validation"]["force_mae"] > 0
    with pytest.raises(ValueError, match="max_minutes"):
        TrainSettings(max_minutes=0)
