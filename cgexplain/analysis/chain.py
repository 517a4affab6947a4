"""Observables of a bonded bead chain whose beads need not be residues, and the CG ensembles
(model and prior-only control) against the mapped reference, each beside the reference's own
sampling noise.

Plain functions over arrays. positions are (F, n, 3) Å, non-periodic; angles and dihedrals in
degrees (dihedrals in (−180, 180], IUPAC sign, as mdtraj).

- Named internal coordinates of the bead graph (:func:`chain_coordinates`): every bond, angle
  and dihedral, labelled by its beads' names (``C_ace1-N2-CA3-C4``).
- 2-D maps of any pair of dihedrals (φ/ψ for a peptide) as histograms on a fixed grid and free
  energies F = −k_B T ln p (kcal/mol); basins declared as rectangles in a map's plane, reported
  as populations.
- Distances between ensembles: Jensen–Shannon distance (base 2, scipy) of 1-D histograms
  (:func:`cgexplain.analysis.protein.histogram_js`) and of 2-D maps; |Δp| of basin populations.
- The reference's own noise: the same distances between the first and second half of every
  reference run (:func:`run_halves`), so a mismatch can be told from sampling noise.
- The verdict per observable (:func:`verdict`): whether the model is closer to the reference
  than the prior-only control by more than three standard errors of the difference
  (jackknife over CG replicas or blocks, :mod:`cgexplain.analysis.verdicts`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cgexplain.analysis.protein import histogram_edges, histogram_js
from cgexplain.analysis.verdicts import VERDICTS, verdict, verdict_rows
from cgexplain.geometry.internal import graph_indices, internal_coordinates
from cgexplain.reference.protein import run_halves
from cgexplain.settings import gt
from cgexplain.units import KB_KCAL

__all__ = [
    "ChainAnalysis",
    "chain_coordinates",
    "dihedral_histogram",
    "free_energy_map",
    "map_js",
    "basin_populations",
    "dihedral_pairs",
    "ensemble_distances",
    "run_halves",
    "take_frames",
    "verdict",
    "VERDICTS",
    "compare_chain",
]


@dataclasses.dataclass
class ChainAnalysis:
    """``analysis`` of a bead chain (:mod:`cgexplain.analysis.chain`).

    dihedral_names: names of the chain's dihedrals in order (e.g. [phi, psi]; default by beads);
    dihedral_pairs: pairs of dihedral indices (0-based) drawn as 2-D maps (default every
    consecutive pair); basins: {name: [[x_lo, x_hi, y_lo, y_hi], ...]} rectangles (degrees) in the
    plane of the first dihedral pair, reported as populations; n_bins: bins of the 1-D histograms;
    map_bins: bins per axis of the 2-D maps (36: 10° bins); min_blocks: blocks (replicas, or pieces
    of them) of the jackknife over each CG ensemble."""

    dihedral_names: list[str] | None = None
    dihedral_pairs: list[list[int]] | None = None
    basins: dict[str, list[list[float]]] | None = None
    n_bins: int = gt(0, 60)
    map_bins: int = gt(0, 36)
    min_blocks: int = gt(1, 8)


def _frames(positions) -> np.ndarray:
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"positions must be (F, n, 3) Å, got {np.shape(positions)}")
    return x


def chain_coordinates(positions, bonds, names: list[str] | None = None, dihedral_names: list[str] | None = None) -> dict[str, Any]:
    """Every bond length (Å), angle and dihedral (degrees) of the bead graph ``bonds`` (m, 2).

    positions (F, n, 3) Å; names (n,) bead names (default ``B``); dihedral_names: one name per
    dihedral, replacing its bead label. Returns {"bonds" (F, m_b), "angles" (F, m_a), "dihedrals"
    (F, m_d), "labels": {"bonds": [...], "angles": [...], "dihedrals": [...]}, "index": the
    :func:`cgexplain.geometry.internal.graph_indices` arrays}. Labels join ``name`` + 1-based bead
    number with '-'. Raises ValueError for malformed positions, bonds, or a dihedral_names list
    whose length is not the number of dihedrals."""
    x = _frames(positions)
    n = x.shape[1]
    idx = graph_indices(n, bonds)
    idx = {k: np.asarray(idx[k], dtype=np.int64) for k in ("bonds", "angles", "dihedrals")}
    ic = internal_coordinates(x, idx, degrees=True)
    nm = list(names) if names is not None else ["B"] * n
    if len(nm) != n:
        raise ValueError(f"{len(nm)} bead names for {n} beads")
    labels = {k: ["-".join(f"{nm[i]}{i + 1}" for i in row) for row in idx[k]] for k in idx}
    if dihedral_names is not None:
        if len(dihedral_names) != len(idx["dihedrals"]):
            raise ValueError(
                f"analysis.dihedral_names: {len(dihedral_names)} names for the chain's {len(idx['dihedrals'])} dihedrals {labels['dihedrals']}"
            )
        labels["dihedrals"] = [str(s) for s in dihedral_names]
    return {**ic, "labels": labels, "index": idx}


def dihedral_histogram(x: np.ndarray, y: np.ndarray, bins: int = 36) -> np.ndarray:
    """Counts (bins, bins) of the dihedral pairs (x, y) (F,) degrees on [−180, 180]² (x along rows)."""
    e = np.linspace(-180.0, 180.0, int(bins) + 1)
    return np.histogram2d(np.clip(x, -180, 180), np.clip(y, -180, 180), bins=[e, e])[0]


def free_energy_map(x: np.ndarray, y: np.ndarray, temperature: float, bins: int = 36) -> tuple[np.ndarray, np.ndarray]:
    """F = −k_B T ln p (kcal/mol, minimum 0, NaN where no frame falls) of the dihedral pairs
    (x, y) (F,) degrees on a (bins, bins) grid over [−180, 180]². Returns (edges (bins + 1,) degrees,
    F (bins, bins), x along rows). Raises ValueError for no frames or temperature <= 0."""
    if len(x) == 0:
        raise ValueError("free_energy_map: no frames")
    if not temperature > 0:
        raise ValueError(f"free_energy_map: temperature must be > 0 K, got {temperature}")
    h = dihedral_histogram(x, y, bins)
    p = h / h.sum()
    with np.errstate(divide="ignore"):
        f = -KB_KCAL * float(temperature) * np.log(p)
    f[~np.isfinite(f)] = np.nan
    return np.linspace(-180.0, 180.0, int(bins) + 1), f - np.nanmin(f)


def map_js(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], bins: int = 36) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between the 2-D dihedral histograms
    (:func:`dihedral_histogram`) of the pairs ``a`` = (x, y) and ``b``. Raises ValueError for an empty input."""
    from scipy.spatial.distance import jensenshannon

    if len(a[0]) == 0 or len(b[0]) == 0:
        raise ValueError("map_js: empty input")
    return float(jensenshannon(dihedral_histogram(*a, bins).ravel(), dihedral_histogram(*b, bins).ravel(), base=2))


