"""Training data held in memory, with neighbour lists computed once.

:class:`CachedFrames` keeps the CG frames of a mapped trajectory (positions Å, forces
kcal/mol/Å, cells Å, bead types) as numpy arrays and computes every frame's neighbour list once, with
:func:`cgexplain.geometry.neighbors.neighbor_list` (vesin). The lists are kept compactly: pair indices as
int16 (int32 above 32,767 beads) and integer cell shifts as int8 (wider only if a shift needs it),
and the offsets are formed at collate time, ``offsets = shifts @ cell``. :meth:`CachedFrames.collate`
turns a list of frame indices into exactly the schnetpack input dict that
:func:`cgexplain.model.potential.batch_inputs` builds (same keys and dtypes), plus ``forces``.

schnetpack's own path (``ASEAtomsData`` + ``VesinNeighborList`` per loaded frame) recomputes the
neighbour list every time a frame is loaded; ``benchmarks/train_throughput.py`` compares the two.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from cgexplain.geometry.neighbors import neighbor_list
from cgexplain.mapping.maps import MappedTrajectory

__all__ = ["CachedFrames", "read_frames", "ShardSampler", "cached_loader"]


def read_frames(path: str | Path):
    """Frames of a mapped trajectory: ``cg/mapped.npz`` (:class:`cgexplain.mapping.maps.MappedTrajectory`)
    or a schnetpack ``ASEAtomsData`` ``.db`` written by :func:`cgexplain.mapping.maps.write_cg_dataset`.

    Returns positions (F, n, 3) Å, forces (F, n, 3) kcal/mol/Å, cells (F, 3, 3) Å (zeros: not
    periodic), types (n,) int64. Raises FileNotFoundError for a missing file, ValueError for
    another suffix or a database whose frames differ in bead count or bead types.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (training data: cg/mapped.npz or cg/dataset.db)")
    if path.suffix == ".npz":
        t = MappedTrajectory.load(path)
        return t.positions, t.forces, t.cells, np.asarray(t.bead_types, dtype=np.int64)
    if path.suffix != ".db":
        raise ValueError(f"{path}: training data must be a mapped trajectory (.npz) or an ASEAtomsData database (.db)")
    from schnetpack.data import ASEAtomsData

    ds = ASEAtomsData(str(path), load_properties=["forces"])
    pos, frc, cells, types = [], [], [], None
    for k in range(len(ds)):
        row = ds[k]
        z = row["_atomic_numbers"].numpy()
        if types is None:
            types = z
        elif len(z) != len(types) or np.any(z != types):
            raise ValueError(f"{path}: frame {k} has other beads ({len(z)}) than frame 0 ({len(types)}); cached training needs one system")
        pos.append(row["_positions"].numpy())
        frc.append(row["forces"].numpy())
        periodic = bool(row["_pbc"].any())
        cells.append(row["_cell"].numpy().reshape(3, 3) if periodic else np.zeros((3, 3)))
    if types is None:
        raise ValueError(f"{path}: the database holds no frames")
    return np.asarray(pos), np.asarray(frc), np.asarray(cells), np.asarray(types, dtype=np.int64)


def _smallest_int(a: np.ndarray, dtypes) -> np.ndarray:
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for dt in dtypes:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return a.astype(dt)
    raise ValueError(f"integer range {lo}..{hi} does not fit {dtypes[-1]}")


