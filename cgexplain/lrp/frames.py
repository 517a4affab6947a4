"""One frame explainer for every kind of system, in the shape of MDAnalysis's ``AnalysisBase``.

:class:`FrameExplainer` walks over the frames of a :class:`~cgexplain.lrp.sources.FrameSource`,
asks a :class:`FrameTask` whether a frame's file is already written (a killed run resumes), and
otherwise loads the model (once per process) and lets the task compute and write that frame.
``run()`` then leaves the positions of the frames computed in this call in
``results.computed``; the task's own ``aggregate`` turns the frame files into statistics.

Frames are spread over processes by MDAnalysis's parallel analysis machinery
(``run(backend=..., n_workers=...)``): ``'serial'``, ``'multiprocessing'`` (a pool of spawned
processes, :class:`SpawnPool`, since forked children of a process that already ran torch's
OpenMP threads can hang) or ``'dask'`` (``dask.compute`` with processes; with a
dask.distributed client, e.g. from dask-jobqueue, the frames go to a SLURM or PBS cluster).
Each process loads the model folder itself (state_dict + JSON), uses cores // n_workers torch
threads, and with device 'cuda' takes GPU w mod (visible GPUs), w being its block of frames. The frame files do not depend on how the frames were spread, so a run may
resume with another backend or worker count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from MDAnalysis.analysis.backends import BackendBase
from MDAnalysis.analysis.base import AnalysisBase
from MDAnalysis.analysis.results import ResultsGroup

from cgexplain.distributed import cpu_count, rank_device
from cgexplain.fileio import read_json
from cgexplain.lrp.sources import FrameSource
from cgexplain.model.potential import check_system, load_model

__all__ = ["FrameExplainer", "FrameTask", "SpawnPool", "BACKENDS"]

BACKENDS = ("serial", "multiprocessing", "dask")


class FrameTask(Protocol):
    """What one kind of explanation does with one frame (fluid statistics, protein residue maps)."""

    def is_done(self, out_dir: Path, k: int, frame_id: int, position: np.ndarray, cell: np.ndarray) -> bool:
        """True if the file of frame ``k`` exists, is readable and was written for these inputs."""
        ...

    def compute(self, model, out_dir: Path, k: int, frame_id: int, position: np.ndarray, cell: np.ndarray) -> None:
        """Explain frame ``k`` (position (n, 3) Å, cell (3, 3) Å, zeros: not periodic) and write its file(s) atomically."""
        ...


class SpawnPool(BackendBase):
    """MDAnalysis backend: a ``multiprocessing`` pool of *spawned* processes."""

    def _get_warnings(self) -> dict:
        return {}

    def _get_checks(self) -> dict:
        return {isinstance(self.n_workers, int) and self.n_workers > 0: f"n_workers must be a positive integer, got {self.n_workers}"}

    def apply(self, func, computations: list) -> list:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(processes=self.n_workers) as pool:
            return pool.map(func, computations)


def _model_json(model_dir: Path) -> dict | None:
    """model_dir's model.json, or None when it cannot be read (then :func:`load_model` names the problem)."""
    try:
        meta = read_json(model_dir / "model.json")
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _index_universe(n_frames: int):
    """A one-particle in-memory universe with ``n_frames`` frames: frame number k is position k of the source."""
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(1, trajectory=False)
    u.load_new(np.zeros((max(n_frames, 1), 1, 3), dtype=np.float32), format=MemoryReader)
    return u