def basin_populations(x: np.ndarray, y: np.ndarray, basins: dict[str, list[list[float]]]) -> dict[str, float]:
    """Fraction of frames in each basin: ``basins`` {name: [[x_lo, x_hi, y_lo, y_hi], ...]}
    rectangles in degrees (lower edge inclusive, upper exclusive, 180 inclusive); a frame in
    several basins counts in the first. ``other``: frames in none. Raises ValueError for a
    malformed rectangle or no frames."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0:
        raise ValueError("basin_populations: no frames")
    free = np.ones(len(x), bool)
    out = {}
    for name, rects in basins.items():
        inside = np.zeros(len(x), bool)
        for r in rects:
            if len(r) != 4 or not (r[0] < r[1] and r[2] < r[3]):
                raise ValueError(f"analysis.basins.{name}: {r} is not [x_lo, x_hi, y_lo, y_hi] with lo < hi (degrees)")
            inx = (x >= r[0]) & ((x < r[1]) | ((r[1] >= 180) & (x <= 180)))
            iny = (y >= r[2]) & ((y < r[3]) | ((r[3] >= 180) & (y <= 180)))
            inside |= inx & iny
        hit = inside & free
        out[str(name)] = float(hit.mean())
        free &= ~hit
    out["other"] = float(free.mean())
    return out


def dihedral_pairs(spec: ChainAnalysis, n_dihedrals: int) -> list[tuple[int, int]]:
    if spec.dihedral_pairs is not None:
        pairs = [tuple(int(v) for v in p) for p in spec.dihedral_pairs]
        bad = [p for p in pairs if len(p) != 2 or not all(0 <= v < n_dihedrals for v in p)]
        if bad:
            raise ValueError(f"analysis.dihedral_pairs: {bad[0]} is not a pair of dihedral indices within 0..{n_dihedrals - 1}")
        return pairs  # type: ignore[return-value]
    return [(k, k + 1) for k in range(n_dihedrals - 1)]


def ensemble_distances(ref: dict, other: dict, spec: ChainAnalysis, edges: dict | None = None) -> dict[str, float]:
    """Distances of the ensemble ``other`` from ``ref`` (both :func:`chain_coordinates` results of
    the same chain), keyed by observable:

    - ``bond <label>``, ``angle <label>``, ``dihedral <label>``: JS distance of 1-D histograms
      (bonds on ``edges['bonds'][k]`` (default the reference's range padded 10 %, overflow bins),
      angles on [0, 180]°, dihedrals on [−180, 180]°, ``spec.n_bins`` bins);
    - ``map <a>/<b>``: JS distance of the 2-D map of dihedrals a and b (``spec.map_bins``²);
    - ``basin <name>``: |p_other − p_ref| of the basins (``spec.basins``, first map's plane).

    Values depend on the bins and sample sizes: compare them at fixed settings."""
    out: dict[str, float] = {}
    lab = ref["labels"]
    for key, kind in (("bonds", "bond"), ("angles", "angle"), ("dihedrals", "dihedral")):
        for k, name in enumerate(lab[key]):
            e = (edges or {}).get(key, {}).get(k) if edges else None
            if e is None:
                e = histogram_edges(key, ref[key][:, k], spec.n_bins)
            out[f"{kind} {name}"] = histogram_js(ref[key][:, k], other[key][:, k], e)
    d_ref, d_oth = ref["dihedrals"], other["dihedrals"]
    pairs = dihedral_pairs(spec, d_ref.shape[1])
    for a, b in pairs:
        out[f"map {lab['dihedrals'][a]}/{lab['dihedrals'][b]}"] = map_js((d_ref[:, a], d_ref[:, b]), (d_oth[:, a], d_oth[:, b]), spec.map_bins)
    if spec.basins and pairs:
        a, b = pairs[0]
        pr = basin_populations(d_ref[:, a], d_ref[:, b], spec.basins)
        po = basin_populations(d_oth[:, a], d_oth[:, b], spec.basins)
        out.update({f"basin {k}": abs(po[k] - pr[k]) for k in pr if k != "other"})
    return out


def take_frames(obs: dict, rows: np.ndarray) -> dict:
    """The frames ``rows`` of a :func:`chain_coordinates` result."""
    return {**{k: obs[k][rows] for k in ("bonds", "angles", "dihedrals")}, "labels": obs["labels"], "index": obs["index"]}


def compare_chain(
    ref: dict,
    ref_halves: tuple[np.ndarray, np.ndarray],
    compare_to: np.ndarray,
    model: dict,
    model_lengths: list[int],
    prior: dict | None,
    prior_lengths: list[int] | None,
    spec: ChainAnalysis,
) -> dict:
    """The analyse stage's table: for every observable of :func:`ensemble_distances`, the
    reference's own noise (first against second half of its runs), the model's distance from the
    reference frames ``compare_to`` (indices into ``ref``; e.g. the held-out halves), the prior-only
    control's, their jackknife errors and the verdict (:func:`cgexplain.analysis.verdicts.verdict_rows`).
    Also the basin populations of every ensemble, and of the first and second halves of the
    reference runs and of the model's replicas (populations that drift between the halves of the
    CG replicas had not relaxed from their start frames).

    ref, model, prior: :func:`chain_coordinates` results; model_lengths, prior_lengths: frames per
    replica, in order; ``prior`` None: the control was not simulated, the verdicts are "no
    prior-only control". Returns {"observables": [{name, reference_noise, model, model_se, prior,
    prior_se, verdict}], "populations": {ensemble: {basin: p}}, "n_frames": {...}}."""
    half_a, half_b = ref_halves
    noise = ensemble_distances(take_frames(ref, half_a), take_frames(ref, half_b), spec)
    target = take_frames(ref, compare_to)
    ens = {"model": model, **({"prior": prior} if prior is not None else {})}

    def distance(which: str, rows: np.ndarray) -> dict[str, float]:
        return ensemble_distances(target, take_frames(ens[which], rows), spec)

    with_prior = prior is not None and bool(prior_lengths)
    rows = verdict_rows(distance, noise, list(model_lengths), list(prior_lengths or []) if with_prior else None, spec.min_blocks)
    pops = {}
    pairs = dihedral_pairs(spec, ref["dihedrals"].shape[1])
    if spec.basins and pairs:
        a, b = pairs[0]
        m_a, m_b = run_halves(list(model_lengths))
        named = {
            "reference": ref,
            "reference_first_half": take_frames(ref, half_a),
            "reference_second_half": take_frames(ref, half_b),
            "model": model,
            # the first and second half of every CG replica: populations that drift between them did not relax
            "model_first_half": take_frames(model, m_a),
            "model_second_half": take_frames(model, m_b),
            **({"prior_only": prior} if prior is not None else {}),
        }
        pops = {k: basin_populations(v["dihedrals"][:, a], v["dihedrals"][:, b], spec.basins) for k, v in named.items()}
    return {
        "observables": rows,
        "populations": pops,
        "n_frames": {
            "reference": int(len(ref["bonds"])),
            "compared_with": int(len(compare_to)),
            "model": int(sum(model_lengths)),
            "prior_only": int(sum(prior_lengths)) if with_prior and prior_lengths else 0,
        },
    }