class CachedFrames:
    """CG frames in memory with their neighbour lists, computed once.

    Args:
        positions: (F, n, 3) Å.
        forces: (F, n, 3) kcal/mol/Å.
        cells: (F, 3, 3) Å, rows are box vectors; all zeros for a frame without periodicity.
        types: (n,) ints (the model's embedding index).
        cutoff: neighbour-list cutoff, Å (the model's).
        progress: show a tqdm bar over the one-off neighbour-list pass.

    Indexing: ``len(ds) == F``; ``ds.collate([k0, k1, ...])`` gives the batch of those frames;
    ``ds[k]`` is the one-frame batch. Raises ValueError naming the array whose shape is wrong, a
    non-finite position or force, or a cutoff <= 0.
    """

    def __init__(self, positions, forces, cells, types, cutoff: float, progress: bool = True, desc: str = "neighbour lists"):
        from tqdm.auto import tqdm

        pos = np.asarray(positions, dtype=np.float64)
        frc = np.asarray(forces, dtype=np.float64)
        types = np.asarray(types, dtype=np.int64)
        if pos.ndim != 3 or pos.shape[2] != 3:
            raise ValueError(f"positions must have shape (frames, beads, 3), got {pos.shape}")
        nf, n = pos.shape[:2]
        if frc.shape != pos.shape:
            raise ValueError(f"forces must have the shape of positions {pos.shape}, got {frc.shape}")
        cl = np.asarray(cells, dtype=np.float64)
        if cl.shape != (nf, 3, 3):
            raise ValueError(f"cells must have shape ({nf}, 3, 3), got {cl.shape}")
        if types.shape != (n,):
            raise ValueError(f"types must have shape ({n},), got {types.shape}")
        for name, a in (("position", pos), ("force", frc), ("cell", cl)):
            bad = np.argwhere(~np.isfinite(a))
            if len(bad):
                raise ValueError(f"non-finite {name} in frame {bad[0][0]}")
        if not cutoff > 0:
            raise ValueError(f"cutoff must be > 0 Å, got {cutoff}")
        ii, jj, ss, counts = [], [], [], np.zeros(nf, dtype=np.int64)
        for f in tqdm(range(nf), desc=desc, disable=not progress, leave=False):
            i, j, _, S = neighbor_list(pos[f], cl[f], cutoff, return_shifts=True)
            ii.append(i)
            jj.append(j)
            ss.append(S)
            counts[f] = len(i)
        idx_types = (np.int16, np.int32, np.int64)
        cat = lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape, dtype=np.int64)  # noqa: E731
        # numpy arrays: the collation below is a handful of single-threaded numpy operations, so it
        # stays fast when torch's thread pool is busy or the machine is oversubscribed
        self.idx_i = _smallest_int(cat(ii, (0,)), idx_types)
        self.idx_j = _smallest_int(cat(jj, (0,)), idx_types)
        self.shifts = _smallest_int(cat(ss, (0, 3)).reshape(-1, 3), (np.int8, np.int16, np.int32, np.int64))
        self.ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.positions = pos.astype(np.float32)
        self.forces = frc.astype(np.float32)
        self.cells = cl
        self.periodic = np.abs(cl).sum(axis=(1, 2)) > 0
        self.types = types
        self.n_beads = n
        self.cutoff = float(cutoff)

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def __getitem__(self, k: int) -> dict:
        return self.collate([k])

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached neighbour lists (indices, shifts, frame pointers)."""
        return sum(a.nbytes for a in (self.idx_i, self.idx_j, self.shifts, self.ptr))

    def collate(self, frames) -> dict:
        """The schnetpack input dict of ``frames`` (a sequence of frame indices, in batch order).

        Keys and dtypes as :func:`cgexplain.model.potential.batch_inputs` (``_atomic_numbers``,
        ``_positions`` (B·n, 3) float32 Å, ``_cell`` (B, 3, 3) float32, ``_pbc`` (B, 3) bool,
        ``_idx_i``/``_idx_j`` int64, ``_offsets`` float32 Å, ``_n_atoms`` (B,), ``_idx_m``
        (B·n,)), plus ``forces`` (B·n, 3) float32 kcal/mol/Å. Raises IndexError for a frame
        outside 0..F-1.
        """
        import schnetpack.properties as P

        fr = np.asarray(frames, dtype=np.int64).reshape(-1)
        nf, n = len(fr), self.n_beads
        bad = fr[(fr < 0) | (fr >= len(self))]
        if len(bad):
            raise IndexError(f"frame index {int(bad[0])} out of range 0..{len(self) - 1}")
        ii, jj, oo = [], [], []
        for b, f in enumerate(fr.tolist()):  # one slice per frame: no per-pair gathering
            s, e = self.ptr[f], self.ptr[f + 1]
            ii.append(self.idx_i[s:e].astype(np.int64) + b * n)
            jj.append(self.idx_j[s:e].astype(np.int64) + b * n)
            S, c = self.shifts[s:e], self.cells[f]
            oo.append(S[:, 0:1] * c[0] + S[:, 1:2] * c[1] + S[:, 2:3] * c[2])  # shifts @ cell, in float64
        cat = lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape)  # noqa: E731
        t = torch.from_numpy
        return {
            P.Z: t(np.tile(self.types, nf)),
            P.R: t(self.positions[fr].reshape(-1, 3)),
            P.cell: t(self.cells[fr].astype(np.float32)),
            P.pbc: t(np.repeat(self.periodic[fr][:, None], 3, axis=1)),
            P.idx_i: t(cat(ii, (0,)).astype(np.int64)),
            P.idx_j: t(cat(jj, (0,)).astype(np.int64)),
            P.offsets: t(cat(oo, (0, 3)).astype(np.float32)),
            P.n_atoms: torch.full((nf,), n, dtype=torch.int64),
            P.idx_m: t(np.repeat(np.arange(nf, dtype=np.int64), n)),
            "forces": t(self.forces[fr].reshape(-1, 3)),
        }


class ShardSampler(torch.utils.data.Sampler):
    """Indices ``rank, rank + world_size, ...`` of ``range(n)`` in order, without padding: each
    frame is seen by exactly one process (validation under DDP; sums then all-reduced).

    Raises ValueError unless 0 <= rank < world_size."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.n, self.rank, self.world_size = int(n), int(rank), int(world_size)

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return max(0, math.ceil((self.n - self.rank) / self.world_size))


def cached_loader(frames: CachedFrames, batch_size: int, sampler=None) -> torch.utils.data.DataLoader:
    """A DataLoader over ``frames`` whose items are frame indices, batched by
    :meth:`CachedFrames.collate` (in order, or in the order of ``sampler``)."""
    return torch.utils.data.DataLoader(
        range(len(frames)),  # type: ignore[arg-type]  # any sized, indexable sequence serves as a map-style dataset
        batch_size=int(batch_size),
        sampler=sampler,
        shuffle=False,
        collate_fn=frames.collate,
        num_workers=0,
    )
