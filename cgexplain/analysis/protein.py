"""Protein observables of a one-bead-per-residue (Cα) CG model, and the CG ensemble against the
mapped all-atom reference.

Everything here is a plain function over arrays, mdtraj style: positions are (n_frames, n, 3) Å
(non-periodic; a single frame (n, 3) is accepted where noted), bead i is residue i + 1.

- Cα RMSD after optimal superposition (Kabsch, double precision).
- Fraction of native contacts Q, smooth definition of Best, Hummer & Eaton, PNAS 110, 17874
  (2013): Q(X) = 1/N Σ_(i,j) 1 / (1 + exp[β (r_ij(X) − λ r0_ij)]), β = 5 Å⁻¹, λ = 1.5 for Cα
  models (1.8 is their all-atom value; MDAnalysis' ``soft_cut_q`` documents the same pair).
- Radius of gyration, bond lengths, bond angles, dihedrals (IUPAC sign, as mdtraj).
- Secondary structure of a PDB (mdtraj DSSP, simplified to H/E/C) and named elements
  (β1, loop1, α1, ...).
- TICA (deeptime) fitted on the reference, with both ensembles projected on it, and the free
  energy surface F = −k_B T ln p over two ICs in kcal/mol.
- Comparison numbers: ensemble means, Jensen–Shannon distances (base 2) on common bins, the
  fraction of frames within an RMSD threshold of the native.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from cgexplain.geometry.internal import chain_indices, internal_coordinates
from cgexplain.settings import ge, gt
from cgexplain.units import KB_KCAL

__all__ = [
    "ProteinAnalysis",
    "ca_rmsd",
    "native_contacts",
    "fraction_native_contacts",
    "radius_of_gyration",
    "bond_lengths",
    "bond_angles",
    "dihedrals",
    "secondary_structure",
    "ss_segments",
    "element_of",
    "tica_features",
    "tica_fit",
    "tica_project",
    "free_energy_surface",
    "protein_observables",
    "compare_protein",
    "histogram_js",
    "histogram_edges",
]


@dataclasses.dataclass
class ProteinAnalysis:
    """``analysis`` of a protein: folded means CA-RMSD <= rmsd_threshold Å to the native
    structure; native contacts within contact_cutoff Å; TICA with lag tica_lag frames, tica_dim >= 2 components."""

    rmsd_threshold: float = gt(0, 3.0, "Å")
    contact_cutoff: float = gt(0, 8.0, "Å")
    tica_lag: int = gt(0, 10)
    tica_dim: int = ge(2, 2)


#: Fixed histogram ranges of observables with natural bounds (used by compare_protein and plots).
FIXED_RANGES = {"q": (0.0, 1.0), "angles": (0.0, 180.0), "dihedrals": (-180.0, 180.0)}


def _frames(positions, name: str = "positions") -> np.ndarray:
    x = np.asarray(positions, dtype=float)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape (n_frames, n, 3) or (n, 3), got {np.shape(positions)}")
    return x


# --------------------------------------------------------------------------------------------
# structure: RMSD, Q, Rg, internal coordinates
# --------------------------------------------------------------------------------------------
def ca_rmsd(positions: np.ndarray, reference: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Cα RMSD of every frame from ``reference`` after optimal superposition by a translation and
    a proper rotation (Kabsch, Acta Cryst. A32, 922 (1976); A34, 827 (1978): SVD of the
    covariance H = Yᵀ X of the centred frame Y and reference X, with the reflection fix
    R = U diag(1, 1, sign det(U Vᵀ)) Vᵀ), equal weights; the residual |Y R − X| is evaluated
    directly in double precision. (mdtraj.rmsd computes the same quantity by QCP in single
    precision, which is off by up to ~0.03 Å near RMSD 0 and ~1e-4 Å at RMSD of 1-3 Å.)

    positions (F, n, 3) or (n, 3) Å; reference (n, 3) Å. Returns (F,) Å.
    Raises ValueError when the shapes do not match.
    """
    x = _frames(positions)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != x.shape[1:]:
        raise ValueError(f"ca_rmsd: reference has shape {ref.shape}, frames have {x.shape[1:]}")
    ref = ref - ref.mean(axis=0)
    out = np.empty(len(x))
    for s in range(0, len(x), chunk):
        y = x[s : s + chunk] - x[s : s + chunk].mean(axis=1, keepdims=True)
        u, _, vt = np.linalg.svd(np.einsum("fni,nj->fij", y, ref))
        u[:, :, -1] *= np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)[:, None]
        diff = np.einsum("fni,fij->fnj", y, u @ vt) - ref
        out[s : s + chunk] = np.sqrt((diff**2).sum(axis=(1, 2)) / x.shape[1])
    return out


