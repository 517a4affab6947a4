"""Prior energy terms for CG models on a bead graph (not periodic).

The prior is a physics-based energy summed with the network's energy (Husic et al.,
J. Chem. Phys. 153, 194101 (2020), CGSchNet: harmonic bond and angle priors plus a repulsion
between beads that are not bonded; the network then learns the rest by force matching). The
instances come from a bead graph: by default one linear chain (beads 0..n-1, bead i bonded to
i+1: :func:`chain_indices`, one bead per residue of a protein), or any bond list, e.g. several
chains or a branched molecule (:func:`graph_indices`). All energies kcal/mol, lengths Å, angles rad:

- bonds (i, j), bonded:               E = k/2 (r - r0)²                          k kcal/mol/Å², r0 Å
- angles (i, j, k), paths i-j-k:      E = k/2 (θ - θ0)²                          k kcal/mol/rad², θ0 rad
- dihedrals (i, j, k, l), paths:      E = Σ_{m=1..N} a_m cos(mφ) + b_m sin(mφ)   a_m, b_m kcal/mol
  (φ in (-π, π], IUPAC sign convention, equal to ``mdtraj.compute_dihedrals``; the constant
  term of the fit is dropped)
- repulsion (i, j), bond-graph distance >= min_separation (default 3: neither bonded nor 1-3;
  on a chain j - i >= min_separation), or in different chains:
                                      E = ε (σ/r)^p                              ε kcal/mol, σ Å, p > 0

Every parameter is per instance (per bond, angle, dihedral or pair), except the one exponent p.
:func:`fit_priors` obtains them by Boltzmann inversion of the mapped reference (Reith, Pütz,
Müller-Plathe, J. Comput. Chem. 24, 1624 (2003)): a coordinate x with distribution p(x) at
temperature T has the potential of mean force U(x) = -kT ln p(x) (+ const); a harmonic U gives a
Gaussian p with variance kT/k.

The params dict (JSON-serialisable; ``format`` "cgexplain.priors/1") holds ``n_beads``,
``temperature`` (K, the fit temperature), ``units``, the four kinds, each with an explicit
``index`` list, and the ``fit`` settings::

    {"format": "cgexplain.priors/1", "n_beads": n, "temperature": T, "units": {...},
     "bonds": {"index": [[i, j], ...], "k": [...], "r0": [...]},               (chain: [i, i+1])
     "angles": {"index": [[i, j, k], ...], "k": [...], "theta0": [...]},      (chain: [i, i+1, i+2])
     "dihedrals": {"index": [[i, j, k, l], ...], "a": [[a_1..a_N], ...], "b": [[b_1..b_N], ...]},
     "repulsion": {"index": [[i, j], ...], "epsilon": [...], "sigma": [...], "exponent": p},
     "fit": {...}}

:class:`PriorEnergy` is a schnetpack output module built from that dict; its parameters are
float64 buffers (in the ``state_dict``), which stay float64 when the model is cast to float32.
Any kind may be empty (``fit_priors(..., terms=...)`` leaves kinds out).

Chirality. A PaiNN or SO3net energy depends on distances and on dot products of equivariant
vectors only, so it is invariant under a reflection R -> -R as well as under rotations: the
network cannot tell a chain from its mirror image. Bond lengths, angles and the repulsion are
reflection-even too, and so is cos(mφ); a reflection maps every dihedral φ -> -φ, so only the
b_m sin(mφ) parts of the dihedral prior are reflection-odd. A CG model whose prior has no
non-zero b_m therefore has a mirror-symmetric free-energy surface: for a chiral bead chain
(an L protein: right-handed helices, mean sin φ > 0 for Cα dihedrals of α-helices) it samples
both hands (L and D) equally. The default prior (``n_fourier`` = 3, dihedrals included) keeps
the sine terms; :func:`fit_priors` warns when the bead graph has dihedrals but the fitted prior
cannot be reflection-odd, and :func:`is_reflection_odd` tells whether a params dict is.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cgexplain.geometry.internal import (
    R_MIN,
    bond_angles,
    bond_lengths,
    chain_indices,
    dihedral_cos_sin,
    graph_indices,
    internal_coordinates,
)
from cgexplain.units import KB_KCAL

__all__ = [
    "PriorEnergy",
    "fit_priors",
    "prior_forces",
    "prior_energy",
    "prior_coordinates",
    "fit_harmonic",
    "fit_fourier",
    "kT_kcal",
    "is_reflection_odd",
    "PRIOR_FORMAT",
    "PRIOR_KINDS",
]

PRIOR_FORMAT = "cgexplain.priors/1"
PRIOR_KINDS = ("bonds", "angles", "dihedrals", "repulsion")
UNITS = {"length": "Angstrom", "energy": "kcal/mol", "angle": "rad", "temperature": "K"}

_ARITY = {"bonds": 2, "angles": 3, "dihedrals": 4, "repulsion": 2}


# ---------------------------------------------------------------------------------------------
# the module


def _as_index(v, arity: int, n: int, kind: str) -> np.ndarray:
    a = np.asarray(v if v is not None else [], dtype=np.int64)
    if a.size == 0:
        return np.zeros((0, arity), np.int64)
    if a.ndim != 2 or a.shape[1] != arity:
        raise ValueError(f"priors: {kind}.index must have shape (m, {arity}), got {a.shape}")
    if a.min() < 0 or a.max() >= n:
        raise ValueError(f"priors: {kind}.index holds bead indices outside 0..{n - 1}")
    return a


def _as_values(d: dict, key: str, kind: str, m: int, width: int | None = None) -> np.ndarray:
    if key not in d:
        raise ValueError(f"priors: {kind} has no {key!r}")
    a = np.asarray(d[key], dtype=np.float64)
    want = (m,) if width is None else (m, width)
    if a.size == 0 and m == 0:
        a = a.reshape(want if width is not None else (0,))
    if a.shape != want:
        raise ValueError(f"priors: {kind}.{key} must have shape {want} (one per instance), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"priors: {kind}.{key} holds non-finite values")
    return a


class PriorEnergy(torch.nn.Module):
    """schnetpack output module adding the prior energy (module docstring) to ``inputs["energy"]``.

    Use after schnetpack's ``Atomwise`` energy head and before ``Forces`` (so the forces include
    the prior's). ``forward`` reads ``R`` (n_total, 3) Å, ``n_atoms`` (n_molecules,); every molecule
    must have ``n_beads`` beads, laid out contiguously (schnetpack's batching); molecule m's beads
    are start_m + 0..n-1 with start = cumsum(n_atoms) - n_atoms. It writes ``prior_energy``
    (n_molecules,) kcal/mol and adds it to ``energy`` (set to it if absent). The computation runs
    in R's dtype; the float64 buffers stay float64 under ``model.to(dtype)``/``.float()`` (only
    their device follows), so saving a float32 model keeps the exact parameters.

    Raises ValueError (at construction) for malformed params, (in forward) for a bead count that is
    not ``n_beads``.
    """

    # buffers (registered in __init__), declared for type checkers
    bond_index: torch.Tensor
    angle_index: torch.Tensor
    dihedral_index: torch.Tensor
    repulsion_index: torch.Tensor
    bond_k: torch.Tensor
    bond_r0: torch.Tensor
    angle_k: torch.Tensor
    angle_theta0: torch.Tensor
    dihedral_a: torch.Tensor
    dihedral_b: torch.Tensor
    repulsion_epsilon: torch.Tensor
    repulsion_sigma: torch.Tensor
    repulsion_exponent: torch.Tensor

    def __init__(self, params: dict):
        super().__init__()
        if not isinstance(params, dict):
            raise ValueError(f"priors: params must be a dict, got {type(params).__name__}")
        fmt = params.get("format", PRIOR_FORMAT)
        if fmt != PRIOR_FORMAT:
            raise ValueError(f"priors: unknown format {fmt!r}; this cgexplain reads {PRIOR_FORMAT!r}")
        n = int(params.get("n_beads", 0))
        if n < 1:
            raise ValueError(f"priors: n_beads must be >= 1, got {params.get('n_beads')}")
        self.n_beads = n
        self._meta = copy.deepcopy({k: params[k] for k in ("temperature", "fit") if k in params})
        empty: dict[str, Any] = {"index": []}
        b = params.get("bonds") or empty
        bi = _as_index(b.get("index"), 2, n, "bonds")
        a = params.get("angles") or empty
        ai = _as_index(a.get("index"), 3, n, "angles")
        d = params.get("dihedrals") or empty
        di = _as_index(d.get("index"), 4, n, "dihedrals")
        r = params.get("repulsion") or empty
        ri = _as_index(r.get("index"), 2, n, "repulsion")
        n_f = len(np.asarray(d["a"][0])) if len(di) and "a" in d else int(d.get("n_fourier", 0))
        vals = {
            "bond_k": _as_values(b, "k", "bonds", len(bi)) if len(bi) else np.zeros(0),
            "bond_r0": _as_values(b, "r0", "bonds", len(bi)) if len(bi) else np.zeros(0),
            "angle_k": _as_values(a, "k", "angles", len(ai)) if len(ai) else np.zeros(0),
            "angle_theta0": _as_values(a, "theta0", "angles", len(ai)) if len(ai) else np.zeros(0),
            "dihedral_a": _as_values(d, "a", "dihedrals", len(di), n_f) if len(di) else np.zeros((0, n_f)),
            "dihedral_b": _as_values(d, "b", "dihedrals", len(di), n_f) if len(di) else np.zeros((0, n_f)),
            "repulsion_epsilon": _as_values(r, "epsilon", "repulsion", len(ri)) if len(ri) else np.zeros(0),
            "repulsion_sigma": _as_values(r, "sigma", "repulsion", len(ri)) if len(ri) else np.zeros(0),
            "repulsion_exponent": np.float64(r.get("exponent", 6.0)),
        }
        if np.any(vals["repulsion_sigma"] <= 0) or not vals["repulsion_exponent"] > 0:
            raise ValueError("priors: repulsion sigma and exponent must be > 0")
        for name, idx in (("bond_index", bi), ("angle_index", ai), ("dihedral_index", di), ("repulsion_index", ri)):
            self.register_buffer(name, torch.as_tensor(idx, dtype=torch.long), persistent=False)
        for name, v in vals.items():
            self.register_buffer(name, torch.as_tensor(v, dtype=torch.float64))
        self.model_outputs = ["prior_energy"]

    @classmethod
    def from_params(cls, params: dict) -> PriorEnergy:
        """Build from a params dict (module docstring, e.g. from :func:`fit_priors` or JSON)."""
        return cls(params)

    def params(self) -> dict:
        """The JSON-serialisable params dict; ``PriorEnergy.from_params(m.params())`` is identical."""
        f = lambda t: t.detach().cpu().tolist()  # noqa: E731
        return {
            "format": PRIOR_FORMAT,
            "n_beads": self.n_beads,
            **({"temperature": self._meta["temperature"]} if "temperature" in self._meta else {}),
            "units": dict(UNITS),
            "bonds": {"index": f(self.bond_index), "k": f(self.bond_k), "r0": f(self.bond_r0)},
            "angles": {"index": f(self.angle_index), "k": f(self.angle_k), "theta0": f(self.angle_theta0)},
            "dihedrals": {"index": f(self.dihedral_index), "a": f(self.dihedral_a), "b": f(self.dihedral_b)},
            "repulsion": {
                "index": f(self.repulsion_index),
                "epsilon": f(self.repulsion_epsilon),
                "sigma": f(self.repulsion_sigma),
                "exponent": float(self.repulsion_exponent),
            },
            **({"fit": copy.deepcopy(self._meta["fit"])} if "fit" in self._meta else {}),
        }

    @property
    def n_fourier(self) -> int:
        return int(self.dihedral_a.shape[1])

    def _apply(self, fn, recurse=True):
        # keep the float64 buffers float64 (exact parameters); follow device moves only
        for name, buf in self._buffers.items():
            if buf is not None:
                self._buffers[name] = buf.to(device=fn(buf).device)
        return self

    def energy_terms(self, positions) -> dict:
        """Energy of each kind: {"bonds", "angles", "dihedrals", "repulsion"} -> (...,) kcal/mol.

        positions: (..., n_beads, 3) Å, a torch tensor (its dtype is used; autograd flows) or an
        array (computed in float64). Raises ValueError for a wrong shape."""
        pos = positions if isinstance(positions, torch.Tensor) else torch.as_tensor(np.asarray(positions, dtype=np.float64))
        if pos.ndim < 2 or tuple(pos.shape[-2:]) != (self.n_beads, 3):
            raise ValueError(f"PriorEnergy: positions must have shape (..., {self.n_beads}, 3), got {tuple(pos.shape)}")
        dt = pos.dtype
        g = lambda t: t.to(device=pos.device, dtype=dt)  # noqa: E731
        r = bond_lengths(pos, self.bond_index.to(pos.device))
        e_b = (0.5 * g(self.bond_k) * (r - g(self.bond_r0)) ** 2).sum(-1)
        th = bond_angles(pos, self.angle_index.to(pos.device))
        e_a = (0.5 * g(self.angle_k) * (th - g(self.angle_theta0)) ** 2).sum(-1)
        e_d = torch.zeros(pos.shape[:-2], dtype=dt, device=pos.device)
        if self.n_fourier and len(self.dihedral_index):
            c, s = dihedral_cos_sin(pos, self.dihedral_index.to(pos.device))
            A, B = g(self.dihedral_a), g(self.dihedral_b)
            cm, sm = c, s
            for m in range(self.n_fourier):
                if m:  # cos/sin of (m+1)φ by the angle-addition recursion (smooth, no atan2)
                    cm, sm = cm * c - sm * s, sm * c + cm * s
                e_d = e_d + (A[:, m] * cm + B[:, m] * sm).sum(-1)
        d = bond_lengths(pos, self.repulsion_index.to(pos.device))
        e_r = (g(self.repulsion_epsilon) * (g(self.repulsion_sigma) / d) ** g(self.repulsion_exponent)).sum(-1)
        return {"bonds": e_b, "angles": e_a, "dihedrals": e_d, "repulsion": e_r}

    def energy(self, positions) -> torch.Tensor:
        """Total prior energy (...,) kcal/mol of positions (..., n_beads, 3) Å."""
        return sum(self.energy_terms(positions).values())

    def forward(self, inputs: dict) -> dict:
        import schnetpack.properties as P

        R, n_atoms = inputs[P.R], inputs[P.n_atoms]
        n = self.n_beads
        wrong = n_atoms != n
        if bool(wrong.any()):
            raise ValueError(
                f"PriorEnergy: the prior is for molecules of {n} beads, but the batch holds a molecule of {int(n_atoms[wrong][0])} beads"
            )
        if int(n_atoms.sum()) != R.shape[0]:
            raise ValueError(f"PriorEnergy: n_atoms sums to {int(n_atoms.sum())} but R holds {R.shape[0]} positions")
        start = torch.cumsum(n_atoms, 0) - n_atoms
        pos = R[start[:, None] + torch.arange(n, device=R.device)[None, :]]  # (n_molecules, n, 3)
        e = self.energy(pos)
        inputs["prior_energy"] = e
        if "energy" in inputs:
            inputs["energy"] = inputs["energy"] + e.to(inputs["energy"].dtype).reshape(inputs["energy"].shape)
        else:
            inputs["energy"] = e
        return inputs

    def extra_repr(self) -> str:
        return (
            f"n_beads={self.n_beads}, bonds={len(self.bond_index)}, angles={len(self.angle_index)}, "
            f"dihedrals={len(self.dihedral_index)} x {self.n_fourier} Fourier terms, repulsion pairs={len(self.repulsion_index)}, "
            f"exponent={float(self.repulsion_exponent):g}"
        )


# ---------------------------------------------------------------------------------------------
# fitting (Boltzmann inversion)


def kT_kcal(temperature: float) -> float:
    """k_B T in kcal/mol at ``temperature`` K (:data:`cgexplain.units.KB_KCAL`)."""
    return KB_KCAL * float(temperature)


def fit_harmonic(samples, kT: float, jacobian: str | None = None, min_std: float = 1e-2):
    """Harmonic Boltzmann inversion per column: U(x) = k/2 (x - x0)², k = kT/var.

    samples (F,) or (F, m); kT kcal/mol. ``jacobian=None``: x0 = mean, var = variance (the
    distribution of x itself is Gaussian). ``jacobian="sin"`` (bond angles θ, rad): the sampled
    density is p(θ) ∝ sin θ exp(-U(θ)/kT), so each sample is weighted by 1/sin θ (sin clamped at
    sin 5°) to remove the Jacobian, and x0, var are the weighted mean and variance (exact for a
    harmonic U away from 0 and π). The standard deviation is floored at ``min_std``. Returns
    (k (m,), x0 (m,)) float64; k in kcal/mol per unit of x squared.
    Raises ValueError for fewer than 2 samples or an unknown jacobian.
    """
    x = np.asarray(samples, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.shape[0] < 2:
        raise ValueError(f"fit_harmonic needs at least 2 samples, got {x.shape[0]}")
    if jacobian is None:
        w = np.ones_like(x)
    elif jacobian == "sin":
        w = 1.0 / np.maximum(np.sin(x), np.sin(np.radians(5.0)))
    else:
        raise ValueError(f"fit_harmonic: unknown jacobian {jacobian!r}; use None or 'sin'")
    w = w / w.sum(0)
    x0 = (w * x).sum(0)
    var = np.maximum((w * (x - x0) ** 2).sum(0), min_std**2)
    return kT / var, x0


def fit_fourier(phi, kT: float, n_fourier: int = 3, bins: int = 36, pseudocount: float = 0.1):
    """Fourier-series Boltzmann inversion of dihedral samples, per column.

    phi (F,) or (F, m) rad. Histogram on [-π, π) with ``bins`` bins and ``pseudocount`` added to
    every bin; U_b = -kT ln p_b at the bin centres; weighted least squares of
    U(φ) = c + Σ_{n=1..N} a_n cos(nφ) + b_n sin(nφ) with weights c_b + pseudocount (so that
    rarely visited bins, whose U is noise or the pseudocount's ceiling, barely count). The constant c
    is dropped. The pseudocount keeps U finite in empty bins (high, with a small weight, so the fit
    puts no well where the reference never went); it also lowers U in a bin of λ expected counts by
    about kT ln(1 + pseudocount/λ), hence the small default (0.1; 0.015 kcal/mol at λ = 4, 300 K).
    36 bins (10°): averaging over a bin damps the n-th term by sinc(nΔ/2) (1.1 % for n = 3), and
    more bins hold fewer counts each, which biases count-weighted fits towards low barriers when
    frames are few. Returns (a (m, N), b (m, N)) kcal/mol. Raises ValueError for n_fourier < 0, too few
    bins (< 2N+1) or a pseudocount <= 0.
    """
    p = np.asarray(phi, dtype=np.float64)
    p = p[:, None] if p.ndim == 1 else p
    n_fourier, bins = int(n_fourier), int(bins)
    if n_fourier < 0:
        raise ValueError(f"n_fourier must be >= 0, got {n_fourier}")
    if bins < 2 * n_fourier + 1:
        raise ValueError(f"dihedral fit needs at least 2*n_fourier+1 = {2 * n_fourier + 1} bins, got {bins}")
    if not pseudocount > 0:
        raise ValueError(f"pseudocount must be > 0, got {pseudocount}")
    m = p.shape[1]
    if n_fourier == 0:
        return np.zeros((m, 0)), np.zeros((m, 0))
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    nn = np.arange(1, n_fourier + 1)
    X = np.concatenate([np.ones((bins, 1)), np.cos(centres[:, None] * nn), np.sin(centres[:, None] * nn)], 1)
    wrapped = np.mod(p + np.pi, 2 * np.pi) - np.pi  # (-π, π] -> [-π, π)
    a, b = np.zeros((m, n_fourier)), np.zeros((m, n_fourier))
    for col in range(m):
        c, _ = np.histogram(wrapped[:, col], bins=edges)
        cw = c + pseudocount
        U = -kT * np.log(cw / cw.sum())
        sw = np.sqrt(cw)
        coef, *_ = np.linalg.lstsq(X * sw[:, None], U * sw, rcond=None)
        a[col], b[col] = coef[1 : 1 + n_fourier], coef[1 + n_fourier :]
    return a, b


def _check_positions(positions, min_beads: int = 4, min_frames: int = 1) -> np.ndarray:
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"positions must have shape (n_frames, n_beads, 3) Å, got {x.shape}")
    if x.shape[1] < min_beads:
        raise ValueError(f"priors need a chain of at least {min_beads} beads, got {x.shape[1]}")
    if x.shape[0] < min_frames:
        raise ValueError(f"priors need at least {min_frames} frames, got {x.shape[0]}")
    bad = ~np.isfinite(x).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"positions of frame {int(np.flatnonzero(bad)[0])} are not finite")
    return x


def _check_temperature(temperature) -> float:
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a positive number of K, got {temperature}")
    return t


def _pair_distances(x: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, pairs[:, 1]] - x[:, pairs[:, 0]], axis=-1)


def fit_priors(
    positions,
    temperature: float,
    n_fourier: int = 3,
    repulsion_exponent: float = 6,
    repulsion_quantile: float = 0.01,
    min_separation: int = 3,
    *,
    dihedral_bins: int = 36,
    pseudocount: float = 0.1,
    repulsion_sigma: float | None = None,
    repulsion_epsilon: float | None = None,
    repulsion_scale: float = 1.0,
    bonds: Sequence[Sequence[int]] | None = None,
    terms: Sequence[str] = PRIOR_KINDS,
) -> dict:
    """Fit the prior (module docstring) to mapped reference bead positions by Boltzmann inversion.

    Reith, Pütz, Müller-Plathe, J. Comput. Chem. 24, 1624 (2003) (Boltzmann inversion);
    Husic et al., J. Chem. Phys. 153, 194101 (2020) (CGSchNet prior: harmonic bonds and angles,
    repulsion between non-bonded beads, the network learning the rest).

    Args:
        positions: (F, n, 3) Å, F >= 2 frames; without ``bonds`` one chain of n >= 4 beads (bead i
            bonded to i+1), with ``bonds`` n >= 2 beads.
        temperature: K (kT = KB_KCAL · T kcal/mol).
        n_fourier: dihedral Fourier terms N (0: no dihedral prior, and no reflection-odd term).
        repulsion_exponent: p of ε (σ/r)^p.
        repulsion_quantile: σ_ij is this quantile of pair (i, j)'s observed distance (default 0.01,
            the 1st percentile: the closest the pair comes, robust to single outliers; with
            ε = kT the repulsion reaches kT there and falls off as r^-p beyond).
        min_separation: repulsion pairs are >= min_separation bonds apart (default 3: not bonded, not
            1-3; on the chain j - i >= min_separation) or in different chains.
        dihedral_bins, pseudocount: histogram of :func:`fit_fourier`.
        repulsion_sigma: one global σ Å for every pair instead of the per-pair quantile.
        repulsion_epsilon: ε kcal/mol (default kT).
        repulsion_scale: σ is multiplied by this factor (default 1). Below 1 the wall sits inside
            the distances the reference samples, so the repulsion does not push sampled contacts
            apart: with 0.8 and p = 12, E at the quantile distance is 0.8^12 ε = 0.07 ε (with 1 and
            p = 6 it is ε, summed over every close pair, a net outward force the network would have
            to learn to cancel).
        bonds: the bead graph, (m, 2) bead indices (several chains, a branched molecule, rings);
            the instances are those of :func:`graph_indices` (bonds, angles, dihedrals along paths
            of the graph; repulsion by graph distance, and between chains). Default None: the
            single chain 0-1-...-(n-1) (:func:`chain_indices`), exactly as before this option.
        terms: the kinds the prior holds, a subset of ("bonds", "angles", "dihedrals", "repulsion")
            (default all four); a kind left out gets empty lists (no instances, no energy).

    Chirality (module docstring): if the bead graph has at least one dihedral but the prior can
    hold no reflection-odd term ("dihedrals" not in ``terms``, or ``n_fourier`` = 0), a
    ``UserWarning`` says that the CG model (prior plus a PaiNN/SO3net network) will be
    mirror-symmetric and cannot keep the reference's handedness.

    Bonds: r0 = mean, k = kT/var (the r² Jacobian is neglected: it shifts r0 by 2 var/r0, ~1e-3 Å
    for CA-CA bonds). Angles: harmonic in θ with the sin θ Jacobian removed by 1/sin θ weights
    (:func:`fit_harmonic`). Dihedrals: :func:`fit_fourier`. Standard deviations are floored at
    0.01 Å / 0.01 rad.

    Returns the params dict (module docstring) with ``fit`` holding the settings and n_frames
    (plus ``graph`` "bonds" when ``bonds`` is given and ``terms`` when some kind is left out).
    Raises ValueError for a wrong shape, fewer than 4 beads (chain) or 2 beads (``bonds``) or
    fewer than 2 frames, non-finite positions (naming the first bad frame), a non-positive
    temperature, a bad bond list (:func:`graph_indices`: out-of-range index, self-bond, shape),
    an unknown term name, or bad settings.
    """
    chosen = _check_terms(terms)
    x = _check_positions(positions, min_beads=4 if bonds is None else 2, min_frames=2)
    T = _check_temperature(temperature)
    kT = kT_kcal(T)
    if not 0.0 <= float(repulsion_quantile) <= 1.0:
        raise ValueError(f"repulsion_quantile must be in [0, 1], got {repulsion_quantile}")
    if int(min_separation) < 1:
        raise ValueError(f"min_separation must be >= 1, got {min_separation}")
    if not float(repulsion_exponent) > 0:
        raise ValueError(f"repulsion_exponent must be > 0, got {repulsion_exponent}")
    if repulsion_sigma is not None and not float(repulsion_sigma) > 0:
        raise ValueError(f"repulsion_sigma must be > 0 Å, got {repulsion_sigma}")
    eps = kT if repulsion_epsilon is None else float(repulsion_epsilon)
    if not eps >= 0:
        raise ValueError(f"repulsion_epsilon must be >= 0 kcal/mol, got {repulsion_epsilon}")
    if not float(repulsion_scale) > 0:
        raise ValueError(f"repulsion_scale must be > 0, got {repulsion_scale}")
    if int(n_fourier) < 0:
        raise ValueError(f"n_fourier must be >= 0, got {n_fourier}")
    F, n, _ = x.shape
    idx = chain_indices(n, int(min_separation)) if bonds is None else graph_indices(n, bonds, int(min_separation))
    if len(idx["dihedrals"]) and ("dihedrals" not in chosen or int(n_fourier) == 0):
        why = "'dihedrals' is not in terms" if "dihedrals" not in chosen else "n_fourier = 0"
        warnings.warn(
            f"fit_priors: the bead graph has {len(idx['dihedrals'])} dihedrals but the prior has no reflection-odd term ({why}): "
            "PaiNN/SO3net energies are invariant under reflection, so the CG model will be mirror-symmetric (phi -> -phi) "
            "and sample both hands (L and D) of a chiral chain equally. Keep 'dihedrals' in terms with n_fourier >= 1 "
            "(default 3: the sine terms b_m sin(m phi) are reflection-odd) to keep the reference's handedness.",
            UserWarning,
            stacklevel=2,
        )
    idx = {k: (v if k in chosen else np.zeros((0, _ARITY[k]), np.int64)) for k, v in idx.items()}
    q = internal_coordinates(x, idx)
    kb, r0 = fit_harmonic(q["bonds"], kT)
    ka, th0 = fit_harmonic(q["angles"], kT, jacobian="sin")
    a, b = fit_fourier(q["dihedrals"], kT, n_fourier, dihedral_bins, pseudocount)
    pairs = idx["repulsion"]
    if repulsion_sigma is not None:
        sigma = np.full(len(pairs), float(repulsion_sigma))
    else:
        sigma = (
            np.concatenate([np.quantile(_pair_distances(x, pairs[s : s + 32]), float(repulsion_quantile), axis=0) for s in range(0, len(pairs), 32)])
            if len(pairs)
            else np.zeros(0)
        )
        sigma = np.maximum(sigma, 10 * R_MIN)
    sigma = sigma * float(repulsion_scale)
    extra: dict[str, Any] = {}
    if bonds is not None:
        extra["graph"] = "bonds"
    if set(chosen) != set(PRIOR_KINDS):
        extra["terms"] = list(chosen)
    return {
        "format": PRIOR_FORMAT,
        "n_beads": int(n),
        "temperature": T,
        "units": dict(UNITS),
        "bonds": {"index": idx["bonds"].tolist(), "k": kb.tolist(), "r0": r0.tolist()},
        "angles": {"index": idx["angles"].tolist(), "k": ka.tolist(), "theta0": th0.tolist()},
        "dihedrals": {"index": idx["dihedrals"].tolist(), "a": a.tolist(), "b": b.tolist()},
        "repulsion": {"index": pairs.tolist(), "epsilon": [eps] * len(pairs), "sigma": sigma.tolist(), "exponent": float(repulsion_exponent)},
        "fit": {
            "method": "boltzmann_inversion",
            "n_frames": int(F),
            "n_fourier": int(n_fourier),
            "dihedral_bins": int(dihedral_bins),
            "pseudocount": float(pseudocount),
            "angle_jacobian": "sin",
            "repulsion_sigma": "global" if repulsion_sigma is not None else f"quantile {float(repulsion_quantile):g}",
            "repulsion_quantile": float(repulsion_quantile),
            "repulsion_scale": float(repulsion_scale),
            "min_separation": int(min_separation),
            **extra,
        },
    }


def _check_terms(terms) -> tuple[str, ...]:
    """The chosen kinds in PRIOR_KINDS order; ValueError for a string or an unknown name."""
    if isinstance(terms, str):
        raise ValueError(f"terms must be a sequence of kind names such as {PRIOR_KINDS}, not the string {terms!r}")
    names = list(terms)
    unknown = [t for t in names if t not in PRIOR_KINDS]
    if unknown:
        raise ValueError(f"unknown prior term(s) {unknown}; terms are chosen from {', '.join(PRIOR_KINDS)}")
    return tuple(k for k in PRIOR_KINDS if k in names)


def is_reflection_odd(params: dict | PriorEnergy) -> bool:
    """True if the prior changes under a reflection R -> -R, i.e. some dihedral sine coefficient
    b_m (kcal/mol) is non-zero (bonds, angles, repulsion and the cosine parts are reflection-even).

    A CG model whose prior is not reflection-odd is mirror-symmetric (PaiNN and SO3net energies are
    reflection-invariant; module docstring, "Chirality"). ``params``: a params dict or a
    :class:`PriorEnergy`. Raises ValueError for malformed params (as :class:`PriorEnergy`).
    """
    mod = params if isinstance(params, PriorEnergy) else PriorEnergy.from_params(params)
    return bool(len(mod.dihedral_index) and mod.n_fourier and bool((mod.dihedral_b != 0).any()))


# ---------------------------------------------------------------------------------------------
# evaluation


def _frames(params: dict, positions):
    mod = params if isinstance(params, PriorEnergy) else PriorEnergy.from_params(params)
    x = np.asarray(positions, dtype=np.float64)
    single = x.ndim == 2
    x = x[None] if single else x
    _check_positions(x, min_beads=1)
    if x.shape[1] != mod.n_beads:
        raise ValueError(f"the prior is for {mod.n_beads} beads, positions hold {x.shape[1]}")
    return mod, x, single


def prior_energy(params: dict, positions, chunk: int = 2048) -> np.ndarray | float:
    """Prior energy (F,) kcal/mol (a float for one frame) of positions (F, n, 3) or (n, 3) Å, float64.
    ``params``: a params dict or a :class:`PriorEnergy`. Raises ValueError for a wrong shape,
    bead count or non-finite positions."""
    mod, x, single = _frames(params, positions)
    with torch.no_grad():
        e = np.concatenate([mod.energy(torch.from_numpy(x[s : s + chunk])).numpy() for s in range(0, len(x), chunk)])
    return float(e[0]) if single else e


def prior_forces(params: dict, positions, chunk: int = 2048) -> np.ndarray:
    """Prior forces -∂E/∂R (F, n, 3) kcal/mol/Å (or (n, 3)) of positions (F, n, 3) or (n, 3) Å, by
    autograd in float64 (e.g. the residual force map F_mapped - F_prior that the network learns).
    ``params``: a params dict or a :class:`PriorEnergy`. Raises ValueError for a wrong shape, bead
    count or non-finite positions."""
    mod, x, single = _frames(params, positions)
    out = []
    for s in range(0, len(x), chunk):
        t = torch.from_numpy(x[s : s + chunk].copy()).requires_grad_(True)
        (g,) = torch.autograd.grad(mod.energy(t).sum(), t)
        out.append(-g.numpy())
    f = np.concatenate(out)
    return f[0] if single else f


def prior_coordinates(params: dict | PriorEnergy, positions, temperature: float) -> dict:
    """What a comparison of a prior with its data needs: the module, the frames x (F, n, 3) Å
    float64, kT kcal/mol, the params dict, the instance indices per term and the internal
    coordinates of x (:func:`cgexplain.geometry.internal.internal_coordinates`: bonds Å, angles and
    dihedrals rad). Used by :func:`cgexplain.plots.priors.plot_priors`. Raises ValueError as
    :func:`fit_priors` for bad positions or temperature, or a bead count other than the prior's."""
    mod = params if isinstance(params, PriorEnergy) else PriorEnergy.from_params(params)
    x = _check_positions(positions, min_beads=mod.n_beads, min_frames=1)
    if x.shape[1] != mod.n_beads:
        raise ValueError(f"the prior is for {mod.n_beads} beads, positions hold {x.shape[1]}")
    kT = kT_kcal(_check_temperature(temperature))
    p = mod.params()
    idx = {k: np.asarray(p[k]["index"], dtype=np.int64).reshape(-1, _ARITY[k]) for k in PRIOR_KINDS}
    return {"module": mod, "positions": x, "kT": kT, "params": p, "index": idx, "coords": internal_coordinates(x, idx)}
