"""How faithful are the explanations? GNN-LRP and the network's own many-body expansion against a
potential whose many-body split is known (systems/lj: pure pairs; systems/mw: pairs + triplets).

For each run folder (a finished `cgexplain run systems/lj|mw [--arch so3net]`), on ``--frames``
(50) frames of its mapped reference (``cg/mapped.npz``); the network's deletion interactions and
pure terms on the first ``--deletion-frames`` (10) of them:

Truth (cgexplain.reference.potentials, the reference's own parameters): pair energies u_ij for every pair
within the model cutoff, three-body energies t_ijk (mW; 0 for LJ), and the true deletion pair
interaction I*_ij = u_ij + Σ_k t_ijk.

Is the network itself right? (cgexplain.lrp.interactions; on ``--pairs`` sampled pairs and
``--triplets`` sampled triplets per frame, triplets with two legs inside ``--shell``)
- deletion interactions I_ij against I*_ij and I_ijk against t_ijk: Pearson r, Spearman ρ, RMSE;
- LJ: rms(I_ijk) / rms(I_ij) (the truth is 0);
- pure sub-cluster terms d(ij) against u_ij and d(ijk) against t_ijk (the network on isolated
  clusters, far from the liquid it was trained on).

Is GNN-LRP faithful? (per rule: γ 0.1 with the bias rule, γ 0 without; pruned enumeration)
- per-pair sums of the 2-body walk relevances against u_ij and against the network's I_ij;
  per-triplet sums of the 3-body walks against t_ijk (mW) and the network's I_ijk: Spearman ρ and
  sign agreement;
- binned curves: LRP 2-body (per-pair sums) against distance next to u(r) binned the same way,
  and 3-body (per-triplet sums, at each vertex with both legs inside the shell) against the
  vertex angle next to t binned the same way: Pearson r of the curves (bins with >= 20 points);
- body-order shares of |R| over walks of >= 2 beads, s_k, and signed shares σ_k (every walk of
  the first frame enumerated).

The network's deletion interactions also give a 3-body angle curve (on the triplet sample): it is
reported beside LRP's. One table is printed; ``--json`` writes the numbers and ``--figures`` the
curves. Sample sizes are printed beside every number. Not a timed test.

    python benchmarks/faithfulness.py runs/lj-quick runs/mw-quick [--frames 10] [--pairs 200] [--triplets 200]
        [--triplets-per-bin 20] [--device cuda]

``--triplets-per-bin`` tops the deletion sample up, per frame and 10° vertex-angle bin, so that the
rare angles (50–60°, 140–180°) reach 200 points per bin for the deletion angle curve; per-triplet
statistics use the uniform sample only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from cgexplain.fileio import read_json
from cgexplain.lrp import walk_relevance
from cgexplain.lrp.interactions import SubsetEnergy, deletion_interactions, pairs_within, pure_terms, triplets_with_vertex
from cgexplain.lrp.nbody import binned_statistics, body_order_abs_sums, body_order_shares, nbody_sums, pair_relevance, triplet_relevance
from cgexplain.mapping.maps import to_atoms
from cgexplain.model.potential import load_model
from cgexplain.reference.potentials import MW, LennardJones
from cgexplain.workflow.run import RunFolder

RULES = {"γ0.1+bias": (0.1, True), "γ0": (0.0, False)}


def _potential(run: RunFolder):
    s = read_json(run.reference_json)["settings"]
    if s["system"] == "lj":
        return "lj", LennardJones(**s.get("potential", {}))
    if s["system"] == "mw":
        return "mw", MW(**s.get("potential", {}))
    raise SystemExit(f"{run}: reference system {s['system']!r} has no known many-body split (use systems/lj or systems/mw)")


def _lookup(keys: np.ndarray, table_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    d = {tuple(k): v for k, v in zip(table_keys.tolist(), values)}
    return np.array([d.get(tuple(k), 0.0) for k in keys.tolist()])


def _mic(d, cell):
    """Minimum-image displacement vectors d (m, 3) Å in the periodic cell (3, 3) Å."""
    f = d @ np.linalg.inv(cell)
    return (f - np.round(f)) @ cell


def _mic_dist(x, cell, a, b):
    return np.linalg.norm(_mic(x[b] - x[a], cell), axis=-1)


def _vertex_points(x, cell, tri, shell):
    """(triplet row, vertex angle degrees) for each vertex of each triplet with both legs < shell."""
    rows, ang = [], []
    for v in range(3):
        c, a, b = tri[:, v], tri[:, (v + 1) % 3], tri[:, (v + 2) % 3]
        va, vb = _mic(x[a] - x[c], cell), _mic(x[b] - x[c], cell)
        ra, rb = np.linalg.norm(va, axis=1), np.linalg.norm(vb, axis=1)
        ok = (ra < shell) & (rb < shell)
        cos = (va * vb).sum(1)[ok] / (ra[ok] * rb[ok])
        rows.append(np.flatnonzero(ok))
        ang.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.concatenate(rows), np.concatenate(ang)


ANGLE_EDGES = np.arange(50.0, 181.0, 10.0)  # degrees: the 3-body curves' bins


def _stratified(x, cell, tri, shell, edges, per_bin, exclude, rng) -> np.ndarray:
    """Rows of ``tri`` (not in ``exclude``), up to ``per_bin`` per vertex-angle bin, drawn uniformly
    within each bin (a triplet is binned by its first vertex with both legs inside the shell)."""
    if per_bin <= 0 or len(tri) == 0:
        return np.zeros(0, np.int64)
    rows, ang = _vertex_points(x, cell, tri, shell)
    first = {}
    for r, a in zip(rows.tolist(), ang.tolist()):
        first.setdefault(r, a)
    r_ = np.array([r for r in first if r not in exclude], dtype=np.int64)
    a_ = np.array([first[r] for r in r_.tolist()])
    b_ = np.digitize(a_, edges) - 1
    out = []
    for b in range(len(edges) - 1):
        cand = r_[b_ == b]
        out.append(rng.choice(cand, min(per_bin, len(cand)), replace=False))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _stats(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return {
            "n": len(a),
            "pearson": float("nan"),
            "spearman": float("nan"),
            "rmse": float(np.sqrt(np.mean((a - b) ** 2))) if len(a) else float("nan"),
            "sign_agreement": float("nan"),
        }
    nz = np.abs(b) > 1e-12
    return {
        "n": len(a),
        "pearson": float(np.corrcoef(a, b)[0, 1]),
        "spearman": float(spearmanr(a, b)[0]),
        "rmse": float(np.sqrt(np.mean((a - b) ** 2))),
        "sign_agreement": float(np.mean(np.sign(a[nz]) == np.sign(b[nz]))) if nz.any() else float("nan"),
    }


def _binned(x, y, edges, min_count=20):
    """Binned mean of y against x (NaN in bins with fewer than ``min_count`` points) and the counts."""
    st = binned_statistics(x, y, edges)
    return np.where(st["count"] >= min_count, st["mean"], np.nan), st["count"]


def _curve_r(a, b):
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() >= 3 and np.std(b[ok]) > 0 and np.std(a[ok]) > 0 else float("nan")


def run_one(
    run: Path,
    n_frames: int,
    n_pairs: int,
    n_triplets: int,
    shell: float | None,
    seed: int,
    figures: Path | None,
    deletion_frames: int = 10,
    triplets_per_bin: int = 0,
    device: str = "cpu",
) -> dict:
    run = RunFolder(run)
    system, pot = _potential(run)
    model, meta = load_model(run.model)
    model = model.double().to(device)
    hp = meta["hparams"]
    cutoff = float(hp["cutoff"])
    shell = float(shell or (pot.cutoff if system == "mw" else 5.2))
    with np.load(run.mapped) as z:
        P, C, types = z["positions"], z["cells"], z["bead_types"]
    frames = np.unique(np.linspace(0, len(P) - 1, n_frames).round().astype(int))
    rng = np.random.default_rng(seed)
    acc: dict = {
        "u": [],
        "Istar": [],
        "I2": [],
        "d2": [],
        "dist": [],
        "t": [],
        "I3": [],
        "d3": [],
        "ang_I3": [],
        "ang_t_s": [],
        "lrp": {
            r: {
                "p_all": [],
                "u_all": [],
                "dist_all": [],
                "p_s": [],
                "t_all": [],
                "tri_all_lrp": [],
                "tri_s": [],
                "ang": [],
                "ang_t": [],
                "shares": None,
            }
            for r in RULES
        },
    }
    t0 = time.perf_counter()
    for fi, f in enumerate(frames):
        x, cell = P[f].astype(float), C[f].astype(float)
        n = len(x)
        pairs = pairs_within(x, cell, cutoff)
        tri = triplets_with_vertex(x, cell, shell)
        pp, pe = pot.pair_energies(x, cell)
        tt, te = pot.triplet_energies(x, cell)
        u_all = _lookup(pairs, pp, pe)
        t_all = _lookup(tri, tt, te)
        # true deletion pair interaction: u_ij + Σ_k t_ijk
        extra = {}
        for (a, b, c), v in zip(tt.tolist(), te):
            for q in ((a, b), (a, c), (b, c)):
                extra[q] = extra.get(q, 0.0) + v
        istar_all = u_all + np.array([extra.get(tuple(q), 0.0) for q in pairs.tolist()])
        deletion = fi < deletion_frames  # the network's expansion on the first frames only (a full model pass per subset)
        ps = pairs[rng.choice(len(pairs), min(n_pairs if deletion else 0, len(pairs)), replace=False)]
        pick = rng.choice(len(tri), min(n_triplets if deletion else 0, len(tri)), replace=False)
        ts = tri[pick]
        # the angle-curve sample: the uniform one topped up, per 10° vertex-angle bin, with up to
        # triplets_per_bin more triplets drawn uniformly among the frame's triplets of that bin
        # (within a bin the sample stays uniform, so the binned mean is unbiased)
        extra_rows = _stratified(x, cell, tri, shell, ANGLE_EDGES, triplets_per_bin if deletion else 0, set(pick.tolist()), rng)
        tc = np.concatenate([ts, tri[extra_rows]]) if len(extra_rows) else ts
        E = SubsetEnergy(model, x, types, cell, batch_size=16)
        I2 = deletion_interactions(E, n, ps)
        I3c = deletion_interactions(E, n, tc)
        I3 = I3c[: len(ts)]
        d2 = pure_terms(E, n, ps)
        d3 = pure_terms(E, n, ts)
        acc["u"].append(_lookup(ps, pp, pe))
        acc["Istar"].append(_lookup(ps, pairs, istar_all))
        acc["I2"].append(I2), acc["d2"].append(d2), acc["dist"].append(_mic_dist(x, cell, ps[:, 0], ps[:, 1]))
        acc["t"].append(_lookup(ts, tt, te)), acc["I3"].append(I3), acc["d3"].append(d3)
        rows, ang = _vertex_points(x, cell, tc, shell)
        acc["ang_I3"].append(np.stack([ang, I3c[rows]], 1))
        acc["ang_t_s"].append(np.stack([ang, _lookup(tc, tt, te)[rows]], 1))
        acc["n_curve_triplets"] = acc.get("n_curve_triplets", 0) + len(tc)
        at = to_atoms(x, types, cell)
        L = int(model.representation.n_interactions)
        for rname, (g, br) in RULES.items():
            full = fi == 0
            res = walk_relevance(model, at, gamma=g, bias_rule=br, max_order=None if (full or L < 3) else L)
            w, r = res["walks"], res["relevance"]
            if full:
                sums = nbody_sums(w, r)
                sh = body_order_shares(np.array([sums[o][0] for o in sorted(sums)]), body_order_abs_sums(w, r, L + 1))
                acc["lrp"][rname]["shares"] = sh
            lp, lr, _ = pair_relevance(w, r)
            lt, ltr = triplet_relevance(w, r)
            a = acc["lrp"][rname]
            a["p_all"].append(_lookup(pairs, lp, lr)), a["u_all"].append(u_all), a["dist_all"].append(_mic_dist(x, cell, pairs[:, 0], pairs[:, 1]))
            a["p_s"].append(_lookup(ps, lp, lr))
            a["t_all"].append(t_all)
            a["tri_all_lrp"].append(_lookup(tri, lt, ltr))
            a["tri_s"].append(_lookup(ts, lt, ltr))
            rows_all, ang_all = _vertex_points(x, cell, tri, shell)
            a["ang"].append(np.stack([ang_all, _lookup(tri, lt, ltr)[rows_all]], 1))
            a["ang_t"].append(np.stack([ang_all, t_all[rows_all]], 1))
        print(
            f"  [{run.root.name}] frame {f}: {len(pairs)} pairs, {len(tri)} triplets; {E.n_evaluations} subset energies; {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    n_curve = acc.pop("n_curve_triplets", 0)
    cat = {k: np.concatenate(v) for k, v in acc.items() if k != "lrp"}
    out = {
        "run": str(run.root),
        "system": system,
        "arch": hp["representation"],
        "frames": len(frames),
        "deletion_frames": int(min(deletion_frames, len(frames))),
        "shell_A": shell,
        "pairs_sampled": int(len(cat["u"])),
        "triplets_sampled": int(len(cat["t"])),
        "angle_curve_triplets": int(n_curve),
        "device": str(device),
        "seconds": time.perf_counter() - t0,
    }
    net = {"I_ij vs I*_ij": _stats(cat["I2"], cat["Istar"]), "d_ij vs u_ij": _stats(cat["d2"], cat["u"])}
    if system == "lj":
        net["rms(I_ijk)/rms(I_ij)"] = float(np.sqrt(np.mean(cat["I3"] ** 2)) / np.sqrt(np.mean(cat["I2"] ** 2)))
        net["rms(d_ijk)/rms(d_ij)"] = float(np.sqrt(np.mean(cat["d3"] ** 2)) / np.sqrt(np.mean(cat["d2"] ** 2)))
        net["I_ij vs u_ij"] = net["I_ij vs I*_ij"]
    else:
        net["I_ijk vs t_ijk"] = _stats(cat["I3"], cat["t"])
        net["d_ijk vs t_ijk"] = _stats(cat["d3"], cat["t"])
    aedges = ANGLE_EDGES
    at_ = cat["ang_t_s"]
    tI, nI = _binned(cat["ang_I3"][:, 0], cat["ang_I3"][:, 1], aedges, 200)
    tT, _ = _binned(at_[:, 0], at_[:, 1], aedges, 200)
    net["3-body angle curve r (deletion)"] = _curve_r(tI, tT) if system == "mw" else float("nan")
    net["3-body angle curve min points per bin"] = int(nI.min())
    out["network"] = net
    redges = np.linspace(2.0, cutoff, 31)
    lrp = {}
    for rname, a in acc["lrp"].items():
        pa, ua, da = np.concatenate(a["p_all"]), np.concatenate(a["u_all"]), np.concatenate(a["dist_all"])
        ang, angt = np.concatenate(a["ang"]), np.concatenate(a["ang_t"])
        c2, _ = _binned(da, pa, redges)
        u2, _ = _binned(da, ua, redges)
        c3, n3 = _binned(ang[:, 0], ang[:, 1], aedges, 200)
        t3, _ = _binned(angt[:, 0], angt[:, 1], aedges, 200)
        sh = a["shares"]
        s = {
            "pairs vs u_ij (all pairs)": _stats(pa, ua),
            "pairs vs I_ij (network)": _stats(np.concatenate(a["p_s"]), cat["I2"]),
            "triplets vs I_ijk (network)": _stats(np.concatenate(a["tri_s"]), cat["I3"]),
            "2-body curve r vs u(r)": _curve_r(c2, u2),
            "3-body curve min points per bin": int(n3.min()),
            "s_k": {str(k): v for k, v in sh["abs"].items()},
            "sigma_k": {str(k): v for k, v in sh["signed"].items()},
        }
        if system == "mw":
            s["triplets vs t_ijk (all triplets)"] = _stats(np.concatenate(a["tri_all_lrp"]), np.concatenate(a["t_all"]))
            s["3-body curve r vs t"] = _curve_r(c3, t3)
        else:
            s["|σ3|+|σ4|"] = float(sum(abs(v) for k, v in sh["signed"].items() if int(k) >= 3))
        lrp[rname] = s
        if figures is not None:
            from cgexplain.plots.core import plot_relevance_curves

            figures.mkdir(parents=True, exist_ok=True)
            cen = 0.5 * (redges[1:] + redges[:-1])
            sc = np.nanmax(np.abs(c2)) / max(np.nanmax(np.abs(u2)), 1e-12)
            plot_relevance_curves(
                {"LRP per-pair sum": (cen, c2, None), f"u(r) × {sc:.2g}": (cen, u2 * sc, None)},
                cen,
                np.zeros_like(cen),
                "r (Å)",
                "",
                "kcal/mol",
                figures / f"faithfulness_{system}_{hp['representation']}_{_tag(rname)}_2body.png",
                f"{system} {hp['representation']} {rname}: 2-body",
            )
            if system == "mw":
                ca = 0.5 * (aedges[1:] + aedges[:-1])
                sc3 = np.nanmax(np.abs(c3)) / max(np.nanmax(np.abs(t3)), 1e-12)
                sci = np.nanmax(np.abs(c3)) / max(np.nanmax(np.abs(tI)), 1e-12)
                plot_relevance_curves(
                    {
                        "LRP per-triplet sum": (ca, c3, None),
                        f"true φ3 × {sc3:.2g}": (ca, t3 * sc3, None),
                        f"deletion I_ijk × {sci:.2g}": (ca, tI * sci, None),
                    },
                    ca,
                    np.zeros_like(ca),
                    "vertex angle (degrees)",
                    "",
                    "kcal/mol",
                    figures / f"faithfulness_{system}_{hp['representation']}_{_tag(rname)}_3body.png",
                    f"{system} {hp['representation']} {rname}: 3-body",
                )
    out["lrp"] = lrp
    return out


def _tag(rname):
    return "g01" if rname.startswith("γ0.1") else "g0"


def _fmt(s):
    if isinstance(s, dict) and "spearman" in s:
        return f"ρ {s['spearman']:.2f}, r {s['pearson']:.2f}, sign {s['sign_agreement']:.0%} (n {s['n']})"
    if isinstance(s, float):
        return f"{s:.3f}"
    return str(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=50, help="frames explained by LRP (evenly spaced)")
    ap.add_argument("--deletion-frames", type=int, default=10, help="of those, the first N also get deletion interactions")
    ap.add_argument("--pairs", type=int, default=200, help="sampled pairs per frame for the deletion interactions")
    ap.add_argument("--triplets", type=int, default=200, help="sampled triplets per frame for the deletion interactions")
    ap.add_argument("--triplets-per-bin", type=int, default=0, help="extra triplets per 10° vertex-angle bin and frame for the deletion angle curve")
    ap.add_argument("--device", default="cpu", help="torch device of the model (cpu, cuda)")
    ap.add_argument("--shell", type=float, default=None, help="triplet leg cutoff Å (default: mW aσ = 4.31, LJ 5.2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--figures", type=Path, default=None)
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    results = []
    for r in args.runs:
        results.append(
            run_one(
                r,
                args.frames,
                args.pairs,
                args.triplets,
                args.shell,
                args.seed,
                args.figures,
                args.deletion_frames,
                args.triplets_per_bin,
                args.device,
            )
        )
        if args.json:  # after each run, so a run cut short keeps the finished ones
            args.json.write_text(json.dumps(results, indent=1, default=float))
    for res in results:
        print(
            f"\n== {res['system']} {res['arch']} ({res['run']}): LRP on {res['frames']} frames; deletion interactions on "
            f"{res['deletion_frames']} frames, {res['pairs_sampled']} sampled pairs, "
            f"{res['triplets_sampled']} sampled triplets ({res.get('angle_curve_triplets', res['triplets_sampled'])} for the angle curve), shell {res['shell_A']:.2f} Å, {res['seconds']:.0f} s"
        )
        for k, v in res["network"].items():
            print(f"  network   {k:<38} {_fmt(v)}")
        for rname, s in res["lrp"].items():
            for k, v in s.items():
                print(f"  LRP {rname:<9} {k:<32} {_fmt(v)}")


if __name__ == "__main__":
    main()
