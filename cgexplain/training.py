"""Stage 3b: force matching with Lightning.

The loss is the force-matching mean squared error (Noid et al., J. Chem. Phys. 128, 244114
(2008), eq. 29; Wang et al., ACS Cent. Sci. 5, 755 (2019)): L = <|F_map - F_θ(R)|²> over beads and
components, in (kcal/mol/Å)². Lightning writes ``last.ckpt`` after every epoch, so a killed run
resumes where it stopped; the checkpoints hold only tensors and plain hyper-parameters. At the end
the best weights (lowest validation loss) are saved with :func:`cgexplain.models.save_model`.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from .config import settings_from_dict
from .fileio import read_json, save_npz, write_json
from .models import build_model, save_model

__all__ = ["TrainSettings", "ForceMatching", "train", "evaluate_forces"]


@dataclasses.dataclass
class TrainSettings:
    """Training settings: epochs, batch size (frames), learning rate, validation fraction, seed."""

    epochs: int = 6
    batch_size: int = 4
    lr: float = 5e-4
    val_fraction: float = 0.1
    seed: int = 1
    max_frames: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSettings":
        return settings_from_dict(cls, d, "training")


class ForceMatching(pl.LightningModule):
    """LightningModule that fits a schnetpack potential to mapped forces (MSE)."""

    def __init__(self, model_hparams: dict, lr: float = 5e-4):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_hparams)
        self._val = None

    def forward(self, batch):
        return self.model(dict(batch))

    def _loss(self, batch):
        out = self(batch)
        diff = out["forces"] - batch["forces"]
        return (diff**2).mean(), diff

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=int(batch["_n_atoms"].shape[0]))
        return loss

    def on_validation_epoch_start(self):
        self._val = [0.0, 0.0, 0]

    def validation_step(self, batch, batch_idx):
        with torch.enable_grad():
            _, diff = self._loss(batch)
        diff = diff.detach()
        self._val[0] += float(diff.abs().sum())
        self._val[1] += float((diff**2).sum())
        self._val[2] += diff.numel()

    def on_validation_epoch_end(self):
        s_abs, s_sq, n = self._val
        self.log("val_loss", s_sq / max(n, 1), prog_bar=True)
        self.log("val_force_mae", s_abs / max(n, 1))
        self.log("val_force_rmse", (s_sq / max(n, 1)) ** 0.5)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def _dataset(db_path, cutoff, indices):
    import schnetpack.transform as trn
    from schnetpack.data import ASEAtomsData

    ds = ASEAtomsData(str(db_path), load_properties=["forces"], transforms=[trn.VesinNeighborList(cutoff=cutoff), trn.CastTo32()])
    return torch.utils.data.Subset(ds, list(map(int, indices)))


def evaluate_forces(model, loader) -> dict:
    """Force error of ``model`` over a schnetpack loader: MAE and RMSE per component (kcal/mol/Å),
    and the mean |F_ref| for scale."""
    s_abs = s_sq = s_ref = 0.0
    n = 0
    model.eval()
    for batch in loader:
        out = model(dict(batch))
        d = (out["forces"] - batch["forces"]).detach()
        s_abs += float(d.abs().sum())
        s_sq += float((d**2).sum())
        s_ref += float(batch["forces"].abs().sum())
        n += d.numel()
    return {"force_mae": s_abs / n, "force_rmse": (s_sq / n) ** 0.5, "mean_abs_reference_force": s_ref / n}


def train(db_path: str | Path, out_dir: str | Path, model_hparams: dict, settings: TrainSettings, extra_meta: dict | None = None, progress: bool = True) -> dict:
    """Train a potential by force matching on the ASEAtomsData at ``db_path``; write ``out_dir``.

    Writes ``out_dir/model.pt`` + ``model.json`` (best weights), ``training.json`` (settings,
    validation force MAE/RMSE in kcal/mol/Å, epochs, wall time), ``split.npz`` and
    ``checkpoints/`` (Lightning, for resuming). If ``training.json`` exists the stage is done
    and its contents are returned; if ``checkpoints/last.ckpt`` exists training resumes from it.
    """
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger
    from schnetpack.data import ASEAtomsData, AtomsLoader

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "training.json").exists() and (out / "model.pt").exists():
        return read_json(out / "training.json")
    t0 = time.perf_counter()
    n_total = len(ASEAtomsData(str(db_path)))
    split_path = out / "split.npz"
    if not split_path.exists():
        rng = np.random.default_rng(settings.seed)
        idx = rng.permutation(n_total)
        if settings.max_frames:
            idx = idx[: settings.max_frames]
        n_val = max(1, int(round(settings.val_fraction * len(idx))))
        save_npz(split_path, train=np.sort(idx[n_val:]), val=np.sort(idx[:n_val]))
    split = np.load(split_path)
    cutoff = float(model_hparams["cutoff"])
    train_loader = AtomsLoader(_dataset(db_path, cutoff, split["train"]), batch_size=settings.batch_size, shuffle=True, num_workers=0)
    val_loader = AtomsLoader(_dataset(db_path, cutoff, split["val"]), batch_size=settings.batch_size, shuffle=False, num_workers=0)

    pl.seed_everything(settings.seed, verbose=False)
    task = ForceMatching(model_hparams, lr=settings.lr)
    ckpt_dir = out / "checkpoints"
    best_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_last=True, save_weights_only=False)
    trainer = pl.Trainer(
        max_epochs=settings.epochs, accelerator="auto", devices=1, callbacks=[best_cb],
        logger=CSVLogger(str(out), name="log", version=0), inference_mode=False,
        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=10,
    )
    last = ckpt_dir / "last.ckpt"
    trainer.fit(task, train_loader, val_loader, ckpt_path=str(last) if last.exists() else None)

    best = ckpt_dir / "best.ckpt"
    state = torch.load(best if best.exists() else last, map_location="cpu", weights_only=True)["state_dict"]
    task.load_state_dict(state)
    model = task.model.cpu().eval()
    metrics = evaluate_forces(model, val_loader)
    result = {
        "settings": dataclasses.asdict(settings),
        "n_train_frames": int(len(split["train"])),
        "n_val_frames": int(len(split["val"])),
        "validation": metrics,
        "epochs_run": int(trainer.current_epoch),
        "wall_time_s": time.perf_counter() - t0,
        "units": "kcal/mol/Angstrom",
    }
    save_model(model, model_hparams, out, extra={"training": result, **(extra_meta or {})})
    write_json(out / "training.json", result)
    return result
