"""Stage 4: CG Langevin dynamics with a trained potential.

Integrator: BAOAB Langevin splitting (Leimkuhler & Matthews, Appl. Math. Res. Express 2013,
34; J. Chem. Phys. 138, 174102 (2013)), in Å, ps, amu, kcal/mol:
    v += (dt/2) F/m;  x += (dt/2) v;  v = c v + sqrt((1 - c²) kT/m) ξ;  x += (dt/2) v;
    F = F(x);  v += (dt/2) F/m,            with c = exp(-γ dt).
(1 kcal/mol/Å/amu = 418.4 Å/ps².) The neighbour list is rebuilt each step with vesin.

Frames are written to a DCD as they are produced (readable with the CG PDB by MDAnalysis and
mdtraj). If forces become non-finite or larger than ``max_force``, the run stops with
:class:`SimulationError` and the DCD keeps every frame written so far. A checkpoint
(positions, velocities, step, random state) is written every ``checkpoint_every`` frames, so a
killed run resumes.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from . import units
from .config import settings_from_dict
from .fileio import read_json, save_npz, write_json
from .models import batch_inputs

__all__ = ["SimulationError", "SimSettings", "langevin", "run_simulation", "kinetic_temperature"]


class SimulationError(RuntimeError):
    """The CG simulation became unstable (non-finite or exploding forces)."""


@dataclasses.dataclass
class SimSettings:
    """CG Langevin settings: temperature K, timestep ps, friction 1/ps, n_steps, save_interval
    (steps), max_force kcal/mol/Å, checkpoint_every (frames), seed, start_frame (index of the
    mapped reference frame to start from)."""

    temperature: float = 300.0
    timestep: float = 0.002
    friction: float = 1.0
    n_steps: int = 5000
    save_interval: int = 50
    max_force: float = 1000.0
    checkpoint_every: int = 20
    seed: int = 1
    start_frame: int = -1

    @classmethod
    def from_dict(cls, d: dict) -> "SimSettings":
        return settings_from_dict(cls, d, "simulation")


def kinetic_temperature(velocities: np.ndarray, masses: np.ndarray) -> float:
    """Kinetic temperature (K) of velocities (n, 3) Å/ps with masses (n,) amu, 3n degrees of freedom."""
    ke = 0.5 * float((masses[:, None] * velocities**2).sum()) / units.KCAL_IN_AMU_A2_PS2
    return 2.0 * ke / (3 * len(masses) * units.KB_KCAL)


class _ForceField:
    def __init__(self, model, types, cell, cutoff, device="cpu"):
        self.model, self.types, self.cell, self.cutoff, self.device = model, types, cell, cutoff, device

    def __call__(self, x: np.ndarray):
        inp = batch_inputs(x, self.types, self.cell, self.cutoff, device=self.device)
        out = self.model(inp)
        return float(out["energy"].sum().detach()), out["forces"].detach().cpu().numpy().astype(np.float64)


def _wrap(x, cell):
    if cell is None or np.abs(cell).sum() == 0:
        return x
    frac = x @ np.linalg.inv(cell)
    return (frac - np.floor(frac)) @ cell


def langevin(model, positions, types, masses, cell, cutoff, settings: SimSettings, writer=None, state=None, on_checkpoint=None, progress=True):
    """Run BAOAB Langevin dynamics; returns a dict with the final state and a per-frame log.

    positions (n, 3) Å; types (n,); masses (n,) amu; cell (3, 3) Å or None; cutoff Å.
    ``writer(x_wrapped, frame_index)`` is called for each saved frame; ``state`` (from a
    checkpoint) resumes a run; ``on_checkpoint(state)`` is called every ``checkpoint_every``
    frames. Raises SimulationError naming the step and bead when forces are non-finite or
    exceed ``settings.max_force``; frames already passed to ``writer`` stay written.
    """
    from tqdm.auto import tqdm

    ff = _ForceField(model, types, cell, cutoff)
    m = np.asarray(masses, dtype=np.float64)[:, None]
    kT = units.KB_KCAL * settings.temperature
    dt, conv = settings.timestep, units.KCAL_IN_AMU_A2_PS2
    c1 = np.exp(-settings.friction * dt)
    sig = np.sqrt((1.0 - c1**2) * kT * conv / m)
    rng = np.random.default_rng(settings.seed)
    if state is None:
        x = np.asarray(positions, dtype=np.float64).copy()
        v = rng.normal(size=x.shape) * np.sqrt(kT * conv / m)
        step, frames, log = 0, 0, {"time_ps": [], "temperature_K": [], "potential_kcal_mol": []}
    else:
        x, v = state["x"].copy(), state["v"].copy()
        step, frames, log = int(state["step"]), int(state["frames"]), {k: list(val) for k, val in state["log"].items()}
        rng.bit_generator.state = state["rng"]
    e, f = ff(x)

    def check(f, step):
        bad = ~np.isfinite(f).all(axis=1)
        if bad.any():
            raise SimulationError(f"non-finite force on bead {int(np.flatnonzero(bad)[0])} at step {step}; {frames} frames written")
        fmax = np.linalg.norm(f, axis=1)
        if fmax.max() > settings.max_force:
            raise SimulationError(
                f"force {fmax.max():.3g} kcal/mol/Å on bead {int(fmax.argmax())} at step {step} exceeds max_force="
                f"{settings.max_force}; the simulation exploded. {frames} frames written"
            )

    check(f, step)
    bar = tqdm(total=settings.n_steps, initial=step, desc="CG Langevin (steps)", disable=not progress)
    while step < settings.n_steps:
        v += 0.5 * dt * conv * f / m
        x += 0.5 * dt * v
        v = c1 * v + sig * rng.normal(size=x.shape)
        x += 0.5 * dt * v
        e, f = ff(x)
        step += 1
        check(f, step)
        v += 0.5 * dt * conv * f / m
        bar.update(1)
        if step % settings.save_interval == 0:
            if writer is not None:
                writer(_wrap(x, cell), frames)
            frames += 1
            log["time_ps"].append(step * dt)
            log["temperature_K"].append(kinetic_temperature(v, m[:, 0]))
            log["potential_kcal_mol"].append(e)
            if on_checkpoint is not None and frames % settings.checkpoint_every == 0:
                on_checkpoint({"x": x, "v": v, "step": step, "frames": frames, "log": log, "rng": rng.bit_generator.state})
    bar.close()
    return {"x": x, "v": v, "step": step, "frames": frames, "log": log}


def run_simulation(model, meta: dict, topology_pdb: str | Path, start_positions, types, masses, cell, settings: SimSettings, out_dir: str | Path, progress: bool = True) -> dict:
    """Run (or resume) a CG simulation; write ``trajectory.dcd``, ``log.npz`` and ``simulation.json``.

    start_positions (n, 3) Å; types (n,); masses (n,) amu; cell (3, 3) Å. ``meta`` is the model
    JSON (for the cutoff). Returns the summary (mean kinetic temperature, frames, wall time).
    Raises SimulationError if the run explodes; the DCD then holds the frames written so far and
    ``simulation.json`` is not written.
    """
    import MDAnalysis as mda
    from MDAnalysis.lib.mdamath import triclinic_box

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "simulation.json").exists():
        return read_json(out / "simulation.json")
    t0 = time.perf_counter()
    cutoff = float(meta["hparams"]["cutoff"])
    u = mda.Universe(str(topology_pdb))
    dims = triclinic_box(*np.asarray(cell)) if cell is not None and np.abs(cell).sum() > 0 else None
    dcd, ckpt = out / "trajectory.dcd", out / "checkpoint.npz"
    state, kept = None, np.zeros((0, len(types), 3))
    if ckpt.exists() and dcd.exists():
        with np.load(ckpt, allow_pickle=False) as z:
            state = {"x": z["x"], "v": z["v"], "step": int(z["step"]), "frames": int(z["frames"]),
                     "log": {k: z[f"log_{k}"] for k in ("time_ps", "temperature_K", "potential_kcal_mol")},
                     "rng": read_json(out / "checkpoint_rng.json")}
        kept = mda.Universe(str(topology_pdb), str(dcd)).trajectory.timeseries(order="fac")[: state["frames"]]

    def save_ckpt(s):
        write_json(out / "checkpoint_rng.json", s["rng"])
        save_npz(ckpt, x=s["x"], v=s["v"], step=s["step"], frames=s["frames"], **{f"log_{k}": np.asarray(val) for k, val in s["log"].items()})

    with mda.Writer(str(dcd), n_atoms=len(types)) as w:
        def write(x, k):
            u.atoms.positions = x
            if dims is not None:
                u.dimensions = dims
            w.write(u.atoms)

        for k, x in enumerate(kept):
            write(x, k)
        final = langevin(model, start_positions, types, masses, cell, cutoff, settings, writer=write, state=state, on_checkpoint=save_ckpt, progress=progress)
    log = {k: np.asarray(val) for k, val in final["log"].items()}
    save_npz(out / "log.npz", **log)
    summary = {
        "settings": dataclasses.asdict(settings),
        "n_frames": int(final["frames"]),
        "simulated_time_ps": settings.n_steps * settings.timestep,
        "mean_kinetic_temperature_K": float(np.mean(log["temperature_K"])) if len(log["temperature_K"]) else None,
        "wall_time_s": time.perf_counter() - t0,
    }
    write_json(out / "simulation.json", summary)
    return summary
