"""Stage 5: structure of the CG model against the mapped reference.

- RDF g(r): mdtraj's ``compute_rdf`` over all bead pairs (minimum image), averaged over frames.
- ADF: the distribution of bead-bead-bead angles θ_jik at every centre i whose two legs
  |r_ij|, |r_ik| are below a first-shell cutoff; a probability density in 1/degree (not divided
  by sin θ).
- Comparison numbers: max |Δg(r)|, each run's first-peak position (parabola through the maximum
  and its neighbours), and the Jensen–Shannon distance between the ADFs (base 2, in [0, 1]).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cgexplain.geometry.neighbors import neighbor_list
from cgexplain.settings import gt

__all__ = [
    "reference_noise",
    "FluidAnalysis",
    "structure_ensembles",
    "structure_comparison",
    "rdf",
    "angle_triplets",
    "adf",
    "tetrahedral_order",
    "q_distribution",
    "first_peak",
    "first_minimum",
    "compare_structure",
    "pair_distance_density",
]


@dataclasses.dataclass
class FluidAnalysis:
    """``analysis`` of a fluid: RDF up to rdf_r_max Å in rdf_bins bins; ADF of bead triplets whose
    legs are shorter than shell_cutoff Å (also the leg cutoff of the 3-body relevance), adf_bins bins."""

    shell_cutoff: float = gt(0, unit="Å")
    rdf_r_max: float = gt(0, 9.0, "Å")
    rdf_bins: int = gt(0, 180)
    adf_bins: int = gt(0, 90)


def _md_traj(positions, cells):
    import mdtraj as md

    n = positions.shape[1]
    top = md.Topology()
    ch = top.add_chain()
    for _ in range(n):
        top.add_atom("CG", md.element.carbon, top.add_residue("CG", ch))
    tr = md.Trajectory(positions / 10.0, top)
    tr.unitcell_vectors = cells / 10.0
    return tr


def rdf(positions: np.ndarray, cells: np.ndarray, r_max: float = 9.0, n_bins: int = 180, chunk: int = 100):
    """Radial distribution function of all bead pairs.

    positions (n_frames, n_beads, 3) Å; cells (n_frames, 3, 3) Å (periodic, rows are box vectors).
    r_max (Å) must not exceed half the shortest box length.
    Returns (r, g): bin centres (n_bins,) Å and g(r) (n_bins,).
    Raises ValueError if r_max is too long for the box or cells are missing.
    """
    import mdtraj as md

    positions = np.asarray(positions, dtype=np.float32)
    cells = np.asarray(cells, dtype=np.float32)
    if np.abs(cells).sum(axis=(1, 2)).min() == 0:
        raise ValueError("rdf: every frame needs a periodic cell")
    half = 0.5 * np.linalg.norm(cells, axis=2).min()
    if r_max > half + 1e-6:
        raise ValueError(f"rdf: r_max={r_max} Å exceeds half the shortest box vector ({half:.2f} Å)")
    n = positions.shape[1]
    pairs = np.array(np.triu_indices(n, 1)).T
    g_sum, w_sum = np.zeros(n_bins), 0
    for s in range(0, len(positions), chunk):
        tr = _md_traj(positions[s : s + chunk], cells[s : s + chunk])
        r, g = md.compute_rdf(tr, pairs, r_range=(0.0, r_max / 10.0), n_bins=n_bins)
        g_sum = g_sum + g * tr.n_frames
        w_sum += tr.n_frames
    return r * 10.0, g_sum / w_sum


def angle_triplets(positions: np.ndarray, cell: np.ndarray | None, shell: float):
    """All angles at centres whose two legs are shorter than ``shell`` Å, for one frame.

    positions (n, 3) Å; cell (3, 3) Å or None. Returns (centre, j, k, theta_deg): arrays of
    shape (n_triplets,), j < k in neighbour-list order, θ = angle j-centre-k in degrees.
    """
    i, j, off = neighbor_list(positions, cell, shell)
    vec = positions[j] - positions[i] + off
    order = np.argsort(i, kind="stable")
    i, j, vec = i[order], j[order], vec[order]
    counts = np.bincount(i, minlength=len(positions))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    a_list, b_list = [], []
    for c in np.unique(counts):
        if c < 2:
            continue
        grp = np.flatnonzero(counts == c)
        ta, tb = np.triu_indices(c, 1)
        a_list.append((starts[grp][:, None] + ta[None]).ravel())
        b_list.append((starts[grp][:, None] + tb[None]).ravel())
    if not a_list:
        e = np.zeros(0, dtype=int)
        return e, e, e, np.zeros(0)
    a, b = np.concatenate(a_list), np.concatenate(b_list)
    va, vb = vec[a], vec[b]
    cos = (va * vb).sum(1) / (np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1))
    return i[a], j[a], j[b], np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def adf(positions: np.ndarray, cells: np.ndarray, shell: float, n_bins: int = 90):
    """Bead-bead-bead angle distribution over frames.

    positions (n_frames, n, 3) Å; cells (n_frames, 3, 3) Å; shell: first-shell cutoff Å.
    Returns (theta, p, mean_neighbours): bin centres (n_bins,) degrees, density p(θ) in 1/degree
    (integrates to 1), and the mean number of neighbours within ``shell``.
    """
    edges = np.linspace(0.0, 180.0, n_bins + 1)
    hist = np.zeros(n_bins)
    n_nb = 0
    for x, c in zip(positions, cells):
        _, _, _, th = angle_triplets(np.asarray(x, dtype=float), c, shell)
        hist += np.histogram(th, bins=edges)[0]
        n_nb += len(neighbor_list(np.asarray(x, dtype=float), c, shell)[0])
    width = edges[1] - edges[0]
    p = hist / max(hist.sum(), 1) / width
    return 0.5 * (edges[1:] + edges[:-1]), p, n_nb / (len(positions) * positions.shape[1])


def tetrahedral_order(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Tetrahedral order parameter of every bead of one frame,
    q_i = 1 - 3/8 Σ_{j<k} (cos ψ_jik + 1/3)², over the four nearest neighbours j, k of i
    (Chau & Hardwick, Mol. Phys. 93, 511 (1998); Errington & Debenedetti, Nature 409, 318
    (2001), eq. 1). q = 1 for a perfect tetrahedron, 0 on average for an ideal gas.

    positions (n, 3) Å; cell (3, 3) Å, rows are box vectors (minimum image in fractional
    coordinates, valid for boxes that are not strongly skewed). Returns q (n,).
    Raises ValueError for fewer than 5 beads.
    """
    x = np.asarray(positions, dtype=float)
    if len(x) < 5:
        raise ValueError(f"tetrahedral_order: need at least 5 beads, got {len(x)}")
    cell = np.asarray(cell, dtype=float)
    d = x[None, :, :] - x[:, None, :]
    if np.abs(cell).sum() > 0:
        f = d @ np.linalg.inv(cell)
        d = (f - np.round(f)) @ cell
    r2 = np.einsum("ijk,ijk->ij", d, d)
    np.fill_diagonal(r2, np.inf)
    nn = np.argpartition(r2, 4, axis=1)[:, :4]
    v = np.take_along_axis(d, nn[:, :, None], axis=1)
    v /= np.linalg.norm(v, axis=2, keepdims=True)
    cos = np.einsum("nad,nbd->nab", v, v)
    a, b = np.triu_indices(4, 1)
    return 1.0 - 0.375 * ((cos[:, a, b] + 1.0 / 3.0) ** 2).sum(1)


