"""Walk relevance of one CG water frame: cgexplain's factored engine against per-walk masking.

Both run in this process on the same model and frame. The engine computes every walk of the
frame; per-walk masking (one modified forward and backward pass per walk, the publication's
reference method) is timed on a random sample of walks and scaled to all walks. The sampled
walks are also checked for agreement.

    python benchmarks/lrp_engine_vs_masking.py [--model runs/water-quick/model] [--repeats 3]

Without --model a PaiNN of the quick water size (F=32, 3 layers, 5 Å) with random weights is
used on a 256-bead box at liquid-water density (the timing does not depend on the weights).
"""

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from ase import Atoms

from cgexplain.lrp import brute_force_relevance, walk_relevance
from cgexplain.model.potential import build_model, load_model


def frame(n_side=7, density=0.0334, seed=0):
    n = n_side**3
    L = (n / density) ** (1 / 3)
    g = (np.arange(n_side) + 0.5) * L / n_side
    x = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    x += np.random.default_rng(seed).normal(0, 0.4, x.shape)
    keep = np.random.default_rng(seed).permutation(n)[:256]
    return Atoms(numbers=np.ones(256, int), positions=x[keep] % L, cell=np.eye(3) * L, pbc=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: random PaiNN, F=32, L=3, cutoff 5 Å)")
    ap.add_argument("--repeats", type=int, default=3, help="engine repeats (median reported)")
    ap.add_argument("--sample", type=int, default=20, help="walks timed with per-walk masking")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.model:
        model, _ = load_model(args.model)
    else:
        torch.manual_seed(0)
        model = build_model({"n_atom_basis": 32, "n_interactions": 3, "cutoff": 5.0}).eval()
    at = frame()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    times, res = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = walk_relevance(model, at)
        times.append(time.perf_counter() - t0)
    n_walks = len(res["walks"])
    t_engine = statistics.median(times)
    pick = np.random.default_rng(1).choice(n_walks, args.sample, replace=False)
    tb = []
    bf = []
    for k in pick:
        t0 = time.perf_counter()
        bf.append(brute_force_relevance(model, at, res["walks"][k : k + 1])[0])
        tb.append(time.perf_counter() - t0)
    per_walk = statistics.median(tb)
    err = np.max(np.abs(np.array(bf) - res["relevance"][pick]) / (1e-5 + np.abs(res["relevance"][pick])))
    print(f"frame: {len(at)} beads, {n_walks} walks (L = {res['n_layers']})")
    print(f"engine, all walks: median {t_engine:.2f} s over {args.repeats} repeats")
    print(f"per-walk masking: median {per_walk * 1e3:.1f} ms per walk ({args.sample} walks) -> {per_walk * n_walks / 3600:.1f} h for all walks")
    print(f"ratio (masking, scaled / engine): {per_walk * n_walks / t_engine:.0f}x")
    print(f"largest relative difference on the sampled walks: {err:.2e}")


if __name__ == "__main__":
    main()
