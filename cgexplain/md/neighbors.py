"""Verlet (skin) neighbour lists for CG dynamics of one or many replicas.

A list is built with vesin at ``cutoff + skin`` and reused until some bead of that replica has
moved more than ``skin / 2`` since the build; then no pair can have crossed into the cutoff
sphere unseen (Verlet, Phys. Rev. 159, 98 (1967); Allen & Tildesley, *Computer Simulation of
Liquids*, 2nd ed., §5.3). Each step the pairs are filtered to ``d < cutoff`` in torch, so the
model sees exactly the pairs a fresh list would give, in the same units (Å).

Replicas are independent systems of the same ``n`` beads stacked as a batch of ``R`` frames:
bead ``k`` of replica ``r`` is row ``r * n + k``, as in schnetpack's batched inputs.
"""

from __future__ import annotations

import numpy as np
import torch

from cgexplain.geometry.neighbors import cell_shift_list

__all__ = ["VerletList", "replica_cells"]


def replica_cells(cells, n_replicas: int) -> np.ndarray:
    """Cells of R replicas as an (R, 3, 3) float64 array (Å, vectors as rows) from None (not
    periodic: zeros), one (3, 3) cell shared by all, or (R, 3, 3). Raises ValueError for another
    shape."""
    R = int(n_replicas)
    c = np.zeros((R, 3, 3)) if cells is None else np.asarray(cells, dtype=np.float64)
    if c.shape == (3, 3):
        c = np.repeat(c[None], R, axis=0)
    if c.shape != (R, 3, 3):
        raise ValueError(f"cells has shape {c.shape}; expected (3, 3) or ({R}, 3, 3)")
    return c


class VerletList:
    """Skin neighbour list for ``R`` replicas of ``n`` beads.

    Parameters
    ----------
    cutoff : float
        Model cutoff, Å.
    skin : float
        Verlet skin, Å (0: rebuild every step).
    cells : array (R, 3, 3) or (3, 3) or None
        Periodic cell vectors as rows, Å; zeros or None: not periodic. Cells are fixed.
    n_replicas : int
        Number of replicas R.
    device, dtype
        Where and in which precision the pair tensors live (the model's).

    Raises ValueError for a negative skin or a cell shape that does not match R.
    """

    def __init__(self, cutoff: float, skin: float = 1.0, cells=None, n_replicas: int = 1, device="cpu", dtype=torch.float32):
        if skin < 0:
            raise ValueError(f"Verlet skin must be >= 0 Å, got {skin}")
        self.cutoff, self.skin, self.R = float(cutoff), float(skin), int(n_replicas)
        c = self.cells = replica_cells(cells, self.R)
        self.periodic = np.abs(c).sum(axis=(1, 2)) > 0
        self.device, self.dtype = device, dtype
        self.n_builds = 0  # replica list builds, for statistics
        self._ref: torch.Tensor | None = None  # (R, n, 3) positions at each replica's last build
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * self.R  # per replica: (i, j, offsets) numpy
        self._cat: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # concatenated (i, j, offsets)

    def _build(self, r: int, x: np.ndarray) -> None:
        box = self.cells[r] if self.periodic[r] else np.zeros((3, 3))
        i, j, S = cell_shift_list(x, box, bool(self.periodic[r]), self.cutoff + self.skin)
        n = x.shape[0]
        self._parts[r] = (i.astype(np.int64) + r * n, j.astype(np.int64) + r * n, S.astype(np.float64) @ box)
        self.n_builds += 1

    def update(self, x: np.ndarray | torch.Tensor) -> bool:
        """Rebuild the lists of replicas whose beads moved more than skin/2 since their build.

        x (R, n, 3) Å, numpy or torch, unwrapped positions (the integrator's; vesin takes
        positions outside the cell and returns shifts for them). Returns True if any list was
        rebuilt. Raises ValueError if x does not have R replicas.
        """
        xt = torch.as_tensor(x).detach()
        if xt.ndim != 3 or xt.shape[0] != self.R:
            raise ValueError(f"positions have shape {tuple(xt.shape)}; expected ({self.R}, n, 3)")
        ref = self._ref
        if ref is None or ref.shape != xt.shape:
            ref = self._ref = xt.clone()
            todo = np.arange(self.R)
        elif self.skin == 0:
            todo = np.arange(self.R)
        else:
            disp2 = ((xt - ref) ** 2).sum(-1).amax(dim=1)
            todo = np.flatnonzero((disp2 > (0.5 * self.skin) ** 2).cpu().numpy())
        if len(todo) == 0:
            return False
        xn = xt.cpu().numpy().astype(np.float64)
        for r in todo:
            self._build(int(r), xn[r])
            ref[r] = xt[r]
        i, j, o = (np.concatenate(a) for a in zip(*self._parts))  # type: ignore[misc]  # every replica is built by now
        self._cat = (
            torch.as_tensor(i, device=self.device),
            torch.as_tensor(j, device=self.device),
            torch.as_tensor(o, dtype=self.dtype, device=self.device),
        )
        return True

    def pairs(self, R: torch.Tensor):
        """Pairs within the cutoff for the flattened positions R (R*n, 3) Å.

        Returns idx_i, idx_j (n_pairs,) int64 and offsets (n_pairs, 3) Å with
        r_ij = R[j] - R[i] + offset, |r_ij| < cutoff: the full list (both directions), as
        :func:`cgexplain.geometry.neighbors.neighbor_list` gives. Call :meth:`update` first.
        """
        if self._cat is None:
            raise RuntimeError("VerletList.pairs called before update()")
        i, j, o = self._cat
        with torch.no_grad():
            d = R.detach()
            rij = d.index_select(0, j).sub_(d.index_select(0, i)).add_(o)
            keep = torch.nonzero(rij.mul_(rij).sum(-1) < self.cutoff**2).squeeze(1)
        return i.index_select(0, keep), j.index_select(0, keep), o.index_select(0, keep)
