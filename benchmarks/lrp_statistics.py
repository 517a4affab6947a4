"""Per-frame cost of the explain statistics: pruned enumeration against full enumeration.

The explain stage reduces each frame's walk relevances to the n-body sums, the 2-body curve
(relevance against distance) and the 3-body curve (relevance against vertex angle). With L = 3
those need only walks with at most 3 distinct beads; the 4-body total follows from the sum rule.
For each case this script runs :func:`cgexplain.lrp.statistics.explain_one_frame` on the same
frame with ``enumeration`` 'all' and 'pruned', interleaved, ``--repeats`` times each, and prints
the median wall times, their ratio, the walks enumerated, and the largest deviation of the pruned
statistics from the full ones (body-order sums relative to the largest |sum|; binned means
relative to the curve's largest |mean|).

Cases:
- water pretrained: the shipped water PaiNN (F = 64, L = 3, 6 Å) on one mapped frame of the
  water reference (``systems/water/pretrained/frame.npz``, 256 beads);
- methane parity: the publication's SO3net (F = 128, L = 3, lmax 2, 5 Å) on its parity frame
  (``tests/data/parity``);
- SO3net on the water frame (random weights, F = 64, L = 3, lmax 2, 6 Å);
- rules: the explain stage's per-frame work under the publication's rule (pruned walks) beside
  branching walks and branching trees (relevance per bead set, ``cgexplain.lrp.branching``; PaiNN
  only) on the water pretrained frame and on the methane parity frame with the methane pretrained
  PaiNN (its one bead type);
- L = 2 (PaiNN, water frame, 6 Å) and L = 4 (PaiNN and SO3net on the methane frame, 5 Å; PaiNN
  on the water frame, 5 Å), random weights. For L = 2 the 3-body curve needs every 3-body walk, i.e. every walk, so the explain
  stage cannot prune; the engine-level pruning (walks of <= 2 beads plus the 3-body total) is
  timed instead and marked "engine".

    python benchmarks/lrp_statistics.py [--repeats 3] [--cases water,methane,...] [--device cpu|cuda]
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cgexplain.lrp import walk_relevance
from cgexplain.lrp.nbody import body_order_totals, nbody_sums
from cgexplain.lrp.statistics import explain_one_frame
from cgexplain.mapping.maps import to_atoms
from cgexplain.model.potential import build_model, load_model

ROOT = Path(__file__).resolve().parents[1]
WATER = ROOT / "systems" / "water" / "pretrained"
PARITY = ROOT / "tests" / "data" / "parity"


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def water_frame():
    with np.load(WATER / "frame.npz") as z:
        return z["positions"].astype(float), z["cell"].astype(float), z["bead_types"].astype(int)


def methane_frame():
    from cgexplain.lrp.parity import load_parity

    so3, atoms, _, _ = load_parity(PARITY)
    return so3, atoms.positions.copy(), np.asarray(atoms.cell.array), atoms.get_atomic_numbers()


def random_model(arch, F, L, cutoff, seed=0):
    torch.manual_seed(seed)
    hp = {"representation": arch, "n_atom_basis": F, "n_interactions": L, "cutoff": cutoff}
    if arch == "so3net":
        hp["lmax"] = 2
    return build_model(hp).eval()


def _dev(a, b):
    return float(np.nanmax(np.abs(a - b))) / max(float(np.nanmax(np.abs(b))), 1e-300)


def bench_stage(name, model, x, cell, types, shell, r_edges, repeats, device):
    """explain_one_frame with every walk and pruned, interleaved."""
    model = model.to(device)
    lc = {"r_edges": r_edges, "angle_bins": 36, "save_walks": "none"}
    tf, tp, full, pr = [], [], None, None
    for _ in range(repeats):
        for mode, times in (("all", tf), ("pruned", tp)):
            _sync(device)
            t0 = time.perf_counter()
            arr, res = explain_one_frame(model, x, cell, types, {**lc, "enumeration": mode}, shell)
            _sync(device)
            times.append(time.perf_counter() - t0)
            if mode == "all":
                full = (arr, res)
            else:
                pr = (arr, res)
    a, b = pr[0], full[0]
    dev_body = _dev(a["body_sum"], b["body_sum"])
    dev_curve = max(_dev(a[k][1][a[k][0] > 0], b[k][1][b[k][0] > 0]) for k in ("two_raw", "three_raw"))
    same_counts = all(np.array_equal(a[k][0], b[k][0]) for k in ("two_raw", "three_raw"))
    mf, mp = statistics.median(tf), statistics.median(tp)
    print(
        f"{name:<34} {len(types):>5} {int(b['n_walks']):>11,} {int(a['n_walks_enumerated']):>11,} {mf:>9.2f} {mp:>9.2f} "
        f"{mf / mp:>6.2f}x  {dev_body:.1e} / {dev_curve:.1e}{'' if same_counts else ' COUNTS DIFFER'}"
    )
    return mf / mp


def bench_engine(name, model, x, cell, types, repeats, device):
    """walk_relevance with every walk and with max_order = L (engine only)."""
    model = model.to(device)
    at = to_atoms(x, types, cell)
    L = int(model.representation.n_interactions)
    tf, tp = [], []
    for _ in range(repeats):
        for mo, times in ((None, tf), (L, tp)):
            _sync(device)
            t0 = time.perf_counter()
            res = walk_relevance(model, at, max_order=mo)
            _sync(device)
            times.append(time.perf_counter() - t0)
            if mo is None:
                full = res
            else:
                pr = res
    a = np.array([v[0] for _, v in sorted(body_order_totals(pr).items())])
    b = np.array([v[0] for _, v in sorted(nbody_sums(full["walks"], full["relevance"]).items())])
    mf, mp = statistics.median(tf), statistics.median(tp)
    print(
        f"{name + ' (engine)':<34} {len(types):>5} {len(full['walks']):>11,} {len(pr['walks']):>11,} {mf:>9.2f} {mp:>9.2f} "
        f"{mf / mp:>6.2f}x  {_dev(a, b):.1e} / -"
    )
    return mf / mp


def bench_rules(name, model, x, cell, types, shell, r_edges, repeats, device):
    """explain_one_frame under the publication's rule (pruned walks), branching walks and branching
    trees (relevance per bead set, cgexplain.lrp.branching), interleaved, on the same frame."""
    model = model.to(device)
    lc = {"r_edges": r_edges, "angle_bins": 36, "save_walks": "none"}
    rules = ("publication", "branching", "branching-tree")
    times: dict[str, list] = {r: [] for r in rules}
    for _ in range(repeats):
        for r in rules:
            _sync(device)
            t0 = time.perf_counter()
            explain_one_frame(model, x, cell, types, {**lc, "rule": r}, shell)
            _sync(device)
            times[r].append(time.perf_counter() - t0)
    med = {r: statistics.median(v) for r, v in times.items()}
    print(
        f"{name + ' (rules)':<34} {len(types):>5} publication {med['publication']:.2f} s; branching {med['branching']:.2f} s "
        f"({med['branching'] / med['publication']:.2f}x); branching-tree {med['branching-tree']:.2f} s ({med['branching-tree'] / med['publication']:.2f}x)"
    )
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default="water,methane,water-so3net,L2,L4,L4-water,rules")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    cases = args.cases.split(",")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
    )
    print(f"median of {args.repeats} interleaved repeats; deviation of pruned from full: body-order sums / binned means (relative)")
    print(f"{'case':<34} {'beads':>5} {'walks':>11} {'enumerated':>11} {'full s':>9} {'pruned s':>9} {'ratio':>7}  deviation")
    ratios = {}
    xw, cw, tw = water_frame()
    so3, xm, cm, tm = methane_frame()
    if "water" in cases:
        model, _ = load_model(WATER)
        ratios["water"] = bench_stage("water pretrained PaiNN F64 L3 6Å", model, xw, cw, tw, 3.2, [2.0, 6.0, 40], args.repeats, args.device)
    if "methane" in cases:
        ratios["methane"] = bench_stage("methane parity SO3net F128 L3 5Å", so3, xm, cm, tm, 5.608, [2.0, 10.0, 75], args.repeats, args.device)
    if "water-so3net" in cases:
        ratios["water-so3net"] = bench_stage(
            "water SO3net F64 L3 6Å (random)", random_model("so3net", 64, 3, 6.0), xw, cw, tw, 3.2, [2.0, 6.0, 40], args.repeats, args.device
        )
    if "L2" in cases:
        bench_engine("water PaiNN F64 L2 6Å (random)", random_model("painn", 64, 2, 6.0), xw, cw, tw, args.repeats, args.device)
    if "L4" in cases:
        ratios["L4 painn"] = bench_stage(
            "methane PaiNN F32 L4 5Å (random)", random_model("painn", 32, 4, 5.0), xm, cm, tm, 5.608, [2.0, 10.0, 75], args.repeats, args.device
        )
        ratios["L4 so3net"] = bench_stage(
            "methane SO3net F32 L4 5Å (random)", random_model("so3net", 32, 4, 5.0), xm, cm, tm, 5.608, [2.0, 10.0, 75], args.repeats, args.device
        )
    if "L4-water" in cases:
        ratios["L4 water"] = bench_stage(
            "water PaiNN F32 L4 5Å (random)", random_model("painn", 32, 4, 5.0), xw, cw, tw, 3.2, [2.0, 5.0, 30], args.repeats, args.device
        )
    if "rules" in cases:  # the branching rules need a PaiNN: methane's pretrained one on the parity frame
        model, _ = load_model(WATER)
        bench_rules("water pretrained PaiNN F64 L3 6Å", model, xw, cw, tw, 3.2, [2.0, 6.0, 40], args.repeats, args.device)
        model, _ = load_model(ROOT / "systems" / "methane" / "pretrained")
        bench_rules("methane pretrained PaiNN, parity frame", model, xm, cm, np.ones_like(tm), 5.608, [2.0, 10.0, 75], args.repeats, args.device)
    if "water" in ratios:
        print(
            f"target: explain stage on the water pretrained frame >= 4x faster than full enumeration: {ratios['water']:.2f}x "
            f"({'met' if ratios['water'] >= 4 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
