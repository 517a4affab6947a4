"""Group walk relevances into n-body terms and relate them to geometry.

Body order of a walk = number of distinct beads in it (1..L+1) (Bonneau et al.,
arXiv 2407.04526, Sec. "Relevance of n-body contributions"). The publication's figures use
every 2-body walk as a point (relevance, minimum-image distance of its two beads), and for every
3-body walk the angle at each of its three beads whose two legs are shorter than a shell cutoff,
binned. Per-frame normalisation (:func:`normalisation_factor`): the publication's processing script
divides by |Σ_walks R| / N_walks (``abs_mean_total``); ``mean_abs`` divides by the mean |R|. Both
constants are dominated by the 1-body walks, which absorb the per-type energy offset that force
matching leaves free, so normalised amplitudes compare curve shapes, not models.

Binned statistics are accumulated online as (count, mean, M2) per bin and merged with the
pairwise update of Chan, Golub & LeVeque (Am. Stat. 37, 242 (1983)), so frames can be added one
at a time, in any grouping, with the same result.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "body_order",
    "nbody_sums",
    "body_order_totals",
    "body_order_abs_sums",
    "body_order_shares",
    "pair_relevance",
    "two_body_points",
    "three_body_points",
    "triplet_angle_relevance",
    "binned_statistics",
    "accumulate_bins",
    "merge_bins",
    "finish_bins",
    "normalise",
    "normalisation_factor",
    "NORMALISATIONS",
]

NORMALISATIONS = ("abs_mean_total", "mean_abs", "sum_abs", "none")
"""Per-frame normalisation modes; ``abs_mean_total`` is the publication's (|Σ R| / N_walks)."""


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


def body_order_totals(result) -> dict:
    """Total relevance (kcal/mol) and walk count per body order 1..L+1 of a
    :class:`~cgexplain.lrp.engine.WalkResult`, pruned or not: {order: (sum, count)}.

    For a result enumerated with ``max_order`` = L the (L+1)-body entry is the sum-rule
    remainder (exact; see :mod:`cgexplain.lrp.engine`). The sums add up to ``total_relevance``.
    Raises ValueError for a result pruned below L (the orders above it are not separable).
    """
    walks, rel = result["walks"], result["relevance"]
    L = walks.shape[1] - 1
    k = result.get("max_order")
    if k is None:
        return nbody_sums(walks, rel)
    if int(k) != L:
        raise ValueError(f"walks pruned at {k} distinct beads: orders {k + 1}..{L + 1} are one remainder, not separable")
    sums = {o: v for o, v in nbody_sums(walks, rel).items() if o <= L}
    sums[L + 1] = (float(result["remainder"]), int(result["n_walks_remainder"]))
    return sums


def body_order_abs_sums(walks: np.ndarray, relevance: np.ndarray, n_orders: int) -> np.ndarray:
    """Σ |R| per body order 1..n_orders (kcal/mol): (n_orders,). An order with no enumerated walk
    gives 0; pass only every walk of a frame for shares (:func:`body_order_shares`)."""
    order = body_order(walks)
    return np.bincount(order - 1, weights=np.abs(relevance), minlength=n_orders)[:n_orders].astype(float)


def body_order_shares(body_sum: np.ndarray, body_abs_sum: np.ndarray) -> dict:
    """Body-order shares of one frame with the 1-body walks left out of every denominator.

    body_sum (L+1,) signed Σ R per order 1..L+1; body_abs_sum (L+1,) Σ|R| per order (every walk
    enumerated). Returns {"abs": s, "signed": σ}, each {order: value} for orders 2..L+1:
    s_k = Σ_{walks of order k} |R| / Σ_{walks of order >= 2} |R| (sums to 1) and
    σ_k = Σ_{walks of order k} R / Σ_{walks of order >= 2} |R| (|σ_k| <= s_k). The 1-body walks are
    excluded because they absorb the per-type energy offset that force matching leaves free.
    Raises ValueError when the |R| sums are missing (NaN: a pruned frame)."""
    a = np.asarray(body_abs_sum, float)
    if not np.all(np.isfinite(a)):
        raise ValueError("body-order shares need Σ|R| of every walk: this frame was enumerated with pruning")
    den = a[1:].sum()
    orders = range(2, len(a) + 1)
    return {"abs": {k: float(a[k - 1] / den) for k in orders}, "signed": {k: float(body_sum[k - 1] / den) for k in orders}}


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
    """Per-bin (count, mean, M2) of y against x, M2 = Σ (y - mean)²: returns (3, n_bins) float64
    (empty bins: 0, 0, 0). Merge accumulators with :func:`merge_bins`."""
    k = np.digitize(np.asarray(x, float), edges) - 1
    ok = (k >= 0) & (k < len(edges) - 1)
    nb = len(edges) - 1
    k, y = k[ok], np.asarray(y, float)[ok]
    cnt = np.bincount(k, minlength=nb).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, np.bincount(k, weights=y, minlength=nb) / cnt, 0.0)
    m2 = np.bincount(k, weights=(y - mean[k]) ** 2, minlength=nb)
    return np.stack([cnt, mean, m2])


