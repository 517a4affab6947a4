"""Frames to explain: arrays in memory or any trajectory MDAnalysis reads, read on demand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["FrameSource", "ArrayFrames", "TrajectoryFrames", "as_source"]


class FrameSource:
    """Frames to explain, read in chunks. Subclasses set ``types`` (n,) int bead types and
    ``frame_ids`` (F,) int (the frames' indices in their trajectory) and implement :meth:`read`."""

    types: np.ndarray
    frame_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_ids)

    def read(self, ks) -> tuple[np.ndarray, np.ndarray]:
        """Positions (len(ks), n, 3) Å and cells (len(ks), 3, 3) Å (zeros: not periodic) of the
        frames at positions ``ks`` of this source."""
        raise NotImplementedError

    def chunks(self, ks, chunk_frames: int):
        """Yield (ks_chunk, positions, cells) for ``ks`` in chunks of at most ``chunk_frames``."""
        ks = list(ks)
        for s in range(0, len(ks), max(1, int(chunk_frames))):
            part = ks[s : s + int(chunk_frames)]
            pos, cells = self.read(part)
            yield part, pos, cells


class ArrayFrames(FrameSource):
    """Frames held in memory: positions (F, n, 3) Å, cells (F, 3, 3) Å, types (n,), frame ids (F,)
    (default 0..F-1). Raises ValueError on mismatched shapes."""

    def __init__(self, positions, cells, types, frame_ids=None):
        self.positions = np.asarray(positions, dtype=np.float64)
        self.cells = np.asarray(cells, dtype=np.float64)
        self.types = np.asarray(types, dtype=np.int64)
        if self.positions.ndim != 3 or self.positions.shape[2] != 3 or self.cells.shape != (len(self.positions), 3, 3):
            raise ValueError(f"positions must be (F, n, 3) and cells (F, 3, 3); got {self.positions.shape} and {self.cells.shape}")
        if len(self.types) != self.positions.shape[1]:
            raise ValueError(f"{self.positions.shape[1]} beads per frame but {len(self.types)} bead types")
        self.frame_ids = np.arange(len(self.positions)) if frame_ids is None else np.asarray(frame_ids, dtype=np.int64)

    def read(self, ks):
        ks = np.asarray(ks, dtype=np.int64)
        return self.positions[ks], self.cells[ks]


class TrajectoryFrames(FrameSource):
    """Frames of any trajectory MDAnalysis reads (DCD, XTC, TRR, ...) with its ``topology``, read
    on demand: only the frames of one chunk are in memory. The one reader of CG trajectories
    (the analyse and explain stages, ``cgexplain explain``). trajectory: one file, or a list of
    files read as one trajectory in order (the replicas of a CG simulation; :attr:`lengths`
    gives the frames of each). types (n,) bead types; frame_ids: the trajectory frames to use
    (default all). The universe is opened lazily, so the source can be sent to worker processes.
    Raises FileNotFoundError for a missing file and ValueError for a bead-count mismatch or an
    out-of-range frame."""

    def __init__(self, topology, trajectory, types, frame_ids=None):
        files = [str(f) for f in trajectory] if isinstance(trajectory, list | tuple) else [str(trajectory)]
        if not files:
            raise ValueError(f"{topology}: no trajectory file given")
        self.topology, self.trajectories = str(topology), files
        self.trajectory = files[0] if len(files) == 1 else ", ".join(files)
        for f in (self.topology, *files):
            if not Path(f).exists():
                raise FileNotFoundError(f"{f} does not exist")
        self.types = np.asarray(types, dtype=np.int64)
        self._u = None
        n_frames, n_atoms = len(self.universe.trajectory), len(self.universe.atoms)
        if n_atoms != len(self.types):
            raise ValueError(f"{self.trajectory}: {n_atoms} beads per frame but {len(self.types)} bead types")
        self.frame_ids = np.arange(n_frames) if frame_ids is None else np.asarray(frame_ids, dtype=np.int64)
        if len(self.frame_ids) and (self.frame_ids.min() < 0 or self.frame_ids.max() >= n_frames):
            raise ValueError(f"{self.trajectory}: frame {int(self.frame_ids.max())} out of range ({n_frames} frames)")

    @property
    def universe(self):
        if self._u is None:
            import MDAnalysis as mda

            self._u = mda.Universe(self.topology, self.trajectories if len(self.trajectories) > 1 else self.trajectories[0])
        return self._u

    @property
    def lengths(self) -> list[int]:
        """The number of frames of each trajectory file, in order."""
        tr = self.universe.trajectory
        return [int(r.n_frames) for r in tr.readers] if hasattr(tr, "readers") else [int(tr.n_frames)]

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions (F, n, 3) Å and cells (F, 3, 3) Å of every frame of :attr:`frame_ids`."""
        return self.read(np.arange(len(self)))

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_u"} | {"_u": None}

    def read(self, ks):
        from MDAnalysis.lib.mdamath import triclinic_vectors

        u = self.universe
        ids = self.frame_ids[np.asarray(ks, dtype=np.int64)]
        pos = np.empty((len(ids), len(u.atoms), 3))
        cells = np.zeros((len(ids), 3, 3))
        for m, f in enumerate(ids.tolist()):
            ts = u.trajectory[f]
            pos[m] = u.atoms.positions
            if ts.dimensions is not None and np.all(ts.dimensions[:3] > 0):
                cells[m] = triclinic_vectors(ts.dimensions)
        bad = np.argwhere(~np.isfinite(pos))
        if len(bad):
            raise ValueError(f"{self.trajectory}: non-finite position in frame {int(ids[bad[0][0]])}, bead {int(bad[0][1])}")
        return pos, cells


def as_source(positions, cells, types, frame_ids) -> FrameSource:
    if isinstance(positions, FrameSource):
        return positions
    return ArrayFrames(positions, cells, types, frame_ids)
