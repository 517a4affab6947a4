"""Analytic potentials whose many-body split is known: ground truth for the explanations.

- :class:`LennardJones`: a pure pair fluid, u(r) = 4ε[(σ/r)^12 − (σ/r)^6]·S(r), with OpenMM's
  switching function S (1 below r_switch, 1 − 10x³ + 15x⁴ − 6x⁵ with x = (r − r_switch)/(r_c −
  r_switch) up to r_c, 0 beyond). Its 3- and 4-body energies are zero.
- :class:`MW`: the mW one-bead water of Molinero & Moore, J. Phys. Chem. B 113, 4008 (2009), a
  Stillinger–Weber potential (Stillinger & Weber, PRB 31, 5262 (1985)):
    φ2(r) = A ε [B (σ/r)^p − (σ/r)^q] exp(σ / (r − aσ)),
    φ3(r_ij, r_ik, θ_jik) = λ ε (cos θ_jik − cos θ0)² exp(γσ / (r_ij − aσ)) exp(γσ / (r_ik − aσ)),
  both zero for r >= aσ, with ε 6.189 kcal/mol, σ 2.3925 Å, a 1.8, λ 23.15, γ 1.2, θ0 109.47°,
  A 7.049556277, B 0.6022245584, p 4, q 0. The three-body energy of a triplet {i, j, k} is the sum of
  φ3 over its three vertices.

Both give the energy of any bead subset of a frame (the *subset energy* of
:mod:`cgexplain.lrp.interactions`), the per-pair and per-triplet energies, and total energy and
forces (torch autograd, float64). :func:`openmm_system` builds the same potential in OpenMM
(``CustomNonbondedForce`` for the pair term, ``CustomManyParticleForce`` for mW's three-body term),
which the tests compare against. Units: Å, kcal/mol, kcal/mol/Å.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cgexplain.analysis.structure import angle_triplets
from cgexplain.geometry.neighbors import pairs_within

__all__ = ["LennardJones", "MW", "openmm_system"]

KJ_PER_KCAL = 4.184


def _min_image(d: torch.Tensor, cell: np.ndarray | None) -> torch.Tensor:
    """Minimum-image displacement vectors for an orthorhombic or triclinic cell (rows), the
    cutoff being shorter than half the shortest perpendicular width."""
    if cell is None or np.abs(cell).sum() == 0:
        return d
    c = torch.as_tensor(np.asarray(cell, float), dtype=d.dtype)
    frac = d @ torch.linalg.inv(c)
    return (frac - torch.round(frac)) @ c


class _Potential:
    """Shared machinery: pair list within the cutoff, subset energies, totals and forces."""

    cutoff: float

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _pairs(self, x, cell):

        return pairs_within(x, cell, self.cutoff)

    def _dist(self, X, cell, a, b):
        return torch.linalg.norm(_min_image(X[b] - X[a], cell), dim=-1)

    def pair_energies(self, positions, cell=None) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (P, 2) i < j within the cutoff and their pair energies (P,) kcal/mol."""
        X = torch.as_tensor(np.asarray(positions, float))
        p = self._pairs(positions, cell)
        e = self.pair_energy(self._dist(X, cell, torch.as_tensor(p[:, 0]), torch.as_tensor(p[:, 1]))) if len(p) else torch.zeros(0)
        return p, e.numpy()

    def triplet_energies(self, positions, cell=None) -> tuple[np.ndarray, np.ndarray]:
        """Triplets (T, 3) i < j < k with a non-zero three-body energy and those energies (T,)
        kcal/mol; none for a pair potential."""
        return np.zeros((0, 3), np.int64), np.zeros(0)

    def energy_torch(self, X: torch.Tensor, cell) -> torch.Tensor:
        raise NotImplementedError

    def energy(self, positions, cell=None) -> float:
        """Total potential energy (kcal/mol) of a frame: positions (n, 3) Å, cell (3, 3) Å or None."""
        return float(self.energy_torch(torch.as_tensor(np.asarray(positions, float)), cell))

    def forces(self, positions, cell=None) -> np.ndarray:
        """Forces −∂E/∂x (n, 3) kcal/mol/Å."""
        X = torch.as_tensor(np.asarray(positions, float)).requires_grad_(True)
        (g,) = torch.autograd.grad(self.energy_torch(X, cell), X)
        return -g.numpy()

    def subset_energy(self, positions, cell=None):
        """A subset energy of this frame (keep (B, n) bool -> (B,) kcal/mol) for
        :mod:`cgexplain.lrp.interactions`."""
        X = torch.as_tensor(np.asarray(positions, float))
        pairs, pe = self.pair_energies(positions, cell)
        tri, te = self.triplet_energies(positions, cell)

        def energy(keep):
            keep = np.asarray(keep, bool).reshape(-1, len(X))
            out = (keep[:, pairs[:, 0]] & keep[:, pairs[:, 1]]).astype(float) @ pe if len(pairs) else np.zeros(len(keep))
            if len(tri):
                out = out + (keep[:, tri[:, 0]] & keep[:, tri[:, 1]] & keep[:, tri[:, 2]]).astype(float) @ te
            return out

        return energy


