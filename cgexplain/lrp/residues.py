"""Residue relevance maps of a one-bead-per-residue protein model (GNN-LRP walks -> residues).

Following the NTL9 analysis of Bonneau et al. (arXiv 2407.04526) with the walk relevances of
Schnake et al. (IEEE TPAMI 44, 7581 (2022)): every walk (j0..jL) has a relevance R (kcal/mol)
and a body order (number of distinct beads). With one bead per residue, bead index k is residue
k + 1.

Conventions (all relevances in kcal/mol; negative = stabilising, positive = destabilising):

- **pair map** P (n, n): P[i, j] = P[j, i] = the summed relevance of the 2-body walks whose
  distinct beads are {i, j}, stored *in full in both triangles* (not halved). So the strict
  upper triangle sums to the 2-body total, and the whole matrix sums to twice it. The diagonal
  is 0 (1-body walks are kept apart, in :func:`residue_one_body`).
- **triplets**: the summed relevance of the 3-body walks per sorted bead triplet (i < j < k).
- **pair projection** q (n,) (the 2-body relevance per residue): ``q[i] = ½ Σ_j P[i, j]``, each
  pair's relevance shared equally (1/2 each) by its two residues, so q sums to the 2-body total.
- **triplet projection** p (n,) (the 3-body relevance per residue): each triplet's relevance shared
  equally (1/3 each) by its three residues, so p sums to the 3-body total.
- The projections are relevances in kcal/mol (how much of the network's energy the walks through a
  residue carry), not energies of the residue: no physical energy term is split this way.
- :func:`write_relevance_pdb` writes a per-residue value into the B-factor column of a PDB
  (scaled to max |B| = 99.99, the scale in a REMARK line), for colouring in PyMOL, VMD or ChimeraX.
- Walks of body order 4 and higher are not mapped to residues; their totals are in the body-order
  sums.

Array indices are 0-based; the tables (:func:`pair_table`) and figures number residues 1..n.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np

from cgexplain.analysis.protein import element_of
from cgexplain.fileio import atomic_path, save_npz, write_json
from cgexplain.lrp.engine import statistics_max_order, walk_relevance
from cgexplain.lrp.frames import FrameExplainer
from cgexplain.lrp.nbody import body_order, body_order_totals, pair_relevance, triplet_relevance
from cgexplain.lrp.sources import ArrayFrames
from cgexplain.mapping.maps import to_atoms

__all__ = [
    "residue_pair_map",
    "residue_one_body",
    "residue_triplets",
    "triplet_projection",
    "pair_projection",
    "RELEVANCE_PDB_MAX",
    "relevance_pdb_scale",
    "write_relevance_pdb",
    "explain_protein_frames",
    "pair_table",
    "format_pair_table",
    "segment_of",
]


# --------------------------------------------------------------------------------------------
# maps from one frame's walks


def residue_pair_map(walks: np.ndarray, relevance: np.ndarray, n: int) -> np.ndarray:
    """Residue-pair relevance map of one frame: (n, n) symmetric, kcal/mol.

    ``P[i, j] = P[j, i]`` = Σ relevance of the 2-body walks whose distinct beads are {i, j}
    (stored in full in both triangles, diagonal 0), so ``P[np.triu_indices(n, 1)].sum()`` is the
    2-body total. walks (m, L+1) 0-based bead indices; relevance (m,)."""
    P = np.zeros((int(n), int(n)))
    walks = np.asarray(walks)
    if len(walks) == 0:
        return P
    pairs, rel, _ = pair_relevance(walks, np.asarray(relevance, dtype=float))
    if len(pairs):
        _check_range(pairs, n)
        P[pairs[:, 0], pairs[:, 1]] = rel
        P[pairs[:, 1], pairs[:, 0]] = rel
    return P


def residue_one_body(walks: np.ndarray, relevance: np.ndarray, n: int) -> np.ndarray:
    """Relevance of the 1-body walks (j, j, ..., j) per residue: (n,) kcal/mol."""
    walks = np.asarray(walks)
    sel = body_order(walks) == 1 if len(walks) else np.zeros(0, bool)
    out = np.bincount(walks[sel, 0], weights=np.asarray(relevance, float)[sel], minlength=int(n)) if sel.any() else np.zeros(int(n))
    if len(out) > n:
        raise ValueError(f"walks hold bead indices >= n = {n}")
    return out


def _check_range(idx, n):
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"walks hold bead indices outside 0..{n - 1}")


def triplet_projection(triplets: np.ndarray, relevance: np.ndarray, n: int) -> np.ndarray:
    """Share each triplet's relevance equally among its three residues: (n,) kcal/mol whose sum is
    Σ relevance. triplets (T, 3) 0-based, relevance (T,)."""
    t = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)
    _check_range(t, n)
    r = np.asarray(relevance, float)
    return np.bincount(t.ravel(), weights=np.repeat(r / 3.0, 3), minlength=int(n)).astype(float)


def pair_projection(pair_map: np.ndarray) -> np.ndarray:
    """2-body relevance per residue: (n,) kcal/mol, ``q[i] = ½ Σ_j P[i, j]``.

    pair_map: (n, n) residue-pair map in the convention of :func:`residue_pair_map` (each pair's
    relevance in full in both triangles), or its mean over frames. Each pair's relevance is shared
    equally by its two residues, so ``q.sum()`` is the 2-body total (the upper triangle's sum). A
    relevance, not an energy. Raises ValueError if ``pair_map`` is not square."""
    P = np.asarray(pair_map, dtype=float)
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise ValueError(f"pair_map must be a square (n, n) array, got shape {P.shape}")
    return 0.5 * P.sum(axis=1)


def _top(rel, top):
    """Indices of the ``top`` most negative (only R < 0) and most positive (only R > 0)."""
    o = np.argsort(rel, kind="stable")
    neg = [k for k in o[:top] if rel[k] < 0]
    pos = [k for k in o[::-1][:top] if rel[k] > 0]
    return np.array(neg, dtype=np.int64), np.array(pos, dtype=np.int64)


def residue_triplets(walks: np.ndarray, relevance: np.ndarray, n: int, top: int = 10) -> dict:
    """3-body relevance per residue triplet of one frame.

    Returns a dict:
      ``triplets`` (T, 3) sorted 0-based bead indices (i < j < k, rows in lexicographic order);
      ``relevance`` (T,) kcal/mol (Σ over the 3-body walks on exactly these beads);
      ``top_stabilising`` (≤top, 3) and ``top_stabilising_relevance``: the most negative triplets,
      most negative first (only triplets with R < 0);
      ``top_destabilising`` (≤top, 3) and ``top_destabilising_relevance``: the most positive,
      most positive first (only R > 0);
      ``triplet_projection`` (n,): each triplet's relevance shared 1/3 per residue (sums to the
      3-body total).
    """
    walks = np.asarray(walks)
    if len(walks):
        tri, rel = triplet_relevance(walks, np.asarray(relevance, dtype=float))
    else:
        tri, rel = np.zeros((0, 3), np.int64), np.zeros(0)
    tri = np.asarray(tri, dtype=np.int64).reshape(-1, 3)
    return _triplet_dict(tri, np.asarray(rel, float), n, top)


def _triplet_dict(tri, rel, n, top):
    neg, pos = _top(rel, int(top))
    return {
        "triplets": tri,
        "relevance": rel,
        "top_stabilising": tri[neg].reshape(-1, 3),
        "top_stabilising_relevance": rel[neg],
        "top_destabilising": tri[pos].reshape(-1, 3),
        "top_destabilising_relevance": rel[pos],
        "triplet_projection": triplet_projection(tri, rel, n),
    }


# --------------------------------------------------------------------------------------------
# many frames, with per-frame checkpoints


def _frame_done(path: Path, frame_id, pos, types, gamma, bias_rule) -> bool:
    """A frame file is reused only if it was written for the same frame, geometry, types and rule."""
    if not path.exists():
        return False
    try:
        with np.load(path) as z:
            return (
                int(z["frame"]) == int(frame_id)
                and z["positions"].shape == pos.shape
                and np.array_equal(z["positions"], pos)
                and np.array_equal(z["types"], types)
                and float(z["gamma"]) == float(gamma)
                and bool(z["bias_rule"]) == bool(bias_rule)
            )
    except (OSError, KeyError, ValueError):
        return False  # unreadable or from another writer: recompute


def _explain_one(model, pos, types, gamma, bias_rule):

    n = len(types)
    # the maps use walks of 1 to 3 distinct beads: the (L+1)-body total comes from the sum rule
    res = walk_relevance(model, to_atoms(pos, types), gamma=gamma, bias_rule=bias_rule, max_order=statistics_max_order(model))
    w, rel = res["walks"], res["relevance"]
    sums = body_order_totals(res)
    tri = residue_triplets(w, rel, n, top=0)
    return dict(
        pair_map=residue_pair_map(w, rel, n),
        one_body=residue_one_body(w, rel, n),
        triplets=tri["triplets"].astype(np.int32),
        triplet_relevance=tri["relevance"],
        triplet_projection=tri["triplet_projection"],
        body_sum=np.array([sums[o][0] for o in sorted(sums)]),
        body_count=np.array([sums[o][1] for o in sorted(sums)]),
        # the same columns as the fluid statistics: [Σ walks, Σ h0·∂E/∂h0, E_modified, E_model]
        conservation=np.array([float(rel.sum()) + res["remainder"], res["sum_h0_grad"], res["E_modified"], res["E_model"]]),
        n_walks=res["n_walks_total"],
        time_s=res["wall_time_s"],
    )


class ProteinFrameTask:
    """:class:`~cgexplain.lrp.frames.FrameTask` of the residue maps: ``frame_XXXX.npz`` holds one
    frame's pair map, triplets, body-order sums and conservation, with the positions, types and
    rule it was computed for (a file written for other inputs is recomputed)."""

    def __init__(self, types, gamma: float, bias_rule: bool):
        self.types, self.gamma, self.bias_rule = np.asarray(types, dtype=np.int64), float(gamma), bool(bias_rule)

    def is_done(self, out_dir: Path, k: int, frame_id: int, position, cell) -> bool:
        return _frame_done(Path(out_dir) / f"frame_{k:04d}.npz", frame_id, position, self.types, self.gamma, self.bias_rule)

    def compute(self, model, out_dir: Path, k: int, frame_id: int, position, cell) -> None:
        r = _explain_one(model, position, self.types, self.gamma, self.bias_rule)
        save_npz(
            Path(out_dir) / f"frame_{k:04d}.npz",
            frame=frame_id,
            positions=position,
            types=self.types,
            gamma=self.gamma,
            bias_rule=self.bias_rule,
            **r,
        )


def explain_protein_frames(
    model,
    positions,
    types,
    out_dir,
    gamma: float = 0.1,
    bias_rule: bool = True,
    frame_ids=None,
    progress: bool = True,
    *,
    top: int = 10,
    resnames=None,
    segments=None,
    workers: int = 1,
    backend: str = "multiprocessing",
    device: str | None = None,
) -> dict:
    """Residue relevance maps averaged over the frames of a one-bead-per-residue protein.

    model: a schnetpack potential (PaiNN or SO3net; a :class:`~cgexplain.model.priors.PriorEnergy` module,
    if any, is not explained: LRP explains the network energy), or its model folder (needed for
    ``workers`` > 1: the frames are spread by :class:`~cgexplain.lrp.frames.FrameExplainer`
    through MDAnalysis's ``backend``, 'multiprocessing' or 'dask'; device 'cpu', 'cuda' or 'cuda:N'). positions (F, n, 3) Å, non-periodic; types (n,) bead types.
    Each frame k is written to ``out_dir/frame_XXXX.npz`` (XXXX = k, its position in
    ``positions``) and reused by a later call if it holds the same frame id, positions, types and
    rule (gamma, bias_rule); an interrupted run resumes. The averages are written to
    ``out_dir/residue_relevance.npz`` and ``out_dir/residue_relevance.json`` (recomputed from the
    frame files at every call, which is cheap). ``resnames``/``segments`` (optional) only add the
    top-pair tables to the JSON summary.

    Returns a dict (kcal/mol):
      ``pair_map`` (n, n) mean over frames (convention in the module docstring), ``pair_map_sem``
      (n, n) standard error over frames (NaN for one frame), ``triplet_projection`` (n,) mean,
      ``one_body`` (n,) mean 1-body relevance per residue, ``triplets`` (T, 3) the union over
      frames and ``triplet_relevance`` (T,) their mean (a triplet absent from a frame counts 0),
      ``top_stabilising`` / ``top_destabilising`` (+ ``_relevance``) from the mean,
      ``body_sum_per_frame`` (F, L+1), ``body_sum_mean`` {order: mean}, ``conservation`` (F, 4)
      columns [Σ walk relevance, Σ h0·∂E/∂h0 without masks, modified-pass energy, network energy
      (``E_model`` of :func:`~cgexplain.lrp.walk_relevance`: the Atomwise head, prior left out)]
      (the column order of the fluid statistics),
      ``seconds_per_frame`` (F,), ``n_frames_computed`` / ``n_frames_reused``
      in this call, ``wall_time_s`` and ``summary`` (what the JSON holds).
    """

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pos_all = np.asarray(positions, dtype=np.float64)
    if pos_all.ndim == 2:
        pos_all = pos_all[None]
    types = np.asarray(types, dtype=np.int64)
    F, n = pos_all.shape[:2]
    if pos_all.shape[2] != 3 or len(types) != n:
        raise ValueError(f"positions must be (F, n, 3) with n = len(types) = {len(types)}, got {pos_all.shape}")
    frame_ids = np.arange(F) if frame_ids is None else np.asarray(frame_ids)
    if len(frame_ids) != F:
        raise ValueError(f"frame_ids has {len(frame_ids)} entries for {F} frames")

    source = ArrayFrames(pos_all, np.zeros((F, 3, 3)), types, frame_ids)
    model_dir = Path(model) if isinstance(model, (str, Path)) else None
    explainer = FrameExplainer(
        source,
        ProteinFrameTask(types, gamma, bias_rule),
        out,
        model_dir=model_dir,
        model=None if model_dir is not None else model,
        device=device,
        progress=progress and int(workers) == 1,
    )
    explainer.run(backend=backend, n_workers=workers)
    computed = len(explainer.results.computed)

    maps_, proj, one, body_, cons_, secs, nw, keys, krel = [], [], [], [], [], [], [], [], []
    for k in range(F):
        with np.load(out / f"frame_{k:04d}.npz") as z:
            maps_.append(z["pair_map"])
            proj.append(z["triplet_projection"])
            one.append(z["one_body"])
            body_.append(z["body_sum"])
            cons_.append(z["conservation"])
            secs.append(float(z["time_s"]))
            nw.append(int(z["n_walks"]))
            t = z["triplets"].astype(np.int64)
            keys.append((t[:, 0] * n + t[:, 1]) * n + t[:, 2])
            krel.append(z["triplet_relevance"])
    maps = np.array(maps_)
    pair_map = maps.mean(0)
    pair_sem = maps.std(0, ddof=1) / np.sqrt(F) if F > 1 else np.full((n, n), np.nan)
    uk, inv = np.unique(np.concatenate(keys), return_inverse=True)
    tri_rel = np.bincount(inv.ravel(), weights=np.concatenate(krel), minlength=len(uk)) / F
    tri = np.stack([uk // (n * n), (uk // n) % n, uk % n], axis=1).astype(np.int64)
    td = _triplet_dict(tri, tri_rel, n, top)
    body = np.array(body_)
    cons = np.array(cons_)
    orders = list(range(1, body.shape[1] + 1))
    body_mean = {o: float(body[:, i].mean()) for i, o in enumerate(orders)}
    result = {
        "pair_map": pair_map,
        "pair_map_sem": pair_sem,
        "triplet_projection": np.mean(proj, axis=0),
        "one_body": np.mean(one, axis=0),
        "triplets": tri,
        "triplet_relevance": tri_rel,
        **{key: td[key] for key in ("top_stabilising", "top_stabilising_relevance", "top_destabilising", "top_destabilising_relevance")},
        "body_sum_per_frame": body,
        "body_sum_mean": body_mean,
        "conservation": cons,
        "seconds_per_frame": np.array(secs),
        "frame_ids": frame_ids,
        "n_frames_computed": computed,
        "n_frames_reused": F - computed,
    }
    save_npz(
        out / "residue_relevance.npz",
        **{k: v for k, v in result.items() if k != "body_sum_mean"},
        gamma=float(gamma),
        bias_rule=bool(bias_rule),
        types=types,
    )
    result["wall_time_s"] = time.perf_counter() - t0

    def trip_rows(t, r):
        return [{"residues": [int(a) + 1 for a in row], "relevance": float(v)} for row, v in zip(t, r)]

    summary = {
        "n_frames": F,
        "n_residues": n,
        "gamma": float(gamma),
        "bias_rule": bool(bias_rule),
        "units": "kcal/mol",
        "pair_map_convention": "P[i,j] = P[j,i] = full 2-body relevance of pair {i,j}; upper triangle sums to the 2-body total",
        "walks_per_frame_mean": float(np.mean(nw)),
        "relevance_by_body_order_kcal_mol_mean": {str(o): v for o, v in body_mean.items()},
        "two_body_total_mean": float(np.triu(pair_map, 1).sum()),
        "three_body_total_mean": float(result["triplet_projection"].sum()),
        "conservation_per_frame": [
            {
                "frame": int(frame_ids[k]),
                "sum_walk_relevance": float(c[0]),
                "E_modified_forward": float(c[2]),
                "difference": float(c[0] - c[2]),
                "sum_h0_dE_dh0_no_masks": float(c[1]),
                "E_network": float(c[3]),
            }
            for k, c in enumerate(cons)
        ],
        "top_stabilising_triplets": trip_rows(td["top_stabilising"], td["top_stabilising_relevance"]),
        "top_destabilising_triplets": trip_rows(td["top_destabilising"], td["top_destabilising_relevance"]),
        "seconds_per_frame_mean": float(np.mean(secs)),
        "n_frames_computed": computed,
        "n_frames_reused": F - computed,
        "wall_time_s": result["wall_time_s"],
    }
    if resnames is not None or segments is not None:
        stab, destab = pair_table(pair_map, segments=segments, resnames=resnames, k=top)
        summary["top_stabilising_pairs"], summary["top_destabilising_pairs"] = stab, destab
    write_json(out / "residue_relevance.json", summary)
    result["summary"] = summary
    return result


# --------------------------------------------------------------------------------------------
# tables


def segment_of(residue: int, segments) -> str:
    """Name of the segment holding 1-based ``residue`` (:func:`cgexplain.analysis.protein.element_of`), or
    "coil" when no segment holds it (a list of helices and strands only)."""

    try:
        return str(element_of(int(residue), segments or []))
    except ValueError:
        return "coil"


def pair_table(pair_map: np.ndarray, segments=None, resnames=None, k: int = 5):
    """The ``k`` most stabilising (most negative relevance; only R < 0) and ``k`` most
    destabilising (most positive; only R > 0) residue pairs of a pair map.

    Returns two lists of dicts {i, j (1-based residue numbers, i < j), separation (j - i),
    resname_i, resname_j, relevance (kcal/mol), element_i, element_j}. ``resnames`` (n,) adds
    the residue names, ``segments`` (list of {"name", "kind", "start", "end"}, 1-based inclusive,
    e.g. from :func:`cgexplain.analysis.protein.ss_segments`, which covers every residue) the element
    names ("coil" for a residue in no segment); without them those keys are left out."""
    P = np.asarray(pair_map, float)
    n = P.shape[0]
    iu, ju = np.triu_indices(n, 1)
    v = P[iu, ju]
    neg, pos = _top(v, int(k))

    def row(m):
        i, j = int(iu[m]) + 1, int(ju[m]) + 1
        d = {"i": i, "j": j, "separation": j - i}
        if resnames is not None:
            d["resname_i"], d["resname_j"] = str(resnames[i - 1]), str(resnames[j - 1])
        d["relevance"] = float(v[m])
        if segments is not None:
            d["element_i"], d["element_j"] = segment_of(i, segments), segment_of(j, segments)
        return d

    return [row(m) for m in neg], [row(m) for m in pos]


def format_pair_table(pair_map, segments=None, resnames=None, k: int = 5, digits: int = 3, unit: str = "residue") -> str:
    """Markdown of :func:`pair_table`: two tables, most stabilising then most destabilising.
    ``pair_map`` may also be the (stabilising, destabilising) lists that :func:`pair_table`
    returned. ``unit``: what the map's rows are ("residue", or "bead" for a chain whose beads are
    not residues); without ``segments`` there is no secondary-structure column."""
    if (
        isinstance(pair_map, (tuple, list))
        and len(pair_map) == 2
        and not isinstance(pair_map[0], np.ndarray)
        and all(isinstance(x, list) for x in pair_map)
    ):
        stab, destab = pair_map
    else:
        stab, destab = pair_table(pair_map, segments=segments, resnames=resnames, k=k)
    rows = stab + destab
    has_names = any("resname_i" in r for r in rows) or (resnames is not None)
    has_el = any("element_i" in r for r in rows) or (segments is not None)
    head = ["rank", f"{unit} i", f"{unit} j", "j − i"] + (["elements"] if has_el else []) + ["relevance (kcal/mol)"]

    def fmt(rank, r):
        a = f"{r.get('resname_i', '')}{r['i']}" if has_names else str(r["i"])
        b = f"{r.get('resname_j', '')}{r['j']}" if has_names else str(r["j"])
        cells = [str(rank), a, b, str(r["j"] - r["i"])]
        if has_el:
            cells.append(f"{r.get('element_i', '')}–{r.get('element_j', '')}")
        cells.append(f"{r['relevance']:+.{digits}f}")
        return "| " + " | ".join(cells) + " |"

    lines = []
    for title, rs in (("Most stabilising pairs (most negative relevance)", stab), ("Most destabilising pairs (most positive relevance)", destab)):
        lines += [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
        lines += [fmt(m + 1, r) for m, r in enumerate(rs)] or ["| – " * len(head) + "|"]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------
# relevance on the structure: the B-factor column of a PDB

#: the largest |B-factor| :func:`write_relevance_pdb` writes: the values are scaled so that the
#: largest |value| becomes this (the PDB column is 6.2f, so -999.99..9999.99 would fit; a
#: symmetric ±99.99 keeps one colour range, -99.99..99.99, right for every file)
RELEVANCE_PDB_MAX = 99.99


def relevance_pdb_scale(values) -> float:
    """The factor :func:`write_relevance_pdb` multiplies ``values`` (kcal/mol) by:
    ``RELEVANCE_PDB_MAX / max |values|`` (1/(kcal/mol)), or 1.0 when every value is 0 (or there are none)."""
    v = np.asarray(values, dtype=float)
    m = float(np.abs(v).max()) if v.size else 0.0
    return RELEVANCE_PDB_MAX / m if m > 0 else 1.0


def write_relevance_pdb(
    topology,
    values,
    path: str | os.PathLike,
    *,
    frame_positions=None,
    label: str = "relevance per residue",
) -> Path:
    """Write a per-residue relevance into the B-factor (tempfactor) column of a PDB, for colouring
    the structure in PyMOL, VMD or ChimeraX.

    topology: a structure file MDAnalysis reads (a PDB of the atomistic structure, e.g. a run's
    ``reference/native.pdb``, or of the CG model, ``cg/topology.pdb``, one bead per residue), or an
    MDAnalysis Universe (copied, not changed). values: (n_residues,) kcal/mol, one per residue of
    ``topology`` in its order (e.g. :func:`pair_projection` or :func:`triplet_projection`); every
    atom of residue k gets ``values[k]``. frame_positions: optional (n_atoms, 3) Å, written instead
    of the topology's coordinates (e.g. a CG frame on the CG topology). label: what the values
    are, written into a REMARK line.

    Scale: the B-factor column holds 6.2f numbers, so the written B-factor is
    ``values × s`` with ``s = relevance_pdb_scale(values) = 99.99 / max |values|``: the residue
    of largest |relevance| gets ±99.99 and the signs are kept (negative = stabilising); B/s is the
    relevance in kcal/mol to about 5e-5 of the largest. ``s`` is written into the REMARK lines
    ("B-FACTOR = RELEVANCE (KCAL/MOL) * s"). The values are relevances (the share of the
    network's energy that the walks through a residue carry), not energies. Colour with one
    symmetric range, e.g. PyMOL ``spectrum b, blue_white_red, minimum=-99.99, maximum=99.99``.
    Other atom records (names, residues, chains, elements) are those of ``topology``. Written
    atomically (a partial file is never left at ``path``).

    Returns ``Path(path)``. Raises ValueError if ``values`` is not one-dimensional, if its length
    is not the number of residues of ``topology`` (both named), if a value is not finite (the
    residues named), or if ``frame_positions`` is not (n_atoms, 3) finite numbers.
    """
    import MDAnalysis as mda

    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"values must be one value per residue, shape (n_residues,); got shape {v.shape}")
    if isinstance(topology, mda.Universe):
        u, name = topology.copy(), "the universe"
    else:
        u, name = mda.Universe(str(topology)), str(topology)
    n_res = u.residues.n_residues
    if len(v) != n_res:
        raise ValueError(f"{len(v)} values for the {n_res} residues of {name}: need one value per residue")
    bad = np.flatnonzero(~np.isfinite(v))
    if len(bad):
        shown = ", ".join(f"{u.residues[k].resname}{u.residues[k].resid} ({v[k]})" for k in bad[:5])
        raise ValueError(f"values must be finite; {len(bad)} are not, at residues {shown}{' ...' if len(bad) > 5 else ''}")
    if frame_positions is not None:
        x = np.asarray(frame_positions, dtype=float)
        if x.shape != (u.atoms.n_atoms, 3):
            raise ValueError(f"frame_positions must be (n_atoms, 3) = ({u.atoms.n_atoms}, 3) Å for {name}, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("frame_positions must be finite")
        u.atoms.positions = x
    scale = relevance_pdb_scale(v)
    if not hasattr(u.atoms, "tempfactors"):
        u.add_TopologyAttr("tempfactors")
    u.atoms.tempfactors = (v * scale)[u.atoms.resindices]
    # MDAnalysis writes the reader's remarks as REMARK records (wrapped at 66 characters)
    u.trajectory.remarks = [
        f"CGEXPLAIN {label}",
        "B-FACTOR = RELEVANCE (KCAL/MOL) * SCALE, SCALED TO MAX |B| = 99.99",
        f"SCALE = {scale:.9e} PER KCAL/MOL",
        f"MAX |RELEVANCE| = {np.abs(v).max() if v.size else 0.0:.6e} KCAL/MOL",
        "A RELEVANCE (GNN-LRP), NOT AN ENERGY; NEGATIVE = STABILISING",
    ]
    out = Path(path)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        # PDB columns the topology has no use for (altLocs, icodes, ...) and a missing box
        warnings.filterwarnings("ignore", message="Found no information for attr", category=UserWarning)
        warnings.filterwarnings("ignore", message="Found missing chainIDs", category=UserWarning)
        warnings.filterwarnings("ignore", message="Unit cell dimensions not found", category=UserWarning)
        u.atoms.write(str(tmp))
    return out
