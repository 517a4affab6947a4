"""A yardstick for many-body maps that can fail: metrics against a known many-body split, and the
geometry-only baselines every decomposition must beat.

The ground-truth fluids (:mod:`cgexplain.reference.potentials`: LJ pairs, mW pairs + triplets)
give the true pair energies u_ij and three-body energies t_ijk of any frame. A decomposition
(GNN-LRP walk sums, a network's deletion interactions or pure terms, a body-ordered model's exact
terms) is scored by:

- **per-item metrics** (:func:`item_metrics`): Spearman ρ over all items and over the items that
  matter (|truth| >= ``threshold``: 0.1 kcal/mol for mW triplets, where 54 % of the triplets
  inside aσ have t < 0.001 kcal/mol and a ranking over all of them is decided by near-zeros), the
  share of Σ|truth| those items carry, and, for decompositions in energy units, the least-squares
  slope and intercept of decomposition against truth, R² and RMSE (kcal/mol);
- **curve metrics** (:func:`curve_metrics`): for the 3-body curve against vertex angle the
  location of its minimum, Pearson r over the bins >= 80° only (over all bins r is decided by the
  50–80° bins, where t is 5–100× larger: a monotone exp(−θ/20°) scores 0.94 there and −0.09
  beyond 80°), and the amplitude ratio to the truth over those bins;
- **baselines that know less** (:func:`triplet_baselines`, :func:`pair_baselines`): the radial
  envelope Σ g(r_ij) g(r_ik) of the true potential's own cutoff functions (no angle), the
  shortest legs and the sum of distances (proximity only), and for pairs the proximity −r and
  the envelope g(r). A bar counts only where the decomposition beats the best baseline (by |ρ| or
  |r|: a ranking's sign is free) by :data:`BASELINE_MARGIN` (:func:`beats_baselines`).

Everything here is a plain function of arrays (energies kcal/mol, distances Å, angles degrees);
``benchmarks/faithfulness.py`` drives it over run folders and prints the table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import spearmanr

from cgexplain.lrp.nbody import binned_statistics

__all__ = [
    "TRIPLET_THRESHOLD",
    "ANGLE_FLOOR",
    "BASELINE_MARGIN",
    "item_metrics",
    "curve_metrics",
    "binned_curve",
    "triplet_baselines",
    "pair_baselines",
    "synthetic_angle_curves",
    "beats_baselines",
]

#: kcal/mol: per-triplet metrics are taken over triplets with |t| >= this
TRIPLET_THRESHOLD = 0.1
#: degrees: the angle-curve Pearson r and amplitude ratio use the bins whose centre is >= this
ANGLE_FLOOR = 80.0
#: a bar counts as met only if the decomposition beats the best baseline by this much (ρ or r)
BASELINE_MARGIN = 0.2


def _spearman(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def item_metrics(pred, truth, *, threshold: float | None = None, energy_units: bool = False) -> dict:
    """Per-item agreement of a decomposition ``pred`` (m,) with the truth (m,) kcal/mol.

    Returns ``n`` and ``spearman`` over all items; with ``threshold`` (kcal/mol) also ``n_sel``,
    ``share_sel`` (Σ|truth| of the items with |truth| >= threshold over Σ|truth|) and
    ``spearman_sel`` over them; with ``energy_units`` (pred in kcal/mol) the least-squares fit
    pred ≈ slope·truth + intercept: ``slope``, ``intercept`` kcal/mol, ``r2`` and ``rmse``
    kcal/mol (of pred − truth), over the selected items when a threshold is given, else over all.
    Raises ValueError for arrays of different lengths.
    """
    p, t = np.asarray(pred, float).ravel(), np.asarray(truth, float).ravel()
    if len(p) != len(t):
        raise ValueError(f"pred has {len(p)} items, truth {len(t)}")
    out: dict = {"n": int(len(p)), "spearman": _spearman(p, t)}
    sel = np.ones(len(t), bool)
    if threshold is not None:
        sel = np.abs(t) >= float(threshold)
        tot = float(np.abs(t).sum())
        out.update(
            {
                "threshold": float(threshold),
                "n_sel": int(sel.sum()),
                "share_sel": float(np.abs(t[sel]).sum() / tot) if tot > 0 else float("nan"),
                "spearman_sel": _spearman(p[sel], t[sel]),
            }
        )
    if energy_units:
        ps, ts = p[sel], t[sel]
        if len(ts) >= 3 and np.std(ts) > 0:
            slope, icpt = np.polyfit(ts, ps, 1)
            r = np.corrcoef(ps, ts)[0, 1] if np.std(ps) > 0 else 0.0
            out.update({"slope": float(slope), "intercept": float(icpt), "r2": float(r**2)})
        else:
            out.update({"slope": float("nan"), "intercept": float("nan"), "r2": float("nan")})
        out["rmse"] = float(np.sqrt(np.mean((ps - ts) ** 2))) if len(ts) else float("nan")
    return out


def binned_curve(x, y, edges, min_count: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned mean of y against x: (centres, mean, count), NaN in bins with fewer than
    ``min_count`` points. edges (n_bins + 1,)."""
    st = binned_statistics(np.asarray(x, float), np.asarray(y, float), np.asarray(edges, float))
    return st["centers"], np.where(st["count"] >= min_count, st["mean"], np.nan), st["count"]


def _flat(a: np.ndarray) -> bool:
    return bool(np.ptp(a) <= 1e-12 * max(1.0, float(np.abs(a).max())))


