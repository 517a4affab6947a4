"""Exact many-body maps of a body-ordered model: its 1-, 2- and 3-body terms from isolated clusters.

For an energy of body order at most 3 (:mod:`cgexplain.model.mace` with one layer and correlation
2), the Möbius (Harsanyi) transform of E over the bead set stops at triplets:

    E(X) − E(∅) = Σ_i d(i) + Σ_{i<j} d(ij) + Σ_{i<j<k} d(ijk),
    d(i) = E(X_i),  d(ij) = E(X_ij) − d(i) − d(j),
    d(ijk) = E(X_ijk) − d(ij) − d(ik) − d(jk) − d(i) − d(j) − d(k),

with X_T the frame keeping only the beads of T (Harsanyi 1963; the pure terms of
:mod:`cgexplain.lrp.interactions`; Batatia et al., NeurIPS 2022, eq. 11 for MACE's body order).
A pair term is non-zero only within the model cutoff, a triplet term only where some bead has the
other two within the cutoff, so every term of a frame is found by evaluating the model on its
singles, its pairs within the cutoff and its connected triplets: no walks, no deletions from the
liquid, and (for body order 3) no remainder. The remainder ``E(X) − E(∅) − Σ terms`` is reported
for every frame: it is round-off for a body-order-3 model, and the sum of all higher terms for a
deeper one (whose cluster terms are then the pure sub-cluster terms, not a closed decomposition).

The terms are energies in kcal/mol (the network energy; prior terms are left out, as for LRP), not
relevances. Force matching leaves a per-type energy offset free; a model with such an offset
(a trained reference energy, a bias) puts it in the 1-body terms. cgexplain's MACE has none (its
E0 are zero and its readout has no bias), so its 1-body terms are 0 and E(∅) = 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from cgexplain.analysis.structure import angle_triplets
from cgexplain.fileio import save_npz, write_json
from cgexplain.geometry.neighbors import neighbor_list, pairs_within
from cgexplain.lrp.engine import network_energies
from cgexplain.lrp.interactions import triplets_with_vertex
from cgexplain.lrp.nbody import _box, accumulate_bins, finish_bins, merge_bins
from cgexplain.model.mace import body_order
from cgexplain.model.potential import batch_inputs
from cgexplain.plots.core import plot_relevance_over

__all__ = ["BodyOrderTerms", "cluster_energies", "body_order_terms", "vertex_points", "pair_distances"]


@dataclasses.dataclass
class BodyOrderTerms:
    """The exact terms of one frame.

    singles (n,) kcal/mol: d(i); pairs (P, 2) int64 (i < j, within the cutoff) and pair_terms (P,)
    kcal/mol; triplets (T, 3) int64 (i < j < k, connected within the cutoff) and triplet_terms
    (T,) kcal/mol; energy: the network energy E(X) kcal/mol (E(∅) = 0); remainder: E(X) − Σ of
    all terms, kcal/mol (round-off for a body-order-3 model); cutoff Å.
    """

    singles: np.ndarray
    pairs: np.ndarray
    pair_terms: np.ndarray
    triplets: np.ndarray
    triplet_terms: np.ndarray
    energy: float
    remainder: float
    cutoff: float

    def totals(self) -> dict:
        """Σ of the 1-, 2- and 3-body terms, E(X) and the remainder, kcal/mol."""
        return {
            "1-body": float(self.singles.sum()),
            "2-body": float(self.pair_terms.sum()),
            "3-body": float(self.triplet_terms.sum()),
            "energy": float(self.energy),
            "remainder": float(self.remainder),
        }


def _model_cutoff(model) -> float:
    c = getattr(getattr(model, "representation", None), "cutoff", None)
    if c is None:
        raise ValueError("the model's representation has no cutoff; pass cutoff=")
    return float(c.max()) if hasattr(c, "max") else float(c)


def cluster_energies(model, positions, types, cell, clusters, *, cutoff: float | None = None, batch_size: int = 4096) -> np.ndarray:
    """The network energy E(X_T) of each cluster T of one frame, the cluster taken out of the frame
    alone (its beads at their frame positions, edges only between them, periodic images as in
    the frame).

    positions (n, 3) Å; types (n,); cell (3, 3) Å (zeros or None: not periodic); clusters (m, k)
    int bead indices, distinct within a row; cutoff Å (default the model's). Returns (m,) float64
    kcal/mol, evaluated in the model's dtype in batches of ``batch_size`` clusters.
    Raises ValueError for a bead index outside 0..n-1 or a repeated bead in a cluster.
    """
    import schnetpack.properties as P

    x = np.asarray(positions, dtype=np.float64)
    n = len(x)
    cl = np.asarray(clusters, dtype=np.int64)
    if cl.ndim != 2:
        raise ValueError(f"clusters must be (m, k), got shape {cl.shape}")
    m, k = cl.shape
    if m == 0:
        return np.zeros(0)
    if cl.min() < 0 or cl.max() >= n:
        raise ValueError(f"clusters hold bead indices outside 0..{n - 1}")
    if k > 1 and np.any(np.sort(cl, 1)[:, 1:] == np.sort(cl, 1)[:, :-1]):
        raise ValueError("a cluster holds the same bead twice")
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    cut = _model_cutoff(model) if cutoff is None else float(cutoff)
    ei, ej, eoff = neighbor_list(x, cell, cut)
    key = ei * n + ej
    order = np.argsort(key, kind="stable")
    key, ei, ej, eoff = key[order], ei[order], ej[order], eoff[order]
    # every ordered pair (p, q) of cluster slots: the frame's edges from bead c[p] to bead c[q]
    # (p, p): a bead's own periodic images, when the cutoff reaches beyond the box
    slots = [(p, q) for p in range(k) for q in range(k)]
    rows_all, p_all, q_all, e_all = [], [], [], []
    for p, q in slots:
        want = cl[:, p] * n + cl[:, q]
        lo, hi = np.searchsorted(key, want, "left"), np.searchsorted(key, want, "right")
        cnt = hi - lo
        rows = np.repeat(np.arange(m), cnt)
        e = np.repeat(lo, cnt) + np.arange(len(rows)) - np.repeat(np.cumsum(cnt) - cnt, cnt)  # lo..hi-1 of each row
        rows_all.append(rows)
        p_all.append(np.full(len(rows), p))
        q_all.append(np.full(len(rows), q))
        e_all.append(e)
    rows = np.concatenate(rows_all) if rows_all else np.zeros(0, np.int64)
    ps = np.concatenate(p_all) if p_all else np.zeros(0, np.int64)
    qs = np.concatenate(q_all) if q_all else np.zeros(0, np.int64)
    es = np.concatenate(e_all) if e_all else np.zeros(0, np.int64)
    order = np.argsort(rows, kind="stable")
    rows, ps, qs, es = rows[order], ps[order], qs[order], es[order]
    edge_ptr = np.searchsorted(rows, np.arange(m + 1))
    par = next(model.parameters())
    dt, dev = par.dtype, par.device
    periodic = bool(np.abs(cell).sum() > 0)
    types = np.asarray(types, dtype=np.int64)
    out = np.empty(m)
    for s in range(0, m, int(batch_size)):
        b = np.arange(s, min(m, s + int(batch_size)))
        B = len(b)
        e0, e1 = edge_ptr[b[0]], edge_ptr[b[-1] + 1]
        local = rows[e0:e1] - s
        inp = {
            P.Z: torch.as_tensor(types[cl[b]].ravel(), device=dev),
            P.R: torch.as_tensor(x[cl[b]].reshape(-1, 3), dtype=dt, device=dev),
            P.cell: torch.as_tensor(np.repeat(cell[None], B, 0), dtype=dt, device=dev),
            P.pbc: torch.as_tensor(np.full((B, 3), periodic), device=dev),
            P.idx_i: torch.as_tensor(local * k + ps[e0:e1], device=dev),
            P.idx_j: torch.as_tensor(local * k + qs[e0:e1], device=dev),
            P.offsets: torch.as_tensor(eoff[es[e0:e1]], dtype=dt, device=dev),
            P.n_atoms: torch.full((B,), k, dtype=torch.long, device=dev),
            P.idx_m: torch.as_tensor(np.repeat(np.arange(B), k), device=dev),
        }
        out[b] = network_energies(model, inp).double().cpu().numpy().reshape(B)
    return out


def body_order_terms(model, positions, types, cell=None, *, cutoff: float | None = None, batch_size: int = 4096) -> BodyOrderTerms:
    """Every 1-, 2- and 3-body term of one frame (module docstring), from the model on isolated
    clusters, and the remainder E(X) − Σ terms.

    model: a cgexplain potential (:func:`cgexplain.model.potential.build_model`; its network energy,
    priors left out); positions (n, 3) Å; types (n,); cell (3, 3) Å or None; cutoff Å (default
    the model's: pairs beyond it and triplets without a bead bonded to both others have no term).
    Cost: n + P + T cluster evaluations (about 38,000 three-bead clusters for a 512-bead mW frame
    at 4.5 Å). Returns a :class:`BodyOrderTerms`.
    Raises ValueError as :func:`cluster_energies`.
    """
    x = np.asarray(positions, dtype=np.float64)
    n = len(x)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    cut = _model_cutoff(model) if cutoff is None else float(cutoff)
    kw: dict = {"cutoff": cut, "batch_size": batch_size}
    d1 = cluster_energies(model, x, types, cell, np.arange(n)[:, None], **kw)
    pairs = pairs_within(x, cell, cut)
    d2 = cluster_energies(model, x, types, cell, pairs, **kw) - d1[pairs[:, 0]] - d1[pairs[:, 1]]
    tri = triplets_with_vertex(x, cell, cut)
    e3 = cluster_energies(model, x, types, cell, tri, **kw)
    pair_key = {(int(a), int(b)): v for (a, b), v in zip(pairs.tolist(), d2)}
    sub = np.array([pair_key.get((a, b), 0.0) + pair_key.get((a, c), 0.0) + pair_key.get((b, c), 0.0) for a, b, c in tri.tolist()]).reshape(-1)
    d3 = e3 - sub - d1[tri].sum(1) if len(tri) else np.zeros(0)
    par = next(model.parameters())
    periodic = bool(np.abs(cell).sum() > 0)
    inp = batch_inputs(x[None], types, cell[None] if periodic else None, cut, dtype=par.dtype, device=par.device)
    E = float(network_energies(model, inp)[0])
    rem = E - float(d1.sum() + d2.sum() + d3.sum())
    return BodyOrderTerms(d1, pairs, d2, tri, d3, E, rem, cut)


def pair_distances(positions, cell, pairs) -> np.ndarray:
    """Minimum-image distances (P,) Å of bead pairs (P, 2) in a frame (cell (3, 3) Å or None)."""
    from MDAnalysis.lib.distances import calc_bonds

    x = np.asarray(positions, dtype=np.float64)
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(p) == 0:
        return np.zeros(0)
    return np.asarray(calc_bonds(x[p[:, 0]], x[p[:, 1]], box=_box(cell)), dtype=float)


def vertex_points(positions, cell, triplets, values, shell: float) -> tuple[np.ndarray, np.ndarray]:
    """(vertex angle degrees, value) for every vertex of the listed triplets whose two legs are
    shorter than ``shell`` Å, so a triplet gives 0 to 3 points (the convention of the LRP 3-body
    curve, :func:`cgexplain.lrp.nbody.three_body_points`).

    positions (n, 3) Å; cell (3, 3) Å or None; triplets (T, 3) sorted i < j < k; values (T,).
    Returns two (m,) arrays; vertices of triplets not listed are left out."""
    x = np.asarray(positions, dtype=np.float64)
    tri = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)
    vals = np.asarray(values, dtype=np.float64)
    if len(tri) == 0:
        return np.zeros(0), np.zeros(0)
    c, a, b, th = angle_triplets(x, cell, shell)
    keys = np.sort(np.stack([c, a, b], 1), axis=1)
    n = len(x)
    code = lambda t: (t[:, 0] * n + t[:, 1]) * n + t[:, 2]  # noqa: E731
    tcode = code(tri)
    order = np.argsort(tcode)
    pos = np.searchsorted(tcode[order], code(keys))
    pos = np.clip(pos, 0, len(tri) - 1)
    hit = tcode[order][pos] == code(keys)
    return np.asarray(th, dtype=float)[hit], vals[order][pos[hit]]


def explain_body_order(
    model,
    source,
    out_dir,
    *,
    r_edges: np.ndarray,
    a_edges: np.ndarray,
    shell: float,
    structure: dict | None = None,
    figures=None,
    title: str = "",
    progress: bool = True,
) -> dict:
    """The exact many-body maps of a body-ordered model over frames: per-pair terms against
    distance and per-triplet terms against vertex angle, binned, and the energy budget per frame.

    model: a loaded cgexplain model (:func:`cgexplain.model.potential.load_model`), converted to
    float64 in place;
    source: a :class:`~cgexplain.lrp.sources.FrameSource` (frames (n, 3) Å, cell, types); out_dir:
    folder for ``bodyorder_statistics.npz`` (bin centres, mean, SEM and count of the 2-body terms
    against r (Å, ``r_edges``) and of the 3-body terms against the vertex angle (degrees,
    ``a_edges``; every vertex with both legs < ``shell`` Å gives a point)) and ``bodyorder.json``
    (per frame: Σ 1-, 2- and 3-body terms, E(X), the remainder; body order, term counts, kcal/mol),
    and last ``lrp.json``: the same without the per-frame list.
    structure: ``structure.npz`` arrays (cg_r/cg_g, cg_theta/cg_p) for the figures' backgrounds;
    figures: folder for ``bodyorder_2body.png`` and ``bodyorder_3body.png`` (None: no figures).
    Returns the summary written to ``lrp.json``.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.double()
    rep = model.representation
    nb2, nb3 = len(r_edges) - 1, len(a_edges) - 1
    acc2, acc3 = np.zeros((3, nb2)), np.zeros((3, nb3))
    per_frame = []
    types = source.types
    for k in tqdm(range(len(source)), desc="exact many-body terms", disable=not progress):
        pos, cells = source.read([k])
        x, cell = pos[0], cells[0]
        t = body_order_terms(model, x, types, cell)
        r = pair_distances(x, cell, t.pairs)
        acc2 = merge_bins(acc2, accumulate_bins(r, t.pair_terms, r_edges))
        th, v = vertex_points(x, cell, t.triplets, t.triplet_terms, shell)
        acc3 = merge_bins(acc3, accumulate_bins(th, v, a_edges))
        per_frame.append({"frame": int(source.frame_ids[k]), **t.totals(), "n_pairs": int(len(t.pairs)), "n_triplets": int(len(t.triplets))})
    s2, s3 = finish_bins(acc2, r_edges), finish_bins(acc3, a_edges)
    save_npz(
        out / "bodyorder_statistics.npz",
        **{f"two_{k}": v for k, v in s2.items()},
        **{f"three_{k}": v for k, v in s3.items()},
    )
    bo = body_order(int(getattr(rep, "n_interactions", 0)), int(getattr(rep, "correlation", 0)))
    closed = bo is not None and bo <= 3
    rem = max((abs(f["remainder"]) for f in per_frame), default=0.0)
    summary = {
        "method": "exact cluster terms (cgexplain.lrp.bodyorder)",
        "body_order": bo,
        "closed": closed,
        "frames": len(per_frame),
        "per_frame": per_frame,
        "max_abs_remainder_kcal_mol": float(rem),
        "mean_1body_kcal_mol": float(np.mean([f["1-body"] for f in per_frame])) if per_frame else float("nan"),
        "mean_2body_kcal_mol": float(np.mean([f["2-body"] for f in per_frame])) if per_frame else float("nan"),
        "mean_3body_kcal_mol": float(np.mean([f["3-body"] for f in per_frame])) if per_frame else float("nan"),
        "units": "kcal/mol (energies, not relevances); r Å; angle degrees",
        "note": (
            f"body order {bo}: the terms are the model's whole energy (remainder is round-off)"
            if closed
            else f"body order {bo or 'unbounded'}: the 1-3-body terms are pure sub-cluster terms; the remainder holds every higher term"
        ),
    }
    write_json(out / "bodyorder.json", summary)
    brief = {k: v for k, v in summary.items() if k != "per_frame"}
    if figures is not None:
        st = structure or {}
        fig_dir = Path(figures)
        fig_dir.mkdir(parents=True, exist_ok=True)
        periodic = "cg_r" in st
        plot_relevance_over(
            s2["centers"],
            s2["mean"],
            s2["sem"],
            st["cg_r"] if periodic else np.zeros(0),
            st["cg_g"] if periodic else np.zeros(0),
            "r (Å)",
            "g(r), CG model" if periodic else "no RDF: frames not periodic",
            "2-body term d(ij) (kcal/mol)",
            fig_dir / "bodyorder_2body.png",
            title=f"{title}: exact 2-body terms vs distance",
        )
        plot_relevance_over(
            s3["centers"],
            s3["mean"],
            s3["sem"],
            st.get("cg_theta", np.zeros(0)),
            st.get("cg_p", np.zeros(0)),
            "θ (degrees)",
            "ADF, CG model",
            "3-body term d(ijk) (kcal/mol)",
            fig_dir / "bodyorder_3body.png",
            title=f"{title}: exact 3-body terms vs angle",
        )
    write_json(out / "lrp.json", brief)  # last: the explain stage's done file
    return brief


def residue_maps(model, positions, types, *, k_top: int = 5, progress: bool = False) -> dict:
    """Residue maps of a body-ordered protein model from its exact terms, averaged over frames
    (non-periodic; one bead per residue): the same keys as the LRP residue maps
    (:func:`cgexplain.lrp.residues.explain_protein_frames`), in energies (kcal/mol), not relevances.

    model: converted to float64 in place; positions (F, n, 3) Å; types (n,). Returns ``pair_map`` (n, n) mean d(ij) (symmetric, zero
    diagonal); ``triplet_projection`` (n,) the mean Σ d(ijk) over the triplets holding the bead,
    each term split equally over its three beads (so the projection sums to the 3-body total);
    ``body_sum_mean`` {1, 2, 3: mean Σ terms}; ``body_sum_per_frame`` (F, 3); ``conservation``
    (F, 2) [E(X), Σ terms] kcal/mol (equal to round-off for body order 3); ``seconds_per_frame``;
    ``top_stabilising``/``top_destabilising`` (k, 3) triplets with the most negative/positive mean
    d(ijk) and their values ``top_stabilising_relevance``/``top_destabilising_relevance``.
    """
    import time

    from tqdm.auto import tqdm

    pos = np.asarray(positions, dtype=np.float64)
    F, n = pos.shape[:2]
    model = model.double()
    pm, proj = np.zeros((n, n)), np.zeros(n)
    tri_sum: dict[tuple, float] = {}
    sums, cons, secs = [], [], []
    for f in tqdm(range(F), desc="exact many-body terms", disable=not progress):
        t0 = time.perf_counter()
        t = body_order_terms(model, pos[f], types, None)
        a, b = t.pairs[:, 0], t.pairs[:, 1]
        np.add.at(pm, (a, b), t.pair_terms / F)
        np.add.at(pm, (b, a), t.pair_terms / F)
        for c in range(3):
            np.add.at(proj, t.triplets[:, c], t.triplet_terms / (3 * F))
        for key, v in zip(map(tuple, t.triplets.tolist()), t.triplet_terms):
            tri_sum[key] = tri_sum.get(key, 0.0) + float(v) / F
        sums.append([t.singles.sum(), t.pair_terms.sum(), t.triplet_terms.sum()])
        cons.append([t.energy, t.energy - t.remainder])
        secs.append(time.perf_counter() - t0)
    keys = list(tri_sum)
    vals = np.array([tri_sum[k] for k in keys]) if keys else np.zeros(0)
    order = np.argsort(vals)
    kk = min(k_top, len(keys))
    sums_a = np.asarray(sums, dtype=float).reshape(-1, 3)
    return {
        "pair_map": pm,
        "triplet_projection": proj,
        "body_sum_mean": {k + 1: float(sums_a[:, k].mean()) for k in range(3)},
        "body_sum_per_frame": sums_a,
        "conservation": np.asarray(cons, dtype=float).reshape(-1, 2),
        "seconds_per_frame": np.asarray(secs),
        "top_stabilising": np.array([keys[i] for i in order[:kk]], dtype=np.int64).reshape(-1, 3),
        "top_stabilising_relevance": vals[order[:kk]],
        "top_destabilising": np.array([keys[i] for i in order[::-1][:kk]], dtype=np.int64).reshape(-1, 3),
        "top_destabilising_relevance": vals[order[::-1][:kk]],
    }