def native_contacts(native: np.ndarray, cutoff: float = 8.0, min_separation: int = 3):
    """Native contacts of a Cα structure: all bead pairs (i, j), i < j, with sequence separation
    j − i > ``min_separation`` and native distance r0_ij < ``cutoff`` (strict).

    With the defaults (|i − j| > 3, 8 Å) this is the Cα analogue of Best, Hummer & Eaton (PNAS
    110, 17874 (2013)), who use heavy atoms of residues |i − j| > 3 within 4.5 Å.
    native (n, 3) Å. Returns (pairs (C, 2) int, r0 (C,) Å), pairs in lexicographic order.
    Raises ValueError for a bad shape or when no pair qualifies.
    """
    x = np.asarray(native, dtype=float)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"native_contacts: native must be (n, 3), got {x.shape}")
    i, j = np.triu_indices(len(x), min_separation + 1)
    r0 = np.linalg.norm(x[j] - x[i], axis=1)
    keep = r0 < cutoff
    if not keep.any():
        raise ValueError(f"native_contacts: no pair with |i-j| > {min_separation} closer than {cutoff} Å")
    return np.stack([i[keep], j[keep]], axis=1), r0[keep]


def fraction_native_contacts(positions: np.ndarray, pairs: np.ndarray, r0: np.ndarray, beta: float = 5.0, lam: float = 1.5) -> np.ndarray:
    """Fraction of native contacts, Best, Hummer & Eaton, PNAS 110, 17874 (2013), eq. 1:
    Q(X) = 1/C Σ_(i,j) 1 / (1 + exp[β (r_ij(X) − λ r0_ij)]).

    β = 5 Å⁻¹; λ = 1.5 for Cα models (BHE's all-atom value is 1.8). Q of the native itself is
    mean(1 / (1 + exp(−β (λ − 1) r0))), just below 1.
    positions (F, n, 3) or (n, 3) Å; pairs (C, 2) int; r0 (C,) Å (from :func:`native_contacts`).
    Returns Q (F,) in [0, 1]. Raises ValueError when pairs and r0 disagree or are empty.
    """
    x = _frames(positions)
    pairs = np.asarray(pairs, dtype=int)
    r0 = np.asarray(r0, dtype=float)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) != len(r0) or len(r0) == 0:
        raise ValueError(f"fraction_native_contacts: pairs {pairs.shape} and r0 {r0.shape} must be (C, 2) and (C,), C > 0")
    r = np.linalg.norm(x[:, pairs[:, 1]] - x[:, pairs[:, 0]], axis=2)
    # 1 / (1 + exp(z)) written as the logistic of −z, overflow-free
    return (0.5 * (1.0 - np.tanh(0.5 * beta * (r - lam * r0[None])))).mean(axis=1)


