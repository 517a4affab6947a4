"""Group walk relevances into n-body terms and relate them to geometry.

Body order of a walk = number of distinct beads in it (1..L+1) (Bonneau et al.,
arXiv 2407.04526, Sec. "Relevance of n-body contributions"). The publication's figures use
every 2-body walk as a point (relevance, minimum-image distance of its two beads), and for every
3-body walk the angle at each of its three beads whose two legs are shorter than a shell cutoff,
binned; per-frame normalisation divides by the mean |R| of the frame's walks.
"""
from __future__ import annotations

import numpy as np

__all__ = ["body_order", "nbody_sums", "pair_relevance", "two_body_points", "three_body_points",
           "triplet_angle_relevance", "binned_statistics", "accumulate_bins", "finish_bins", "normalise", "normalisation_factor"]


def body_order(walks: np.ndarray) -> np.ndarray:
    """Number of distinct beads in each walk: walks (m, L+1) -> (m,) ints in 1..L+1."""
    w = np.sort(np.asarray(walks), axis=1)
    return 1 + (np.diff(w, axis=1) != 0).sum(axis=1)


def nbody_sums(walks: np.ndarray, relevance: np.ndarray) -> dict:
    """Total relevance (kcal/mol) and walk count per body order: {order: (sum, count)}.
    The sums add up to relevance.sum() (sum rule)."""
    order = body_order(walks)
    L1 = walks.shape[1]
    return {int(k): (float(relevance[order == k].sum()), int((order == k).sum())) for k in range(1, L1 + 1)}


def _distinct(walks, k):
    """Sorted distinct beads of walks with exactly k of them: (m_k, k)."""
    w = np.sort(walks, axis=1)
    keep = np.concatenate([np.ones((len(w), 1), bool), np.diff(w, axis=1) != 0], axis=1)
    return w[keep].reshape(len(w), k)


def pair_relevance(walks: np.ndarray, relevance: np.ndarray):
    """Sum the relevance of the 2-body walks per bead pair.

    Returns (pairs (P, 2) with i < j, relevance (P,) kcal/mol, walk counts (P,))."""
    sel = body_order(walks) == 2
    pairs = _distinct(walks[sel], 2)
    uniq, inv, cnt = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    return uniq, np.bincount(inv.ravel(), weights=relevance[sel], minlength=len(uniq)), cnt


def triplet_relevance(walks: np.ndarray, relevance: np.ndarray):
    """Sum the relevance of the 3-body walks per bead triplet: (triplets (T, 3) sorted, relevance (T,))."""
    sel = body_order(walks) == 3
    tri = _distinct(walks[sel], 3)
    uniq, inv = np.unique(tri, axis=0, return_inverse=True)
    return uniq, np.bincount(inv.ravel(), weights=relevance[sel], minlength=len(uniq))


def _box(cell):
    from MDAnalysis.lib.mdamath import triclinic_box

    if cell is None or np.abs(cell).sum() == 0:
        return None
    return triclinic_box(*np.asarray(cell, dtype=np.float64)).astype(np.float32)


def two_body_points(walks, relevance, positions, cell=None):
    """(distance Å, relevance) for every 2-body walk; distances are minimum-image.

    positions (n, 3) Å; cell (3, 3) Å or None. Returns two (m2,) arrays."""
    from MDAnalysis.lib.distances import calc_bonds

    sel = body_order(walks) == 2
    p = _distinct(walks[sel], 2)
    x = np.asarray(positions, dtype=np.float32)
    d = calc_bonds(x[p[:, 0]], x[p[:, 1]], box=_box(cell)) if len(p) else np.zeros(0)
    return np.asarray(d, dtype=float), relevance[sel]


def three_body_points(walks, relevance, positions, cell=None, shell: float = 5.0):
    """(angle degrees, relevance) for every 3-body walk and every vertex of its bead triplet
    whose two legs are shorter than ``shell`` Å (so a walk gives 0 to 3 points).

    Returns two (m3,) arrays."""
    from MDAnalysis.lib.distances import calc_angles, calc_bonds

    sel = np.flatnonzero(body_order(walks) == 3)
    t = _distinct(walks[sel], 3)
    x = np.asarray(positions, dtype=np.float32)
    box = _box(cell)
    ang, rel = [], []
    for v in range(3):
        c = t[:, v]
        a, b = t[:, (v + 1) % 3], t[:, (v + 2) % 3]
        if len(c) == 0:
            continue
        ok = (calc_bonds(x[c], x[a], box=box) < shell) & (calc_bonds(x[c], x[b], box=box) < shell)
        th = np.degrees(calc_angles(x[a[ok]], x[c[ok]], x[b[ok]], box=box))
        ang.append(th)
        rel.append(relevance[sel][ok])
    if not ang:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(ang), np.concatenate(rel)


triplet_angle_relevance = three_body_points


def accumulate_bins(x, y, edges) -> np.ndarray:
    """Per-bin (count, Σy, Σy²) of y against x: returns (3, n_bins)."""
    k = np.digitize(np.asarray(x, float), edges) - 1
    ok = (k >= 0) & (k < len(edges) - 1)
    nb = len(edges) - 1
    y = np.asarray(y, float)[ok]
    return np.stack([np.bincount(k[ok], minlength=nb), np.bincount(k[ok], weights=y, minlength=nb), np.bincount(k[ok], weights=y * y, minlength=nb)]).astype(float)


def finish_bins(acc: np.ndarray, edges) -> dict:
    """Mean, std (n-1), count and SEM (std/√count, each bin's own count) from accumulators."""
    cnt, s1, s2 = acc
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, s1 / cnt, np.nan)
        var = np.where(cnt > 1, (s2 - cnt * mean**2) / (cnt - 1), np.nan)
        std = np.sqrt(np.clip(var, 0, None))
        sem = std / np.sqrt(cnt)
    return {"centers": 0.5 * (edges[1:] + edges[:-1]), "mean": mean, "std": std, "count": cnt.astype(int), "sem": sem}


def binned_statistics(x, y, edges) -> dict:
    """Binned mean, standard deviation, count and standard error (std/√count of each bin's own
    count) of y against x; edges (n_bins+1,). Empty bins give NaN mean/std/sem."""
    return finish_bins(accumulate_bins(x, y, edges), edges)


def normalisation_factor(relevance: np.ndarray, mode: str = "mean_abs") -> float:
    """Per-frame normalisation constant c (normalised relevance = R / c): ``"none"`` 1;
    ``"mean_abs"`` the mean |R| of the frame's walks (the publication's); ``"sum_abs"`` Σ|R|.
    Raises ValueError for an unknown mode."""
    if mode == "none":
        return 1.0
    if mode == "mean_abs":
        return float(np.mean(np.abs(relevance)))
    if mode == "sum_abs":
        return float(np.sum(np.abs(relevance)))
    raise ValueError(f"unknown normalisation {mode!r}; use 'none', 'mean_abs' or 'sum_abs'")


def normalise(relevance: np.ndarray, mode: str = "mean_abs") -> np.ndarray:
    """Per-frame normalised relevance R / c, with c from :func:`normalisation_factor`."""
    return relevance / normalisation_factor(relevance, mode)