class LennardJones(_Potential):
    """Switched Lennard-Jones pair potential (module docstring). sigma Å, epsilon kcal/mol;
    cutoff and switch Å (switch < cutoff). Defaults: argon, σ 3.405 Å, ε 0.2381 kcal/mol,
    switched from 2.25σ to 2.5σ."""

    def __init__(self, sigma: float = 3.405, epsilon: float = 0.2381, cutoff: float | None = None, switch: float | None = None):
        self.sigma, self.epsilon = float(sigma), float(epsilon)
        self.cutoff = 2.5 * self.sigma if cutoff is None else float(cutoff)
        self.switch = 2.25 * self.sigma if switch is None else float(switch)
        if not 0 < self.switch < self.cutoff:
            raise ValueError(f"LennardJones: need 0 < switch ({self.switch}) < cutoff ({self.cutoff})")

    def pair_energy(self, r):
        sr6 = (self.sigma / r) ** 6
        u = 4 * self.epsilon * (sr6 * sr6 - sr6)
        x = ((r - self.switch) / (self.cutoff - self.switch)).clamp(0, 1)
        s = 1 - 10 * x**3 + 15 * x**4 - 6 * x**5
        return torch.where(r < self.cutoff, u * s, torch.zeros_like(r))

    def energy_torch(self, X, cell):
        p = torch.as_tensor(self._pairs(X.detach().numpy(), cell))
        if len(p) == 0:
            return X.sum() * 0
        return self.pair_energy(self._dist(X, cell, p[:, 0], p[:, 1])).sum()


class MW(_Potential):
    """mW water (module docstring); every parameter can be overridden (ε kcal/mol, σ Å, θ0 deg)."""

    def __init__(self, epsilon=6.189, sigma=2.3925, a=1.8, lam=23.15, gamma=1.2, theta0=109.47, A=7.049556277, B=0.6022245584, p=4, q=0):
        self.epsilon, self.sigma, self.a, self.lam, self.gamma = float(epsilon), float(sigma), float(a), float(lam), float(gamma)
        self.cos0 = math.cos(math.radians(theta0))
        self.A, self.B, self.p, self.q = float(A), float(B), float(p), float(q)
        self.cutoff = self.a * self.sigma

    def _exp(self, r, scale):
        """exp(scale·σ / (r − aσ)) below the cutoff, 0 at and beyond it (smooth)."""
        rc = self.cutoff
        inside = r < rc
        rr = torch.where(inside, r, torch.full_like(r, rc - 1.0))
        return torch.where(inside, torch.exp(scale * self.sigma / (rr - rc)), torch.zeros_like(r))

    def three_body_envelope(self, r) -> np.ndarray:
        """g(r) = exp(γσ / (r − aσ)) (0 beyond aσ): the radial factor of each leg of the three-body
        term. r (…) Å -> (…) numpy."""
        return self._exp(torch.as_tensor(np.asarray(r, dtype=np.float64)), self.gamma).numpy()

    def pair_energy(self, r):
        sr = self.sigma / r
        return self.A * self.epsilon * (self.B * sr**self.p - sr**self.q) * self._exp(r, 1.0)

    def _vertex_terms(self, X, cell, c, a, b):
        """φ3 at vertex c of the angle a–c–b, (m,) kcal/mol."""
        va, vb = _min_image(X[a] - X[c], cell), _min_image(X[b] - X[c], cell)
        ra, rb = torch.linalg.norm(va, dim=-1), torch.linalg.norm(vb, dim=-1)
        cos = (va * vb).sum(-1) / (ra * rb)
        return self.lam * self.epsilon * (cos - self.cos0) ** 2 * self._exp(ra, self.gamma) * self._exp(rb, self.gamma)

    def _angles(self, x, cell):
        """Vertex c and legs a < b with both legs inside the cutoff, each angle once: (m,) each."""

        c, j, k, _ = angle_triplets(np.asarray(x, float), cell, self.cutoff)
        vab = np.stack([c, np.minimum(j, k), np.maximum(j, k)], 1)
        vab = np.unique(vab[(j != k) & (c != j) & (c != k)], axis=0).reshape(-1, 3)  # one entry per bead in a small box
        return vab[:, 0].astype(np.int64), vab[:, 1].astype(np.int64), vab[:, 2].astype(np.int64)

    def triplet_energies(self, positions, cell=None):
        X = torch.as_tensor(np.asarray(positions, float))
        c, a, b = self._angles(positions, cell)
        if len(c) == 0:
            return np.zeros((0, 3), np.int64), np.zeros(0)
        e = self._vertex_terms(X, cell, torch.as_tensor(c), torch.as_tensor(a), torch.as_tensor(b)).numpy()
        tri = np.sort(np.stack([c, a, b], 1), axis=1)
        uniq, inv = np.unique(tri, axis=0, return_inverse=True)
        return uniq, np.bincount(inv.ravel(), weights=e, minlength=len(uniq))

    def energy_torch(self, X, cell):
        x = X.detach().numpy()
        p = torch.as_tensor(self._pairs(x, cell))
        e = self.pair_energy(self._dist(X, cell, p[:, 0], p[:, 1])).sum() if len(p) else X.sum() * 0
        c, a, b = self._angles(x, cell)
        if len(c):
            e = e + self._vertex_terms(X, cell, torch.as_tensor(c), torch.as_tensor(a), torch.as_tensor(b)).sum()
        return e