def _pearson(a, b) -> float:
    """Pearson r over the entries where both are finite; NaN for fewer than 3 or a constant curve."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or _flat(a[ok]) or _flat(b[ok]):
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def curve_metrics(centers, curve, truth, *, floor: float | None = ANGLE_FLOOR) -> dict:
    """A binned curve against the truth binned the same way.

    centers (b,) bin centres; curve, truth (b,) (NaN: empty bin). Returns ``pearson`` over every
    bin where both exist (NaN for a constant curve), ``min_center`` (the centre of the curve's
    lowest bin, over its own non-empty bins) and ``truth_min_center``; with ``floor`` (the 3-body
    angle curve: 80°) also ``pearson_floor`` and ``amplitude_ratio`` over the bins with centre >=
    floor where both exist: the signed least-squares slope of curve against truth (1 for the
    truth itself, negative for an inverted curve; read it for curves in kcal/mol), and the number
    of bins used, ``bins_floor``.
    """
    c, y, t = np.asarray(centers, float), np.asarray(curve, float), np.asarray(truth, float)
    ok = np.isfinite(y) & np.isfinite(t)
    fy, ft = np.isfinite(y), np.isfinite(t)
    out: dict = {
        "pearson": _pearson(y, t),
        "min_center": float(c[fy][np.argmin(y[fy])]) if fy.any() else float("nan"),
        "truth_min_center": float(c[ft][np.argmin(t[ft])]) if ft.any() else float("nan"),
        "bins": int(ok.sum()),
    }
    if floor is not None:
        hi = ok & (c >= float(floor))
        slope = float(np.polyfit(t[hi], y[hi], 1)[0]) if hi.sum() >= 2 and not _flat(t[hi]) else float("nan")
        out.update(
            {
                "floor": float(floor),
                "bins_floor": int(hi.sum()),
                "pearson_floor": _pearson(y[hi], t[hi]) if hi.any() else float("nan"),
                "amplitude_ratio": slope,
            }
        )
    return out


def _min_image(d: np.ndarray, cell) -> np.ndarray:
    if cell is None or np.abs(cell).sum() == 0:
        return d
    c = np.asarray(cell, float)
    f = d @ np.linalg.inv(c)
    return (f - np.round(f)) @ c


def triplet_baselines(positions, cell, triplets, envelope: Callable[[np.ndarray], np.ndarray], shell: float) -> dict[str, np.ndarray]:
    """Per-triplet scores that know distances only (no angle), to rank against t_ijk.

    positions (n, 3) Å; cell (3, 3) Å or None; triplets (T, 3); envelope: the true potential's
    radial cutoff function g(r) (numpy, r Å -> (…)); shell Å: a vertex counts when both its legs
    are shorter. Returns (T,) arrays: ``radial envelope`` Σ_vertices g(r_a) g(r_b) (the mW
    three-body term with the angle factor set to 1), ``shortest legs`` −(sum of the two shortest
    distances), ``sum of distances`` −(r_ij + r_ik + r_jk).
    """
    x = np.asarray(positions, float)
    t = np.asarray(triplets, np.int64).reshape(-1, 3)
    r = np.stack([np.linalg.norm(_min_image(x[t[:, b]] - x[t[:, a]], cell), axis=1) for a, b in ((0, 1), (0, 2), (1, 2))], 1)  # (T, 3): ij, ik, jk
    env = np.zeros(len(t))
    for legs in ((0, 1), (0, 2), (1, 2)):  # vertex i: ij, ik; vertex j: ij, jk; vertex k: ik, jk
        ra, rb = r[:, legs[0]], r[:, legs[1]]
        ok = (ra < shell) & (rb < shell)
        env[ok] += envelope(ra[ok]) * envelope(rb[ok])
    rs = np.sort(r, axis=1)
    return {"radial envelope": env, "shortest legs": -(rs[:, 0] + rs[:, 1]), "sum of distances": -r.sum(1)}


def pair_baselines(distances, envelope: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per-pair scores that know the distance only: ``proximity`` −r and, with the true
    potential's cutoff function, ``envelope`` g(r). distances (P,) Å."""
    r = np.asarray(distances, float)
    out = {"proximity": -r}
    if envelope is not None:
        out["envelope"] = envelope(r)
    return out


def synthetic_angle_curves(centers) -> dict[str, np.ndarray]:
    """Angle curves with no minimum at 109.47°, which the 3-body curve bar must reject: a monotone
    exp(−θ/20°) and one flat beyond 80°. centers (b,) degrees."""
    c = np.asarray(centers, float)
    return {"monotone exp(-θ/20°)": np.exp(-c / 20.0), "flat beyond 80°": np.exp(-np.minimum(c, 80.0) / 20.0)}


def beats_baselines(value: float, baselines: dict[str, float], margin: float = BASELINE_MARGIN) -> dict:
    """Whether ``value`` (a ρ or r of the decomposition, signed) beats the best of ``baselines``
    (name -> the same metric) by ``margin``. A baseline's sign is free (−r ranks pairs as well as
    r, reversed), so baselines are scored by |ρ| or |r|: met when value >= max |baseline| + margin.
    Returns {"met", "best_baseline", "best_value" (|.|), "margin"}. NaN values never meet a bar; NaN
    baselines are ignored; with no finite baseline the bar cannot be judged and is not met."""
    finite = {k: abs(v) for k, v in baselines.items() if np.isfinite(v)}
    if not finite:
        return {"met": False, "best_baseline": "none", "best_value": float("nan"), "margin": float(margin)}
    name, best = max(finite.items(), key=lambda kv: kv[1])
    met = bool(np.isfinite(value) and value >= best + margin)
    return {"met": met, "best_baseline": name, "best_value": float(best), "margin": float(margin)}