def radius_of_gyration(positions: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """Radius of gyration Rg = sqrt(Σ m_i |r_i − r_com|² / Σ m_i) (equal masses when ``masses``
    is None; mdtraj.compute_rg's definition).

    positions (F, n, 3) or (n, 3) Å; masses (n,) amu or None. Returns (F,) Å.
    Raises ValueError when masses do not match the beads or are not positive in sum.
    """
    x = _frames(positions)
    m = np.ones(x.shape[1]) if masses is None else np.asarray(masses, dtype=float)
    if m.shape != (x.shape[1],) or m.sum() <= 0:
        raise ValueError(f"radius_of_gyration: masses must be ({x.shape[1]},) with positive sum, got {m.shape}")
    w = m / m.sum()
    com = np.einsum("n,fnd->fd", w, x)
    return np.sqrt(np.einsum("n,fn->f", w, ((x - com[:, None]) ** 2).sum(axis=2)))


def _chain(positions: np.ndarray, kind: str, arity: int, name: str) -> np.ndarray:
    """``kind`` of consecutive beads (:func:`cgexplain.geometry.internal.internal_coordinates`
    over :func:`~cgexplain.geometry.internal.chain_indices`), lengths Å and angles in degrees."""
    x = _frames(positions)
    if x.shape[1] < arity:
        raise ValueError(f"{name}: need at least {arity} beads")
    idx = chain_indices(x.shape[1])
    return internal_coordinates(x, {kind: idx[kind]}, degrees=True)[kind]


def bond_lengths(positions: np.ndarray) -> np.ndarray:
    """Distances between consecutive beads |r_{i+1} − r_i|.

    positions (F, n, 3) or (n, 3) Å. Returns (F, n − 1) Å. Raises ValueError for n < 2.
    """
    return _chain(positions, "bonds", 2, "bond_lengths")


def bond_angles(positions: np.ndarray) -> np.ndarray:
    """Angles θ_i = ∠(r_i, r_{i+1}, r_{i+2}) at the middle bead of consecutive triplets.

    positions (F, n, 3) or (n, 3) Å. Returns (F, n − 2) degrees in [0, 180].
    Raises ValueError for n < 3.
    """
    return _chain(positions, "angles", 3, "bond_angles")


def dihedrals(positions: np.ndarray) -> np.ndarray:
    """Dihedral angles of consecutive quadruplets (r_i, r_{i+1}, r_{i+2}, r_{i+3}), IUPAC sign
    convention (IUPAC-IUB, Biochemistry 9, 3471 (1970); equal to mdtraj.compute_dihedrals):
    φ = atan2(|b2| b1 · (b2 × b3), (b1 × b2) · (b2 × b3)), b_k = r_{i+k} − r_{i+k−1}.

    positions (F, n, 3) or (n, 3) Å. Returns (F, n − 3) degrees in (−180, 180].
    Raises ValueError for n < 4.
    """
    return _chain(positions, "dihedrals", 4, "dihedrals")


# --------------------------------------------------------------------------------------------
# secondary structure
# --------------------------------------------------------------------------------------------
def secondary_structure(pdb_path: str | Path) -> np.ndarray:
    """Per-residue secondary structure of the first model of a PDB file: mdtraj.compute_dssp
    with ``simplified=True`` (DSSP of Kabsch & Sander, Biopolymers 22, 2577 (1983); H = helix
    (H, G, I), E = strand (E, B), C = coil), restricted to protein residues (caps such as ACE and
    NHE, water and ions are dropped).

    Returns an array (n_protein_residues,) of one-letter str codes 'H', 'E', 'C' in chain order.
    Raises ValueError when the file has no protein residue.
    """
    import mdtraj as md

    tr = md.load(str(pdb_path))[0]
    codes = md.compute_dssp(tr, simplified=True)[0]
    keep = np.array([r.is_protein for r in tr.topology.residues])
    if not keep.any():
        raise ValueError(f"secondary_structure: no protein residue in {pdb_path}")
    return np.asarray(codes[keep], dtype="<U1")


def ss_segments(codes, min_length: int = 2) -> list[dict]:
    """Name the secondary-structure elements of a DSSP string.

    codes: sequence of 'H', 'E', 'C' (e.g. from :func:`secondary_structure`; any other code
    counts as coil). Runs of H or E shorter than ``min_length`` residues (an isolated β-bridge, a
    one-residue helix) are treated as coil. Elements are named per kind in sequence order, 'α1',
    'α2', ... for H and 'β1', 'β2', ... for E; coil runs between two elements are 'loop1',
    'loop2', ...; coil before the first element is 'N-term' and after the last is 'C-term' (all
    coil: one 'coil' segment). Residue numbers are 1-based positions in ``codes``, ends inclusive.

    Returns a list of {"name", "kind" ('H', 'E' or 'C'), "start", "end"} covering every residue
    once, in order. Raises ValueError for empty codes.
    """
    s = ["H" if c == "H" else "E" if c == "E" else "C" for c in codes]
    if not s:
        raise ValueError("ss_segments: empty codes")
    runs: list[list[Any]] = []  # [code, first residue, last residue] (1-based), relabelled below
    start = 0
    for k in range(1, len(s) + 1):
        if k == len(s) or s[k] != s[start]:
            runs.append([s[start], start + 1, k])
            start = k
    for r in runs:
        if r[0] != "C" and r[2] - r[1] + 1 < min_length:
            r[0] = "C"
    merged: list[list[Any]] = []
    for kind, a, b in runs:
        if merged and merged[-1][0] == kind == "C":
            merged[-1][2] = b
        else:
            merged.append([kind, a, b])
    count = {"H": 0, "E": 0, "C": 0}
    n_elem = sum(k != "C" for k, _, _ in merged)
    seen, out = 0, []
    for kind, a, b in merged:
        if kind == "C":
            if n_elem == 0:
                name = "coil"
            elif seen == 0:
                name = "N-term"
            elif seen == n_elem:
                name = "C-term"
            else:
                count["C"] += 1
                name = f"loop{count['C']}"
        else:
            count[kind] += 1
            seen += 1
            name = f"{'α' if kind == 'H' else 'β'}{count[kind]}"
        out.append({"name": name, "kind": kind, "start": a, "end": b})
    return out


def element_of(residue: int, segments: list[dict]) -> str:
    """Name of the segment (from :func:`ss_segments`) that holds 1-based ``residue``.
    Raises ValueError when no segment holds it."""
    for seg in segments:
        if seg["start"] <= residue <= seg["end"]:
            return seg["name"]
    raise ValueError(f"element_of: residue {residue} is in no segment")


# --------------------------------------------------------------------------------------------
# TICA and free energy surfaces
# --------------------------------------------------------------------------------------------
def tica_features(positions: np.ndarray, min_separation: int = 3, inverse: bool = False, dtype=np.float32) -> np.ndarray:
    """TICA input features: Cα–Cα distances of all pairs with |i − j| >= ``min_separation``
    (bonded and angle neighbours, whose distances are nearly fixed, are left out), or their
    inverses with ``inverse=True`` (which weight close contacts more, the usual choice when
    unfolded frames should not dominate). The default is the plain distances in Å.

    positions (F, n, 3) or (n, 3) Å. Returns (F, P) ``dtype`` (float32 to save memory; deeptime
    accumulates covariances in double), P = (n − s)(n − s + 1)/2 for s = min_separation.
    Raises ValueError when no pair qualifies.
    """
    x = _frames(positions)
    i, j = np.triu_indices(x.shape[1], min_separation)
    if len(i) == 0:
        raise ValueError(f"tica_features: no pair with |i-j| >= {min_separation} among {x.shape[1]} beads")
    out = np.empty((len(x), len(i)), dtype=dtype)
    for s in range(0, len(x), 4096):
        d = np.linalg.norm(x[s : s + 4096, j] - x[s : s + 4096, i], axis=2)
        out[s : s + 4096] = 1.0 / d if inverse else d
    return out


def _runs(features) -> list[np.ndarray]:
    if isinstance(features, np.ndarray) and features.ndim == 2:
        return [features]
    runs = [np.asarray(f) for f in features]
    if not runs or any(r.ndim != 2 for r in runs) or len({r.shape[1] for r in runs}) != 1:
        raise ValueError("expected a (T, P) array or a non-empty list of (T_k, P) arrays with the same P")
    return runs


def tica_fit(ref_features, lagtime: int, dim: int = 2, scaling: str | None = "kinetic_map"):
    """Fit TICA (deeptime.decomposition.TICA; Pérez-Hernández et al., JCP 139, 015102 (2013),
    Schwantes & Pande, JCTC 9, 2000 (2013)) on reference features.

    ref_features: (T, P) array, or a list of (T_k, P) arrays for independent runs; each run gives
    its own time-lagged pairs, so no pair spans two runs. lagtime: in frames (> 0); every run
    must be longer than it. dim: number of ICs kept. scaling: deeptime's ('kinetic_map' scales
    the ICs by their eigenvalues; None gives unit-variance ICs).
    Returns the fitted deeptime CovarianceKoopmanModel (``.transform``, ``.timescales()``).
    Raises ValueError for a bad lag time or a run not longer than it.
    """
    from deeptime.decomposition import TICA

    runs = _runs(ref_features)
    if int(lagtime) <= 0:
        raise ValueError(f"tica_fit: lagtime must be positive, got {lagtime}")
    short = [k for k, r in enumerate(runs) if len(r) <= lagtime]
    if short:
        raise ValueError(f"tica_fit: runs {short} have no more frames than the lag time {lagtime}")
    return TICA(lagtime=int(lagtime), dim=dim, scaling=scaling).fit(runs).fetch_model()


def tica_project(model, features):
    """Project features on a fitted TICA model (from :func:`tica_fit`).

    features: (T, P) array -> (T, dim) array; a list of (T_k, P) arrays -> a list of (T_k, dim)
    arrays. Both the reference and the CG ensemble are projected on the reference's model.
    """
    if isinstance(features, np.ndarray) and features.ndim == 2:
        return model.transform(features)
    return [model.transform(f) for f in _runs(features)]


def free_energy_surface(proj, temperature: float, bins=60, range=None, weights=None):
    """Free energy surface over two coordinates, F(x, y) = −k_B T ln p(x, y), shifted so that its
    minimum is 0; k_B in kcal/mol/K.

    proj: (N, ≥2) array (only the first two columns are used), or a list of such arrays
    (concatenated). temperature: K. bins, range: as numpy.histogram2d (give the same ``bins`` and
    ``range``, e.g. the reference's edges, to compare two ensembles bin by bin); weights: (N,)
    optional frame weights.
    Returns (xedges, yedges, F): F has shape (len(xedges) − 1, len(yedges) − 1) indexed [ix, iy]
    in kcal/mol, +inf where a bin is empty. Raises ValueError for fewer than two columns or no
    frame inside the range.
    """
    p = np.concatenate([np.asarray(a, dtype=float) for a in proj]) if isinstance(proj, (list, tuple)) else np.asarray(proj, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"free_energy_surface: proj must be (N, >=2), got {p.shape}")
    h, xe, ye = np.histogram2d(p[:, 0], p[:, 1], bins=bins, range=range, weights=weights)
    if h.sum() <= 0:
        raise ValueError("free_energy_surface: no frame inside the histogram range")
    with np.errstate(divide="ignore"):
        f = -KB_KCAL * temperature * np.log(h / h.sum())
    return xe, ye, f - f[np.isfinite(f)].min()


# --------------------------------------------------------------------------------------------
# ensemble comparison
# --------------------------------------------------------------------------------------------
def protein_observables(positions: np.ndarray, native: np.ndarray, pairs: np.ndarray, r0: np.ndarray, masses: np.ndarray | None = None) -> dict:
    """Per-frame observables of a Cα ensemble.

    positions (F, n, 3) Å; native (n, 3) Å; pairs, r0 from :func:`native_contacts` (use the same
    for both ensembles); masses (n,) amu or None (for Rg).
    Returns {"rmsd" (F,) Å, "q" (F,), "rg" (F,) Å, "bonds" (F, n−1) Å, "angles" (F, n−2) degrees,
    "dihedrals" (F, n−3) degrees}.
    """
    x = _frames(positions)
    return {
        "rmsd": ca_rmsd(x, native),
        "q": fraction_native_contacts(x, pairs, r0),
        "rg": radius_of_gyration(x, masses),
        "bonds": bond_lengths(x),
        "angles": bond_angles(x),
        "dihedrals": dihedrals(x),
    }


def histogram_edges(key: str, ref: np.ndarray, n_bins: int) -> np.ndarray:
    """Common bin edges: fixed ranges for bounded observables; otherwise the reference's range
    padded by 10 % on each side, with two open overflow bins (−inf, lo) and (hi, inf), so that a
    CG outlier (a broken bond, an exploded chain) lands in an overflow bin instead of stretching
    the bins until every reference value falls in one."""
    if key in FIXED_RANGES:
        return np.linspace(*FIXED_RANGES[key], n_bins + 1)
    lo, hi = float(np.min(ref)), float(np.max(ref))
    pad = 0.1 * (hi - lo) if hi > lo else max(0.05 * abs(lo), 1e-3)
    return np.concatenate([[-np.inf], np.linspace(lo - pad, hi + pad, n_bins + 1), [np.inf]])


def histogram_js(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> float:
    """Jensen–Shannon distance (scipy.spatial.distance.jensenshannon, base 2, in [0, 1]) between
    the histograms of the values ``a`` and ``b`` (any shape, pooled) on ``edges``; values on or
    beyond the outer edges count in the outermost bins. Raises ValueError for an empty input."""
    from scipy.spatial.distance import jensenshannon

    a, b = np.ravel(a), np.ravel(b)
    if a.size == 0 or b.size == 0:
        raise ValueError("histogram_js: empty input")
    lo, hi = edges[0], edges[-1]
    ha = np.histogram(np.clip(a, lo, hi), bins=edges)[0].astype(float)
    hb = np.histogram(np.clip(b, lo, hi), bins=edges)[0].astype(float)
    return float(jensenshannon(ha, hb, base=2))


def compare_protein(ref: dict, cg: dict, n_bins: int = 60, rmsd_threshold: float = 3.0) -> dict:
    """Numbers comparing two ensembles (dicts from :func:`protein_observables`).

    For RMSD, Q and Rg: the mean of each ensemble and the Jensen–Shannon distance (base 2) between
    their histograms on common bins (Q on [0, 1]; RMSD and Rg on the reference's range padded by
    10 %, with overflow bins). The fraction of frames with RMSD <= ``rmsd_threshold`` Å in each.
    For bonds, angles and dihedrals: JS distance between the distributions pooled over all
    beads (bonds on the reference range with overflow bins; angles on [0, 180]°; dihedrals on
    [−180, 180]°). JS values depend on ``n_bins`` and on the sample sizes; compare them at fixed
    settings. Returns a flat dict of floats.
    """
    out = {}
    for key, unit in (("rmsd", "_A"), ("q", ""), ("rg", "_A")):
        out[f"{key}_mean_reference{unit}"] = float(np.mean(ref[key]))
        out[f"{key}_mean_cg{unit}"] = float(np.mean(cg[key]))
        out[f"{key}_js_distance"] = histogram_js(ref[key], cg[key], histogram_edges(key, ref[key], n_bins))
    out[f"fraction_rmsd_le_{rmsd_threshold:g}A_reference"] = float(np.mean(np.asarray(ref["rmsd"]) <= rmsd_threshold))
    out[f"fraction_rmsd_le_{rmsd_threshold:g}A_cg"] = float(np.mean(np.asarray(cg["rmsd"]) <= rmsd_threshold))
    for key, name in (("bonds", "bond"), ("angles", "angle"), ("dihedrals", "dihedral")):
        out[f"{name}_js_distance"] = histogram_js(ref[key], cg[key], histogram_edges(key, ref[key], n_bins))
    return out
