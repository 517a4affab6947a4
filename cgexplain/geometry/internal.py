"""Internal coordinates of bead chains and graphs: one definition, shared by the priors
(:mod:`cgexplain.model.priors`, torch, radians, autograd-safe) and the analyses
(:mod:`cgexplain.analysis.protein`, numpy, degrees) through :func:`internal_coordinates`.

Units: positions Å, angles rad (degrees only where a function says so). Instance indices
(which bonds, angles, dihedrals and non-bonded pairs a chain or bead graph has) come from
:func:`chain_indices` and :func:`graph_indices`.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "R_MIN",
    "DIHEDRAL_DELTA",
    "bond_lengths",
    "bond_angles",
    "dihedral_angles",
    "dihedral_cos_sin",
    "chain_indices",
    "graph_indices",
    "internal_coordinates",
]

#: distances below R_MIN Å are clamped (no NaN/inf at r -> 0; the force is zero there).
R_MIN = 1e-3
#: a dihedral's cos φ and sin φ are x/√(ρ²+δ²), y/√(ρ²+δ²) with ρ = sin θ1 sin θ2: smooth when
#: three beads are collinear (ρ -> 0), where the dihedral energy goes to its φ-average (0).
DIHEDRAL_DELTA = 1e-4


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a·b over the last axis (einsum: several times faster than (a*b).sum(-1) for 3-vectors)."""
    return torch.einsum("...i,...i->...", a, b)


def _norm(v: torch.Tensor) -> torch.Tensor:
    """|v| over the last axis, clamped at R_MIN (finite gradient at v = 0)."""
    return torch.sqrt(torch.clamp(_dot(v, v), min=R_MIN**2))


