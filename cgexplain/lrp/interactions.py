"""An exact second opinion: the many-body expansion of an energy function over its beads.

For a frame X and a bead set S, two exact expansions, both Möbius (Harsanyi) transforms of the
energy as a function of which beads are present (Harsanyi, Int. Econ. Rev. 4, 194 (1963); Grabisch,
"Set functions, games and capacities in decision making" (2016), ch. 2):

- pure terms from sub-clusters: d(S) = Σ_{T ⊆ S} (−1)^{|S|−|T|} E(X_T), where X_T keeps only the
  beads in T. They sum exactly to E(X) − E(∅), and for a potential of finite body order they are
  its terms. They evaluate the network on isolated clusters, far from the liquid it was trained on.
- in-context interactions by deletion: I_S = Σ_{T ⊆ S} (−1)^{|S|−|T|} E(X ∖ (S ∖ T)) = Σ_{T ⊇ S} d(T).
  For a pair: I_ij = E(X) − E(X∖i) − E(X∖j) + E(X∖{i,j}). Only |S| beads are removed, so the
  network stays near its training data. For a pair potential I_ij = u(r_ij) and I_ijk = 0; for
  mW (Stillinger–Weber) I_ijk is the triplet's three-body energy and the pure pair term is
  I_ij − Σ_k I_ijk.

Energies are given by a *subset energy*: a callable taking keep masks (B, n) bool and returning
E(X_T) (B,) kcal/mol for those subsets of one frame. :class:`SubsetEnergy` evaluates a cgexplain /
schnetpack model (its network energy, priors left out, as LRP explains), batched;
:mod:`cgexplain.reference.potentials` gives the analytic ones. Each interaction costs 2^|S| evaluations
(shared between sets through a cache); with a receptive field L·r_cut that spans the box, each is a
full model pass, so on fluids of 128 or more beads this is the slow, exact reference, not the
everyday tool.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import numpy as np
import torch

from cgexplain.analysis.structure import angle_triplets
from cgexplain.geometry.neighbors import neighbor_list, pairs_within
from cgexplain.lrp.engine import network_energies

__all__ = ["SubsetEnergy", "deletion_interactions", "pure_terms", "all_pure_terms", "pairs_within", "triplets_with_vertex"]


class SubsetEnergy:
    """E(X_T) of one frame for many bead subsets T: the network energy of a cgexplain or
    schnetpack model (the Atomwise head; :class:`~cgexplain.model.priors.PriorEnergy` terms left out,
    as LRP explains the network), batched.

    model: a schnetpack ``NeuralNetworkPotential``; positions (n, 3) Å; types (n,); cell (3, 3) Å
    (zeros or None: not periodic); cutoff Å (default the model's). The neighbour list of the whole
    frame is built once; a subset keeps the edges between its beads. ``batch_size`` subsets go
    through one forward pass. E(∅) = 0. Calling it with keep (B, n) bool returns (B,) float64
    kcal/mol; a subset asked for again (by another pair or triplet, or another call) is taken from
    a memo, not evaluated again; ``n_evaluations`` counts the subsets evaluated.
    """

    def __init__(self, model, positions, types, cell=None, cutoff: float | None = None, batch_size: int = 16):

        self.model = model
        p = next(model.parameters())
        self.dtype, self.device = p.dtype, p.device
        self.x = np.asarray(positions, dtype=np.float64)
        self.types = np.asarray(types, dtype=np.int64)
        self.n = len(self.x)
        self.cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
        cutoff = float(model.representation.cutoff) if cutoff is None else float(cutoff)
        self.i, self.j, self.off = neighbor_list(self.x, self.cell, cutoff)
        self.batch_size = int(batch_size)
        self.n_evaluations = 0
        self._memo: dict[bytes, float] = {}

    def _batch(self, keep: np.ndarray) -> dict:
        import schnetpack.properties as P

        B, n = keep.shape
        counts = keep.sum(1)
        newidx = np.cumsum(keep.ravel()) - 1  # global index of each kept bead in the batch
        ii, jj, oo = [], [], []
        for b in range(B):
            ok = keep[b, self.i] & keep[b, self.j]
            ii.append(newidx[b * n + self.i[ok]])
            jj.append(newidx[b * n + self.j[ok]])
            oo.append(self.off[ok])
        R = np.concatenate([self.x[keep[b]] for b in range(B)])
        Z = np.concatenate([self.types[keep[b]] for b in range(B)])
        t = lambda a, dt=None: torch.as_tensor(a, dtype=dt, device=self.device)  # noqa: E731
        periodic = np.abs(self.cell).sum() > 0
        return {
            P.Z: t(Z),
            P.R: t(R, self.dtype),
            P.cell: t(np.repeat(self.cell[None], B, 0), self.dtype),
            P.pbc: t(np.full((B, 3), periodic)),
            P.idx_i: t(np.concatenate(ii).astype(np.int64)),
            P.idx_j: t(np.concatenate(jj).astype(np.int64)),
            P.offsets: t(np.concatenate(oo), self.dtype),
            P.n_atoms: t(counts.astype(np.int64)),
            P.idx_m: t(np.repeat(np.arange(B), counts)),
        }

    def _energies(self, keep: np.ndarray) -> np.ndarray:

        return network_energies(self.model, self._batch(keep)).double().cpu().numpy().reshape(len(keep))

    def __call__(self, keep) -> np.ndarray:
        keep = np.asarray(keep, dtype=bool).reshape(-1, self.n)
        keys = [k.tobytes() for k in np.packbits(keep, axis=1)]
        todo = list(dict.fromkeys(k for k, row in zip(keys, keep) if row.any() and k not in self._memo))
        first = {k: r for r, k in reversed(list(enumerate(keys)))}
        rows = np.array([first[k] for k in todo], dtype=np.int64)
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s : s + self.batch_size]
            for r, e in zip(chunk, self._energies(keep[chunk])):
                self._memo[keys[r]] = float(e)
        self.n_evaluations += len(rows)
        return np.array([self._memo.get(k, 0.0) if row.any() else 0.0 for k, row in zip(keys, keep)])


def _subsets(S):
    S = tuple(S)
    for r in range(len(S) + 1):
        yield from itertools.combinations(S, r)


class _Cache:
    """E of subsets keyed by the frozenset of beads *removed* from (or kept in) the frame."""

    def __init__(self, energy: Callable, n: int, mode: str):
        self.energy, self.n, self.mode = energy, n, mode
        self.values: dict[frozenset, float] = {}

    def fill(self, keys: Iterable[frozenset]) -> None:
        todo = [k for k in dict.fromkeys(keys) if k not in self.values]
        if not todo:
            return
        keep = np.zeros((len(todo), self.n), bool) if self.mode == "kept" else np.ones((len(todo), self.n), bool)
        for r, k in enumerate(todo):
            keep[r, list(k)] = self.mode == "kept"
        for k, e in zip(todo, self.energy(keep)):
            self.values[k] = float(e)


def deletion_interactions(energy: Callable, n: int, sets) -> np.ndarray:
    """In-context (deletion) Harsanyi interactions I_S = Σ_{T ⊆ S} (−1)^{|S|−|T|} E(X ∖ (S ∖ T)).

    energy: a subset energy (keep (B, n) bool -> (B,) kcal/mol) of one frame of ``n`` beads;
    sets: (m, k) ints, the bead sets S (k = 1: I_i = E(X) − E(X∖i); k = 2: pairs; 3: triplets).
    Returns (m,) kcal/mol. Each distinct deleted subset is evaluated once, batched.
    Raises ValueError for a bead index outside 0..n-1 or a set with a repeated bead.
    """
    sets = np.asarray(sets, dtype=np.int64)
    if sets.ndim != 2:
        raise ValueError(f"sets must be (m, k), got shape {sets.shape}")
    if sets.size and (sets.min() < 0 or sets.max() >= n):
        raise ValueError(f"sets hold bead indices outside 0..{n - 1}")
    if sets.size and any(len(set(s)) != len(s) for s in sets.tolist()):
        raise ValueError("a set holds the same bead twice")
    cache = _Cache(energy, n, "removed")
    removed = [[frozenset(S) - frozenset(T) for T in _subsets(S)] for S in sets.tolist()]
    cache.fill(k for ks in removed for k in ks)
    k = sets.shape[1]
    out = np.empty(len(sets))
    for m, S in enumerate(sets.tolist()):
        out[m] = sum((-1) ** (k - len(T)) * cache.values[frozenset(S) - frozenset(T)] for T in _subsets(S))
    return out


def pure_terms(energy: Callable, n: int, sets) -> np.ndarray:
    """Pure (sub-cluster) Harsanyi terms d(S) = Σ_{T ⊆ S} (−1)^{|S|−|T|} E(X_T), X_T the frame with
    only the beads of T (E(∅) = 0 for a network's atomwise energy).

    energy, n, sets as :func:`deletion_interactions`. Returns (m,) kcal/mol.
    """
    sets = np.asarray(sets, dtype=np.int64)
    if sets.size and (sets.min() < 0 or sets.max() >= n):
        raise ValueError(f"sets hold bead indices outside 0..{n - 1}")
    cache = _Cache(energy, n, "kept")
    cache.fill(frozenset(T) for S in sets.tolist() for T in _subsets(S))
    k = sets.shape[1]
    return np.array([sum((-1) ** (k - len(T)) * cache.values[frozenset(T)] for T in _subsets(S)) for S in sets.tolist()])


def all_pure_terms(energy: Callable, n: int) -> dict:
    """Every pure term d(S) of a small frame by enumeration of all 2^n subsets (n <= 16):
    {frozenset S: d(S)} kcal/mol, S over all non-empty subsets; Σ_S d(S) = E(X) − E(∅). The
    reference for tests. Raises ValueError for n > 16."""
    if n > 16:
        raise ValueError(f"all_pure_terms enumerates 2^n subsets: n = {n} is too many (max 16)")
    masks = np.array([[(s >> b) & 1 for b in range(n)] for s in range(1 << n)], dtype=bool)
    E = energy(masks)
    # fast Möbius transform over the subset lattice
    d = E.copy()
    for b in range(n):
        bit = 1 << b
        for s in range(1 << n):
            if s & bit:
                d[s] -= d[s ^ bit]
    return {frozenset(b for b in range(n) if (s >> b) & 1): float(d[s]) for s in range(1, 1 << n)}


def triplets_with_vertex(positions, cell, shell: float) -> np.ndarray:
    """Bead triplets (i < j < k) in which some bead is the vertex of an angle whose two legs are
    shorter than ``shell`` Å: (T, 3) int64, sorted."""

    c, a, b, _ = angle_triplets(np.asarray(positions, float), cell, shell)
    tri = np.sort(np.stack([c, a, b], 1), axis=1)
    distinct = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2])  # periodic images of one bead in a small box
    return np.unique(tri[distinct], axis=0).reshape(-1, 3).astype(np.int64)
