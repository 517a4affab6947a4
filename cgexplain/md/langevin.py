"""Stage 4: CG Langevin dynamics with a trained potential.

Integrator: BAOAB Langevin splitting (Leimkuhler & Matthews, Appl. Math. Res. Express 2013,
34; J. Chem. Phys. 138, 174102 (2013)), in Å, ps, amu, kcal/mol:
    v += (dt/2) F/m;  x += (dt/2) v;  v = c v + sqrt((1 - c²) kT/m) ξ;  x += (dt/2) v;
    F = F(x);  v += (dt/2) F/m,            with c = exp(-γ dt).
(1 kcal/mol/Å/amu = 418.4 Å/ps².) The integrator runs in float64 torch on the model's
device. The neighbour list is a Verlet list (:mod:`cgexplain.md.neighbors`) rebuilt only when a bead
has moved more than half the skin. ``R`` replicas (independent copies, each with its own random
stream) are evaluated in one batched forward pass.

Frames are written to DCD files (one per replica; readable with the CG PDB by MDAnalysis and
mdtraj) by a background thread, so steps do not wait for the disk. If forces become non-finite or larger than ``max_force``, the run stops with
:class:`SimulationError` and the DCD keeps every frame written so far. A checkpoint
(positions, velocities, step, random state) is written every ``checkpoint_every`` frames, so a
killed run resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from cgexplain import units
from cgexplain.fileio import read_json, save_npz, write_json
from cgexplain.md.neighbors import VerletList, replica_cells
from cgexplain.settings import ge, gt, settings_from_dict

__all__ = [
    "SimulationError",
    "SimSettings",
    "CGForceField",
    "frozen_weights",
    "AsyncFrameWriter",
    "langevin",
    "run_simulation",
    "kinetic_temperature",
    "replica_generators",
    "trajectory_paths",
]


class SimulationError(RuntimeError):
    """The CG simulation became unstable (non-finite or exploding forces)."""


@dataclasses.dataclass
class SimSettings:
    """CG Langevin settings: temperature K, timestep ps (None: chosen by the simulate stage from the
    stiffest prior mode, :func:`cgexplain.diagnostics.choose_timestep`), friction 1/ps, n_steps, save_interval
    (steps), max_force kcal/mol/Å, checkpoint_every (frames), seed, start_frame (index of the
    mapped reference frame to start from), n_replicas (replicas in one batched pass; for R > 1
    they start from ``start_frames`` or from R frames spread evenly over the reference),
    skin Å (Verlet skin; 0 rebuilds the neighbour list every step), device (torch device of
    the model and integrator)."""

    temperature: float = gt(0, 300.0, "K")
    timestep: float | None = None  # ps; None: from the prior's stiffest mode (the simulate stage)
    friction: float = ge(0, 1.0, "1/ps")
    n_steps: int = ge(0, 5000)
    save_interval: int = gt(0, 50)
    max_force: float = gt(0, 1000.0, "kcal/mol/Å")
    checkpoint_every: int = gt(0, 20)
    seed: int = 1
    start_frame: int = -1
    n_replicas: int = gt(0, 1)
    start_frames: list[int] | None = None
    skin: float = ge(0, 1.0, "Å")
    device: str = "cpu"
    prior_replicas: int | None = None  # replicas of the prior-only control (None: n_replicas; 0: none)

    @classmethod
    def from_dict(cls, d: dict) -> SimSettings:
        s = settings_from_dict(cls, d, "simulation")
        if s.timestep is not None and not s.timestep > 0:
            raise ValueError(f"simulation.timestep: must be > 0 ps (or left out: chosen from the prior), got {s.timestep}")
        if s.prior_replicas is not None and s.prior_replicas < 0:
            raise ValueError(f"simulation.prior_replicas: must be >= 0, got {s.prior_replicas}")
        return s


def kinetic_temperature(velocities: np.ndarray, masses: np.ndarray) -> float:
    """Kinetic temperature (K) of velocities (n, 3) Å/ps with masses (n,) amu, 3n degrees of freedom."""
    ke = 0.5 * float((masses[:, None] * velocities**2).sum()) / units.KCAL_IN_AMU_A2_PS2
    return 2.0 * ke / (3 * len(masses) * units.KB_KCAL)


@contextlib.contextmanager
def frozen_weights(model: torch.nn.Module):
    """Switch the trainable weights' ``requires_grad`` off inside the block, and back on after.

    Forces need ∂E/∂R only: with the weights frozen, autograd keeps no activations for weight
    gradients (about 8 % faster for PaiNN on CPU, ``benchmarks/md_throughput.py``).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


