"""Diagnostics that tell users what their data allow (pure functions over numpy arrays).

- :func:`net_force_torque_floor`: the part of the mapped forces that no conservative,
  translation- and rotation-invariant CG potential can fit (the per-frame net force and net
  torque left by mapping a subset of the atoms), as a lower bound on any such model's force RMSE.
- :func:`stiffest_prior_frequency` and :func:`check_timestep`: the highest vibrational angular
  frequency of a fitted prior (:mod:`cgexplain.model.priors`) and whether a CG Langevin time step
  resolves it.
- :func:`prior_force_error`: the force error of the prior alone, to report beside the trained
  model's, so that users see what the network adds.
- :func:`bead_length_scale` and :func:`check_length_scale`: the nearest-neighbour and bonded bead
  distances of mapped frames, against what CG beads of molecules can be, so that positions in nm
  declared as Å (or the reverse) are stopped before training.

Units: Å, kcal/mol, kcal/mol/Å, ps, K, amu; angular frequencies ω in rad/ps (written 1/ps).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cgexplain.geometry.neighbors import neighbor_list
from cgexplain.model.priors import PriorEnergy
from cgexplain.units import KCAL_IN_AMU_A2_PS2

__all__ = [
    "net_force_torque_floor",
    "stiffest_prior_frequency",
    "check_timestep",
    "choose_timestep",
    "baoab_kinetic_temperature_bias",
    "prior_force_error",
    "bead_length_scale",
    "check_length_scale",
    "LENGTH_SCALE_A",
    "OMEGA_DT_BOUND",
    "OMEGA_DT_STABILITY",
]

#: Harmonic stability limit of velocity Verlet and of BAOAB (its deterministic part): a mode of
#: angular frequency ω is integrated stably only for ω·Δt < 2.
OMEGA_DT_STABILITY = 2.0

#: Default accuracy bound on ω·Δt used by :func:`check_timestep`. With BAOAB (the integrator of
#: :mod:`cgexplain.md.langevin`) a harmonic mode keeps its exact configurational distribution at
#: any stable step, but the kinetic temperature of that mode, from the on-step velocities, is low
#: by the factor (ωΔt)²/4 (:func:`baoab_kinetic_temperature_bias`; Leimkuhler & Matthews, Appl.
#: Math. Res. Express 2013, 34): 5.1 % at ωΔt = 0.45, which is 2π/0.45 ≈ 14 steps per period,
#: inside the common rule of 10-20 steps per period of the fastest motion, and 4.4 times below
#: the stability limit. Anharmonic and coupled modes add configurational errors of order Δt²
#: that grow faster than this beyond it.
OMEGA_DT_BOUND = 0.45

UNITS = {"force": "kcal/mol/Angstrom", "torque": "kcal/mol", "omega": "rad/ps", "time": "ps", "mass": "amu"}


# ---------------------------------------------------------------------------------------------
# 1. net force and net torque: what no invariant conservative potential can fit


def _frames3(a: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != 3 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (frames, beads, 3) or (beads, 3), got {np.shape(a)}")
    if not np.all(np.isfinite(x)):
        f, i = np.argwhere(~np.isfinite(x))[0][:2]
        raise ValueError(f"{name}: non-finite value in frame {f}, bead {i}")
    return x


def net_force_torque_floor(positions: ArrayLike | None, forces: ArrayLike, masses: ArrayLike | None = None, periodic: bool = False) -> dict[str, Any]:
    """The component of the forces that no invariant conservative CG potential can fit.

    A conservative CG potential U(R) that is invariant under translations and rotations gives bead
    forces f_i = -∂U/∂R_i whose sum is zero and whose total torque Σ R_i × f_i is zero (about any
    point, since the sum is zero), in every frame. Mapped forces of a subset of the atoms (a
    solute without its solvent, 5 of 22 atoms, ...) carry a net force and a net torque per frame
    that no such model can reproduce. In each frame, the admissible model forces are exactly the
    orthogonal complement (Euclidean inner product Σ_i f_i·g_i) of the 6-dimensional space of
    rigid patterns {t + ω × (R_i - c)}: ⟨g, t⟩ = t·Σ g_i and ⟨g, ω × (R_i - c)⟩ = ω·Σ (R_i - c) × g_i.
    So the best any such model can do is to remove everything except the orthogonal projection
    P f of the forces onto the rigid patterns, and

        floor_rmse = sqrt( Σ_frames ||P f||² / (3 n F) )  <=  force RMSE (per component) of any such model.

    With c the centroid of the frame the two parts are orthogonal: the translation part is
    t = F_net / n (squared norm |F_net|² / n) and the rotation part solves I ω = τ, with
    τ = Σ (R_i - c) × f_i and I = Σ (|d_i|² 1 - d_i d_iᵀ), d_i = R_i - c (the inertia tensor of
    unit masses; squared norm τ·I⁺τ, with the pseudo-inverse for collinear beads or one bead).

    Why unweighted: the force-matching loss and the reported RMSE weigh every force component
    equally, and the invariance constraints are unweighted sums, so the Euclidean projection is
    the one that gives the bound; a mass-weighted projection would bound a mass-weighted error
    instead. ``masses`` therefore changes only the point about which the reported net torque is
    taken (the centre of mass instead of the centroid), never the floor.

    Periodic systems (``periodic=True``, cells given): the box breaks rotational invariance (and
    wrapped positions make torques meaningless), so only the net force is projected out; then
    floor_rmse = sqrt(mean over frames of |F_net|² / (3 n²)), positions are not used (may be None)
    and the torque entries are None.

    positions (F, n, 3) or (n, 3) Å (unwrapped, e.g. a molecule's mapped beads); forces of the
    same shape, kcal/mol/Å (the mapped forces); masses (n,) amu or None.

    Returns a dict (scalars are Python floats, per-frame values numpy arrays):
    ``floor_rmse`` (kcal/mol/Å, per force component), its two orthogonal parts
    ``floor_rmse_net_force`` and ``floor_rmse_net_torque`` (floor_rmse² = the sum of their
    squares; the torque part 0.0 when periodic), ``zero_model_rmse`` (RMS of the forces, the RMSE of a model that predicts zero;
    floor_rmse <= zero_model_rmse), ``floor_fraction_of_zero_mse`` (floor² / zero-model MSE),
    ``net_force_mean`` (mean over frames of |Σ f_i|, kcal/mol/Å), ``net_torque_mean`` (mean of
    |Σ (R_i - c) × f_i| about the centroid, or the centre of mass with ``masses``, kcal/mol; None
    when periodic), ``mean_abs_reference_force`` (mean |component|, kcal/mol/Å, as the training
    metrics report it), ``per_frame`` {``net_force`` (F, 3), ``net_torque`` (F, 3) or None,
    ``floor_rmse`` (F,)}, ``periodic``, ``n_frames``, ``n_beads``, ``units``.

    Raises ValueError for wrong or mismatched shapes, non-finite values, or masses that are not
    positive or not of length n.
    """
    f = _frames3(forces, "forces")
    nf, n, _ = f.shape
    net_force = f.sum(1)  # (F, 3)
    trans_sq = (net_force**2).sum(1) / n  # ||translation part||² per frame
    net_torque = None
    rot_sq = np.zeros(nf)
    if not periodic:
        if positions is None:
            raise ValueError("positions are needed unless periodic=True")
        x = _frames3(positions, "positions")
        if x.shape != f.shape:
            raise ValueError(f"positions {x.shape} and forces {f.shape} differ in shape")
        c = x.mean(1, keepdims=True)
        d = x - c
        tau = np.cross(d, f).sum(1)  # (F, 3) about the centroid
        r2 = np.einsum("fni,fni->f", d, d)
        inertia = r2[:, None, None] * np.eye(3) - np.einsum("fni,fnj->fij", d, d)
        omega = np.einsum("fij,fj->fi", np.linalg.pinv(inertia, rcond=1e-10, hermitian=True), tau)
        rot_sq = np.maximum(np.einsum("fi,fi->f", omega, tau), 0.0)
        if masses is None:
            net_torque = tau
        else:
            m = np.asarray(masses, dtype=np.float64).reshape(-1)
            if m.shape != (n,) or not np.all(m > 0):
                raise ValueError(f"masses must be ({n},) positive amu, got shape {np.shape(masses)}")
            com = np.einsum("n,fni->fi", m / m.sum(), x)
            net_torque = tau + np.cross(c[:, 0] - com, net_force)  # about the centre of mass
    denom = 3.0 * n
    floor_frame = np.sqrt((trans_sq + rot_sq) / denom)
    zero_mse = float((f**2).mean())
    floor_mse = float((trans_sq + rot_sq).sum() / (denom * nf))
    return {
        "floor_rmse": math.sqrt(floor_mse),
        "floor_rmse_net_force": math.sqrt(float(trans_sq.sum()) / (denom * nf)),
        "floor_rmse_net_torque": math.sqrt(float(rot_sq.sum()) / (denom * nf)),
        "zero_model_rmse": math.sqrt(zero_mse),
        "floor_fraction_of_zero_mse": floor_mse / zero_mse if zero_mse > 0 else 0.0,
        "net_force_mean": float(np.linalg.norm(net_force, axis=1).mean()),
        "net_torque_mean": None if net_torque is None else float(np.linalg.norm(net_torque, axis=1).mean()),
        "mean_abs_reference_force": float(np.abs(f).mean()),
        "per_frame": {"net_force": net_force, "net_torque": net_torque, "floor_rmse": floor_frame},
        "periodic": bool(periodic),
        "n_frames": int(nf),
        "n_beads": int(n),
        "units": dict(UNITS),
    }


# ---------------------------------------------------------------------------------------------
# 2. the stiffest prior term and the time step


def _bead_masses(bead_masses: ArrayLike, n: int) -> np.ndarray:
    m = np.asarray(bead_masses, dtype=np.float64).reshape(-1)
    if m.shape != (n,):
        raise ValueError(f"bead_masses must have shape ({n},) (one per bead of the prior), got {np.shape(bead_masses)}")
    if not np.all(np.isfinite(m) & (m > 0)):
        raise ValueError("bead_masses must be finite and > 0 amu")
    return m


def _hessian_omega(mod, masses: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, int, list[int]]:
    """Largest instantaneous normal-mode ω (1/ps) of the prior in each frame (F,), the frame with
    the largest, and the beads holding >= 10 % of that mode's mass-weighted amplitude."""
    import torch

    n = mod.n_beads
    minv = np.repeat(1.0 / np.sqrt(masses), 3)
    best, best_f, best_vec = -np.inf, 0, np.zeros(3 * n)
    per_frame = np.zeros(len(positions))
    for k, x in enumerate(positions):
        h = torch.autograd.functional.hessian(lambda v: mod.energy(v.view(n, 3)), torch.as_tensor(x.reshape(-1)), vectorize=True)
        hm = minv[:, None] * h.detach().numpy() * minv[None, :]
        w, v = np.linalg.eigh(0.5 * (hm + hm.T))
        per_frame[k] = math.sqrt(max(float(w[-1]), 0.0) * KCAL_IN_AMU_A2_PS2)
        if w[-1] > best:
            best, best_f, best_vec = float(w[-1]), k, v[:, -1]
    share = (best_vec.reshape(n, 3) ** 2).sum(1)
    beads = [int(i) for i in np.argsort(-share) if share[i] >= 0.1]
    return per_frame, best_f, beads


def stiffest_prior_frequency(params: Any, bead_masses: ArrayLike, positions: ArrayLike | None = None) -> dict[str, Any]:
    """The highest vibrational angular frequency ω (1/ps) of a prior, and the term that sets it.

    params: a prior params dict (:func:`cgexplain.model.priors.fit_priors`, or ``model.json``'s
    ``hparams["priors"]``) or a :class:`~cgexplain.model.priors.PriorEnergy`. bead_masses (n,) amu.

    Each harmonic term is treated as an isolated internal coordinate q with force constant k_q,
    whose small-oscillation frequency is ω_q² = k_q G_qq (the diagonal of Wilson's GF matrix;
    Wilson, Decius & Cross, Molecular Vibrations (1955), appendix VI), times
    :data:`cgexplain.units.KCAL_IN_AMU_A2_PS2` (418.4: 1 kcal/mol = 418.4 amu Å²/ps²):

    - bond (i, j), k kcal/mol/Å²:  G = 1/m_i + 1/m_j = 1/μ, so ω = sqrt(k/μ);
    - angle (i, j, k) at bead j, k_θ kcal/mol/rad², legs r1 = |R_i - R_j|, r2 = |R_k - R_j| (the
      r0 of the prior's bonds (i, j) and (j, k); without such a bond, the mean distance over
      ``positions``):  G = 1/(m_i r1²) + 1/(m_k r2²) + (1/m_j)(1/r1² + 1/r2² - 2 cos θ0/(r1 r2)),
      i.e. ω = sqrt(k_θ/(μ_eff r²)) with the exact μ_eff r² of a bend with rigid legs.

    Dihedrals (soft Fourier terms) and the repulsion (not harmonic) get no per-term estimate.
    Approximation: coupling between terms that share beads is neglected. For a positive
    definite force-constant matrix, the largest eigenvalue of GF is at least its largest
    diagonal element k_q G_qq, so this estimate is a lower bound on the true highest harmonic
    frequency (for a long chain of equal beads and bonds the true one is sqrt(2) higher). With ``positions``
    (F, n, 3) or (n, 3) Å (a few mapped frames) the full prior (every kind, coupled) is also
    evaluated: ω² = the largest eigenvalue of the mass-weighted Hessian M^-1/2 H M^-1/2 at each
    frame (instantaneous normal modes; one Hessian of size 3n by autograd per frame, so keep
    the frames few for large n), and ``omega_max`` is the larger of the two estimates.

    Returns a dict: ``omega_max`` (1/ps), ``period_ps`` (2π/ω_max, ps; inf without terms),
    ``term`` ({``kind``: 'bonds' or 'angles', ``index``: bead indices, ``k``: force constant,
    ``omega``: 1/ps} of the largest per-term ω, or None), ``omega_max_terms`` (1/ps, the largest
    per-term ω), ``omega_bonds`` and ``omega_angles`` (per-term ω arrays, 1/ps), and with
    ``positions`` also ``omega_max_hessian`` (1/ps, the largest over the frames),
    ``omega_hessian_per_frame`` (F,) 1/ps, ``hessian_frame`` (frame index of the largest) and
    ``hessian_mode_beads`` (beads holding >= 10 % of that mode's mass-weighted amplitude), plus
    ``units``. A frame with a close non-bonded contact can dominate through the repulsion wall's
    curvature: that is a real limit on the step where such contacts occur, so pass typical
    (mapped reference) frames, not arbitrary geometries.

    Raises ValueError for malformed params (as :class:`~cgexplain.model.priors.PriorEnergy`),
    bead masses that are not (n,) positive, an angle without bonds for its legs when no
    positions are given, or positions of the wrong shape.
    """

    mod = params if isinstance(params, PriorEnergy) else PriorEnergy.from_params(params)
    p = mod.params()
    n = mod.n_beads
    m = _bead_masses(bead_masses, n)
    x = None
    if positions is not None:
        x = _frames3(positions, "positions")
        if x.shape[1] != n:
            raise ValueError(f"the prior is for {n} beads, positions hold {x.shape[1]}")
    bi = np.asarray(p["bonds"]["index"], dtype=np.int64).reshape(-1, 2)
    kb, r0 = np.asarray(p["bonds"]["k"], dtype=np.float64), np.asarray(p["bonds"]["r0"], dtype=np.float64)
    w_bonds = np.sqrt(np.maximum(kb, 0.0) * (1.0 / m[bi[:, 0]] + 1.0 / m[bi[:, 1]]) * KCAL_IN_AMU_A2_PS2)
    ai = np.asarray(p["angles"]["index"], dtype=np.int64).reshape(-1, 3)
    ka, th0 = np.asarray(p["angles"]["k"], dtype=np.float64), np.asarray(p["angles"]["theta0"], dtype=np.float64)
    rest = {frozenset((int(a), int(b))): float(r) for (a, b), r in zip(bi, r0)}

    def leg(a: int, b: int, which: int) -> float:
        if frozenset((a, b)) in rest:
            return rest[frozenset((a, b))]
        if x is None:
            raise ValueError(f"angle {which} ({a}, {b}, ...): no bond ({a}, {b}) in the prior gives its leg length; pass positions")
        return float(np.linalg.norm(x[:, a] - x[:, b], axis=1).mean())

    g = np.zeros(len(ai))
    for t, (i, j, k) in enumerate(ai):
        r1, r2 = leg(int(i), int(j), t), leg(int(k), int(j), t)
        g[t] = 1 / (m[i] * r1**2) + 1 / (m[k] * r2**2) + (1 / m[j]) * (1 / r1**2 + 1 / r2**2 - 2 * math.cos(th0[t]) / (r1 * r2))
    w_angles = np.sqrt(np.maximum(ka, 0.0) * g * KCAL_IN_AMU_A2_PS2)
    term = None
    w_terms = 0.0
    for kind, w, idx, kk in (("bonds", w_bonds, bi, kb), ("angles", w_angles, ai, ka)):
        if len(w) and float(w.max()) > w_terms:
            t = int(np.argmax(w))
            w_terms = float(w[t])
            term = {"kind": kind, "index": [int(v) for v in idx[t]], "k": float(kk[t]), "omega": w_terms}
    out: dict[str, Any] = {
        "omega_max": w_terms,
        "term": term,
        "omega_max_terms": w_terms,
        "omega_bonds": w_bonds,
        "omega_angles": w_angles,
    }
    if x is not None:
        w_f, frame, beads = _hessian_omega(mod, m, x)
        w_h = float(w_f[frame])
        out.update(omega_max_hessian=w_h, omega_hessian_per_frame=w_f, hessian_frame=frame, hessian_mode_beads=beads, omega_max=max(w_terms, w_h))
    out["period_ps"] = 2 * math.pi / out["omega_max"] if out["omega_max"] > 0 else math.inf
    out["units"] = dict(UNITS)
    return out


def baoab_kinetic_temperature_bias(omega_dt: float) -> float:
    """Relative error of the kinetic temperature of a harmonic mode under BAOAB Langevin dynamics.

    omega_dt: ω·Δt (dimensionless, ω in 1/ps and Δt in ps), below :data:`OMEGA_DT_STABILITY`.
    The on-step velocities of BAOAB have variance (kT/m)(1 - (ωΔt)²/4) for a harmonic mode, at
    any friction, while positions keep their exact variance kT/(mω²) (Leimkuhler & Matthews,
    Appl. Math. Res. Express 2013, 34); returns -(ωΔt)²/4 (negative: too cold).
    Raises ValueError for ω·Δt outside [0, 2).
    """
    x = float(omega_dt)
    if not 0.0 <= x < OMEGA_DT_STABILITY:
        raise ValueError(f"omega_dt must be in [0, {OMEGA_DT_STABILITY}) (the harmonic stability limit), got {omega_dt}")
    return -0.25 * x * x


#: the time step (ps) :func:`choose_timestep` gives when nothing limits it (no prior, no harmonic term)
DEFAULT_TIMESTEP = 0.002
#: the longest time step (ps) :func:`choose_timestep` gives
MAX_TIMESTEP = 0.01


def choose_timestep(
    omega_max: float | None, bound: float = OMEGA_DT_BOUND, default: float = DEFAULT_TIMESTEP, longest: float = MAX_TIMESTEP
) -> float:
    """The CG time step (ps) for a model whose stiffest prior mode has angular frequency
    ``omega_max`` (1/ps, :func:`stiffest_prior_frequency`): the largest of 0.1 fs multiples with
    ω·Δt <= ``bound`` (:data:`OMEGA_DT_BOUND`), at most ``longest`` ps; ``default`` ps when nothing
    limits it (``omega_max`` None or 0). Raises ValueError for a negative or non-finite ω, or a
    bound that leaves no step of at least 0.1 fs."""
    if omega_max is None or float(omega_max) == 0.0:
        return float(default)
    w = float(omega_max)
    if not (math.isfinite(w) and w > 0):
        raise ValueError(f"omega_max must be finite and >= 0 (1/ps), got {omega_max}")
    dt = min(float(longest), math.floor(bound / w / 1e-4) * 1e-4)
    while dt >= 1e-4 and w * round(dt, 6) > bound:  # round-off of the multiple
        dt -= 1e-4
    if dt < 1e-4:
        raise ValueError(f"omega_max {w:g}/ps: no time step of at least 0.1 fs keeps ω·Δt <= {bound}")
    return round(dt, 6)


def check_timestep(omega_max: float, timestep_ps: float, bound: float = OMEGA_DT_BOUND) -> tuple[bool, str]:
    """Whether a time step resolves the fastest motion: ω_max·Δt <= ``bound``.

    omega_max: 1/ps (e.g. ``stiffest_prior_frequency(...)["omega_max"]``); timestep_ps: ps;
    bound: the largest acceptable ω·Δt (default :data:`OMEGA_DT_BOUND` = 0.45, about 14 steps
    per period, where BAOAB cools the stiffest harmonic mode's kinetic temperature by 5 %;
    ω·Δt >= :data:`OMEGA_DT_STABILITY` = 2 is unstable).

    Returns (ok, message): ok is False when ω·Δt exceeds the bound; the message gives ω·Δt, the
    steps per period, the expected kinetic-temperature bias of that mode under BAOAB, and the
    longest time step within the bound (bound/ω_max, ps).
    Raises ValueError for a non-finite or negative omega_max, a time step <= 0, or a bound
    outside (0, 2].
    """
    w, dt, b = float(omega_max), float(timestep_ps), float(bound)
    if not (math.isfinite(w) and w >= 0):
        raise ValueError(f"omega_max must be finite and >= 0 (1/ps), got {omega_max}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"timestep_ps must be > 0 ps, got {timestep_ps}")
    if not 0 < b <= OMEGA_DT_STABILITY:
        raise ValueError(f"bound must be in (0, {OMEGA_DT_STABILITY}], got {bound}")
    if w == 0:
        return True, f"no harmonic term: nothing limits the time step {dt:g} ps here"
    x = w * dt
    longest = b / w
    if x >= OMEGA_DT_STABILITY:
        return False, (
            f"time step {dt:g} ps is unstable for the stiffest term: ω·Δt = {x:.3g} >= {OMEGA_DT_STABILITY:g} "
            f"(ω = {w:.4g} 1/ps, period {2 * math.pi / w:.4g} ps); use Δt <= {longest:.3g} ps (ω·Δt <= {b:g})"
        )
    bias = baoab_kinetic_temperature_bias(x)
    steps = 2 * math.pi / x
    if x > b:
        return False, (
            f"time step {dt:g} ps is too long for the stiffest term: ω·Δt = {x:.3g} > {b:g} ({steps:.1f} steps per period "
            f"of {2 * math.pi / w:.4g} ps; BAOAB would cool that mode's kinetic temperature by {-100 * bias:.1f} %); "
            f"use Δt <= {longest:.3g} ps"
        )
    return (
        True,
        f"time step {dt:g} ps: ω·Δt = {x:.3g} <= {b:g} ({steps:.1f} steps per period; stiffest mode's kinetic-temperature bias {100 * bias:.2f} %)",
    )


# ---------------------------------------------------------------------------------------------
# 3. what the prior alone does


def prior_force_error(mapped_forces: ArrayLike, prior_forces: ArrayLike, chunk: int = 4096) -> dict[str, Any]:
    """Force error of the prior alone against the mapped forces.

    Report it beside the trained model's validation errors (``force_rmse``, ``force_mae`` of
    :func:`cgexplain.model.training.evaluate_forces`, computed on the same frames) so users see
    what the network adds to the physics-based prior: the network is trained on the residual
    F_mapped - F_prior, and a model whose error is close to the prior's has learned little. The
    zero model (predicting F = 0) gives the scale: ``mse_fraction_removed`` = 1 - MSE_prior /
    MSE_zero is the fraction of the mean squared mapped force the prior accounts for (negative
    when the prior is worse than predicting zero, e.g. a repulsion wall that is too hard). Note
    that part of MSE_zero is not learnable at all (the mapped force's fluctuation about the mean
    force, and the net force/torque of :func:`net_force_torque_floor`).

    mapped_forces, prior_forces: (F, n, 3) or (n, 3) kcal/mol/Å (e.g. mapped reference forces and
    :func:`cgexplain.model.priors.prior_forces` of the same positions); accumulated in float64,
    ``chunk`` frames at a time. Errors are per force component, as the training metrics.

    Returns a dict of floats: ``force_rmse``, ``force_mae`` (kcal/mol/Å, prior against mapped),
    ``zero_model_rmse`` (RMS of the mapped forces, kcal/mol/Å), ``mse_fraction_removed``
    (dimensionless; 0.0 when the mapped forces are all zero), ``mean_abs_reference_force``
    (kcal/mol/Å), ``n_frames``, ``n_beads``, ``units``.
    Raises ValueError for mismatched shapes or non-finite values.
    """
    a = np.asarray(mapped_forces)
    b = np.asarray(prior_forces)
    a, b = (a[None], b[None]) if a.ndim == 2 else (a, b)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape != b.shape or a.shape[1] < 1:
        raise ValueError(f"mapped_forces {np.shape(mapped_forces)} and prior_forces {np.shape(prior_forces)} must have the same shape (F, n, 3)")
    s_abs = s_sq = s_ref2 = s_ref = 0.0
    for s in range(0, len(a), int(chunk)):
        fa, fb = a[s : s + chunk].astype(np.float64), b[s : s + chunk].astype(np.float64)
        for name, v in (("mapped_forces", fa), ("prior_forces", fb)):
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{name}: non-finite value in frame {s + int(np.argwhere(~np.isfinite(v))[0][0])}")
        d = fb - fa
        s_abs += float(np.abs(d).sum())
        s_sq += float((d * d).sum())
        s_ref += float(np.abs(fa).sum())
        s_ref2 += float((fa * fa).sum())
    nv = a.size
    return {
        "force_rmse": math.sqrt(s_sq / nv),
        "force_mae": s_abs / nv,
        "zero_model_rmse": math.sqrt(s_ref2 / nv),
        "mse_fraction_removed": 1.0 - s_sq / s_ref2 if s_ref2 > 0 else 0.0,
        "mean_abs_reference_force": s_ref / nv,
        "n_frames": int(a.shape[0]),
        "n_beads": int(a.shape[1]),
        "units": "kcal/mol/Angstrom",
    }


#: plausible median distances (Å) of mapped beads: the nearest neighbour of each bead (water or mW
#: 2.8, methane 4, CA–CA 3.8, a bead per a few residues up to ~15) and the CG bonds (CA–CA 3.8,
#: backbone bonds of peptides 1.3–1.5, beads of a few residues up to ~15). Positions in nm read as
#: Å give ten times less, Å read as nm ten times more.
LENGTH_SCALE_A = {"nearest_neighbour": (1.0, 20.0), "bond": (0.9, 20.0)}


def bead_length_scale(positions: ArrayLike, cells: ArrayLike | None = None, bonds: ArrayLike | None = None, max_frames: int = 3) -> dict[str, Any]:
    """Median nearest-neighbour and bonded bead distances of the first ``max_frames`` frames.

    positions (F, n, 3) Å (as declared); cells (F, 3, 3) Å (zeros or None: no box; minimum image
    otherwise); bonds (m, 2) bead indices or None. Returns ``nearest_neighbour_median_A`` (None for
    fewer than 2 beads), ``mean_spacing_A`` ((V/n)^(1/3) of a periodic box, else None),
    ``bond_median_A`` (None without bonds) and ``n_frames`` used. Memory stays O(n): a periodic
    frame's neighbours are searched within 2.5 mean spacings (at most 25 Å), a cluster's with a
    k-d tree. Raises ValueError for positions not of shape (F, n, 3)."""
    from scipy.spatial import cKDTree

    x = _frames3(positions, "positions")[:max_frames].astype(np.float64)
    c = np.zeros((len(x), 3, 3)) if cells is None else np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)[: len(x)]
    n = x.shape[1]
    nn: list[float] = []
    bl: list[float] = []
    spacing = None
    b = np.zeros((0, 2), np.int64) if bonds is None else np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    for f in range(len(x)):
        periodic = bool(np.abs(c[f]).sum() > 0)
        frame_spacing = float(abs(np.linalg.det(c[f])) / n) ** (1 / 3) if periodic else 0.0
        spacing = frame_spacing if periodic else spacing
        if n >= 2 and periodic:
            i, j, off = neighbor_list(x[f], c[f], min(25.0, 2.5 * frame_spacing))
            nearest = np.full(n, np.inf)
            if len(i):
                np.minimum.at(nearest, i, np.linalg.norm(x[f][j] - x[f][i] + off, axis=1))
            nn.extend(nearest.tolist())  # inf: no neighbour within the search radius (a dilute box)
        elif n >= 2:
            nn.extend(cKDTree(x[f]).query(x[f], k=2)[0][:, 1].tolist())
        if len(b):
            d = x[f][b[:, 1]] - x[f][b[:, 0]]
            if periodic:  # minimum image of the bond vector (fractional coordinates)
                frac = d @ np.linalg.inv(c[f])
                d = (frac - np.round(frac)) @ c[f]
            bl.extend(np.linalg.norm(d, axis=1).tolist())
    return {
        "nearest_neighbour_median_A": float(np.median(nn)) if nn else None,
        "mean_spacing_A": spacing,
        "bond_median_A": float(np.median(bl)) if bl else None,
        "n_frames": int(len(x)),
    }


def check_length_scale(
    positions: ArrayLike, cells: ArrayLike | None = None, bonds: ArrayLike | None = None, where: str = "positions"
) -> dict[str, Any]:
    """:func:`bead_length_scale`, checked against :data:`LENGTH_SCALE_A`; returns it.

    Raises ValueError naming ``where`` (a file and the declared unit), the measured median and
    the unit the data are probably in, when a median lies outside its range."""
    s = bead_length_scale(positions, cells, bonds)
    for key, what in (("nearest_neighbour", "nearest-neighbour bead distance"), ("bond", "bonded bead distance")):
        v = s[f"{key}_median_A" if key == "bond" else "nearest_neighbour_median_A"]
        lo, hi = LENGTH_SCALE_A[key]
        if v is not None and not lo <= v <= hi:
            shown = f"{v:.3g} Å" if np.isfinite(v) else "beyond the search radius (25 Å or 2.5 mean spacings)"
            likely = "nm read as Å: declare nm" if v < lo else "Å read as nm (or another unit ten times larger): check the declared length unit"
            raise ValueError(
                f"{where}: the median {what} is {shown}, outside the {lo:g}–{hi:g} Å that CG beads of molecules have; "
                f"the positions are probably in {likely} (data this sparse or dense on purpose: mapping.check_length_scale: false)"
            )
    return s
