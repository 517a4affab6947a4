"""Stage 3b: force matching with Lightning.

The loss is the force-matching mean squared error (Noid et al., J. Chem. Phys. 128, 244114
(2008), eq. 29; Wang et al., ACS Cent. Sci. 5, 755 (2019)): L = <|F_map - F_θ(R)|²> over beads and
components, in (kcal/mol/Å)². Lightning writes ``last.ckpt`` after every epoch, so a killed run
resumes where it stopped; the checkpoints hold only tensors and plain hyper-parameters. At the end
the best weights (lowest validation loss) are saved with :func:`cgexplain.model.potential.save_model`.

Data: by default the frames are held in memory with neighbour lists computed once
(:class:`cgexplain.model.data.CachedFrames`, ``data_path: cached``); ``data_path: schnetpack`` uses
schnetpack's ``ASEAtomsData`` with ``VesinNeighborList`` computed each time a frame is loaded.

Several devices or nodes: ``devices``, ``num_nodes``, ``strategy`` and ``accelerator`` go to the
Lightning ``Trainer`` (e.g. ``strategy: ddp``). ``batch_size`` is per process; each optimizer step
of P processes sees the frames that one process with ``batch_size * P`` would see (a
``DistributedSampler`` with the same seed interleaves one permutation; exact when the number of
training frames is a multiple of P), and DDP's gradient mean equals the single-process gradient
because every frame has the same number of beads. Validation sums and counts are all-reduced, so
the validation MAE/RMSE are means over the whole validation set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from cgexplain.distributed import is_main_process
from cgexplain.fileio import atomic_path, read_json, save_npz, write_json
from cgexplain.model.data import CachedFrames, ShardSampler, cached_loader, read_frames
from cgexplain.model.mace import complete_hparams
from cgexplain.model.potential import build_model, save_model, training_record
from cgexplain.reference.protein import run_halves
from cgexplain.settings import gt, one_of, settings_from_dict

__all__ = ["TrainSettings", "ForceMatching", "held_in_frames", "train", "evaluate_forces", "merge_training_logs"]

DATA_PATHS = ("cached", "schnetpack")


@dataclasses.dataclass
class TrainSettings:
    """Training settings.

    epochs; batch_size (frames per optimizer step and process); lr; val_fraction; seed;
    max_frames (None: all); max_minutes (None: no limit; else training stops after this wall time,
    at the end of the running step, and the best model so far is kept: for a lent machine's budget); data_path ('cached' (default) or 'schnetpack'); amsgrad
    (Adam's AMSGrad variant; Reddi et al., ICLR 2018; MACE's own default); hold_out (None, or
    'second_half': the second half of every reference run is never trained on, and the analyse
    stage compares the CG ensembles with it); accelerator
    ('auto', 'cpu', 'gpu', ...), devices (per node: an int, or 'auto'), num_nodes, strategy
    ('auto', 'ddp', 'ddp_spawn', ...): passed to the Lightning Trainer.
    Raises ValueError for an unknown data_path, a batch size, epoch count or node count < 1, or
    max_minutes <= 0.
    """

    epochs: int = gt(0, 6)
    batch_size: int = gt(0, 4)
    lr: float = gt(0, 5e-4)
    val_fraction: float = gt(0, 0.1)
    seed: int = 1
    max_frames: int | None = None
    max_minutes: float | None = None
    data_path: str = one_of(*DATA_PATHS)
    amsgrad: bool = False
    hold_out: str | None = None
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = gt(0, 1)
    strategy: str = "auto"

    def __post_init__(self):
        if self.data_path not in DATA_PATHS:
            raise ValueError(f"training.data_path {self.data_path!r}: use one of {list(DATA_PATHS)}")
        for name in ("epochs", "batch_size", "num_nodes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        if self.hold_out not in (None, "second_half"):
            raise ValueError(f"training.hold_out {self.hold_out!r}: use null or 'second_half'")
        if self.max_minutes is not None and not float(self.max_minutes) > 0:
            raise ValueError(f"training.max_minutes must be > 0 (or null: no limit), got {self.max_minutes}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainSettings:
        return settings_from_dict(cls, d, "training")


class ForceMatching(pl.LightningModule):
    """LightningModule that fits a schnetpack potential to mapped forces (MSE).

    Validation: per process sums of |ΔF|, ΔF² and the component count, all-reduced over the
    processes at the end of the epoch; logs val_loss (MSE, (kcal/mol/Å)²), val_force_mae and
    val_force_rmse (kcal/mol/Å), and keeps their history per epoch (saved in checkpoints)."""

    def __init__(self, model_hparams: dict, lr: float = 5e-4, amsgrad: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_hparams)
        self._val = None
        self.val_history: list[list[float]] = []

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
        self._val = torch.zeros(3, dtype=torch.float64, device=self.device)

    def validation_step(self, batch, batch_idx):
        with torch.enable_grad():
            _, diff = self._loss(batch)
        diff = diff.detach().to(torch.float64)
        self._val += torch.stack([diff.abs().sum(), (diff**2).sum(), torch.tensor(float(diff.numel()), dtype=torch.float64, device=diff.device)])

    def on_validation_epoch_end(self):
        tot = self.trainer.strategy.reduce(self._val.clone(), reduce_op="sum")  # over all processes
        s_abs, s_sq, n = (float(v) for v in tot)
        n = max(n, 1.0)
        loss, mae = s_sq / n, s_abs / n
        # the values are equal on every process already; sync_dist only keeps Lightning quiet
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)
        self.log("val_force_mae", mae, sync_dist=True)
        self.log("val_force_rmse", loss**0.5, sync_dist=True)
        self.val_history.append([float(self.current_epoch), loss, mae, loss**0.5])

    def on_save_checkpoint(self, checkpoint):
        checkpoint["val_history"] = [list(map(float, h)) for h in self.val_history]

    def on_load_checkpoint(self, checkpoint):
        self.val_history = [list(h) for h in checkpoint.get("val_history", [])]

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, amsgrad=bool(self.hparams.get("amsgrad", False)))
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


class _FrameData(pl.LightningDataModule):
    """Train and validation loaders; the samplers are made once the process group exists, so
    each process takes its share (training: DistributedSampler, shuffled with ``seed`` + epoch;
    validation: every frame once over all processes)."""

    def __init__(self, train_set, val_set, batch_size: int, seed: int, kind: str):
        super().__init__()
        self.train_set, self.val_set, self.batch_size, self.seed, self.kind = train_set, val_set, batch_size, seed, kind

    def _rank(self):
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def train_dataloader(self):
        from torch.utils.data.distributed import DistributedSampler

        rank, world = self._rank()
        sampler = DistributedSampler(range(len(self.train_set)), num_replicas=world, rank=rank, shuffle=True, seed=self.seed, drop_last=False)
        return _loader(self.train_set, self.batch_size, sampler, self.kind)

    def val_dataloader(self):

        rank, world = self._rank()
        return _loader(self.val_set, self.batch_size, ShardSampler(len(self.val_set), rank, world), self.kind)


def _strategy(settings: TrainSettings) -> str:
    """The Lightning strategy: DDP variants find unused parameters, because the energy head's
    bias never enters the force loss (it has no gradient) and DDP stops on a parameter without one;
    'auto' with more than one device or node becomes 'ddp' so."""
    s = settings.strategy
    if s in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        return f"{s}_find_unused_parameters_true"
    several = settings.devices not in (1, "1") or int(settings.num_nodes) > 1
    if s == "auto" and several:
        return "ddp_find_unused_parameters_true"
    return s


def _loader(ds, batch_size, sampler, kind):
    if kind == "cached":
        return cached_loader(ds, batch_size, sampler)
    from schnetpack.data import AtomsLoader

    return AtomsLoader(ds, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=0)


def _dataset(db_path, cutoff, indices):
    import schnetpack.transform as trn
    from schnetpack.data import ASEAtomsData

    ds = ASEAtomsData(str(db_path), load_properties=["forces"], transforms=[trn.VesinNeighborList(cutoff=cutoff), trn.CastTo32()])
    return torch.utils.data.Subset(ds, list(map(int, indices)))


def evaluate_forces(model, loader) -> dict:
    """Force error of ``model`` over a loader of schnetpack batches (with ``forces``): MAE and
    RMSE per component (kcal/mol/Å), and the mean |F_ref| for scale."""
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


@contextlib.contextmanager
def _quiet_lightning():
    """Silence what Lightning prints on every run that is noise to a cgexplain user: its info lines
    (GPU/TPU available, the litlogger advertisement, "`Trainer.fit` stopped") and the deprecation
    warning its pytree helper triggers in torch. Lightning's own warnings and cgexplain's stay visible."""
    import logging
    import warnings

    loggers = [logging.getLogger(n) for n in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


def held_in_frames(run_lengths: list[int], hold_out: str | None) -> np.ndarray | None:
    """Indices of the frames training may use: all (None) without ``hold_out``; with
    'second_half', the first half of every reference run (run lengths in frames, in order).
    Raises ValueError for an unknown ``hold_out`` or no run lengths."""
    if hold_out is None:
        return None
    if hold_out != "second_half":
        raise ValueError(f"training.hold_out {hold_out!r}: use null or 'second_half'")
    if not run_lengths:
        raise ValueError("training.hold_out: the reference records no run lengths to split")
    return run_halves(run_lengths)[0].astype(np.int64)


def train(
    data: str | Path,
    out_dir: str | Path,
    model_hparams: dict,
    settings: TrainSettings,
    extra_meta: dict | None = None,
    progress: bool = True,
    frames: np.ndarray | None = None,
) -> dict:
    """Train a potential by force matching on the frames in ``data``; write ``out_dir``.

    data: ``cg/mapped.npz`` (a :class:`cgexplain.mapping.maps.MappedTrajectory`) or a schnetpack
    ``ASEAtomsData`` ``.db``; positions Å, forces kcal/mol/Å. ``settings.data_path`` 'cached'
    reads either; 'schnetpack' needs the ``.db``.
    Writes ``out_dir/model.pt`` + ``model.json`` (best weights; ``trained_for``: the training data's
    bead count, types and periodicity, :func:`~cgexplain.model.potential.training_record`), ``training.json`` (settings,
    validation force MAE/RMSE in kcal/mol/Å, per-epoch validation history, epochs, world size,
    wall time), ``split.npz`` and ``checkpoints/`` (Lightning, for resuming). If ``training.json``
    exists the training is done and its contents are returned; if ``checkpoints/last.ckpt`` exists
    training resumes from it. Under DDP only global rank 0 evaluates and writes; the other ranks
    return ``{"global_rank": r, "world_size": P}``.
    Raises FileNotFoundError for missing data, ValueError for a data file the data path cannot
    read.
    """
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "training.json").exists() and (out / "model.pt").exists():
        return read_json(out / "training.json")
    t0 = time.perf_counter()
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"{data}: no such file (training data)")
    cutoff = float(model_hparams["cutoff"])
    if settings.data_path == "cached":
        pos, frc, cells, types = read_frames(data)
        n_total = len(pos)
    else:
        from schnetpack.data import ASEAtomsData

        if data.suffix != ".db":
            raise ValueError(f"{data}: training.data_path 'schnetpack' reads an ASEAtomsData .db (cg/dataset.db)")
        n_total = len(ASEAtomsData(str(data)))
    split_path = out / "split.npz"
    if not split_path.exists():
        rng = np.random.default_rng(settings.seed)
        pool = np.arange(n_total) if frames is None else np.asarray(frames, dtype=np.int64)
        if len(pool) < 2 or pool.min() < 0 or pool.max() >= n_total:
            raise ValueError(f"{data}: training frames must be >= 2 indices within its {n_total} frames")
        idx = pool[rng.permutation(len(pool))]
        if settings.max_frames:
            idx = idx[: settings.max_frames]
        n_val = max(1, int(round(settings.val_fraction * len(idx))))
        save_npz(split_path, train=np.sort(idx[n_val:]), val=np.sort(idx[:n_val]))
    split = np.load(split_path)
    if settings.data_path == "cached":
        train_set, val_set = (
            CachedFrames(pos[s], frc[s], cells[s], types, cutoff, progress=progress, desc=f"neighbour lists ({k})")
            for k, s in (("train", split["train"]), ("validation", split["val"]))
        )
    else:
        train_set, val_set = _dataset(data, cutoff, split["train"]), _dataset(data, cutoff, split["val"])
    dm = _FrameData(train_set, val_set, settings.batch_size, settings.seed, settings.data_path)

    pl.seed_everything(settings.seed, verbose=False)
    if str(model_hparams.get("representation", "")).lower() == "mace":  # n_types, avg_num_neighbors from the data
        p_, _, c_, t_ = (pos, frc, cells, types) if settings.data_path == "cached" else read_frames(data)
        model_hparams = complete_hparams(model_hparams, p_[split["train"]], c_[split["train"]], t_)
    task = ForceMatching(model_hparams, lr=settings.lr, amsgrad=settings.amsgrad)
    ckpt_dir = out / "checkpoints"
    if not (ckpt_dir / "last.ckpt").exists() and ckpt_dir.exists() and is_main_process():
        # nothing to resume from: a best.ckpt left by a run killed before its first last.ckpt would
        # otherwise be taken for this run's best model
        shutil.rmtree(ckpt_dir)
    best_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_last=True, save_weights_only=False)
    last = ckpt_dir / "last.ckpt"
    # Lightning's CSVLogger deletes an existing metrics.csv, so a resumed run logs to a new version
    log_version = len(list((out / "log").glob("version_*"))) if last.exists() else 0
    with _quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=settings.epochs,
            max_time=None if settings.max_minutes is None else timedelta(minutes=float(settings.max_minutes)),
            accelerator=settings.accelerator,
            devices=settings.devices,
            num_nodes=settings.num_nodes,
            strategy=_strategy(settings),
            use_distributed_sampler=False,
            callbacks=[best_cb],
            logger=CSVLogger(str(out), name="log", version=log_version),
            inference_mode=False,
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            # at least once per epoch, so Lightning has no interval longer than an epoch to warn about
            log_every_n_steps=max(1, min(10, -(-len(train_set) // settings.batch_size))),
        )
        trainer.fit(task, datamodule=dm, ckpt_path=str(last) if last.exists() else None)
    if not trainer.is_global_zero:
        return {"global_rank": int(trainer.global_rank), "world_size": int(trainer.world_size)}

    best = ckpt_dir / "best.ckpt"
    ckpt = torch.load(best if best.exists() else last, map_location="cpu", weights_only=True)
    history = torch.load(last, map_location="cpu", weights_only=True).get("val_history", []) if last.exists() else []
    task.load_state_dict(ckpt["state_dict"])
    model = task.model.cpu().eval()
    metrics = evaluate_forces(model, _loader(val_set, settings.batch_size, None, settings.data_path))
    result = {
        "settings": dataclasses.asdict(settings),
        "n_train_frames": int(len(split["train"])),
        "n_val_frames": int(len(split["val"])),
        "validation": metrics,
        "validation_history": {
            "epoch": [int(h[0]) for h in history],
            "val_loss": [h[1] for h in history],
            "val_force_mae": [h[2] for h in history],
            "val_force_rmse": [h[3] for h in history],
        },
        "epochs_run": int(trainer.current_epoch),
        "world_size": int(trainer.world_size),
        "wall_time_s": time.perf_counter() - t0,
        "units": "kcal/mol/Angstrom",
    }
    save_model(
        model,
        model_hparams,
        out,
        extra={
            "training": result,
            "trained_for": _trained_for(data, model_hparams, (types, cells) if settings.data_path == "cached" else None),
            **(extra_meta or {}),
        },
    )
    merge_training_logs(out / "log", out / "training_log.csv")
    write_json(out / "training.json", result)
    return result


def _trained_for(data: Path, model_hparams: dict, frames: tuple | None) -> dict:
    """model.json's ``trained_for`` record (:func:`cgexplain.model.potential.training_record`):
    bead count, bead types and periodicity of the training data, and whether priors fix the
    chain. frames: (types, cells) of the cached data, or None: read from the first row of the
    ``.db``."""
    if frames is not None:
        types, cells = frames
        return training_record(types, cells, model_hparams)
    from schnetpack.data import ASEAtomsData

    row = ASEAtomsData(str(data))[0]
    periodic = bool(row["_pbc"].any())
    cell = row["_cell"].numpy().reshape(1, 3, 3) if periodic else np.zeros((1, 3, 3))
    return training_record(row["_atomic_numbers"].numpy(), cell, model_hparams)


def merge_training_logs(log_dir: str | Path, dest: str | Path) -> int:
    """Merge the CSV logs of a training that was resumed into one ``dest`` CSV; return its rows.

    log_dir: Lightning ``CSVLogger`` folder with ``version_0/metrics.csv``, ``version_1/...``, one
    per start of the run (the first, then each resume). A resume restarts from the last finished
    epoch, so rows of a version at or after the first step logged by the next version were rolled
    back and are dropped. Columns are the union over versions, rows sorted by (step, epoch).
    Written atomically. Raises FileNotFoundError when ``log_dir`` holds no ``metrics.csv``.
    """
    import csv
    import io

    files = sorted(Path(log_dir).glob("version_*/metrics.csv"), key=lambda f: int(f.parent.name.split("_")[1]))
    if not files:
        raise FileNotFoundError(f"{log_dir}: no version_*/metrics.csv to merge")
    rows: list[dict] = []
    cols: list[str] = []
    for f in files:
        with open(f, newline="") as fh:
            new = list(csv.DictReader(fh))
        cols += [c for c in (new[0].keys() if new else []) if c not in cols]
        if new:
            first = min(int(r["step"]) for r in new)
            rows = [r for r in rows if int(r["step"]) < first]
        rows += new
    rows.sort(key=lambda r: (int(r["step"]), int(r["epoch"])))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_path(dest) as tmp:
        Path(tmp).write_text(buf.getvalue())
    return len(rows)
