"""Where the time goes in one CG simulation step and one force-matching training step.

Runs torch.profiler over ``--steps`` Langevin steps (512-bead water box, as md_throughput.py) and
over ``--steps`` training steps (cgexplain's cached data path, batch 4), and prints for each:
the wall-time split into phases (neighbour list, model forward, force backward, integrator /
optimizer, data) and the top operators by self CPU time.

    python benchmarks/profile_steps.py [--model MODEL_DIR] [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def top_ops(prof, n=8):
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    tot = sum(e.self_cpu_time_total for e in rows) or 1
    return [(e.key, 100.0 * e.self_cpu_time_total / tot) for e in rows[:n]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)

    from md_throughput import box_512, find_model

    from cgexplain.md.langevin import CGForceField
    from cgexplain.model.potential import load_model

    model_dir = find_model(args.model)
    model, meta = load_model(model_dir)
    cutoff = float(meta["hparams"]["cutoff"])
    x, cell, src = box_512(model_dir)
    n = len(x)
    print(
        f"model {model_dir} ({meta['hparams']['representation']} F={meta['hparams']['n_atom_basis']}); {n} beads; "
        f"torch threads {torch.get_num_threads()}"
    )

    # ---- simulation step, phase by phase (the same calls CGForceField makes)
    ff = CGForceField(model, np.ones(n, int), cell, cutoff, skin=1.0)
    xt = torch.as_tensor(x[None])
    ff(xt)
    rng = np.random.default_rng(0)
    ph = {"neighbour list (update + filter)": 0.0, "model forward (energy)": 0.0, "force backward (autograd)": 0.0, "integrator + noise": 0.0}
    import schnetpack.properties as P

    for _ in range(args.steps):
        t0 = time.perf_counter()
        xt = xt + 0.002 * torch.as_tensor(rng.standard_normal(xt.shape))
        t1 = time.perf_counter()
        ff.nl.update(xt)
        R = xt.reshape(-1, 3).float()
        i, j, o = ff.nl.pairs(R)
        t2 = time.perf_counter()
        for p in model.parameters():
            p.requires_grad_(False)
        inp = {**ff._const, P.R: R.clone().requires_grad_(), P.idx_i: i, P.idx_j: j, P.offsets: o}
        for m in model.input_modules:
            inp = m(inp)
        inp = model.representation(inp)
        inp = model.output_modules[0](inp)
        t3 = time.perf_counter()
        f = torch.autograd.grad(inp["energy"].sum(), inp[P.R])[0]
        float(f.sum())
        t4 = time.perf_counter()
        for p in model.parameters():
            p.requires_grad_(True)
        ph["integrator + noise"] += t1 - t0
        ph["neighbour list (update + filter)"] += t2 - t1
        ph["model forward (energy)"] += t3 - t2
        ph["force backward (autograd)"] += t4 - t3
    tot = sum(ph.values())
    print(f"\nsimulation step: {1e3 * tot / args.steps:.1f} ms")
    for k, v in ph.items():
        print(f"  {k:34s} {100 * v / tot:5.1f} %")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            ff(xt)
    print("  top operators (self CPU):", ", ".join(f"{k} {v:.0f} %" for k, v in top_ops(prof)))

    # ---- training step
    from cgexplain.mapping.maps import MappedTrajectory
    from cgexplain.model.data import CachedFrames
    from cgexplain.model.potential import build_model
    from cgexplain.workflow.run import RunFolder

    mapped = RunFolder(Path(model_dir).parent).mapped  # the model folder of a run: its mapped reference
    if not mapped.exists():
        print(f"\n(no {mapped}: training profile skipped)")
        return
    traj = MappedTrajectory.load(mapped)
    k = min(len(traj.positions), 4 * (args.steps + 1))
    data = CachedFrames(traj.positions[:k], traj.forces[:k], traj.cells[:k], traj.bead_types, cutoff, progress=False)
    net = build_model(meta["hparams"])
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    ph = {"data (collate)": 0.0, "forward + forces": 0.0, "loss backward": 0.0, "optimizer": 0.0}
    for s in range(args.steps):
        t0 = time.perf_counter()
        batch = data.collate(list(range(4 * s, 4 * s + 4)))
        t1 = time.perf_counter()
        net.train()
        out = net(batch)
        loss = ((out["forces"] - batch["forces"]) ** 2).mean()
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        for key, a, b in (("data (collate)", t0, t1), ("forward + forces", t1, t2), ("loss backward", t2, t3), ("optimizer", t3, t4)):
            ph[key] += b - a
    tot = sum(ph.values())
    print(f"\ntraining step (batch 4 x {traj.positions.shape[1]} beads): {1e3 * tot / args.steps:.1f} ms")
    for key, v in ph.items():
        print(f"  {key:34s} {100 * v / tot:5.1f} %")


if __name__ == "__main__":
    main()
