"""Stage 1 for proteins: implicit-solvent reference MD with forces (OpenMM).

The protein (a PDB with hydrogens, e.g. NTL9 K12M with an ``NHE`` C-terminal cap) is built with
an OpenMM force field (default amber14 with GBn2 implicit solvent, Nguyen, Roe & Simmerling,
J. Chem. Theory Comput. 9, 2020 (2013)) and minimised. Then:

1. ``n_native_runs`` runs start from the minimised (native) structure.
2. ``n_seeded_runs`` runs start from snapshots of one short run at ``high_temperature``
   (evenly spaced over its second half), so the reference samples more than the native basin.
3. Every run is re-equilibrated at ``temperature`` for ``equilibration`` ps before any frame is
   saved: force matching estimates the mean force of the atomistic ensemble at given CG
   coordinates, which is valid once the atoms are at equilibrium at the target temperature
   (Noid et al., J. Chem. Phys. 128, 244114 (2008)), wherever the CG coordinates were seeded.
4. Production: Langevin (``LangevinMiddleIntegrator``), frames of positions and total forces
   every ``save_interval`` ps, written in chunks with an OpenMM state after each, so an
   interrupted run resumes from the last finished chunk.

Hydrogen mass repartitioning (``hydrogen_mass`` amu moved onto each H from its heavy atom) allows
4 fs steps; it changes dynamics but not the configurational ensemble or the forces.
OpenMM's ``getForces`` leaves out the H-bond constraint forces; a force map that sums every
atom of a residue cancels them (:mod:`cgexplain.mapping.maps`).

Output (``out_dir``): ``topology.pdb`` (the minimised structure), ``trajectory.trr`` (all runs
one after another, no box, forces), ``native.pdb`` (the minimised structure, for RMSD and
native contacts) and ``reference.json`` with ``run_lengths`` (frames per run, in order) and
``run_kinds`` ("native" or "seeded"). Units: Å, ps, K, amu, kcal/mol/Å.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from cgexplain.fileio import atomic_path, read_json, write_json
from cgexplain.reference.fluids import run_chunks, save_state, write_trajectory_with_forces
from cgexplain.settings import ge, gt, settings_from_dict

__all__ = ["ProteinReferenceSettings", "run_protein_reference", "run_boundaries", "run_halves"]


@dataclasses.dataclass
class ProteinReferenceSettings:
    """Settings of a protein reference (units: Å, ps, K, amu)."""

    pdb: str = ""  # path to the all-atom PDB with hydrogens
    forcefield: str | tuple[str, ...] = ("amber14-all.xml", "implicit/gbn2.xml")
    temperature: float = gt(0, 300.0, "K")
    timestep: float = gt(0, 0.004, "ps")
    hydrogen_mass: float = ge(0, 3.0, "amu")  # amu; 0: no repartitioning (then use a 2 fs step)
    friction: float = 1.0  # 1/ps
    nonbonded_cutoff: float = 0.0  # Å; 0: no cutoff (exact GB)
    n_native_runs: int = ge(0, 2)
    n_seeded_runs: int = ge(0, 2)
    high_temperature: float = gt(0, 400.0, "K")
    high_temperature_time: float = 100.0  # ps
    equilibration: float = 20.0  # ps at the target temperature, per run, before frames are saved
    production: float = gt(0, 50.0, "ps")  # ps per run
    save_interval: float = gt(0, 0.2, "ps")  # ps
    chunk: float = 10.0  # ps per checkpointed chunk
    seed: int = 1
    threads: int = 0  # OpenMM CPU threads; 0: OpenMM's default
    processes: int = ge(1, 1)  # runs simulated side by side in this many processes (a small molecule: one thread each is fastest)

    @classmethod
    def from_dict(cls, d: dict) -> ProteinReferenceSettings:
        d = dict(d)
        if "forcefield" in d:
            d["forcefield"] = (d["forcefield"],) if isinstance(d["forcefield"], str) else tuple(d["forcefield"])
        s = settings_from_dict(cls, d, "reference")
        if not s.pdb:
            raise ValueError("reference.pdb: a protein reference needs the all-atom PDB file")
        if s.n_native_runs + s.n_seeded_runs < 1:
            raise ValueError("reference: n_native_runs + n_seeded_runs must be at least 1")
        if s.temperature <= 0 or s.timestep <= 0 or s.production <= 0 or s.save_interval <= 0:
            raise ValueError("reference: temperature, timestep, production and save_interval must be > 0")
        return s


def _system(s: ProteinReferenceSettings):
    from openmm import app, unit

    pdb_path = Path(s.pdb)
    if not pdb_path.exists():
        raise FileNotFoundError(f"reference.pdb: {pdb_path} does not exist")
    pdb = app.PDBFile(str(pdb_path))
    ff = app.ForceField(*s.forcefield)
    kw = dict(constraints=app.HBonds)
    if s.hydrogen_mass > 0:
        kw["hydrogenMass"] = s.hydrogen_mass * unit.amu
    if s.nonbonded_cutoff > 0:
        kw.update(nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=s.nonbonded_cutoff / 10.0 * unit.nanometer)
    else:
        kw["nonbondedMethod"] = app.NoCutoff
    try:
        system = ff.createSystem(pdb.topology, **kw)
    except ValueError as exc:
        raise ValueError(f"{pdb_path}: OpenMM force field {list(s.forcefield)} cannot build it: {exc}") from exc
    return system, pdb.topology, pdb.positions


def _simulation(system, topology, s: ProteinReferenceSettings, temperature: float, seed: int):
    import openmm
    from openmm import app, unit

    integ = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, s.friction / unit.picosecond, s.timestep * unit.picoseconds)
    integ.setRandomNumberSeed(seed)
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if "CUDA" in names:
        return app.Simulation(topology, system, integ, openmm.Platform.getPlatformByName("CUDA"))
    if "CPU" in names:
        props = {"Threads": str(s.threads)} if s.threads > 0 else {}
        return app.Simulation(topology, system, integ, openmm.Platform.getPlatformByName("CPU"), props)
    return app.Simulation(topology, system, integ)


def _steps(t: float, dt: float) -> int:
    return max(1, int(round(t / dt)))


def run_boundaries(run_lengths) -> list[tuple[int, int]]:
    """(start, stop) frame indices of each run in the concatenated trajectory."""
    ends = np.cumsum(np.asarray(run_lengths, dtype=int))
    return [(int(e - n), int(e)) for e, n in zip(ends, run_lengths)]


def run_halves(run_lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of the first and of the second half of every run (run lengths in frames,
    in order, of the concatenated trajectory). Raises ValueError for no frames."""
    if sum(run_lengths) == 0:
        raise ValueError("run_halves: no frames")
    starts = np.concatenate([[0], np.cumsum(run_lengths)[:-1]]).astype(int)
    a = [np.arange(s, s + n // 2) for s, n in zip(starts, run_lengths)]
    b = [np.arange(s + n // 2, s + n) for s, n in zip(starts, run_lengths)]
    return np.concatenate(a).astype(int), np.concatenate(b).astype(int)


def _production_run(s: ProteinReferenceSettings, out: Path, r: int, kind: str, progress: bool) -> None:
    """Run ``r`` of the reference (``kind`` "native" or "seeded"): re-equilibrate from its start
    state, then production in checkpointed chunks into ``out/run_XX`` (resumable; its own seeds, so
    a run gives the same frames in any process)."""
    from openmm import unit
    from tqdm.auto import tqdm

    system, topology, _ = _system(s)
    mini, seeds_dir = out / "minimised_state.xml", out / "seeds"
    every = _steps(s.save_interval, s.timestep)
    per_chunk = max(1, int(round(s.chunk / s.save_interval)))
    n_frames = int(round(s.production / s.save_interval))
    rd = out / f"run_{r:02d}"
    rd.mkdir(exist_ok=True)
    sim = _simulation(system, topology, s, s.temperature, s.seed + 1000 * (r + 1))
    eq = rd / "equilibrated_state.xml"
    if not eq.exists():
        start = mini if kind == "native" else seeds_dir / f"seed_{r - s.n_native_runs:02d}.xml"
        sim.loadState(str(start))
        sim.context.setVelocitiesToTemperature(s.temperature * unit.kelvin, s.seed + 1000 * (r + 1))
        sim.step(_steps(s.equilibration, s.timestep))
        save_state(sim, eq)
    with tqdm(total=n_frames, desc=f"reference run {r} (frames)", disable=not progress) as bar:
        run_chunks(
            sim, rd, eq, n_frames, per_chunk, every, lambda c: s.seed + 1000 * (r + 1) + 1 + c, bar, f"protein reference, run {r}", with_cell=False
        )


def run_protein_reference(settings: ProteinReferenceSettings, out_dir: str | Path, progress: bool = True) -> dict:
    """Run (or resume) the protein reference described in the module docstring; write ``out_dir``.

    Returns the contents of ``reference.json``: settings, ``n_atoms``, ``n_frames``,
    ``run_lengths``, ``run_kinds``, ``seed_times_ps`` (high-temperature snapshot times of the
    seeded runs), minimised energy (kcal/mol) and timings (s).
    Raises FileNotFoundError for a missing PDB, ValueError if the force field cannot build it,
    RuntimeError naming the run, chunk and frame for non-finite positions or forces.
    """
    from openmm import app, unit
    from tqdm.auto import tqdm

    s = settings
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = out / "reference.json"
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    system, topology, positions = _system(s)
    n_atoms = topology.getNumAtoms()

    # 1. minimise
    mini = out / "minimised_state.xml"
    if not mini.exists():
        sim = _simulation(system, topology, s, s.temperature, s.seed)
        sim.context.setPositions(positions)
        sim.minimizeEnergy()
        st = sim.context.getState(getPositions=True, getEnergy=True)
        write_json(out / "minimisation.json", {"energy_kcal_mol": st.getPotentialEnergy().value_in_unit(unit.kilocalorie_per_mole)})
        for name in ("native.pdb", "topology.pdb"):
            with atomic_path(out / name) as tmp, open(tmp, "w") as fh:
                app.PDBFile.writeFile(topology, st.getPositions(), fh)
        save_state(sim, mini)
        timings["minimisation_s"] = time.perf_counter() - t0

    # 2. seeds from one high-temperature run
    seeds_dir = out / "seeds"
    seed_times = [s.high_temperature_time * (0.5 + 0.5 * (k + 1) / s.n_seeded_runs) for k in range(s.n_seeded_runs)]
    if s.n_seeded_runs and not (seeds_dir / "done").exists():
        t1 = time.perf_counter()
        shutil.rmtree(seeds_dir, ignore_errors=True)
        seeds_dir.mkdir()
        sim = _simulation(system, topology, s, s.high_temperature, s.seed + 7)
        sim.loadState(str(mini))
        sim.context.setVelocitiesToTemperature(s.high_temperature * unit.kelvin, s.seed + 7)
        t_now = 0.0
        for k, t in enumerate(tqdm(seed_times, desc=f"high-temperature run ({s.high_temperature:g} K)", disable=not progress)):
            n = _steps(t - t_now, s.timestep)
            sim.step(n)
            t_now += n * s.timestep
            save_state(sim, seeds_dir / f"seed_{k:02d}.xml")
        (seeds_dir / "done").write_text("ok\n")
        timings["high_temperature_s"] = time.perf_counter() - t1

    # 3-4. runs: re-equilibrate at the target temperature, then production in chunks
    kinds = ["native"] * s.n_native_runs + ["seeded"] * s.n_seeded_runs
    n_frames = int(round(s.production / s.save_interval))
    n_chunks = -(-n_frames // max(1, int(round(s.chunk / s.save_interval))))
    t2 = time.perf_counter()
    if s.processes > 1 and len(kinds) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a fresh interpreter per worker (no forked OpenMM or torch state)
        # one OpenMM thread per process unless set: the processes share the cores
        sp = dataclasses.replace(s, threads=s.threads or 1)
        pool = ProcessPoolExecutor(min(s.processes, len(kinds)), mp_context=mp.get_context("spawn"))
        try:
            jobs = [pool.submit(_production_run, sp, out, r, kind, False) for r, kind in enumerate(kinds)]
            for j in tqdm(as_completed(jobs), total=len(jobs), desc=f"reference production (runs, {s.processes} processes)", disable=not progress):
                j.result()  # the first failure is raised here; the runs not started are cancelled
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for r, kind in enumerate(kinds):
            _production_run(s, out, r, kind, progress)
    timings["production_s"] = time.perf_counter() - t2

    parts = [np.load(out / f"run_{r:02d}" / f"chunk_{c:04d}.npz") for r in range(len(kinds)) for c in range(n_chunks)]
    pos = np.concatenate([p["positions"] for p in parts])
    frc = np.concatenate([p["forces"] for p in parts])
    write_trajectory_with_forces(out / "topology.pdb", out / "trajectory.trr", pos, frc, np.zeros((len(pos), 3, 3)), s.save_interval)
    mini_info = read_json(out / "minimisation.json") if (out / "minimisation.json").exists() else {}
    summary = {
        "settings": dataclasses.asdict(s),
        "n_atoms": int(n_atoms),
        "n_frames": int(len(pos)),
        "run_lengths": [n_frames] * len(kinds),
        "run_kinds": kinds,
        "seed_times_ps": seed_times,
        "minimised_energy_kcal_mol": mini_info.get("energy_kcal_mol"),
        "total_mass_amu": float(sum(system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles()))),
        "steps_per_frame": _steps(s.save_interval, s.timestep),
        "simulated_ps": len(kinds) * (s.equilibration + s.production) + (max(seed_times) if seed_times else 0.0),
        "timings_s": {**timings, "total_s": time.perf_counter() - t0},
    }
    write_json(done, summary)
    return summary
