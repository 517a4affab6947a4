"""Branching walks beside the publication's rules: cost and what changes, on the methane and water
pretrained PaiNN models (cgexplain.lrp.branching).

Cases (one frame each, the same frame for every rule):
- methane: ``systems/methane/pretrained`` (PaiNN F 64, L 3, 5 Å) on the publication's 125-bead
  parity frame (``tests/data/parity``; its beads given the model's one bead type);
- methane, random PaiNN: the parity README's random-weight PaiNN (F 32, L 3, 5 Å) on that frame;
- water: ``systems/water/pretrained`` (PaiNN F 64, L 3, 6 Å) on ``frame.npz`` (256 beads).

Cost, interleaved, ``--repeats`` times, medians (s) and ratios to (a):
(a) the explain stage's publication work: ``walk_relevance(max_order=L)`` (walks of <= L beads,
    the rest by the sum rule) and their grouping into pair and triplet sums;
(b) ``set_relevance(rule="publication")``: the same per-set sums without walks (checked equal);
(c) ``set_relevance(rule="branching")``; (d) ``set_relevance(rule="branching-tree")``.

What changes (γ 0.1 with the bias rule and γ 0), per rule on the same frame, in kcal/mol of
relevance: body-order totals (1, 2, 3, 4+ beads), signed shares over sets of >= 2 beads
σ_k = Σ_k R / (Σ|R(pair)| + Σ|R(triplet)| + |R(4+)|), the 2-body curve (pair sums against distance,
0.25 Å bins) and the 3-body curve (triplet sums per vertex against angle, 10° bins, legs shorter
than ``--shell``), their minima and the Pearson r between the rules' curves. The curves hold one
point per bead set (per vertex for angles), so their scale is not the per-walk curves' of the
explain stage. With ``--figures DIR`` the 3-body curves are drawn (``branching_<case>_3body.png``).
Not a timed test.

    python benchmarks/branching_rule.py [--repeats 3] [--cases methane,methane-random,water] [--json out.json] [--figures docs/figures]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cgexplain.lrp import walk_relevance
from cgexplain.lrp.bodyorder import pair_distances, vertex_points
from cgexplain.lrp.branching import set_relevance
from cgexplain.lrp.faithfulness import binned_curve
from cgexplain.lrp.nbody import pair_relevance, triplet_relevance
from cgexplain.lrp.parity import load_parity
from cgexplain.mapping.maps import to_atoms
from cgexplain.model.potential import build_model, load_model

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT / "tests" / "data" / "parity"
RULES = {"γ0.1+bias": (0.1, True), "γ0": (0.0, False)}
ANGLE_EDGES = np.arange(40.0, 181.0, 10.0)


def _case(name: str):
    """(model, positions Å, cell Å, types, shell Å)."""
    if name.startswith("methane"):
        _, atoms, _, _ = load_parity(PARITY)
        x, cell = atoms.positions.copy(), np.asarray(atoms.cell.array)
        if name == "methane":
            model, _ = load_model(ROOT / "systems" / "methane" / "pretrained")
        else:
            model = build_model({"representation": "painn", "n_atom_basis": 32, "n_interactions": 3, "cutoff": 5.0})
            model.load_state_dict(torch.load(PARITY / "painn_random_state_dict.pt", weights_only=True))
        return model.double().eval(), x, cell, np.ones(len(x), int), 5.0
    with np.load(ROOT / "systems" / "water" / "pretrained" / "frame.npz") as z:
        x, cell, types = z["positions"].astype(float), z["cell"].astype(float), z["bead_types"].astype(int)
    model, _ = load_model(ROOT / "systems" / "water" / "pretrained")
    return model.double().eval(), x, cell, types, 3.3


def _walk_sets(model, at, gamma, bias_rule):
    L = int(model.representation.n_interactions)
    res = walk_relevance(model, at, gamma=gamma, bias_rule=bias_rule, max_order=L)
    return pair_relevance(res["walks"], res["relevance"]), triplet_relevance(res["walks"], res["relevance"])


def _shares(sr) -> dict:
    den = float(np.abs(sr["pair_relevance"]).sum() + np.abs(sr["triplet_relevance"]).sum() + abs(sr["totals"][4]))
    return {str(k): float(sr["totals"][k]) / den for k in (2, 3, 4)}


def _pearson(a, b) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() >= 3 else float("nan")


def run_case(name: str, repeats: int) -> dict:
    model, x, cell, types, shell = _case(name)
    at = to_atoms(x, types, cell)
    out: dict = {"case": name, "n_beads": len(types), "shell_A": shell, "rules": {}}
    times: dict[str, list] = {"walks (a)": [], "sets publication (b)": [], "sets branching (c)": [], "sets branching-tree (d)": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        (lp, lr, _), (lt, ltr) = _walk_sets(model, at, 0.1, True)
        times["walks (a)"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pub = set_relevance(model, at, rule="publication")
        times["sets publication (b)"].append(time.perf_counter() - t0)
        for rule, key in (("branching", "sets branching (c)"), ("branching-tree", "sets branching-tree (d)")):
            t0 = time.perf_counter()
            set_relevance(model, at, rule=rule)
            times[key].append(time.perf_counter() - t0)
    d3 = {tuple(k): v for k, v in zip(pub["triplets"].tolist(), pub["triplet_relevance"])}
    out["max_abs_dev_sets_vs_walks_kcal_mol"] = float(max(abs(d3.get(tuple(k), 0.0) - v) for k, v in zip(lt.tolist(), ltr)))
    med = {k: statistics.median(v) for k, v in times.items()}
    out["median_s"] = med
    out["ratio_to_walks"] = {k: v / med["walks (a)"] for k, v in med.items()}
    redges = np.arange(2.0, float(model.representation.cutoff) + 0.25, 0.25)
    curves: dict = {}
    for rname, (g, br) in RULES.items():
        for rule in ("publication", "branching", "branching-tree"):
            sr = set_relevance(model, at, rule=rule, gamma=g, bias_rule=br)
            key = f"{rule} {rname}"
            rc, c2, _ = binned_curve(pair_distances(x, cell, sr["pairs"]), sr["pair_relevance"], redges, min_count=5)
            th, v = vertex_points(x, cell, sr["triplets"], sr["triplet_relevance"], shell)
            ac, c3, cnt = binned_curve(th, v, ANGLE_EDGES, min_count=20)
            curves[key] = (c2, c3)
            ok = np.isfinite(c3)
            out["rules"][key] = {
                "totals_kcal_mol": {str(k): float(v) for k, v in sr["totals"].items()},
                "conserved_kcal_mol": sr["conserved"],
                "conservation_error": sr["conserved"] - sr["conserved_autograd"],
                "sigma_set": _shares(sr),
                "three_body_curve_min_deg": float(ac[ok][np.argmin(c3[ok])]) if ok.any() else float("nan"),
                "two_body_curve": c2.tolist(),
                "three_body_curve": c3.tolist(),
            }
        for rule in ("branching", "branching-tree"):
            out["rules"][f"{rule} {rname}"]["pearson_vs_publication"] = {
                "2-body": _pearson(curves[f"{rule} {rname}"][0], curves[f"publication {rname}"][0]),
                "3-body": _pearson(curves[f"{rule} {rname}"][1], curves[f"publication {rname}"][1]),
            }
    out["r_centers_A"], out["angle_centers_deg"] = rc.tolist(), ac.tolist()
    return out


def _print(res: dict) -> None:
    m, r = res["median_s"], res["ratio_to_walks"]
    print(f"\n== {res['case']} ({res['n_beads']} beads)")
    print("  cost (median s, ratio to (a)): " + "; ".join(f"{k} {m[k]:.2f} s ({r[k]:.2f}x)" for k in m))
    print(f"  per-set publication sums against grouped walks: max |Δ| {res['max_abs_dev_sets_vs_walks_kcal_mol']:.1e} kcal/mol")
    for k, v in res["rules"].items():
        t = v["totals_kcal_mol"]
        s = v["sigma_set"]
        line = (
            f"  {k:<22} totals 1/2/3/4+ {t['1']:.3f} / {t['2']:.3f} / {t['3']:.3f} / {t['4']:.3f} kcal/mol (Σ {v['conserved_kcal_mol']:.3f}, "
            f"error {v['conservation_error']:.1e}); σ2/σ3/σ4+ {100 * s['2']:+.1f} / {100 * s['3']:+.1f} / {100 * s['4']:+.1f} %; "
            f"3-body curve min {v['three_body_curve_min_deg']:.0f}°"
        )
        if "pearson_vs_publication" in v:
            p = v["pearson_vs_publication"]
            line += f"; r vs publication 2-body {p['2-body']:.2f}, 3-body {p['3-body']:.2f}"
        print(line)


def _figure(res: dict, folder: Path) -> None:
    from cgexplain.plots.core import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, v in res["rules"].items():
        style = {"publication": "--", "branching": "-", "branching-tree": ":"}[k.split()[0]]
        axes[0].plot(res["r_centers_A"], v["two_body_curve"], style, label=k)
        axes[1].plot(res["angle_centers_deg"], v["three_body_curve"], style, label=k)
    axes[0].set(xlabel="r (Å)", ylabel="pair relevance (kcal/mol, per pair)", title=f"{res['case']}: 2-body")
    axes[1].set(xlabel="vertex angle (degrees)", ylabel="triplet relevance (kcal/mol, per triplet)", title=f"{res['case']}: 3-body")
    for a in axes:
        a.axhline(0, color="0.7", lw=0.8)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"branching_{res['case']}_curves.png", dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default="methane,methane-random,water")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--figures", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    results = []
    for c in args.cases.split(","):
        results.append(run_case(c, args.repeats))
        _print(results[-1])
        if args.figures:
            _figure(results[-1], args.figures)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