def merge_bins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge two (count, mean, M2) accumulators (3, n_bins) into one: the statistics of the union
    of their samples (Chan et al. 1983, eq. 2.1b). Associative up to round-off."""
    na, ma, sa = a
    nb, mb, sb = b
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        d = mb - ma
        mean = np.where(n > 0, ma + d * np.where(n > 0, nb / n, 0.0), 0.0)
        m2 = sa + sb + np.where(n > 0, d * d * na * nb / n, 0.0)
    return np.stack([n, mean, m2])


def finish_bins(acc: np.ndarray, edges) -> dict:
    """Mean, std (n-1), count and SEM (std/√count, each bin's own count) from a (count, mean, M2)
    accumulator (3, n_bins). Empty bins give NaN mean/std/sem; one sample gives NaN std/sem."""
    cnt, mean, m2 = acc
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, mean, np.nan)
        std = np.sqrt(np.clip(np.where(cnt > 1, m2 / (cnt - 1), np.nan), 0, None))
        sem = std / np.sqrt(cnt)
    return {"centers": 0.5 * (edges[1:] + edges[:-1]), "mean": mean, "std": std, "count": cnt.astype(int), "sem": sem}


def binned_statistics(x, y, edges) -> dict:
    """Binned mean, standard deviation, count and standard error (std/√count of each bin's own
    count) of y against x; edges (n_bins+1,). Empty bins give NaN mean/std/sem."""
    return finish_bins(accumulate_bins(x, y, edges), edges)


def normalisation_factor(relevance: np.ndarray, mode: str = "abs_mean_total", *, total: float | None = None, n_walks: int | None = None) -> float:
    """Per-frame normalisation constant c (normalised relevance = R / c).

    relevance (m,) kcal/mol: the frame's walk relevances. Modes:
    ``"abs_mean_total"``: |Σ_walks R| / N_walks, the absolute mean walk relevance, which the
    publication's processing script uses (Bonneau et al., arXiv 2407.04526; its
    ``normalize="total_rel_x_n_walks"``); ``"mean_abs"``: the mean |R| of the walks;
    ``"sum_abs"``: Σ|R|; ``"none"``: 1. ``total`` and ``n_walks`` give Σ R and N over every walk
    when ``relevance`` holds a pruned subset (``abs_mean_total`` only needs them; the |R| modes
    need every walk). Both non-trivial constants are dominated by the 1-body walks, which absorb
    the energy offset that force matching leaves free.
    Raises ValueError for an unknown mode.
    """
    if mode == "none":
        return 1.0
    if mode == "abs_mean_total":
        tot = float(np.sum(relevance)) if total is None else float(total)
        n = len(relevance) if n_walks is None else int(n_walks)
        return abs(tot) / n
    if mode == "mean_abs":
        return float(np.mean(np.abs(relevance)))
    if mode == "sum_abs":
        return float(np.sum(np.abs(relevance)))
    raise ValueError(f"unknown normalisation {mode!r}; use one of {', '.join(NORMALISATIONS)}")


def normalise(relevance: np.ndarray, mode: str = "abs_mean_total") -> np.ndarray:
    """Per-frame normalised relevance R / c, with c from :func:`normalisation_factor`;
    relevance (m,) kcal/mol, every walk of one frame."""
    return relevance / normalisation_factor(relevance, mode)
