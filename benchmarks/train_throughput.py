"""Training throughput: cgexplain's force-matching training against schnetpack's default path.

Same model (same initial weights), same frames (the mapped frames of a run folder), same batch
size. A training step is forward, force-matching loss, backward and Adam step; the time spent
waiting for the next batch (``next(iterator)``: loading, neighbour lists, collation) is measured
apart. Three paths:

- cgexplain: what ``cgexplain train`` runs: :class:`cgexplain.model.data.CachedFrames` (frames in
  memory, neighbour lists computed once before training; their one-off cost is printed separately)
  + :func:`cgexplain.model.data.cached_loader`, and the model with cgexplain.model.kernels'
  FastPaiNNInteraction (same parameters and function as schnetpack's PaiNN);
- cached+spk: the same cached data path with schnetpack's own PaiNN modules: the data path alone;
- schnetpack: ``ASEAtomsData(cg/dataset.db)`` with ``VesinNeighborList`` + ``CastTo32``
  transforms, run for every loaded frame, + ``AtomsLoader``, schnetpack's own modules.

They run side by side in one process, repeats interleaved (the order rotating from repeat to
repeat); medians over repeats and the ratios to the schnetpack path are printed.

    python benchmarks/train_throughput.py [--run runs/water-quick] [--model runs/X/model/model.json]
        [--batch-size 4] [--steps 2] [--repeats 3] [--frames 48] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def _loaders(run: Path, frames: np.ndarray, cutoff: float, batch_size: int, seed: int):
    import schnetpack.transform as trn
    from schnetpack.data import ASEAtomsData, AtomsLoader

    from cgexplain.mapping.maps import MappedTrajectory
    from cgexplain.model.data import CachedFrames, cached_loader
    from cgexplain.workflow.run import RunFolder

    run = RunFolder(run)
    t = MappedTrajectory.load(run.mapped)
    t0 = time.perf_counter()
    ds = CachedFrames(t.positions[frames], t.forces[frames], t.cells[frames], t.bead_types, cutoff, progress=True)
    t_cache = time.perf_counter() - t0
    g1 = torch.Generator().manual_seed(seed)
    cached = cached_loader(ds, batch_size, sampler=torch.utils.data.RandomSampler(range(len(ds)), generator=g1))
    db = ASEAtomsData(str(run.dataset), load_properties=["forces"], transforms=[trn.VesinNeighborList(cutoff=cutoff), trn.CastTo32()])
    g2 = torch.Generator().manual_seed(seed)
    sp = AtomsLoader(torch.utils.data.Subset(db, frames.tolist()), batch_size=batch_size, shuffle=True, num_workers=0, generator=g2)
    return {"cached": cached, "schnetpack": sp}, t_cache, ds


def _steps(model, opt, loader, n_steps: int):
    """n_steps training steps; returns (seconds waiting for data, seconds computing, frames)."""
    t_data = t_comp = 0.0
    frames = 0
    it = iter(loader)
    for _ in range(n_steps):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        t1 = time.perf_counter()
        out = model(dict(batch))
        loss = ((out["forces"] - batch["forces"]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        t_data += t1 - t0
        t_comp += t2 - t1
        frames += int(batch["_n_atoms"].shape[0])
    return t_data, t_comp, frames


def main():
    from cgexplain.fileio import read_json
    from cgexplain.model.potential import DEFAULT_HPARAMS, build_model
    from cgexplain.workflow.run import RunFolder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("runs/water-quick"), help="run folder with cg/mapped.npz and cg/dataset.db")
    ap.add_argument(
        "--model", type=Path, default=None, help="model.json whose hparams to use (default: cgexplain's DEFAULT_HPARAMS, PaiNN F=64, 3 layers, 6 Å)"
    )
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2, help="training steps per repeat and path")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=48, help="frames used (the first N of the trajectory)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    hp = dict(DEFAULT_HPARAMS) if args.model is None else {**DEFAULT_HPARAMS, **read_json(args.model)["hparams"]}
    n_all = len(np.load(RunFolder(args.run).mapped)["positions"])
    frames = np.arange(min(args.frames, n_all))
    loaders, t_cache, ds = _loaders(args.run, frames, float(hp["cutoff"]), args.batch_size, args.seed)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'} (benchmark runs on CPU)"
    )
    print(
        f"data: {args.run} ({ds.n_beads} beads, {len(frames)} frames); model: {hp['representation']} F={hp['n_atom_basis']}, "
        f"{hp['n_interactions']} layers, cutoff {hp['cutoff']} Å; batch {args.batch_size} frames; {args.steps} steps x {args.repeats} repeats per path"
    )
    print(
        f"cached path one-off neighbour lists: {t_cache:.2f} s for {len(frames)} frames ({1e3 * t_cache / len(frames):.1f} ms a frame), "
        f"{ds.nbytes / 2**20:.2f} MiB ({ds.nbytes / max(1, len(ds.idx_i)):.1f} bytes a pair, {len(ds.idx_i) / len(frames):.0f} pairs a frame)"
    )

    torch.manual_seed(args.seed)
    ref = build_model(hp)
    paths = {"cgexplain": ("cached", True), "cached+spk": ("cached", False), "schnetpack": ("schnetpack", False)}
    models, opts = {}, {}
    for name, (data, fast) in paths.items():
        m = build_model(hp, fast=fast)
        m.load_state_dict(ref.state_dict())
        m.train()
        models[name], opts[name] = m, torch.optim.Adam(m.parameters(), lr=5e-4)
        _steps(m, opts[name], loaders[data], 1)  # warm-up
    res = {name: {"fps": [], "wait": []} for name in paths}
    names = list(paths)
    for r in range(args.repeats):
        for name in names[r % 3 :] + names[: r % 3]:
            td, tc, nf = _steps(models[name], opts[name], loaders[paths[name][0]], args.steps)
            res[name]["fps"].append(nf / (td + tc))
            res[name]["wait"].append(td / (td + tc))
    med = {name: (statistics.median(v["fps"]), statistics.median(v["wait"])) for name, v in res.items()}
    print(f"{'path':<12} {'frames/s (median)':>18} {'min..max':>16} {'data wait (median % of step)':>30}")
    for name in names:
        fps, wait = med[name]
        print(f"{name:<12} {fps:18.3f} {min(res[name]['fps']):7.3f}..{max(res[name]['fps']):<7.3f} {100 * wait:29.2f}%")
    for name in ("cgexplain", "cached+spk"):
        ratio = med[name][0] / med["schnetpack"][0]
        per_repeat = [a / b for a, b in zip(res[name]["fps"], res["schnetpack"]["fps"])]
        print(
            f"ratio {name} / schnetpack frames/s: {ratio:.3f} (median of medians; per interleaved repeat "
            f"{min(per_repeat):.3f}..{max(per_repeat):.3f})"
        )
    ratio = med["cgexplain"][0] / med["schnetpack"][0]
    print(
        f"target: data loading <= 10% of step time: {'met' if med['cgexplain'][1] <= 0.10 else 'not met'} "
        f"(cgexplain {100 * med['cgexplain'][1]:.2f}%, schnetpack {100 * med['schnetpack'][1]:.2f}%)"
    )
    print(f"target: ratio cgexplain / schnetpack >= 1: {'met' if ratio >= 1 else 'not met'}")


if __name__ == "__main__":
    main()
