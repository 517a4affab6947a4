"""Whole-trajectory relevance: frames per hour, and how many frames a stable 2-body curve needs.

Runs :func:`cgexplain.lrp.explain.explain_trajectory` (streamed in chunks, pruned enumeration,
no walk files) over ``--frames`` frames of a CG trajectory and prints:
- frames per hour of the explanation (wall time of the whole call, and from the median per-frame
  time);
- the convergence of the 2-body curve (binned mean relevance against distance, raw kcal/mol):
  for N = 1, 2, 4, ... the largest change of any bin's mean between the first N and the first 2N
  frames, absolute and relative to the largest |mean| of the curve over all frames (bins with at
  least 20 points in both). Frames are consecutive in the order given, so correlated frames
  converge more slowly than independent ones.

    python benchmarks/lrp_trajectory.py --model systems/water/pretrained --trajectory runs/water-quick/cg/mapped.npz \\
        --frames 0:512:2 --r-range 2 6 40
"""

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cgexplain.lrp.explain import explain_trajectory
from cgexplain.lrp.nbody import finish_bins, merge_bins


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("systems/water/pretrained"))
    ap.add_argument("--trajectory", type=Path, default=Path("runs/water-quick/cg/mapped.npz"))
    ap.add_argument("--topology", type=Path, default=None)
    ap.add_argument("--types", default=None)
    ap.add_argument("--frames", default="0:512:2", help="frames, as cgexplain explain --frames")
    ap.add_argument("--r-range", type=float, nargs=3, default=[2.0, 6.0, 40])
    ap.add_argument("--shell", type=float, default=3.2, help="3-body leg cutoff, Å")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one, removed)")
    ap.add_argument("--min-count", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    out = args.out or Path(tempfile.mkdtemp(prefix="lrp_trajectory_"))
    r = args.r_range
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    t0 = time.perf_counter()
    s = explain_trajectory(
        args.model,
        args.trajectory,
        out,
        topology=args.topology,
        types=args.types,
        frames=args.frames,
        shell=args.shell,
        r_edges=(r[0], r[1], int(r[2])),
        save_walks="none",
        progress=True,
    )
    wall = time.perf_counter() - t0
    n = s["n_frames"]
    per = []
    for k in range(n):
        with np.load(out / f"frame_{k:04d}.npz") as z:
            per.append(float(z["time_s"]))
    print(
        f"model {args.model}, trajectory {args.trajectory} ({args.frames}): {n} frames, {s['walks_per_frame_mean']:,.0f} walks per "
        f"frame ({s['walks_enumerated_per_frame_mean']:,.0f} enumerated, {s['enumeration']})"
    )
    print(
        f"wall time {wall:.1f} s -> {3600 * n / wall:,.0f} frames/hour (whole call, incl. structure and aggregation); "
        f"median {np.median(per):.3f} s per frame -> {3600 / np.median(per):,.0f} frames/hour"
    )
    edges = np.linspace(r[0], r[1], int(r[2]) + 1)
    accs = []
    for k in range(n):
        with np.load(out / f"frame_{k:04d}.npz") as z:
            accs.append(z["two_raw"])
    total = accs[0]
    for a in accs[1:]:
        total = merge_bins(total, a)
    scale = np.nanmax(np.abs(finish_bins(total, edges)["mean"]))
    print(f"2-body curve convergence (raw kcal/mol; largest |mean| of the {n}-frame curve: {scale:.4f}):")
    print(f"{'N':>6} {'2N':>6} {'max |Δ mean|':>13} {'relative':>9}")
    N = 1
    while 2 * N <= n:
        a, b = accs[0], accs[0]
        for k in range(1, 2 * N):
            if k < N:
                a = merge_bins(a, accs[k])
            b = merge_bins(b, accs[k])
        fa, fb = finish_bins(a, edges), finish_bins(b, edges)
        ok = (fa["count"] >= args.min_count) & (fb["count"] >= args.min_count)
        d = float(np.max(np.abs(fa["mean"][ok] - fb["mean"][ok]))) if ok.any() else float("nan")
        print(f"{N:>6} {2 * N:>6} {d:>13.4f} {d / scale:>8.1%}")
        N *= 2
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