def q_distribution(positions: np.ndarray, cells: np.ndarray, n_bins: int = 60, q_range=(-1.0, 1.0)):
    """Distribution of the tetrahedral order parameter over frames and beads.

    positions (n_frames, n, 3) Å; cells (n_frames, 3, 3) Å. Returns (bin centres (n_bins,),
    probability density (n_bins,), mean q over all beads and frames). Values outside
    ``q_range`` count in the mean but not in the histogram."""
    qs = np.concatenate([tetrahedral_order(x, c) for x, c in zip(positions, cells)])
    edges = np.linspace(q_range[0], q_range[1], n_bins + 1)
    hist, _ = np.histogram(qs, bins=edges)
    p = hist / max(len(qs), 1) / (edges[1] - edges[0])
    return 0.5 * (edges[1:] + edges[:-1]), p, float(qs.mean())


def first_peak(r: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """Position (Å) and height of the highest peak of g(r), refined by a parabola through the
    maximum bin and its two neighbours."""
    k = int(np.argmax(g))
    if 0 < k < len(g) - 1:
        y0, y1, y2 = g[k - 1], g[k], g[k + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            d = 0.5 * (y0 - y2) / den
            h = r[1] - r[0]
            return float(r[k] + d * h), float(y1 - 0.25 * (y0 - y2) * d)
    return float(r[k]), float(g[k])


def first_minimum(r: np.ndarray, g: np.ndarray) -> float:
    """Position (Å) of the first minimum of g(r) after its highest peak: the usual first-shell
    cutoff. r, g (n_bins,). Raises ValueError if g has no minimum after the peak."""
    k = int(np.argmax(g))
    tail = g[k + 1 :]
    inner = np.nonzero((tail[1:-1] <= tail[:-2]) & (tail[1:-1] <= tail[2:]))[0]
    if len(inner) == 0:
        raise ValueError("g(r) has no minimum after its first peak; give the shell cutoff explicitly")
    return float(r[k + 2 + inner[0]])


def compare_structure(ref: dict, cg: dict) -> dict:
    """Numbers comparing two structure results (dicts with r, g, theta, p).

    Returns max |Δg(r)|, first-peak positions (Å) and heights, their difference, and the
    Jensen–Shannon distance (base 2) and L1 distance (∫|Δp| dθ) between the ADFs.
    """
    from scipy.spatial.distance import jensenshannon

    pr, hr = first_peak(ref["r"], ref["g"])
    pc, hc = first_peak(cg["r"], cg["g"])
    dth = ref["theta"][1] - ref["theta"][0]
    return {
        "rdf_max_abs_diff": float(np.max(np.abs(ref["g"] - cg["g"]))),
        "rdf_first_peak_reference_A": pr,
        "rdf_first_peak_cg_A": pc,
        "rdf_first_peak_shift_A": pc - pr,
        "rdf_first_peak_height_reference": hr,
        "rdf_first_peak_height_cg": hc,
        "adf_js_distance": float(jensenshannon(ref["p"], cg["p"], base=2)),
        "adf_l1_distance": float(np.abs(ref["p"] - cg["p"]).sum() * dth),
    }


def structure_ensembles(ensembles: dict, ac: dict) -> dict:
    """RDF, ADF and tetrahedral order q of each ensemble {name: (positions (F, n, 3) Å, cells
    (F, 3, 3) Å)} with the ``analysis`` settings ``ac`` (rdf_r_max Å, rdf_bins, shell_cutoff Å,
    adf_bins). Returns {name: {r, g, theta, p, q, q_p, q_mean, neighbours_in_shell, n_frames}}."""
    out = {}
    for name, (pos, cells) in ensembles.items():
        r, g = rdf(pos, cells, r_max=float(ac["rdf_r_max"]), n_bins=int(ac["rdf_bins"]))
        th, p, nn = adf(pos, cells, shell=float(ac["shell_cutoff"]), n_bins=int(ac["adf_bins"]))
        qx, qp, qmean = q_distribution(pos, cells)
        out[name] = {"r": r, "g": g, "theta": th, "p": p, "q": qx, "q_p": qp, "q_mean": qmean, "neighbours_in_shell": nn, "n_frames": len(pos)}
    return out


def structure_comparison(out: dict) -> dict:
    """The CG ensemble against the reference (:func:`compare_structure`)
    with the mean q and the Jensen–Shannon distance (base 2) of the q distributions."""
    from scipy.spatial.distance import jensenshannon

    cmp = compare_structure(out["reference"], out["cg"])
    cmp["q_mean_reference"], cmp["q_mean_cg"] = out["reference"]["q_mean"], out["cg"]["q_mean"]
    cmp["q_js_distance"] = float(jensenshannon(out["reference"]["q_p"], out["cg"]["q_p"], base=2))
    return cmp


def reference_noise(positions: np.ndarray, cells: np.ndarray, ac: dict, n_frames: int) -> dict:
    """The reference's own sampling noise at a sample size: the same comparison as
    :func:`structure_comparison` between two disjoint blocks of the reference, its first and its
    last ``n_frames`` frames (each half when the trajectory is shorter than 2·n_frames), so a CG
    ensemble of ``n_frames`` frames whose numbers are within these is within the reference's noise.

    positions (F, n, 3) Å; cells (F, 3, 3) Å; ac: the ``analysis`` settings. Returns
    {rdf_max_abs_diff, adf_js_distance, q_js_distance, n_frames_each} (both blocks correlated
    within, far apart in time). Raises ValueError for fewer than 2 frames.
    """
    F = len(positions)
    if F < 2:
        raise ValueError(f"reference noise needs >= 2 frames, got {F}")
    k = max(1, min(int(n_frames), F // 2))
    out = structure_ensembles({"reference": (positions[:k], cells[:k]), "cg": (positions[F - k :], cells[F - k :])}, ac)
    c = structure_comparison(out)
    return {
        "rdf_max_abs_diff": c["rdf_max_abs_diff"],
        "adf_js_distance": c["adf_js_distance"],
        "q_js_distance": c["q_js_distance"],
        "n_frames_each": int(k),
    }


def pair_distance_density(positions: np.ndarray, r_max: float, bin_width: float = 0.05, smooth: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Bead-pair distances per unit shell volume, for frames without a periodic cell.

    positions (F, n, 3) Å (not periodic); r_max Å. The distances of all pairs closer than r_max
    are histogrammed (bins of ``bin_width`` Å), divided by the shell volume 4πr²Δr and the frame
    count, and smoothed by a Gaussian of ``smooth`` Å. Without a box there is no density to
    normalise by, so this is not g(r) and is not drawn; its first minimum after the highest peak
    (:func:`first_minimum`) is the default 3-body shell of
    non-periodic frames (for a Cα chain: just past the bond length).
    Returns (r (n_bins,) bin centres Å, density (n_bins,) 1/Å³).
    """
    edges = np.arange(0.0, float(r_max) + bin_width, bin_width)
    hist = np.zeros(len(edges) - 1)
    pos = np.asarray(positions, dtype=np.float64)
    for x in pos:
        i, j, _ = neighbor_list(x, None, float(r_max))
        keep = i < j
        hist += np.histogram(np.linalg.norm(x[j[keep]] - x[i[keep]], axis=1), bins=edges)[0]
    r = 0.5 * (edges[1:] + edges[:-1])
    dens = hist / (4.0 * np.pi * r**2 * bin_width) / max(len(pos), 1)
    half = int(np.ceil(3.0 * smooth / bin_width))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * bin_width / smooth) ** 2)
    return r, np.convolve(dens, kernel / kernel.sum(), mode="same")
