"""Every speed figure on a GPU, with the CPU figure beside it, in one run (at most ~8 minutes).

Rows (same inputs on both devices, measured in this process):
- LRP, methane parity frame: all 124,351 walks of the publication's SO3net (F = 128, L = 3, lmax 2,
  5 Å; ``tests/data/parity``);
- LRP, 512-bead water frame: the shipped water PaiNN (F = 64, L = 3, 6 Å) on the mapped water
  frame (``systems/water/pretrained/frame.npz``) tiled to 512 beads; all walks, and pruned
  (walks of <= 3 beads plus the 4-body total, as the explain stage runs);
- GPU against CPU relevances on sampled walks of both frames: the largest difference relative to
  the frame's largest |R|;
- MD (``md_throughput`` rows): raw energy+force evaluations/s, cgexplain Langevin steps/s, and
  batched replicas R = 1, 4, 16 in bead-steps/s (target on a GPU: R = 16 >= 8 x R = 1);
- training (``train_throughput`` row): force-matching steps (forward, force loss, second-order
  backward, Adam) in frames/s, cached data path, batch 4 x 256 beads.

It needs only torch, numpy, schnetpack and its import-time dependencies (ase, scipy, h5py,
matscipy, vesin, ...) and this source tree: no MDAnalysis, OpenMM or mdtraj, so it runs from the
wheelhouse described in benchmarks/README.md.

    python benchmarks/gpu_check.py                    # CPU and cuda columns
    python benchmarks/gpu_check.py --device cpu --dry # tiny sizes, both columns on the CPU (the suite's check)
    python benchmarks/gpu_check.py --json out.json    # also write the table as JSON
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source tree without installing cgexplain

from cgexplain.lrp import walk_relevance  # noqa: E402
from cgexplain.lrp.nbody import body_order_totals  # noqa: E402
from cgexplain.model.potential import batch_inputs, build_model, load_model  # noqa: E402

WATER_MASS = 18.015


def _sync(dev):
    if str(dev).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, dev, repeats=1):
    """Median wall time (s) of fn() over repeats, after one warm-up call; returns (median, last result)."""
    out = fn()
    ts = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        out = fn()
        _sync(dev)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def tile(x, cell, n_target):
    """Tile a periodic frame along x, y, z in turn until it holds n_target beads (a power of 2 times)."""
    xs, c = x, cell.copy()
    k = 0
    while len(xs) < n_target:
        a = k % 3
        xs = np.concatenate([xs, xs + c[a]])
        c[a] = 2 * c[a]
        k += 1
    return xs, c


def inputs(dry):
    """(methane model, atoms, neighbours), (water model, positions, cell) for the run's size."""
    from ase import Atoms

    if dry:
        torch.manual_seed(0)
        so3 = build_model({"representation": "so3net", "n_atom_basis": 8, "n_interactions": 3, "cutoff": 3.0, "lmax": 1}).eval()
        rng = np.random.default_rng(0)
        at = Atoms(numbers=np.full(16, 6), positions=rng.uniform(0, 7.0, (16, 3)), cell=np.eye(3) * 7.0, pbc=True)
        water = build_model({"representation": "painn", "n_atom_basis": 8, "n_interactions": 3, "cutoff": 3.0}).eval()
        x = rng.uniform(0, 7.0, (32, 3))
        return (so3, at, None), (water, x, np.eye(3) * 7.0)
    from cgexplain.lrp.parity import load_parity

    so3, at, nb, _ = load_parity(ROOT / "tests" / "data" / "parity")
    water, _ = load_model(ROOT / "systems" / "water" / "pretrained")
    with np.load(ROOT / "systems" / "water" / "pretrained" / "frame.npz") as z:
        x, cell = tile(z["positions"].astype(float), z["cell"].astype(float), 512)
    return (so3, at, nb), (water, x, cell)


def lrp_rows(dev, meth, wat, repeats):
    from cgexplain.mapping.maps import to_atoms

    so3, at, nb = meth
    water, x, cell = wat
    m = so3.to(dev)
    t_m, res_m = timed(lambda: walk_relevance(m, at, neighbors=nb), dev, repeats)
    w = water.to(dev)
    aw = to_atoms(x, np.ones(len(x), int), cell)
    t_all, res_w = timed(lambda: walk_relevance(w, aw), dev, 1)
    t_pr, res_p = timed(lambda: walk_relevance(w, aw, max_order=3), dev, repeats)
    body = body_order_totals(res_p)
    rng = np.random.default_rng(0)
    samples = {
        "methane": res_m["walks"][rng.choice(len(res_m["walks"]), min(1000, len(res_m["walks"])), replace=False)],
        "water": res_w["walks"][rng.choice(len(res_w["walks"]), min(1000, len(res_w["walks"])), replace=False)],
        "methane_max": float(np.abs(res_m["relevance"]).max()),
        "water_max": float(np.abs(res_w["relevance"]).max()),
    }
    return {
        "lrp_methane_all_s": t_m,
        "lrp_water512_all_s": t_all,
        "lrp_water512_pruned_s": t_pr,
        "n_walks_methane": len(res_m["walks"]),
        "n_walks_water512": len(res_w["walks"]),
        "four_body_total_water512": body[4][0],
    }, samples


