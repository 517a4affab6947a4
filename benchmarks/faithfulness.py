"""How faithful are the many-body maps? Every decomposition against a potential whose many-body
split is known (systems/lj: pure pairs; systems/mw: pairs + triplets), beside baselines that know
only distances, on held-out frames. The metrics live in cgexplain.lrp.faithfulness.

For each run folder (a finished `cgexplain run systems/lj|mw [--arch so3net|mace]`), on
``--frames`` (3) frames of its mapped reference drawn evenly from the training's validation split
(train/split.npz: frames the model never trained on):

Truth (cgexplain.reference.potentials, the reference's own parameters): pair energies u_ij of every
pair within the model cutoff and three-body energies t_ijk of every triplet with a vertex whose two
legs are inside the shell (mW: aσ = 4.31 Å; 0 for LJ).

(A) Did the model learn the true split? (energy units, kcal/mol; unscaled)
- MACE (body order 3): its exact pair and triplet terms (cgexplain.lrp.bodyorder) on every pair
  and triplet;
- PaiNN / SO3net: deletion interactions I_ijk and pure terms d(ijk) on ``--triplets`` triplets per
  frame drawn uniformly among those with t >= 0.1 kcal/mol, and I_ij on ``--pairs`` pairs against
  I*_ij = u_ij + Σ_k t_ijk.
(B) Is the explanation faithful to the same network? GNN-LRP per-triplet sums (both rules) against
  the network's own I_ijk on the sampled triplets with |I| >= 0.1 kcal/mol.

Per-triplet metrics (cgexplain.lrp.faithfulness.item_metrics): ρ over all triplets and over those
with t >= 0.1 kcal/mol (n and the share of Σ|t| they carry), and slope, intercept, R², RMSE where
the decomposition is in kcal/mol. Curves: the 3-body term against the vertex angle (10° bins from
50°, ≥ 20 points per bin): its minimum, Pearson r over the bins ≥ 80° and the amplitude ratio; the
2-body term against distance: Pearson r against u(r) binned the same way, unscaled where in
kcal/mol. Baselines beside every number: the radial envelope Σ g(r)g(r′) of mW's own cutoff
function, the shortest legs, the sum of distances; for pairs the proximity −r and the envelope; for
the angle curve the baselines binned by angle and two synthetic curves without the 109.47° minimum.
A bar is met only when the decomposition beats the best baseline (by |ρ| or |r|: a ranking's sign
is free) by 0.2. Pairs have no such bar: u(r) is a function of distance, so a distance-only
ranking matches it (|ρ| ≈ 1); they are judged in kcal/mol (slope, R², RMSE, max |Δ| of the curve). Vacancy check: ΔE(X∖i) =
E(X) − E(X∖i) of the network against the truth on ``--vacancies`` beads per frame. LJ:
rms(3-body)/rms(2-body) and the largest |pair curve − u(r)| from where the reference g(r) first
exceeds 0.1 out to the cutoff. LRP enumerates every walk of each frame, so the body-order shares
s_k and σ_k (of Σ|R| over walks of >= 2 beads) are per frame, printed with their s.d. over frames. Not a timed test; wall time printed.

    python benchmarks/faithfulness.py runs/mw-quick-mace runs/mw-quick [--frames 3] [--triplets 150]
        [--pairs 100] [--vacancies 6] [--json out.json] [--figures docs/figures]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from cgexplain.analysis.structure import rdf
from cgexplain.fileio import read_json
from cgexplain.geometry.neighbors import pairs_within
from cgexplain.lrp import walk_relevance
from cgexplain.lrp.bodyorder import body_order_terms, pair_distances, vertex_points
from cgexplain.lrp.branching import set_relevance
from cgexplain.lrp.faithfulness import (
    TRIPLET_THRESHOLD,
    beats_baselines,
    binned_curve,
    curve_metrics,
    item_metrics,
    pair_baselines,
    synthetic_angle_curves,
    triplet_baselines,
)
from cgexplain.lrp.interactions import SubsetEnergy, deletion_interactions, pure_terms, triplets_with_vertex
from cgexplain.lrp.nbody import body_order_abs_sums, body_order_shares, nbody_sums, pair_relevance, triplet_relevance
from cgexplain.mapping.maps import to_atoms
from cgexplain.model.potential import load_model
from cgexplain.reference.potentials import MW, LennardJones
from cgexplain.workflow.run import RunFolder

RULES = {"γ0.1+bias": (0.1, True), "γ0": (0.0, False)}
#: branching walks and trees (cgexplain.lrp.branching, PaiNN only): per-set sums, no walk enumeration
BRANCHING = {
    "branching γ0.1+bias": ("branching", 0.1, True),
    "branching γ0": ("branching", 0.0, False),
    "branching-tree γ0.1+bias": ("branching-tree", 0.1, True),
    "branching-tree γ0": ("branching-tree", 0.0, False),
}
ANGLE_EDGES = np.arange(50.0, 181.0, 10.0)


def _potential(run: RunFolder):
    s = read_json(run.reference_json)["settings"]
    if s["system"] == "lj":
        return "lj", LennardJones(**s.get("potential", {}))
    if s["system"] == "mw":
        return "mw", MW(**s.get("potential", {}))
    raise SystemExit(f"{run}: reference system {s['system']!r} has no known many-body split (use systems/lj or systems/mw)")


def _lookup(keys: np.ndarray, table_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    d = {tuple(k): v for k, v in zip(np.asarray(table_keys).tolist(), values)}
    return np.array([d.get(tuple(k), 0.0) for k in np.asarray(keys).tolist()], dtype=float)


def _held_out(run: RunFolder, n: int) -> np.ndarray:
    split = run.folder("train") / "split.npz"
    if not split.exists():
        raise SystemExit(f"{split}: no training split (run the train stage first)")
    val = np.sort(np.load(split)["val"])
    return val[np.unique(np.linspace(0, len(val) - 1, n).round().astype(int))]


def _removed_energy(pot, x, cell, i) -> float:
    keep = np.ones(len(x), bool)
    keep[i] = False
    return pot.energy(x, cell) - pot.energy(x[keep], cell)


class _Acc:
    """Lists of per-frame arrays under names; cat() concatenates them."""

    def __init__(self):
        self.d: dict[str, list] = {}

    def add(self, k, v):
        self.d.setdefault(k, []).append(np.asarray(v, dtype=float))

    def cat(self, k):
        return np.concatenate(self.d[k]) if k in self.d else np.zeros(0)

    def __contains__(self, k):
        return k in self.d


def run_one(run_path: Path, n_frames: int, n_tri: int, n_pairs: int, n_vac: int, seed: int, figures: Path | None, device: str) -> dict:
    run = RunFolder(run_path)
    system, pot = _potential(run)
    model, meta = load_model(run.model)
    model = model.double().to(device)
    hp = meta["hparams"]
    arch = hp["representation"]
    cutoff = float(hp["cutoff"])
    shell = float(pot.cutoff if system == "mw" else 5.2)
    envelope = pot.three_body_envelope if system == "mw" else None
    with np.load(run.mapped) as z:
        P, C, types = z["positions"], z["cells"], z["bead_types"]
    frames = _held_out(run, n_frames)
    rng = np.random.default_rng(seed)
    acc = _Acc()
    shares: dict[str, list] = {r: [] for r in RULES}
    set_shares: dict[str, list] = {}
    rho_frames: dict[str, list] = {}
    t0 = time.perf_counter()
    for f in frames:
        x, cell = P[f].astype(float), C[f].astype(float)
        n = len(x)
        pairs = pairs_within(x, cell, cutoff)
        dist = pair_distances(x, cell, pairs)
        pp, pe = pot.pair_energies(x, cell)
        u = _lookup(pairs, pp, pe)
        tri = triplets_with_vertex(x, cell, shell)
        if system == "mw":
            tt, te = pot.triplet_energies(x, cell)
            t = _lookup(tri, tt, te)
        else:
            t = np.zeros(len(tri))
        acc.add("dist", dist), acc.add("u", u), acc.add("t", t)
        th_t, v_t = vertex_points(x, cell, tri, t, shell)
        acc.add("ang_truth_x", th_t), acc.add("ang_truth_y", v_t)
        if envelope is not None:
            for name, b in triplet_baselines(x, cell, tri, envelope, shell).items():
                acc.add(f"tri_base:{name}", b)
                th, v = vertex_points(x, cell, tri, b, shell)
                acc.add(f"ang_base:{name}_x", th), acc.add(f"ang_base:{name}_y", v)
        for name, b in pair_baselines(dist, envelope).items():
            acc.add(f"pair_base:{name}", b)
        E = SubsetEnergy(model, x, types, cell, batch_size=8)
        if arch == "mace":
            bt = body_order_terms(model, x, types, cell)
            d2, d3 = _lookup(pairs, bt.pairs, bt.pair_terms), _lookup(tri, bt.triplets, bt.triplet_terms)
            acc.add("pair:exact", d2), acc.add("tri:exact", d3)
            th, v = vertex_points(x, cell, tri, d3, shell)
            acc.add("ang:exact_x", th), acc.add("ang:exact_y", v)
            acc.add("remainder", [bt.remainder])
            acc.add("all:d2", bt.pair_terms), acc.add("all:d3", bt.triplet_terms)  # every term of the frame, within the model cutoff
            rho_frames.setdefault("exact", []).append(item_metrics(d3, t, threshold=TRIPLET_THRESHOLD)["spearman_sel"] if system == "mw" else np.nan)
        else:
            sel = np.flatnonzero(np.abs(t) >= TRIPLET_THRESHOLD) if system == "mw" else np.arange(len(tri))
            pick = rng.choice(sel, min(n_tri, len(sel)), replace=False)
            ts = tri[pick]
            I3 = deletion_interactions(E, n, ts)
            acc.add("tri_s:truth", t[pick]), acc.add("tri_s:deletion", I3), acc.add("tri_s:pure", pure_terms(E, n, ts))
            th, v = vertex_points(x, cell, ts, I3, shell)
            acc.add("ang:deletion_x", th), acc.add("ang:deletion_y", v)
            th, v = vertex_points(x, cell, ts, t[pick], shell)  # the truth on the same sampled triplets
            acc.add("ang_truth_s_x", th), acc.add("ang_truth_s_y", v)
            if envelope is not None:  # distance-only curves on the same sample: can the (B) curve bar fail?
                for name, bvals in triplet_baselines(x, cell, ts, envelope, shell).items():
                    th, v = vertex_points(x, cell, ts, bvals, shell)
                    acc.add(f"angs_base:{name}_x", th), acc.add(f"angs_base:{name}_y", v)
            pk = rng.choice(len(pairs), min(n_pairs, len(pairs)), replace=False)
            extra = {}
            if system == "mw":
                for (a, b, c), val in zip(tt.tolist(), te):
                    for q in ((a, b), (a, c), (b, c)):
                        extra[q] = extra.get(q, 0.0) + val
            istar = u[pk] + np.array([extra.get(tuple(q), 0.0) for q in pairs[pk].tolist()])
            acc.add("pair_s:istar", istar), acc.add("pair_s:deletion", deletion_interactions(E, n, pairs[pk]))
            at = to_atoms(x, types, cell)
            L = int(model.representation.n_interactions)
            for rname, (g, br) in RULES.items():
                res = walk_relevance(model, at, gamma=g, bias_rule=br)  # every walk: s_k and σ_k need Σ|R| of all of them
                w, r = res["walks"], res["relevance"]
                lp, lr, _ = pair_relevance(w, r)
                lt, ltr = triplet_relevance(w, r)
                lrp_t = _add_lrp(acc, f"LRP {rname}", x, cell, shell, _lookup(pairs, lp, lr), _lookup(tri, lt, ltr), tri, pick)
                sums = nbody_sums(w, r)
                sh = body_order_shares(np.array([sums[k][0] for k in sorted(sums)]), body_order_abs_sums(w, r, L + 1))
                shares[rname].append(sh)
                set_shares.setdefault(rname, []).append(_set_shares(lr, ltr, sum(v for k, (v, _) in sums.items() if k >= 4)))
                if system == "mw":
                    rho_frames.setdefault(f"LRP {rname}", []).append(item_metrics(lrp_t, t, threshold=TRIPLET_THRESHOLD)["spearman_sel"])
            if arch == "painn":
                for rname, (rule, g, br) in BRANCHING.items():
                    sr = set_relevance(model, at, rule=rule, gamma=g, bias_rule=br)
                    lrp_pairs, lrp_t = _lookup(pairs, sr["pairs"], sr["pair_relevance"]), _lookup(tri, sr["triplets"], sr["triplet_relevance"])
                    _add_lrp(acc, f"LRP {rname}", x, cell, shell, lrp_pairs, lrp_t, tri, pick)
                    set_shares.setdefault(rname, []).append(_set_shares(sr["pair_relevance"], sr["triplet_relevance"], sr["totals"].get(4, 0.0)))
                    acc.add(f"conservation:{rname}", [sr["conserved"] - sr["conserved_autograd"]])
                    acc.add(f"seconds:{rname}", [sr["wall_time_s"]])
                    if system == "mw":
                        rho_frames.setdefault(f"LRP {rname}", []).append(item_metrics(lrp_t, t, threshold=TRIPLET_THRESHOLD)["spearman_sel"])
        # vacancy check: how far deletion takes the network from its data, against the truth
        vac = rng.choice(n, min(n_vac, n), replace=False)
        keep = np.ones((len(vac), n), bool)
        keep[np.arange(len(vac)), vac] = False
        e_full = float(E(np.ones((1, n), bool))[0])
        acc.add("vac:net", e_full - E(keep)), acc.add("vac:true", [_removed_energy(pot, x, cell, i) for i in vac])
        print(
            f"  [{run.root.name}] frame {f}: {len(pairs)} pairs, {len(tri)} triplets; {E.n_evaluations} subset energies; {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return _report(run, system, arch, hp, frames, shell, acc, shares, set_shares, rho_frames, cutoff, figures, time.perf_counter() - t0)


def _add_lrp(acc: _Acc, name: str, x, cell, shell: float, pair_rel, tri_rel, tri, pick) -> np.ndarray:
    """Record one LRP decomposition of a frame: its per-pair and per-triplet sums (``pair_rel``,
    ``tri_rel`` aligned with the frame's pairs and triplets ``tri``), the deletion sample ``pick``'s
    triplets, and the 3-body points against vertex angle over all triplets and over the sample (for
    (B)). Returns ``tri_rel``."""
    acc.add(f"pair:{name}", pair_rel)
    acc.add(f"tri:{name}", tri_rel)
    acc.add(f"tri_s:{name}", tri_rel[pick])
    th, v = vertex_points(x, cell, tri[pick], tri_rel[pick], shell)
    acc.add(f"angs:{name}_x", th), acc.add(f"angs:{name}_y", v)
    th, v = vertex_points(x, cell, tri, tri_rel, shell)
    acc.add(f"ang:{name}_x", th), acc.add(f"ang:{name}_y", v)
    return tri_rel


def _set_shares(pair_rel, tri_rel, rest: float) -> dict:
    """Signed body-order shares over bead *sets* of >= 2 beads: Σ R / (Σ|R(pair)| + Σ|R(triplet)|
    + |R(4 or more beads)|), {2, 3, 4}. The same for every rule (branching walks have no per-walk
    |R|); rest: the total of the sets of 4 or more beads."""
    p, t = np.asarray(pair_rel, float), np.asarray(tri_rel, float)
    den = float(np.abs(p).sum() + np.abs(t).sum() + abs(rest))
    return {2: float(p.sum()) / den, 3: float(t.sum()) / den, 4: float(rest) / den}


def _angle(acc: _Acc, key: str):
    return binned_curve(acc.cat(f"{key}_x"), acc.cat(f"{key}_y"), ANGLE_EDGES)


def _report(run, system, arch, hp, frames, shell, acc, shares, set_shares, rho_frames, cutoff, figures, seconds) -> dict:
    train = read_json(run.folder("train") / "training.json")
    out: dict = {
        "run": str(run.root),
        "system": system,
        "arch": arch,
        "frames": [int(f) for f in frames],
        "shell_A": shell,
        "force_mae_per_component": train["validation"].get("force_mae"),
        "force_rmse_per_component": train["validation"].get("force_rmse"),
        "seconds": seconds,
    }
    t, u, dist = acc.cat("t"), acc.cat("u"), acc.cat("dist")
    out["n_pairs"], out["n_triplets"] = int(len(u)), int(len(t))
    redges = np.linspace(2.0, cutoff, 31)
    rc, u_curve, _ = binned_curve(dist, u, redges)
    # (A) and (B): per-triplet and per-pair metrics
    A: dict = {}
    B: dict = {}
    base_tri = {k.split(":", 1)[1]: item_metrics(acc.cat(k), t, threshold=TRIPLET_THRESHOLD) for k in acc.d if k.startswith("tri_base:")}
    base_pair = {k.split(":", 1)[1]: item_metrics(acc.cat(k), u) for k in acc.d if k.startswith("pair_base:")}
    c_ang, truth_ang, cnt = _angle(acc, "ang_truth")
    base_ang = {
        k[len("ang_base:") : -2]: curve_metrics(c_ang, _angle(acc, k[:-2])[1], truth_ang)
        for k in acc.d
        if k.startswith("ang_base:") and k.endswith("_x")
    }
    if system == "mw":
        base_ang.update({k: curve_metrics(c_ang, v, truth_ang) for k, v in synthetic_angle_curves(c_ang).items()})
    out["baselines"] = {"triplets": base_tri, "pairs": base_pair, "angle_curve": base_ang}
    best_tri = {k: v["spearman_sel"] for k, v in base_tri.items()}
    best_ang = {k: v["pearson_floor"] for k, v in base_ang.items()}
    # pairs: the truth is a function of distance, so a distance-only ranking or curve shape matches it
    # (|ρ| ~ 1); what discriminates is agreement in kcal/mol (slope, RMSE, max |Δ| of the curve)
    out["baselines"]["pair_curve_r"] = {
        k: curve_metrics(rc, binned_curve(dist, acc.cat(f"pair_base:{k}"), redges)[1], u_curve, floor=None)["pearson"] for k in base_pair
    }
    for key in [k for k in acc.d if k.startswith("tri:")]:
        name = key[4:]
        energy = not name.startswith("LRP")
        m = item_metrics(acc.cat(key), t, threshold=TRIPLET_THRESHOLD if system == "mw" else None, energy_units=energy)
        cm = curve_metrics(c_ang, _angle(acc, f"ang:{name}")[1], truth_ang) if system == "mw" else {}
        pm = item_metrics(acc.cat(f"pair:{name}"), u, energy_units=energy)
        _, pc, _ = binned_curve(dist, acc.cat(f"pair:{name}"), redges)
        row = {"triplets": m, "angle_curve": cm, "pairs": pm, "pair_curve_r": curve_metrics(rc, pc, u_curve, floor=None)["pearson"]}
        if system == "mw":
            row["bar_triplets"] = beats_baselines(m["spearman_sel"], best_tri)
            row["bar_angle_curve"] = beats_baselines(cm["pearson_floor"], best_ang)
            row["angle_min_in_100_120"] = bool(100 <= cm["min_center"] <= 120)
        if system == "lj" or energy:
            d2, d3 = acc.cat(f"pair:{name}"), acc.cat(key)
            if name == "exact":  # every pair and triplet term of the frames, not only those inside the shell
                d2, d3 = acc.cat("all:d2"), acc.cat("all:d3")
            row["rms3_over_rms2"] = float(np.sqrt(np.mean(d3**2)) / np.sqrt(np.mean(d2**2)))
            if energy:
                row["pair_curve_max_abs_dev"] = _pair_curve_dev(run, rc, pc, u_curve, redges, cutoff)
        if name in rho_frames and np.isfinite(rho_frames[name]).any():
            row["spearman_sel_per_frame_sd"] = float(np.nanstd(rho_frames[name]))
        A[name] = row
    if "tri_s:truth" in acc:
        ts, I3 = acc.cat("tri_s:truth"), acc.cat("tri_s:deletion")
        for name in ("deletion", "pure"):
            m = item_metrics(acc.cat(f"tri_s:{name}"), ts, threshold=TRIPLET_THRESHOLD if system == "mw" else None, energy_units=True)
            cm = (
                curve_metrics(c_ang, _angle(acc, "ang:deletion")[1], _angle(acc, "ang_truth_s")[1]) if (system == "mw" and name == "deletion") else {}
            )
            row = {"triplets (sampled, t >= 0.1)": m, "angle_curve (sampled triplets)": cm}
            if system == "mw":
                row["bar_triplets"] = beats_baselines(m["spearman_sel"], best_tri)
            else:
                row["rms(I_ijk)"] = float(np.sqrt(np.mean(acc.cat(f"tri_s:{name}") ** 2)))
            A[f"network {name}"] = row
        A["network deletion"]["pairs I_ij vs I*_ij"] = item_metrics(acc.cat("pair_s:deletion"), acc.cat("pair_s:istar"), energy_units=True)
        if system == "lj":
            A["network deletion"]["rms(I_ijk)/rms(I_ij)"] = float(np.sqrt(np.mean(I3**2)) / np.sqrt(np.mean(acc.cat("pair_s:deletion") ** 2)))
        for rname in [*RULES, *(BRANCHING if arch == "painn" else {})]:
            B[f"LRP {rname}"] = item_metrics(acc.cat(f"tri_s:LRP {rname}"), I3, threshold=TRIPLET_THRESHOLD)
            if system == "mw":  # the 3-body curve on the deletion sample against the network's own I_ijk curve there
                B[f"LRP {rname}"]["angle_curve_vs_deletion"] = curve_metrics(
                    c_ang, _angle(acc, f"angs:LRP {rname}")[1], _angle(acc, "ang:deletion")[1]
                )
            ss = set_shares.get(rname, [])
            B[f"LRP {rname}"]["sigma_set_k_mean"] = {str(k): float(np.mean([x[k] for x in ss])) for k in (2, 3, 4)} if ss else {}
            B[f"LRP {rname}"]["sigma_set_k_sd_over_frames"] = {str(k): float(np.std([x[k] for x in ss])) for k in (2, 3, 4)} if ss else {}
            if f"seconds:{rname}" in acc:
                B[f"LRP {rname}"]["seconds_per_frame"] = float(np.mean(acc.cat(f"seconds:{rname}")))
                B[f"LRP {rname}"]["max_abs_conservation_error"] = float(np.abs(acc.cat(f"conservation:{rname}")).max())
            sh = shares.get(rname, [])
            ks = sorted(sh[0]["signed"]) if sh else []
            for kind, label in (("abs", "s_k"), ("signed", "sigma_k")):
                B[f"LRP {rname}"][f"{label}_mean"] = {str(k): float(np.mean([x[kind][k] for x in sh])) for k in ks}
                B[f"LRP {rname}"][f"{label}_sd_over_frames"] = {str(k): float(np.std([x[kind][k] for x in sh])) for k in ks}
    out["A_model_vs_truth"] = A
    if system == "mw" and "ang:deletion_x" in acc:  # the baselines of the (B) curve bar, on the deletion sample
        B["baselines: 3-body curve on the deletion sample"] = {
            k[len("angs_base:") : -2]: curve_metrics(c_ang, _angle(acc, k[:-2])[1], _angle(acc, "ang:deletion")[1])
            for k in acc.d
            if k.startswith("angs_base:") and k.endswith("_x")
        }
    out["B_explanation_vs_network"] = B
    vn, vt = acc.cat("vac:net"), acc.cat("vac:true")
    out["vacancy"] = {**item_metrics(vn, vt, energy_units=True), "mean_true_kcal_mol": float(np.mean(vt)), "mean_net_kcal_mol": float(np.mean(vn))}
    if "remainder" in acc:
        out["max_abs_remainder_kcal_mol"] = float(np.abs(acc.cat("remainder")).max())
    out["curves"] = {
        "angle_centers_deg": c_ang.tolist(),
        "angle": {
            k[4:-2] if k.startswith("ang:") else k[:-2]: _angle(acc, k[:-2])[1].tolist()
            for k in acc.d
            if k.startswith(("ang:", "ang_truth")) and k.endswith("_x")
        },
        "r_centers_A": rc.tolist(),
        "pair": {"truth": u_curve.tolist(), **{k[5:]: binned_curve(dist, acc.cat(k), redges)[1].tolist() for k in acc.d if k.startswith("pair:")}},
    }
    if figures is not None:
        _figures(figures, system, arch, c_ang, truth_ang, acc, rc, u_curve, redges, dist)
    return out


def _pair_curve_dev(run, rc, pc, u_curve, redges, cutoff) -> dict:
    """max |pair curve − u(r)| kcal/mol over the bins from where the reference g(r) first exceeds
    0.1 out to the cutoff."""
    with np.load(run.mapped) as z:
        P, C = z["positions"][::10], z["cells"][::10]
    r, g = rdf(P, C, r_max=float(cutoff), n_bins=120)
    r_on = float(r[np.argmax(g > 0.1)])
    ok = (rc >= r_on) & np.isfinite(pc) & np.isfinite(u_curve)
    return {"from_A": r_on, "max_abs_dev_kcal_mol": float(np.max(np.abs(pc[ok] - u_curve[ok]))) if ok.any() else float("nan"), "bins": int(ok.sum())}


def _figures(figures: Path, system, arch, c_ang, truth_ang, acc, rc, u_curve, redges, dist):
    from cgexplain.plots.core import plot_relevance_curves

    figures.mkdir(parents=True, exist_ok=True)
    curves = {"truth u(r)": (rc, u_curve, None)}
    for k in acc.d:
        if k.startswith("pair:"):
            curves[k[5:] + (" (kcal/mol)" if not k.startswith("pair:LRP") else " (relevance)")] = (
                rc,
                binned_curve(dist, acc.cat(k), redges)[1],
                None,
            )
    plot_relevance_curves(
        curves,
        rc,
        np.zeros_like(rc),
        "r (Å)",
        "",
        "kcal/mol (unscaled)",
        figures / f"faithfulness_{system}_{arch}_2body.png",
        f"{system} {arch}: 2-body terms",
    )
    if system == "mw":
        curves = {"truth t (φ3), all triplets": (c_ang, truth_ang, None)}
        if "ang_truth_s_x" in acc:  # the deletion sample holds the triplets with t >= 0.1 only
            curves["truth t, sampled triplets (t ≥ 0.1)"] = (c_ang, _angle(acc, "ang_truth_s")[1], None)
        for k in acc.d:
            if k.startswith("ang:") and k.endswith("_x"):
                label = k[4:-2] + (" (sampled triplets)" if k.startswith("ang:deletion") else "")
                curves[label] = (c_ang, _angle(acc, k[:-2])[1], None)
        plot_relevance_curves(
            curves,
            c_ang,
            np.zeros_like(c_ang),
            "vertex angle (degrees)",
            "",
            "kcal/mol (unscaled; LRP: relevance)",
            figures / f"faithfulness_{system}_{arch}_3body.png",
            f"{system} {arch}: 3-body terms",
        )


def _fmt_item(m: dict) -> str:
    s = f"ρ {m['spearman']:.2f} (n {m['n']})"
    if "spearman_sel" in m:
        s += f"; |t|≥{m['threshold']:g}: ρ {m['spearman_sel']:.2f} (n {m['n_sel']}, {100 * m['share_sel']:.0f} % of Σ|t|)"
    if "slope" in m:
        s += f"; slope {m['slope']:.3f}, R² {m['r2']:.3f}, RMSE {m['rmse']:.4f} kcal/mol"
    return s


def _fmt_curve(c: dict) -> str:
    if not c:
        return "–"
    return f"min at {c['min_center']:.0f}° (truth {c['truth_min_center']:.0f}°), r(≥80°) {c['pearson_floor']:.2f}, r(all) {c['pearson']:.2f}, amplitude {c['amplitude_ratio']:.2f}"


def _print(res: dict) -> None:
    print(
        f"\n== {res['system']} {res['arch']} ({res['run']}): held-out frames {res['frames']}, {res['n_pairs']} pairs, {res['n_triplets']} triplets; "
        f"force MAE {res['force_mae_per_component']:.3f} kcal/mol/Å per component; {res['seconds']:.0f} s"
    )
    for k, m in res["baselines"]["triplets"].items():
        print(f"  baseline  triplets  {k:<22} {_fmt_item(m)}")
    for k, m in res["baselines"]["pairs"].items():
        print(f"  baseline  pairs     {k:<22} {_fmt_item(m)}; pair curve r {res['baselines']['pair_curve_r'][k]:.2f}")
    for k, c in res["baselines"]["angle_curve"].items():
        print(f"  baseline  3-b curve {k:<22} {_fmt_curve(c)}")
    for name, row in res["A_model_vs_truth"].items():
        for k, v in row.items():
            if isinstance(v, dict) and "spearman" in v:
                print(f"  (A) {name:<20} {k:<30} {_fmt_item(v)}")
            elif isinstance(v, dict) and "min_center" in v:
                print(f"  (A) {name:<20} {k:<30} {_fmt_curve(v)}")
            elif isinstance(v, dict) and "met" in v:
                print(
                    f"  (A) {name:<20} {k:<30} {'MET' if v['met'] else 'not met'} (best baseline {v['best_baseline']} {v['best_value']:.2f} + {v['margin']})"
                )
            else:
                print(f"  (A) {name:<20} {k:<30} {v}")
    for name, m in res["B_explanation_vs_network"].items():
        if name.startswith("baselines"):
            for k, c in m.items():
                print(
                    f"  (B) baseline {k:<22} 3-body curve on the deletion sample: min at {c['min_center']:.0f}° (network I_ijk curve {c['truth_min_center']:.0f}°), r(≥80°) {c['pearson_floor']:.2f}"
                )
            continue
        print(f"  (B) {name:<20} vs network I_ijk          {_fmt_item(m)}")
        if "angle_curve_vs_deletion" in m:
            c = m["angle_curve_vs_deletion"]
            print(
                f"      3-body curve on the deletion sample: min at {c['min_center']:.0f}° (network I_ijk curve {c['truth_min_center']:.0f}°), r(≥80°) {c['pearson_floor']:.2f}"
            )
        print(
            f"      shares over walks of >= 2 beads, mean (s.d. over frames): s_k {m.get('s_k_mean')} ({m.get('s_k_sd_over_frames')}); σ_k {m.get('sigma_k_mean')} ({m.get('sigma_k_sd_over_frames')})"
        )
        print(f"      signed shares over bead sets of >= 2 beads: σ_k {m.get('sigma_set_k_mean')} ({m.get('sigma_set_k_sd_over_frames')})")
        if "seconds_per_frame" in m:
            print(f"      {m['seconds_per_frame']:.1f} s per frame; max |Σ R − Σ h0·∂E_b/∂h0| {m['max_abs_conservation_error']:.2g} kcal/mol")
    print(
        f"  vacancy ΔE(X∖i): {_fmt_item(res['vacancy'])}; mean true {res['vacancy']['mean_true_kcal_mol']:.2f}, network {res['vacancy']['mean_net_kcal_mol']:.2f} kcal/mol"
    )
    if "max_abs_remainder_kcal_mol" in res:
        print(f"  exact terms: max |E − Σ terms| {res['max_abs_remainder_kcal_mol']:.2g} kcal/mol")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=3, help="held-out frames (from the validation split, evenly spaced)")
    ap.add_argument("--triplets", type=int, default=150, help="sampled triplets (t >= 0.1 kcal/mol) per frame for deletion interactions")
    ap.add_argument("--pairs", type=int, default=100, help="sampled pairs per frame for deletion interactions")
    ap.add_argument("--vacancies", type=int, default=6, help="beads removed one at a time per frame for the vacancy check")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--figures", type=Path, default=None)
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    results = []
    for r in args.runs:
        results.append(run_one(r, args.frames, args.triplets, args.pairs, args.vacancies, args.seed, args.figures, args.device))
        _print(results[-1])
        if args.json:  # after each run, so a run cut short keeps the finished ones
            args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
