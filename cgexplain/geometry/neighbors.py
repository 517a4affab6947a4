"""Neighbour lists: the one builder (vesin) behind the model's inputs, the CG dynamics' Verlet
lists (:class:`cgexplain.md.neighbors.VerletList`), the structure analyses and the explanations.

Units: positions and cells Å (cell rows are the box vectors; zeros or None: no periodicity).
"""

from __future__ import annotations

import numpy as np

__all__ = ["neighbor_list", "pairs_within", "cell_shift_list"]


def cell_shift_list(points: np.ndarray, box: np.ndarray, periodic: bool, cutoff: float):
    """vesin's full list: i, j (P,) and the integer cell shifts S (P, 3) of r_ij = R[j] - R[i] + S @ box."""
    from vesin import NeighborList

    return NeighborList(cutoff=float(cutoff), full_list=True).compute(points=points, box=box, periodic=bool(periodic), quantities="ijS")


def neighbor_list(positions: np.ndarray, cell: np.ndarray | None, cutoff: float, return_shifts: bool = False):
    """Full (both directions) neighbour list within ``cutoff`` Å, with vesin.

    positions (n, 3) Å; cell (3, 3) Å rows or None/zeros for no periodicity.
    Returns idx_i, idx_j (n_pairs,) int64 and offsets (n_pairs, 3) Å such that
    r_ij = R[j] - R[i] + offset; with ``return_shifts`` also the integer cell shifts
    (n_pairs, 3) int64, offsets = shifts @ cell (all zero without periodicity).
    """
    pos = np.asarray(positions, dtype=np.float64)
    periodic = cell is not None and np.abs(cell).sum() > 0
    box = np.asarray(cell, dtype=np.float64) if periodic else np.zeros((3, 3))
    i, j, S = cell_shift_list(pos, box, bool(periodic), float(cutoff))
    offsets = S.astype(np.float64) @ box
    if return_shifts:
        return i.astype(np.int64), j.astype(np.int64), offsets, S.astype(np.int64)
    return i.astype(np.int64), j.astype(np.int64), offsets


def pairs_within(positions, cell, cutoff: float) -> np.ndarray:
    """Bead pairs (i < j) closer than ``cutoff`` Å (minimum image, from :func:`neighbor_list`):
    (P, 2) int64, sorted, each pair once."""
    i, j, _ = neighbor_list(np.asarray(positions, float), cell, cutoff)
    keep = i < j
    return np.unique(np.stack([i[keep], j[keep]], 1), axis=0).reshape(-1, 2)