class CGForceField:
    """Energies and forces of ``R`` replicas in one batched forward pass.

    model: a schnetpack potential with ``energy`` (kcal/mol) and ``forces`` (kcal/mol/Å)
    outputs; types (n,) bead types; cells (3, 3) or (R, 3, 3) Å (zeros/None: not periodic);
    cutoff Å; skin Å (Verlet skin of :class:`cgexplain.md.neighbors.VerletList`; 0 rebuilds every
    step). The constant inputs (types, cells, batch indices) are built once.
    Calling it with positions x (R, n, 3) Å (torch, any float dtype) returns energies (R,)
    kcal/mol and forces (R, n, 3) kcal/mol/Å as float64 tensors on the model's device.
    """

    def __init__(self, model, types, cells, cutoff, skin=1.0, n_replicas=1, device=None):
        import schnetpack.properties as P

        p = next(model.parameters(), None)
        self.device = torch.device(device) if device is not None else (p.device if p is not None else torch.device("cpu"))
        self.dtype = p.dtype if p is not None else torch.float32
        self.model, self.R, self.n = model, int(n_replicas), len(types)
        self.nl = VerletList(cutoff, skin, cells, n_replicas, device=self.device, dtype=self.dtype)
        c = torch.as_tensor(self.nl.cells, dtype=self.dtype, device=self.device)
        self._const = {
            P.Z: torch.as_tensor(np.tile(np.asarray(types, dtype=np.int64), self.R), device=self.device),
            P.cell: c,
            P.pbc: torch.as_tensor(np.repeat(self.nl.periodic[:, None], 3, axis=1), device=self.device),
            P.n_atoms: torch.full((self.R,), self.n, dtype=torch.int64, device=self.device),
            P.idx_m: torch.repeat_interleave(torch.arange(self.R, device=self.device), self.n),
        }
        self._P = P

    def __call__(self, x: torch.Tensor):
        P = self._P
        self.nl.update(x)
        R = x.reshape(-1, 3).to(self.dtype)
        i, j, o = self.nl.pairs(R)
        with frozen_weights(self.model):
            out = self.model({**self._const, P.R: R.clone(), P.idx_i: i, P.idx_j: j, P.offsets: o})
        return out["energy"].detach().double().reshape(self.R), out["forces"].detach().double().reshape(self.R, self.n, 3)


def _wrap(x, cell):
    if cell is None or np.abs(cell).sum() == 0:
        return x
    frac = x @ np.linalg.inv(cell)
    return (frac - np.floor(frac)) @ cell


def _wrap_replicas(x, cells):
    """x (R, n, 3), cells (R, 3, 3) -> positions wrapped into each replica's cell."""
    return np.stack([_wrap(x[r], cells[r]) for r in range(len(x))])


