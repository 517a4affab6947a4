"""Peak memory of the walk engine on a 512-bead water frame with a 3-layer model and a 6 Å cutoff.

The frame is a 512-bead box at liquid-water bead density (0.0334 Å⁻³, a perturbed lattice);
the model has random weights (memory and time do not depend on them). Output beads are processed
in chunks of about ``--chunk-walks`` walks, which bounds the memory; the walks and relevances
of the whole frame are returned. Peak resident memory of the process is read from
``resource.getrusage`` (Linux: kB).

    python benchmarks/lrp_memory.py --arch painn|so3net [--features 128] [--chunk-walks 2000000]
"""

import argparse
import os
import platform
import resource
import time

import numpy as np
import torch
from ase import Atoms

from cgexplain.lrp import walk_relevance
from cgexplain.lrp.nbody import nbody_sums
from cgexplain.model.potential import build_model


def frame(n=512, density=0.0334, seed=0):
    side = 8
    L = (n / density) ** (1 / 3)
    g = (np.arange(side) + 0.5) * L / side
    x = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    x += np.random.default_rng(seed).normal(0, 0.3, x.shape)
    return Atoms(numbers=np.ones(n, int), positions=x % L, cell=np.eye(3) * L, pbc=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="painn", choices=["painn", "so3net"])
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--lmax", type=int, default=2)
    ap.add_argument("--chunk-walks", type=int, default=2_000_000)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    hp = {"representation": args.arch, "n_atom_basis": args.features, "n_interactions": 3, "cutoff": 6.0}
    if args.arch == "so3net":
        hp["lmax"] = args.lmax
    model = build_model(hp).eval()
    at = frame()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    res = walk_relevance(model, at, chunk_walks=args.chunk_walks, progress=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"model: {args.arch}, F={args.features}, L=3, cutoff 6 Å" + (f", lmax {args.lmax}" if args.arch == "so3net" else ""))
    print(f"frame: {len(at)} beads, {len(res['walks']):,} walks; chunks of about {args.chunk_walks:,} walks")
    print(
        f"wall time {wall:.1f} s; peak resident memory {peak:.2f} GiB (before the call {base:.2f} GiB); limit 8 GiB: "
        f"{'met' if peak <= 8 else 'NOT met'}"
    )
    sums = nbody_sums(res["walks"], res["relevance"])
    print(
        "relevance by body order (kcal/mol): "
        + ", ".join(f"{k}: {v[0]:.4f}" for k, v in sums.items())
        + f"; Σ {res['relevance'].sum():.4f} vs Σ h0·∂E/∂h0 {res['sum_h0_grad']:.4f}"
    )


if __name__ == "__main__":
    main()