def sampled_relevance(dev, meth, wat, samples) -> dict:
    """Relevances of the sampled walks of both frames on ``dev``."""
    from cgexplain.mapping.maps import to_atoms

    so3, at, nb = meth
    water, x, cell = wat
    return {
        "methane": walk_relevance(so3.to(dev), at, neighbors=nb, walks=samples["methane"])["relevance"],
        "water": walk_relevance(water.to(dev), to_atoms(x, np.ones(len(x), int), cell), walks=samples["water"])["relevance"],
    }


def md_rows(dev, wat, steps, replica_steps, replicas):
    from cgexplain.md.langevin import SimSettings, frozen_weights, langevin

    water, x, cell = wat
    model = water.to(dev)
    n = len(x)
    types = np.ones(n, dtype=np.int64)
    masses = np.full(n, WATER_MASS)
    cutoff = float(model.representation.cutoff)
    inp = batch_inputs(x, types, cell, cutoff, device=dev)
    import schnetpack.properties as P

    def raw():
        with frozen_weights(model):
            for _ in range(steps):
                out = model({**inp, P.R: inp[P.R].clone()})
                out["forces"].sum().item()

    t_raw, _ = timed(raw, dev, 1)
    out = {"md_raw_evals_per_s": steps / t_raw}

    def run(k, R):
        s = SimSettings(
            temperature=300.0,
            timestep=0.002,
            friction=1.0,
            n_steps=k,
            save_interval=max(k, 1),
            seed=1,
            skin=1.0,
            n_replicas=R,
            device=str(dev),
            max_force=1e4,
        )
        start = x if R == 1 else np.repeat(x[None], R, axis=0)
        langevin(model, start, types, masses, cell, cutoff, s, writer=None, progress=False)

    t_l, _ = timed(lambda: run(steps, 1), dev, 1)
    out["md_langevin_steps_per_s"] = steps / t_l
    for R in replicas:
        t_r, _ = timed(lambda R=R: run(replica_steps, R), dev, 1)
        out[f"md_R{R}_bead_steps_per_s"] = replica_steps * R * n / t_r
    return out