def bond_lengths(pos: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Distances |R_j - R_i| (..., m) Å for pos (..., n, 3) Å and index (m, 2); clamped at R_MIN."""
    return _norm(pos[..., index[:, 1], :] - pos[..., index[:, 0], :])


def bond_angles(pos: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Angles θ (..., m) rad in [0, π] at the middle bead of index (m, 3), from pos (..., n, 3).

    θ = atan2(|u×v|, u·v) with u = R_i - R_j, v = R_k - R_j (stable at 0 and π, where the
    gradient of |u×v| is clamped to zero rather than NaN)."""
    u = pos[..., index[:, 0], :] - pos[..., index[:, 1], :]
    v = pos[..., index[:, 2], :] - pos[..., index[:, 1], :]
    c = torch.linalg.cross(u, v, dim=-1)
    s = torch.sqrt(torch.clamp(_dot(c, c), min=1e-12))
    return torch.atan2(s, _dot(u, v))


def _dihedral_xy(pos: torch.Tensor, index: torch.Tensor):
    """x ∝ cos φ, y ∝ sin φ (..., m) from unit bond vectors (x² + y² = sin²θ1 sin²θ2)."""
    p = [pos[..., index[:, a], :] for a in range(4)]
    b = [p[a + 1] - p[a] for a in range(3)]
    b = [v / _norm(v).unsqueeze(-1) for v in b]
    n1 = torch.linalg.cross(b[0], b[1], dim=-1)
    n2 = torch.linalg.cross(b[1], b[2], dim=-1)
    return _dot(n1, n2), _dot(b[0], n2)


def dihedral_angles(pos: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Dihedral angles φ (..., m) rad in (-π, π] of index (m, 4) from pos (..., n, 3).

    IUPAC convention (as ``mdtraj.compute_dihedrals``): with b1 = R1-R0, b2 = R2-R1, b3 = R3-R2,
    φ = atan2(|b2| b1·(b2×b3), (b1×b2)·(b2×b3)); cis = 0, trans = π, clockwise positive
    looking along b2. For analysis; the energy uses the smooth cos/sin of :func:`dihedral_cos_sin`.
    """
    x, y = _dihedral_xy(pos, index)
    return torch.atan2(y, x)


def dihedral_cos_sin(pos: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos φ and sin φ (..., m) of index (m, 4), smoothed as x/√(ρ²+δ²), y/√(ρ²+δ²) with
    ρ = sin θ1 sin θ2 and δ = :data:`DIHEDRAL_DELTA`: finite when three beads are collinear."""
    x, y = _dihedral_xy(pos, index)
    den = torch.sqrt(x * x + y * y + DIHEDRAL_DELTA**2)
    return x / den, y / den


def chain_indices(n: int, min_separation: int = 3) -> dict:
    """Instance indices of a linear chain of n beads: bonds (n-1, 2), angles (n-2, 3),
    dihedrals (n-3, 4) and repulsion pairs (i, j) with j - i >= min_separation, as int64 arrays.
    :func:`graph_indices` of the bonds (i, i+1) returns the same arrays."""
    i = np.arange(n, dtype=np.int64)
    pairs = np.array([(a, b) for a in range(n) for b in range(a + min_separation, n)], dtype=np.int64).reshape(-1, 2)
    return {
        "bonds": np.stack([i[:-1], i[1:]], 1).reshape(-1, 2),
        "angles": np.stack([i[:-2], i[1:-1], i[2:]], 1).reshape(-1, 3),
        "dihedrals": np.stack([i[:-3], i[1:-2], i[2:-1], i[3:]], 1).reshape(-1, 4),
        "repulsion": pairs,
    }


def _as_bonds(bonds, n_beads: int) -> np.ndarray:
    """The bond list as sorted, deduplicated int64 pairs (m, 2) with i < j; ValueError when malformed."""
    a = np.asarray(bonds if bonds is not None else [])
    if a.size == 0:
        return np.zeros((0, 2), np.int64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"priors: bonds must have shape (m, 2) (pairs of bead indices), got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        if not (np.issubdtype(a.dtype, np.number) and np.all(np.isfinite(a)) and np.all(a == np.round(a))):
            raise ValueError(f"priors: bonds must hold integer bead indices, got {a.dtype} values")
    a = a.astype(np.int64)
    bad = (a < 0) | (a >= n_beads)
    if bad.any():
        row = int(np.flatnonzero(bad.any(1))[0])
        raise ValueError(f"priors: bond {row} {tuple(a[row].tolist())} holds a bead index out of range 0..{n_beads - 1}")
    same = a[:, 0] == a[:, 1]
    if same.any():
        row = int(np.flatnonzero(same)[0])
        raise ValueError(f"priors: bond {row} {tuple(a[row].tolist())} is a self-bond (a bead bonded to itself)")
    return np.unique(np.sort(a, axis=1), axis=0)


def graph_indices(n_beads: int, bonds, min_separation: int = 3) -> dict:
    """Instance indices of a bead graph (any bond list: several chains, branches, rings).

    Args:
        n_beads: number of beads n >= 1 (beads 0..n-1).
        bonds: (m, 2) bead indices (array or list of pairs, integers), in any order; each bond
            once or several times, either way round; may be empty (no bonds: every pair repels).
        min_separation: repulsion excludes pairs within min_separation - 1 bonds (default 3:
            neither bonded nor 1-3), i.e. keeps pairs at bond-graph distance >= min_separation.

    Returns a dict of int64 arrays (the keys of :data:`PRIOR_KINDS`):

    - ``bonds`` (m', 2): the bonds with i < j, deduplicated, sorted;
    - ``angles`` (n_a, 3): every path i-j-k of the bond graph (j the middle bead), once, i < k,
      sorted by (j, i, k);
    - ``dihedrals`` (n_d, 4): every path i-j-k-l without a repeated bead (a 3-ring gives none),
      once up to reversal (φ of l-k-j-i equals φ of i-j-k-l): j < k, sorted by (j, k, i, l);
    - ``repulsion`` (n_r, 2): pairs i < j whose bond-graph distance (fewest bonds between them,
      ``scipy.sparse.csgraph.shortest_path``) is >= min_separation, or that are disconnected
      (different chains), sorted.

    For the chain bonds (i, i+1) this equals :func:`chain_indices` (n, min_separation), array for
    array. The CGSchNet prior's rule "non-bonded repulsion excludes pairs within n bonds" (Husic
    et al., J. Chem. Phys. 153, 194101 (2020)) on a graph.

    Raises ValueError for n_beads < 1, min_separation < 1, a bond list not of shape (m, 2) or not
    of integers, a bead index out of range or a self-bond (naming the bond).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    n = int(n_beads)
    if n < 1:
        raise ValueError(f"priors: n_beads must be >= 1, got {n_beads}")
    if int(min_separation) < 1:
        raise ValueError(f"min_separation must be >= 1, got {min_separation}")
    b = _as_bonds(bonds, n)
    nbr: list[list[int]] = [[] for _ in range(n)]
    for i, j in b.tolist():
        nbr[i].append(j)
        nbr[j].append(i)
    nbr = [sorted(v) for v in nbr]
    angles = [(i, j, k) for j in range(n) for x, i in enumerate(nbr[j]) for k in nbr[j][x + 1 :]]
    dihedrals = [(i, j, k, l) for j, k in b.tolist() for i in nbr[j] if i != k for l in nbr[k] if l != j and l != i]
    if len(b):
        g = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(n, n)).tocsr()
        dist = shortest_path(g, directed=False, unweighted=True)
    else:
        dist = np.full((n, n), np.inf)
    far = np.triu(dist >= int(min_separation), 1)  # inf (disconnected) >= anything
    pairs = np.stack(np.nonzero(far), 1).astype(np.int64).reshape(-1, 2)
    return {
        "bonds": b,
        "angles": np.asarray(angles, dtype=np.int64).reshape(-1, 3),
        "dihedrals": np.asarray(dihedrals, dtype=np.int64).reshape(-1, 4),
        "repulsion": pairs,
    }


def internal_coordinates(positions: np.ndarray, index: dict, degrees: bool = False, chunk: int = 4096) -> dict[str, np.ndarray]:
    """Numpy front end: bond lengths, angles and dihedrals of many frames.

    positions (F, n, 3) Å (a (n, 3) frame is taken as F = 1); index: a dict with any of
    ``bonds`` (m, 2), ``angles`` (m, 3), ``dihedrals`` (m, 4) (e.g. :func:`chain_indices`).
    Returns float64 arrays ``bonds`` (F, m_b) Å, ``angles`` (F, m_a) and ``dihedrals`` (F, m_d),
    in rad (angles in [0, π], dihedrals in (-π, π], IUPAC sign) or, with ``degrees``, in degrees;
    keys absent from ``index`` are absent from the result. Computed by :func:`bond_lengths`,
    :func:`bond_angles` and :func:`dihedral_angles` in float64, ``chunk`` frames at a time.
    Raises ValueError for positions not of shape (F, n, 3)."""
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"internal_coordinates: positions must be (F, n, 3) or (n, 3) Å, got {x.shape}")
    fns = {"bonds": bond_lengths, "angles": bond_angles, "dihedrals": dihedral_angles}
    out: dict[str, list[np.ndarray]] = {k: [] for k in fns if k in index}
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            t = torch.from_numpy(np.ascontiguousarray(x[s : s + chunk]))
            for k in out:
                out[k].append(fns[k](t, torch.as_tensor(np.asarray(index[k], dtype=np.int64))).numpy())
    res = {k: (np.concatenate(v) if v else np.zeros((0, len(index[k])))) for k, v in out.items()}
    if degrees:
        res = {k: (v if k == "bonds" else np.degrees(v)) for k, v in res.items()}
    return res
