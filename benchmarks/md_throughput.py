"""CG MD throughput: how close cgexplain's Langevin integrator gets to the model's speed limit.

For the water PaiNN model on a 512-bead box, in one process on the same input, prints medians of
  (a) raw energy+force evaluations per second of the model as cgexplain evaluates it (fixed
      inputs, neighbour list precomputed, weights' requires_grad off, cgexplain.model.kernels'
      FastPaiNNInteraction): the limit for (b);
  (a_spk) the same with schnetpack's own PaiNN modules and trainable weights, as schnetpack.md and
      ASE evaluate it;
  (b) cgexplain's BAOAB Langevin steps/s (Verlet-skin neighbour list, DCD writing every
      ``--save-every`` steps on the background writer thread);
  (c) schnetpack.md's Simulator (VelocityVerlet + LangevinThermostat, SchNetPackCalculator with
      NeighborListMD and the same skin) with the model in schnetpack's own modules;
  (c') the same Simulator given cgexplain's model object (fast kernels), to separate what the
      kernels give from what the integrator gives;
  (d) ASE's Langevin with schnetpack's SpkCalculator (VesinNeighborList, rebuilt every step),
      schnetpack's modules;
and the ratios b/a, b/c, b/c', b/d (targets on 2 CPU cores: b/a >= 0.9, b/c >= 1.2). The engines
run interleaved, ``--repeats`` times each, so load changes hit all of them alike. Both model
objects hold the same weights (``load_model(..., fast=False)`` gives schnetpack's modules); their
forces agree to float round-off (printed).

Then batched replicas: bead-steps/s of cgexplain's Langevin for R = 1, 4, 16 replicas of the box in
one batched forward pass (on a GPU the target is R=16 >= 8x R=1).

    python benchmarks/md_throughput.py [--model MODEL_DIR] [--device cpu|cuda] [--steps 100]

The model defaults to systems/water/pretrained, else runs/water-full/model, else
runs/water-quick/model. The 512-bead box is a mapped reference frame of the model's run
(runs/<...>/cg/mapped.npz) replicated to 512 beads if it has fewer, else a jittered cubic lattice
at water density (0.0334 beads/Å³).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning)
ROOT = Path(__file__).resolve().parents[1]
WATER_MASS = 18.015  # amu


def find_model(arg):
    cands = [Path(arg)] if arg else [ROOT / "systems/water/pretrained", ROOT / "runs/water-full/model", ROOT / "runs/water-quick/model"]
    for c in cands:
        if (c / "model.json").exists():
            return c
    sys.exit(f"no model found in {', '.join(map(str, cands))}; train one (cgexplain run systems/water) or pass --model")


def box_512(model_dir, n_target=512, seed=0):
    """positions (512, 3) Å and cell (3, 3) Å."""
    from cgexplain.workflow.run import RunFolder

    mapped = RunFolder(Path(model_dir).parent).mapped  # the model folder of a run: its mapped reference
    if mapped.exists():
        with np.load(mapped) as z:
            x, cell = z["positions"][-1].astype(np.float64), z["cells"][-1].astype(np.float64)
        reps = 1
        while len(x) * reps < n_target:
            reps *= 2
        if len(x) * reps == n_target:  # tile along x, y, z in turn
            xs, c = x, cell.copy()
            for k in range(int(np.log2(reps))):
                a = k % 3
                xs = np.concatenate([xs, xs + c[a]])
                c[a] = 2 * c[a]
            return xs, c, f"{mapped} (last frame, {len(x)} beads, tiled x{reps})"
    n_side = round(n_target ** (1 / 3))
    a = (1 / 0.0334) ** (1 / 3)
    g = (np.arange(n_side) + 0.5) * a
    x = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    x += np.random.default_rng(seed).normal(scale=0.1, size=x.shape)
    return x, np.eye(3) * n_side * a, f"jittered cubic lattice, {a:.3f} Å spacing"


def med(xs):
    return float(np.median(xs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=100, help="MD steps per repeat and engine")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skin", type=float, default=1.0, help="Verlet skin, Å (cgexplain and schnetpack.md)")
    ap.add_argument("--save-every", type=int, default=10, help="cgexplain: write a DCD frame every this many steps")
    ap.add_argument("--replicas", default="1,4,16")
    ap.add_argument("--replica-steps", type=int, default=20)
    args = ap.parse_args(argv)

    import schnetpack as spk
    import schnetpack.transform as trn
    from ase import Atoms
    from ase import units as aseu
    from ase.md.langevin import Langevin as AseLangevin

    from cgexplain.md.langevin import AsyncFrameWriter, SimSettings, frozen_weights, langevin
    from cgexplain.model.potential import batch_inputs, load_model

    dev = torch.device(args.device)
    model_dir = find_model(args.model)
    model, meta = load_model(model_dir)  # cgexplain's evaluation (fast kernels)
    model = model.to(dev)
    spk_model = load_model(model_dir, fast=False)[0].to(dev)  # the same weights in schnetpack's modules
    hp = meta["hparams"]
    cutoff = float(hp["cutoff"])
    x, cell, src = box_512(model_dir)
    n = len(x)
    types = np.ones(n, dtype=np.int64)
    masses = np.full(n, WATER_MASS)
    T, dt_ps, gamma = 300.0, 0.002, 1.0
    print(
        f"model {model_dir}: {hp['representation']} F={hp['n_atom_basis']} L={hp['n_interactions']} cutoff {cutoff} Å; "
        f"box {n} beads, {cell[0, 0]:.2f} Å ({src}); device {dev}; torch threads {torch.get_num_threads()}; "
        f"{os.cpu_count()} CPUs; {args.steps} steps x {args.repeats} repeats per engine"
    )

    # (a) raw evaluation: fixed inputs
    inp = batch_inputs(x, types, cell, cutoff, device=dev)
    R_KEY = spk.properties.R

    def raw(k, mdl=spk_model):
        t0 = time.perf_counter()
        for _ in range(k):
            out = mdl({**inp, R_KEY: inp[R_KEY].clone()})  # a fresh leaf for the position gradient
            out["forces"].sum().item()
        return k / (time.perf_counter() - t0)

    def raw_cgx(k):  # weights' requires_grad off and fast kernels, as cgexplain's force field does
        with frozen_weights(model):
            return raw(k, model)

    f_fast = model({**inp, R_KEY: inp[R_KEY].clone()})["forces"].detach()
    f_spk = spk_model({**inp, R_KEY: inp[R_KEY].clone()})["forces"].detach()
    print(
        f"forces, cgexplain kernels against schnetpack's modules: max |dF| {float((f_fast - f_spk).abs().max()):.2e} "
        f"of max |F| {float(f_spk.abs().max()):.2f} kcal/mol/Å (float32)"
    )

    # (b) cgexplain
    tmp = Path(tempfile.mkdtemp(prefix="md_throughput_"))

    def cgx(k, R=1, write=True):
        import MDAnalysis as mda

        s = SimSettings(
            temperature=T,
            timestep=dt_ps,
            friction=gamma,
            n_steps=k,
            save_interval=args.save_every,
            seed=1,
            skin=args.skin,
            n_replicas=R,
            device=str(dev),
            max_force=1e4,
        )
        start = x if R == 1 else np.repeat(x[None], R, axis=0)
        u = mda.Universe.empty(n, trajectory=True)
        w = mda.Writer(str(tmp / "b.dcd"), n_atoms=n)

        def write_fn(xx, _k):
            u.atoms.positions = xx if xx.ndim == 2 else xx[0]
            w.write(u.atoms)

        aw = AsyncFrameWriter(write_fn) if write else None
        t0 = time.perf_counter()
        langevin(model, start, types, masses, cell, cutoff, s, writer=aw, progress=False)
        if aw is not None:
            aw.close()
        dt = time.perf_counter() - t0
        w.close()
        return k / dt

    # (c) schnetpack.md
    class InMemoryCalculator(spk.md.calculators.SchNetPackCalculator):
        """SchNetPackCalculator for a model already in memory (schnetpack's loads a pickled file)."""

        def __init__(self, model, **kw):
            super().__init__(model_file=model, **kw)

        def _prepare_model(self, model_file):
            self._deactivate_postprocessing(model_file)
            return model_file

    atoms = Atoms(numbers=types, positions=x, cell=cell, pbc=True, masses=masses)

    def spk_md(k, mdl=spk_model):
        system = spk.md.System()
        system.load_molecules(atoms.copy(), n_replicas=1, position_unit_input="Angstrom")
        spk.md.initial_conditions.MaxwellBoltzmannInit(
            T, remove_center_of_mass=True, remove_translation=True, remove_rotation=False
        ).initialize_system(system)
        system = system.to(dev)
        nbl = spk.md.neighborlist_md.NeighborListMD(cutoff, args.skin, trn.VesinNeighborList)
        calc = InMemoryCalculator(
            mdl, force_key="forces", energy_unit="kcal/mol", position_unit="Angstrom", neighbor_list=nbl, energy_key="energy"
        ).to(dev)
        integ = spk.md.integrators.VelocityVerlet(dt_ps * 1000.0)  # fs
        thermo = spk.md.simulation_hooks.LangevinThermostat(T, 1000.0 / gamma)  # time constant fs
        sim = spk.md.Simulator(system, integ, calc, simulator_hooks=[thermo], progress=False).to(dev)
        t0 = time.perf_counter()
        sim.simulate(k)
        return k / (time.perf_counter() - t0)

    # (d) ASE
    def ase_md(k):
        a = atoms.copy()
        a.calc = spk.interfaces.SpkCalculator(
            model=spk_model,
            neighbor_list=trn.VesinNeighborList(cutoff),
            energy_key="energy",
            force_key="forces",
            energy_unit="kcal/mol",
            position_unit="Ang",
            device=dev,
        )
        dyn = AseLangevin(a, timestep=dt_ps * 1000 * aseu.fs, temperature_K=T, friction=gamma / (1000 * aseu.fs), rng=np.random.default_rng(1))
        t0 = time.perf_counter()
        dyn.run(k)
        return k / (time.perf_counter() - t0)

    engines = {
        "a raw evaluation, cgexplain": raw_cgx,
        "a_spk raw evaluation, schnetpack": raw,
        "b cgexplain Langevin": cgx,
        "c schnetpack.md Simulator": spk_md,
        "c' schnetpack.md, cgexplain model": lambda k: spk_md(k, model),
        "d ASE Langevin": ase_md,
    }
    for f in engines.values():  # warm-up
        f(5)
    rates = {k: [] for k in engines}
    for _ in range(args.repeats):
        for k, f in engines.items():
            rates[k].append(f(args.steps))
    m = {k: med(v) for k, v in rates.items()}
    print("\nmedian rates (evaluations or steps per second; min-max over repeats):")
    for k, v in rates.items():
        tag, name = k.split(" ", 1)
        print(f"  ({tag:5s}) {name:33s} {m[k]:8.2f} /s   ({min(v):.2f}-{max(v):.2f})  = {1e3 / m[k]:.1f} ms")
    ba, baspk, bc, bcc, bd = (
        m["b cgexplain Langevin"] / m[k]
        for k in (
            "a raw evaluation, cgexplain",
            "a_spk raw evaluation, schnetpack",
            "c schnetpack.md Simulator",
            "c' schnetpack.md, cgexplain model",
            "d ASE Langevin",
        )
    )
    print(f"ratios: b/a {ba:.3f} (b/a_spk {baspk:.3f}), b/c {bc:.2f} (b/c' {bcc:.2f}: integrator alone), b/d {bd:.2f}")
    print(f"target b/a >= 0.9: {'met' if ba >= 0.9 else 'NOT met'}; target b/c >= 1.2: {'met' if bc >= 1.2 else 'NOT met'}")
    nowrite = med([cgx(args.steps, write=False) for _ in range(args.repeats)])
    print(
        f"cgexplain without trajectory writing: {nowrite:.2f} steps/s (with writing every {args.save_every} steps: {m['b cgexplain Langevin']:.2f})"
    )

    print(f"\nbatched replicas ({args.replica_steps} steps each, median of {args.repeats}):")
    base = None
    for R in [int(r) for r in args.replicas.split(",")]:
        sps = med([cgx(args.replica_steps, R=R, write=False) for _ in range(args.repeats)])
        bs = sps * R * n
        base = base or bs
        print(f"  R={R:3d}: {sps:7.2f} steps/s, {bs:10.0f} bead-steps/s, {bs / base:5.2f}x R=1")
    if dev.type == "cuda":
        print("GPU target: R=16 >= 8x the bead-steps/s of R=1 (see above)")


if __name__ == "__main__":
    main()