def train_row(dev, wat, n_frames, n_steps, batch_size=4):
    from cgexplain.model.data import CachedFrames, cached_loader

    water, x, cell = wat
    hp = {
        "representation": "painn",
        "n_atom_basis": int(water.representation.n_atom_basis),
        "n_interactions": int(water.representation.n_interactions),
        "cutoff": float(water.representation.cutoff),
    }
    n = min(len(x), 256)
    rng = np.random.default_rng(0)
    pos = x[None, :n] + rng.normal(0, 0.05, (n_frames, n, 3))
    frc = rng.normal(0, 4.0, (n_frames, n, 3))
    cells = np.repeat((cell if n == len(x) else cell / 2 ** (np.log2(len(x) / n) / 3))[None], n_frames, axis=0)
    ds = CachedFrames(pos, frc, cells, np.ones(n, int), hp["cutoff"], progress=False)
    loader = cached_loader(ds, batch_size, sampler=torch.utils.data.RandomSampler(range(len(ds)), generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    model = build_model(hp).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def steps():
        it, frames = iter(loader), 0
        for _ in range(n_steps):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            batch = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}
            out = model(batch)
            loss = ((out["forces"] - batch["forces"]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            frames += int(batch["_n_atoms"].shape[0])
        return frames

    t, frames = timed(steps, dev, 1)
    return {"train_frames_per_s": frames / t}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="the accelerator column: cuda (default) or cpu (dry runs)")
    ap.add_argument("--dry", action="store_true", help="tiny sizes (random models, 16-32 beads): checks the code paths, not the speed")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    dry = args.dry
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_check: no GPU visible; use --device cpu --dry for a dry run")
    torch.set_num_threads(os.cpu_count() or 1)
    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none (CPU only)"
    sizes = dict(repeats=1 if dry else 3, steps=2 if dry else 50, rsteps=2 if dry else 20, frames=8 if dry else 32, tsteps=2 if dry else 8)
    meth, wat = inputs(dry)
    t_start = time.perf_counter()
    cols = {}
    for dev in ("cpu", args.device):
        key = "cpu" if dev == "cpu" else "accel"
        if key in cols:
            break
        d = torch.device(dev)
        lrp, samples = lrp_rows(d, meth, wat, sizes["repeats"])
        # the CPU column's replica steps are cut to keep the run short: R = 16 on CPU is ~0.15 steps/s
        rs = sizes["rsteps"] if dev != "cpu" else max(2, sizes["rsteps"] // 4)
        md = md_rows(d, wat, sizes["steps"] if dev != "cpu" else max(2, sizes["steps"] // 5), rs, (1, 4, 16))
        tr = train_row(d, wat, sizes["frames"], sizes["tsteps"])
        cols[key] = {**lrp, **md, **tr, "_samples": samples}
        print(f"[{dev}] done after {time.perf_counter() - t_start:.0f} s", flush=True)
    if "accel" not in cols:  # --device cpu: the second column repeats the CPU
        cols["accel"] = cols["cpu"]
    cpu, acc = cols["cpu"], cols["accel"]
    # accelerator relevances against CPU relevances on the same sampled walks (the CPU column's)
    smp = cpu["_samples"]
    on_cpu = sampled_relevance(torch.device("cpu"), meth, wat, smp)
    on_acc = sampled_relevance(torch.device(args.device), meth, wat, smp)
    diffs = {k: float(np.abs(on_acc[k] - on_cpu[k]).max() / smp[f"{k}_max"]) for k in ("methane", "water")}
    rows = [
        ("LRP methane parity frame, all walks (SO3net)", "s", "lrp_methane_all_s", False),
        ("LRP water 512 beads, all walks (PaiNN 6 Å)", "s", "lrp_water512_all_s", False),
        ("LRP water 512 beads, pruned (explain stage)", "s", "lrp_water512_pruned_s", False),
        ("MD raw evaluation (512 beads)", "evals/s", "md_raw_evals_per_s", True),
        ("MD cgexplain Langevin (512 beads)", "steps/s", "md_langevin_steps_per_s", True),
        ("MD batched replicas R = 1", "bead-steps/s", "md_R1_bead_steps_per_s", True),
        ("MD batched replicas R = 4", "bead-steps/s", "md_R4_bead_steps_per_s", True),
        ("MD batched replicas R = 16", "bead-steps/s", "md_R16_bead_steps_per_s", True),
        ("training, batch 4 x 256 beads", "frames/s", "train_frames_per_s", True),
    ]
    when = datetime.date.today().isoformat()
    print(
        f"\ngpu_check {when}: accelerator {card}; torch {torch.__version__}; host {platform.machine()}, {os.cpu_count()} CPU cores"
        + (" (DRY RUN: tiny random models, figures are not speeds)" if dry else "")
    )
    print(f"{'figure':<47} {'unit':<13} {'CPU':>12} {args.device:>12} {'speed-up':>9}")
    table = []
    for label, unit, key, higher in rows:
        c, g = cpu[key], acc[key]
        up = g / c if higher else c / g
        table.append({"figure": label, "unit": unit, "cpu": c, "accelerator": g, "speedup": up})
        print(f"{label:<47} {unit:<13} {c:>12.4g} {g:>12.4g} {up:>8.1f}x")
    r16 = acc["md_R16_bead_steps_per_s"] / acc["md_R1_bead_steps_per_s"]
    print(f"walks: methane {cpu['n_walks_methane']:,}, water 512 {cpu['n_walks_water512']:,}")
    print(
        f"{args.device} against CPU relevances, 1,000 sampled walks each: largest |ΔR| / max|R| = methane {diffs['methane']:.1e}, "
        f"water {diffs['water']:.1e}"
    )
    print(f"target R = 16 >= 8 x R = 1 (bead-steps/s) on {args.device}: {r16:.2f}x ({'met' if r16 >= 8 else 'NOT met'})")
    print(f"total wall time {time.perf_counter() - t_start:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": when,
                    "accelerator": card,
                    "torch": torch.__version__,
                    "dry": dry,
                    "rows": table,
                    "relative_difference": diffs,
                    "R16_over_R1": r16,
                    "walks": {"methane": cpu["n_walks_methane"], "water512": cpu["n_walks_water512"]},
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
