"""Training and simulation speed of the architectures side by side: frames/s of force-matching
training steps and CG Langevin steps/s, on the same mapped frame, in one process.

For each model folder (e.g. runs/mw-quick/model runs/mw-quick-mace/model), on the first frame of
``--frames-from`` (a run's cg/mapped.npz):
- training: one step = forward, force-matching MSE, backward (double backward through the forces),
  Adam step, on one frame (batch 1), in the model's training dtype (float32), fresh optimizer;
- simulation: steps of cgexplain's Langevin integrator (CGForceField: Verlet-skin neighbour list,
  one energy+force evaluation per step), 1 replica.
The models run interleaved, ``--repeats`` times each; medians are printed with the ratio to the
first model. Not a timed test.

    python benchmarks/arch_speed.py runs/mw-quick/model runs/mw-quick-mace/model --frames-from runs/mw-quick/cg/mapped.npz
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cgexplain.md.langevin import CGForceField
from cgexplain.model.potential import batch_inputs, load_model


def _train_rate(model, x, f, types, cell, cutoff, steps) -> float:
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    inp = batch_inputs(x[None], types, cell[None], cutoff, dtype=torch.float32)
    target = torch.as_tensor(f, dtype=torch.float32)
    t0 = time.perf_counter()
    for _ in range(steps):
        out = model({k: v.clone() for k, v in inp.items()})
        loss = ((out["forces"] - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def _md_rate(model, x, types, cell, cutoff, steps) -> float:
    model.eval()
    ff = CGForceField(model, types, cell, cutoff, skin=1.0, n_replicas=1)
    xt = torch.as_tensor(x[None], dtype=torch.float64)
    v = torch.zeros_like(xt)
    dt = 0.002
    t0 = time.perf_counter()
    for _ in range(steps):  # velocity Verlet with tiny steps: one force evaluation per step, as BAOAB
        _, fr = ff(xt)
        v = v + dt * fr / 18.0 * 418.4
        xt = xt + dt * v
    return steps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--frames-from", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with np.load(args.frames_from) as z:
        x, f, cell, types = z["positions"][0].astype(float), z["forces"][0].astype(float), z["cells"][0].astype(float), z["bead_types"]
    models = []
    for d in args.models:
        m, meta = load_model(d)
        models.append((str(d), m.float(), float(meta["hparams"]["cutoff"]), meta["hparams"]["representation"]))
    res: dict = {name: {"train": [], "md": []} for name, *_ in models}
    for _ in range(args.repeats):
        for name, m, cut, _rep in models:
            res[name]["train"].append(_train_rate(m, x, f, types, cell, cut, args.steps))
            res[name]["md"].append(_md_rate(m, x, types, cell, cut, args.steps))
    print(f"{len(x)} beads, {args.threads} threads, {args.steps} steps x {args.repeats} repeats (medians)")
    base = None
    for name, _m, cut, rep in models:
        tr, md = statistics.median(res[name]["train"]), statistics.median(res[name]["md"])
        base = base or (tr, md)
        print(
            f"  {rep:<7} {name:<40} cutoff {cut:.1f} Å: training {tr:.2f} frames/s ({tr / base[0]:.2f}x), MD {md:.1f} steps/s ({md / base[1]:.2f}x)"
        )


if __name__ == "__main__":
    main()