def replica_generators(seed: int, n_replicas: int) -> list:
    """One independent numpy random stream per replica, from ``seed``
    (``SeedSequence(seed).spawn(R)``): replica r's stream does not depend on R."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(int(n_replicas))]


class AsyncFrameWriter:
    """Writes frames on a background thread so the integrator does not wait for the disk.

    ``write_fn(x, k)`` is called on the writer thread, in order, for each ``writer(x, k)``
    call (x is copied first). :meth:`flush` waits until every queued frame is written and
    re-raises the first error the thread met; :meth:`close` flushes and stops the thread.
    ``max_queue`` frames may wait (then ``writer(x, k)`` blocks).
    """

    def __init__(self, write_fn, max_queue: int = 256):
        import queue
        import threading

        self._fn, self._err = write_fn, None
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self._t = threading.Thread(target=self._loop, daemon=True, name="cgexplain-frame-writer")
        self._t.start()

    def _loop(self):
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                if self._err is None:
                    self._fn(*item)
            except BaseException as exc:  # kept and re-raised on the main thread
                self._err = exc
            finally:
                self._q.task_done()

    def __call__(self, x, k):
        if self._err is not None:
            self.flush()
        self._q.put((np.array(x, copy=True), k))

    def flush(self):
        self._q.join()
        if self._err is not None:
            err, self._err = self._err, None
            raise RuntimeError(f"writing trajectory frames failed: {err}") from err

    def close(self):
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()
        if self._err is not None:
            err, self._err = self._err, None
            raise RuntimeError(f"writing trajectory frames failed: {err}") from err


def langevin(model, positions, types, masses, cell, cutoff, settings: SimSettings, writer=None, state=None, on_checkpoint=None, progress=True):
    """Run BAOAB Langevin dynamics of one system or of R replicas in one batched forward pass.

    positions (n, 3) or (R, n, 3) Å; types (n,); masses (n,) amu; cell (3, 3) or (R, 3, 3) Å
    or None; cutoff Å. The neighbour list is a Verlet list with ``settings.skin`` Å. Each
    replica has its own random stream (:func:`replica_generators` of ``settings.seed``), so
    runs are reproducible from the seed. ``writer(x_wrapped, frame_index)`` is called for each
    saved frame (x_wrapped shaped like ``positions``); ``state`` (from a checkpoint) resumes a
    run; ``on_checkpoint(state)`` is called every ``checkpoint_every`` frames.
    Returns the final state: x, v (shaped like ``positions``), step, frames and a per-frame log
    (time_ps; temperature_K and potential_kcal_mol per frame, with a replica axis for R > 1).
    Raises SimulationError naming the step, replica and bead when forces are non-finite or
    exceed ``settings.max_force``; frames already passed to ``writer`` stay written.
    """
    from tqdm.auto import tqdm

    x0 = np.asarray(positions, dtype=np.float64)
    single = x0.ndim == 2
    x0 = x0[None] if single else x0
    R, n = x0.shape[:2]
    if len(types) != n or len(masses) != n:
        raise ValueError(f"positions have {n} beads but types has {len(types)} and masses {len(masses)}")
    ff = CGForceField(model, types, cell, cutoff, skin=settings.skin, n_replicas=R, device=settings.device)
    cells = ff.nl.cells
    dev = ff.device
    m_np = np.asarray(masses, dtype=np.float64)
    m = torch.as_tensor(m_np, device=dev)[None, :, None]
    kT = units.KB_KCAL * settings.temperature
    if settings.timestep is None:
        raise ValueError("simulation.timestep is None: choose it first (cgexplain.diagnostics.choose_timestep; the simulate stage does)")
    dt, conv = settings.timestep, units.KCAL_IN_AMU_A2_PS2
    c1 = float(np.exp(-settings.friction * dt))
    sig_np = np.sqrt((1.0 - c1**2) * kT * conv / m_np)[:, None]
    sig = torch.as_tensor(sig_np, device=dev)[None]
    gens = replica_generators(settings.seed, R)

    def noise():
        return torch.as_tensor(np.stack([g.standard_normal((n, 3)) for g in gens]), device=dev)

    if state is None:
        x = torch.as_tensor(x0, device=dev).clone()
        v = noise() * torch.as_tensor(np.sqrt(kT * conv / m_np)[None, :, None], device=dev)
        step, frames = 0, 0
        # per frame a float (one replica) or a list of R floats
        log: dict[str, list] = {"time_ps": [], "temperature_K": [], "potential_kcal_mol": []}
    else:
        sx, sv = np.asarray(state["x"]), np.asarray(state["v"])
        x = torch.as_tensor(sx[None] if sx.ndim == 2 else sx, device=dev).clone()
        v = torch.as_tensor(sv[None] if sv.ndim == 2 else sv, device=dev).clone()
        step, frames, log = int(state["step"]), int(state["frames"]), {k: list(val) for k, val in state["log"].items()}
        rng_states = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        if len(rng_states) != R:
            raise ValueError(f"checkpoint holds {len(rng_states)} random streams for {R} replicas")
        for g, st in zip(gens, rng_states):
            g.bit_generator.state = st
    e, f = ff(x)

    def check(f, step):
        fn = torch.linalg.vector_norm(f, dim=-1)
        fmax = float(fn.max())
        if np.isfinite(fmax) and fmax <= settings.max_force:
            return
        fn = fn.cpu().numpy()
        bad = ~np.isfinite(fn)
        where = lambda flat: (f" in replica {flat // n}" if R > 1 else "", flat % n)  # noqa: E731
        if bad.any():
            rep, bead = where(int(np.flatnonzero(bad.ravel())[0]))
            raise SimulationError(f"non-finite force on bead {bead}{rep} at step {step}; {frames} frames written")
        rep, bead = where(int(fn.argmax()))
        raise SimulationError(
            f"force {fn.max():.3g} kcal/mol/Å on bead {bead}{rep} at step {step} exceeds max_force="
            f"{settings.max_force}; the simulation exploded. {frames} frames written"
        )

    def out(a):
        a = a.cpu().numpy()
        return a[0] if single else a

    check(f, step)
    half = 0.5 * dt * conv
    bar = tqdm(total=settings.n_steps, initial=step, desc="CG Langevin (steps)", disable=not progress)
    while step < settings.n_steps:
        v += half * f / m
        x += 0.5 * dt * v
        v = c1 * v + sig * noise()
        x += 0.5 * dt * v
        e, f = ff(x)
        step += 1
        check(f, step)
        v += half * f / m
        bar.update(1)
        if step % settings.save_interval == 0:
            xs = x.cpu().numpy()
            if writer is not None:
                xw = _wrap_replicas(xs, cells)
                writer(xw[0] if single else xw, frames)
            frames += 1
            vs = v.cpu().numpy()
            T = [kinetic_temperature(vs[r], m_np) for r in range(R)]
            E = e.cpu().numpy().tolist()
            log["time_ps"].append(step * dt)
            log["temperature_K"].append(T[0] if single else T)
            log["potential_kcal_mol"].append(E[0] if single else E)
            if on_checkpoint is not None and frames % settings.checkpoint_every == 0:
                on_checkpoint({"x": out(x), "v": out(v), "step": step, "frames": frames, "log": log, "rng": [g.bit_generator.state for g in gens]})
    bar.close()
    return {"x": out(x), "v": out(v), "step": step, "frames": frames, "log": log, "neighbour_list_builds": ff.nl.n_builds}


def trajectory_paths(out_dir, n_replicas: int = 1) -> list:
    """DCD files of a simulation folder: ``trajectory.dcd`` for one replica, else
    ``trajectory_rXX.dcd`` per replica."""
    out = Path(out_dir)
    return [out / "trajectory.dcd"] if n_replicas == 1 else [out / f"trajectory_r{r:02d}.dcd" for r in range(n_replicas)]


def run_simulation(
    model,
    meta: dict,
    topology_pdb: str | Path,
    start_positions,
    types,
    masses,
    cell,
    settings: SimSettings,
    out_dir: str | Path,
    progress: bool = True,
) -> dict:
    """Run (or resume) a CG simulation; write the DCD(s), ``log.npz`` and ``simulation.json``.

    start_positions (n, 3) Å, or (R, n, 3) for R = settings.n_replicas replicas; types (n,);
    masses (n,) amu; cell (3, 3) or (R, 3, 3) Å. ``meta`` is the model JSON (for the cutoff).
    Files: :func:`trajectory_paths` (``trajectory.dcd``, or ``trajectory_rXX.dcd`` per replica).
    Returns the summary (mean kinetic temperature, frames, neighbour-list builds, wall time).
    Raises ValueError if the start positions do not match n_replicas, SimulationError if the run
    explodes; the DCDs then hold the frames written so far and ``simulation.json`` is not written.
    """
    import MDAnalysis as mda
    from MDAnalysis.lib.mdamath import triclinic_box

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    R = int(settings.n_replicas)
    x0 = np.asarray(start_positions, dtype=np.float64)
    x0 = x0[None] if x0.ndim == 2 else x0
    if x0.shape[0] != R:
        raise ValueError(f"{x0.shape[0]} start configurations for n_replicas={R}")
    cells = replica_cells(cell, R)
    cutoff = float(meta["hparams"]["cutoff"])
    u = mda.Universe(str(topology_pdb))
    dims = [triclinic_box(*c) if np.abs(c).sum() > 0 else None for c in cells]
    paths, ckpt = trajectory_paths(out, R), out / "checkpoint.npz"
    state, kept = None, np.zeros((R, 0, len(types), 3))
    if ckpt.exists() and all(p.exists() for p in paths):
        with np.load(ckpt, allow_pickle=False) as z:
            state = {
                "x": z["x"],
                "v": z["v"],
                "step": int(z["step"]),
                "frames": int(z["frames"]),
                "log": {k: z[f"log_{k}"] for k in ("time_ps", "temperature_K", "potential_kcal_mol")},
                # the random streams live in the same file (one atomic write); older checkpoints kept them beside it
                "rng": json.loads(str(z["rng"])) if "rng" in z.files else read_json(out / "checkpoint_rng.json"),
            }
        frames = [mda.Universe(str(topology_pdb), str(p)).trajectory.timeseries(order="fac") for p in paths]
        for p, f in zip(paths, frames):
            if len(f) < state["frames"]:
                raise RuntimeError(
                    f"{p} holds {len(f)} frames but {ckpt} counts {state['frames']}: the trajectory was cut short after the "
                    f"checkpoint and cannot be resumed; remove {out} to simulate again"
                )
        kept = np.stack([f[: state["frames"]] for f in frames])

    # a resumed run rewrites the frames it keeps into new files and swaps them in only once they
    # are written, so a kill during the rewrite leaves the old, complete trajectories in place
    targets = [p.with_name(f".{p.stem}.resuming{p.suffix}") if state is not None else p for p in paths]
    writers = [mda.Writer(str(t), n_atoms=len(types)) for t in targets]

    def write_frame(x, k):  # on the writer thread
        x = x[None] if x.ndim == 2 else x
        for r, w in enumerate(writers):
            u.atoms.positions = x[r]
            if dims[r] is not None:
                u.dimensions = dims[r]
            w.write(u.atoms)

    for k in range(kept.shape[1]):
        write_frame(kept[:, k], k)
    for t, p in zip(targets, paths):
        if t != p:
            os.replace(t, p)  # the open writer keeps appending to the renamed file
    writer = AsyncFrameWriter(write_frame)

    def save_ckpt(s):
        writer.flush()  # the DCDs hold every frame the checkpoint counts
        save_npz(
            ckpt,
            x=s["x"],
            v=s["v"],
            step=s["step"],
            frames=s["frames"],
            rng=np.array(json.dumps(s["rng"])),
            **{f"log_{k}": np.asarray(val) for k, val in s["log"].items()},
        )

    try:
        start = x0[0] if R == 1 else x0
        final = langevin(model, start, types, masses, cells, cutoff, settings, writer=writer, state=state, on_checkpoint=save_ckpt, progress=progress)
    finally:
        try:
            writer.close()
        finally:
            for w in writers:
                w.close()
    log = {k: np.asarray(val) for k, val in final["log"].items()}
    save_npz(out / "log.npz", **log)
    summary = {
        "settings": dataclasses.asdict(settings),
        "n_replicas": R,
        "n_frames": int(final["frames"]),
        "simulated_time_ps": settings.n_steps * float(settings.timestep or 0.0),
        "mean_kinetic_temperature_K": float(np.mean(log["temperature_K"])) if len(log["temperature_K"]) else None,
        "neighbour_list_builds": int(final["neighbour_list_builds"]),
        "trajectories": [p.name for p in paths],
        "wall_time_s": time.perf_counter() - t0,
    }
    write_json(out / "simulation.json", summary)
    return summary
