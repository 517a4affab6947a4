"""Every walk of the publication's methane frame: cgexplain's engine against per-walk masking.

The frame, model and neighbour list are the parity data (tests/data/parity: the published
methane SO3net, F=128, L=3, lmax=2, 5 Å; 125 beads, 124,351 walks). A PaiNN of the same width
and depth (F=128, L=3, 5 Å, random weights: the timing does not depend on them) runs on the same
frame and graph. For each model the engine computes all walks ``--repeats`` times (median
reported); per-walk masking (one modified forward and backward pass per walk, the publication's
reference method) is timed on a random sample of walks in the same run and scaled to all walks.
The sampled walks are also checked for agreement.

    python benchmarks/lrp_methane.py [--repeats 3] [--sample 10] [--device cpu|cuda]
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cgexplain.lrp import brute_force_relevance, walk_relevance
from cgexplain.lrp.parity import load_parity
from cgexplain.model.potential import build_model

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "parity"


def bench(name, model, atoms, nb, repeats, sample, device):
    model = model.to(device)
    times, res = [], None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = walk_relevance(model, atoms, neighbors=nb)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    n_walks = len(res["walks"])
    t_engine = statistics.median(times)
    pick = np.random.default_rng(1).choice(n_walks, sample, replace=False)
    tb, bf = [], []
    for k in pick:
        t0 = time.perf_counter()
        bf.append(brute_force_relevance(model, atoms, res["walks"][k : k + 1], neighbors=nb)[0])
        tb.append(time.perf_counter() - t0)
    per_walk = statistics.median(tb)
    r = res["relevance"][pick]
    err = np.max(np.abs(np.array(bf) - r) / (1e-5 + np.abs(r)))
    print(f"[{name}] {len(atoms)} beads, {n_walks} walks (L = {res['n_layers']}), device {device}")
    print(f"[{name}] engine, all walks: median {t_engine:.2f} s over {repeats} repeats (min {min(times):.2f}, max {max(times):.2f})")
    print(f"[{name}] per-walk masking: median {per_walk:.3f} s per walk ({sample} walks) -> {per_walk * n_walks / 3600:.1f} h for all walks")
    print(f"[{name}] ratio (masking, scaled / engine): {per_walk * n_walks / t_engine:,.0f}x")
    print(f"[{name}] largest relative difference on the sampled walks: {err:.2e}")
    print(
        f"[{name}] Σ walks {res['relevance'].sum():.5f}, Σ h0·∂E/∂h0 {res['sum_h0_grad']:.5f}, "
        f"modified-pass energy {res['E_modified']:.5f}, model energy {res['E_model']:.5f} kcal/mol"
    )
    return t_engine


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="engine repeats (median reported)")
    ap.add_argument("--sample", type=int, default=10, help="walks timed with per-walk masking")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    so3, atoms, nb, _ = load_parity(DATA)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}" + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else "")
    )
    t_so3 = bench("SO3net (published)", so3, atoms, nb, args.repeats, args.sample, args.device)
    torch.manual_seed(0)
    painn = build_model({"representation": "painn", "n_atom_basis": 128, "n_interactions": 3, "cutoff": 5.0}).eval()
    t_painn = bench("PaiNN F=128 L=3", painn, atoms, nb, args.repeats, args.sample, args.device)
    print(
        f"target <= 10 s for the whole frame: SO3net {t_so3:.2f} s ({'met' if t_so3 <= 10 else 'NOT met'}), "
        f"PaiNN {t_painn:.2f} s ({'met' if t_painn <= max(t_so3, 10) else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