def openmm_system(potential, n: int, cell, mass: float):
    """The same potential as an OpenMM ``System`` of ``n`` particles of ``mass`` amu in the
    periodic ``cell`` (3, 3) Å: a ``CustomNonbondedForce`` (cutoff periodic; LJ with OpenMM's
    switching function) and, for :class:`MW`, a ``CustomManyParticleForce`` over triplets with a
    unique central particle. OpenMM units (nm, kJ/mol) inside.
    Raises TypeError for another potential."""
    import openmm as mm
    import openmm.unit as u

    nm = 0.1
    sys_ = mm.System()
    for _ in range(n):
        sys_.addParticle(mass * u.amu)
    c = np.asarray(cell, float) * nm
    sys_.setDefaultPeriodicBoxVectors(*[mm.Vec3(*row) * u.nanometer for row in c])
    if isinstance(potential, LennardJones):
        f = mm.CustomNonbondedForce("4*eps*((sig/r)^12-(sig/r)^6)")
        f.addGlobalParameter("eps", potential.epsilon * KJ_PER_KCAL)
        f.addGlobalParameter("sig", potential.sigma * nm)
        f.setUseSwitchingFunction(True)
        f.setSwitchingDistance(potential.switch * nm)
    elif isinstance(potential, MW):
        P = potential
        f = mm.CustomNonbondedForce("A*eps*(B*(sig/r)^p-(sig/r)^q)*exp(sig/(min(r,rc-1e-7)-rc))")
        for k, v in {"A": P.A, "B": P.B, "p": P.p, "q": P.q, "eps": P.epsilon * KJ_PER_KCAL, "sig": P.sigma * nm, "rc": P.cutoff * nm}.items():
            f.addGlobalParameter(k, v)
    else:
        raise TypeError(f"openmm_system: unsupported potential {type(potential).__name__}")
    f.setNonbondedMethod(mm.CustomNonbondedForce.CutoffPeriodic)
    f.setCutoffDistance(potential.cutoff * nm)
    for _ in range(n):
        f.addParticle([])
    sys_.addForce(f)
    if isinstance(potential, MW):
        P = potential
        t = mm.CustomManyParticleForce(
            3,
            "lam*eps*(cos(angle(p2,p1,p3))-c0)^2*exp(g*sig/(min(r12,rc-1e-7)-rc))*exp(g*sig/(min(r13,rc-1e-7)-rc));"
            "r12=distance(p1,p2); r13=distance(p1,p3)",
        )
        for k, v in {"lam": P.lam, "eps": P.epsilon * KJ_PER_KCAL, "c0": P.cos0, "g": P.gamma, "sig": P.sigma * nm, "rc": P.cutoff * nm}.items():
            t.addGlobalParameter(k, v)
        t.setPermutationMode(mm.CustomManyParticleForce.UniqueCentralParticle)
        t.setNonbondedMethod(mm.CustomManyParticleForce.CutoffPeriodic)
        t.setCutoffDistance(P.cutoff * nm)
        for _ in range(n):
            t.addParticle([])
        sys_.addForce(t)
    return sys_