class FrameExplainer(AnalysisBase):
    """Explain the frames of ``source`` with ``task``, one file per frame in ``out_dir``.

    source: a :class:`~cgexplain.lrp.sources.FrameSource` (arrays in memory or a lazily read
    trajectory); model_dir: a model folder (model.pt + model.json), loaded once in each process;
    or model: a loaded potential (serial runs only). device: 'cpu' (default), 'cuda' or 'cuda:N'.

    ``run(backend='serial'|'multiprocessing'|'dask', n_workers=N)`` fills ``results.computed``
    (positions of the frames computed in this call; the others were already written) and
    ``results.n_frames``. Raises ValueError for a parallel backend without a model folder or for
    not exactly one of model_dir and model, and (at construction, before anything is written)
    :class:`~cgexplain.model.potential.SystemMismatchError` (a ValueError) when the frames' bead
    count is not the one the model's priors were fitted for
    (:func:`~cgexplain.model.potential.check_system`).
    """

    _analysis_algorithm_is_parallelizable = True

    @classmethod
    def get_supported_backends(cls):
        return BACKENDS

    def __init__(
        self,
        source: FrameSource,
        task: FrameTask,
        out_dir: str | Path,
        *,
        model_dir: str | Path | None = None,
        model=None,
        device: str | None = None,
        progress: bool = False,
    ):
        if (model_dir is None) == (model is None):
            raise ValueError("FrameExplainer: give exactly one of model_dir and model")
        # frames another chain than the priors': refused before any frame is computed or written
        meta = _model_json(Path(model_dir)) if model_dir is not None else None
        name = f"model {model_dir}" if model_dir is not None else "the model"
        check_system(meta, source.types, "each frame", model=model, model_name=name, bead_types=False)
        self.source, self.task, self.out_dir = source, task, Path(out_dir)
        self.model_dir = None if model_dir is None else Path(model_dir)
        self._model, self.device = model, device
        self._threads: int | None = None
        self._block_starts: list[int] = []
        self._ready = False  # model loaded and on its device in this process
        self.out_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(_index_universe(len(source)).trajectory, verbose=progress)

    def __getstate__(self):  # the model is reloaded from its folder in each process, never pickled
        state = self.__dict__.copy()
        if self.model_dir is not None:
            state["_model"], state["_ready"] = None, False
        return state

    def run(self, *args, backend: str | BackendBase | None = None, n_workers: int | None = None, **kwargs):
        """MDAnalysis ``AnalysisBase.run``: one worker runs serially whatever ``backend``; more go
        through ``backend`` ('multiprocessing', the default, uses :class:`SpawnPool`; 'dask').
        Raises ValueError for n_workers < 1, an unknown backend, or a parallel run without a model folder."""
        n = 1 if n_workers is None else int(n_workers)
        if n < 1:
            raise ValueError(f"workers must be >= 1, got {n}")
        if backend is not None and backend not in BACKENDS and not isinstance(backend, BackendBase):
            raise ValueError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
        if n == 1:
            return super().run(*args, backend="serial", **kwargs)
        if self.model_dir is None:
            raise ValueError("a parallel backend needs the model folder (each process loads model.pt + model.json), not a model object")

        self._threads = max(1, cpu_count() // n)
        # the first frame of each worker's block, in MDAnalysis's split: worker w takes device index w
        self._block_starts = [int(b[0]) for b in np.array_split(np.arange(len(self.source)), n) if len(b)]
        if backend in (None, "serial", "multiprocessing"):
            return super().run(*args, backend=SpawnPool(n_workers=n), n_workers=n, unsupported_backend=True, **kwargs)
        return super().run(*args, backend=backend, n_workers=n, **kwargs)

    def _get_aggregator(self):
        return ResultsGroup(lookup={"computed": ResultsGroup.flatten_sequence})

    def _load(self, k: int):
        """The model on this process's device, loaded (or moved) once; ``k``: the first frame this process computes."""
        if not self._ready:
            import torch

            if self._model is None:
                if self._threads is not None:
                    torch.set_num_threads(self._threads)
                assert self.model_dir is not None  # __init__: exactly one of model and model_dir
                self._model, _ = load_model(self.model_dir)
            worker = int(np.searchsorted(self._block_starts, k, side="right")) - 1 if self._block_starts else 0
            self._model = self._model.to(rank_device(self.device, max(worker, 0)))
            self._ready = True
        return self._model

    def _prepare(self):
        self.results.computed = []

    def _single_frame(self):
        k = int(self._ts.frame)
        fid = int(self.source.frame_ids[k])
        pos, cells = self.source.read([k])
        if self.task.is_done(self.out_dir, k, fid, pos[0], cells[0]):
            return
        self.task.compute(self._load(k), self.out_dir, k, fid, pos[0], cells[0])
        self.results.computed.append(k)

    def _conclude(self):
        self.results.n_frames = len(self.source)
