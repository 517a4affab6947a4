"""Stage 1: atomistic reference MD with forces, run with OpenMM.

The bundled fluid systems are built from an OpenMM force field and a molecule count; the run
is: minimise -> NPT equilibration (Monte Carlo barostat) -> NVT equilibration -> NVT Langevin
production, saving positions and total forces every ``save_interval`` ps. Production is
written in chunks with an OpenMM state after each, so a killed run resumes from the last
finished chunk. The result is a PDB topology plus a TRR trajectory with forces (readable by
MDAnalysis; forces in the file follow GROMACS units, kJ/mol/nm).

Units here follow the public API (Å, ps, K, kcal/mol/Å); OpenMM units are converted at the
calls into OpenMM.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from cgexplain import units
from cgexplain.fileio import atomic_path, read_json, save_npz, write_json
from cgexplain.reference import potentials
from cgexplain.reference.methane import build_methane_box, methane_system
from cgexplain.reference.potentials import openmm_system
from cgexplain.settings import ge, gt, one_of, settings_from_dict

__all__ = [
    "ReferenceCheck",
    "ReferenceSettings",
    "build_water_box",
    "build_bead_fluid",
    "build_system",
    "run_reference",
    "run_chunks",
    "save_state",
    "read_reference",
]


@dataclasses.dataclass
class ReferenceCheck:
    """``reference.check`` (fluids): the RDF of ``selection`` against expectations.

    r_max Å, n_bins; peak_A [lo, hi] Å with height [lo, hi]; digitized: an .npz (r nm, g) beside
    system.yaml with rms_range_A [lo, hi] Å and max_rms; density_g_cm3 [lo, hi] of the NPT run."""

    selection: str
    r_max: float = gt(0, 9.0, "Å")
    n_bins: int = gt(0, 180)
    peak_A: tuple[float, float] | None = None
    height: tuple[float, float] | None = None
    digitized: str | None = None
    rms_range_A: tuple[float, float] = (3.0, 10.0)
    max_rms: float | None = None
    density_g_cm3: tuple[float, float] | None = None

    def __post_init__(self):
        if (self.peak_A is None) != (self.height is None):
            raise ValueError("peak_A and height go together")
        if (self.digitized is None) != (self.max_rms is None):
            raise ValueError("digitized and max_rms go together")


@dataclasses.dataclass
class ReferenceSettings:
    """Settings of a reference run (units: Å, ps, K, bar)."""

    system: str = one_of(
        "water", "methane", "lj", "mw"
    )  # "water" (OpenMM force field + Modeller), "methane" (OPLS-AA, cgexplain.reference.methane), "lj" or "mw"
    #: parameters of the analytic potential of "lj" (cgexplain.reference.potentials.LennardJones: sigma Å, epsilon kcal/mol,
    #: cutoff Å, switch Å) or "mw" (cgexplain.reference.potentials.MW); empty: the defaults there
    potential: dict = dataclasses.field(default_factory=dict)
    forcefield: str | tuple[str, ...] = ("tip3p.xml",)
    water_model: str = "tip3p"
    n_molecules: int = gt(0, 256)
    density: float = ge(0, 0.0, "g/cm³")  # g/cm³, start density of a methane box (NVT when equilibration_npt is 0)
    temperature: float = gt(0, 300.0, "K")
    pressure: float = gt(0, 1.0, "bar")
    timestep: float = gt(0, 0.002, "ps")
    friction: float = ge(0, 1.0, "1/ps")
    nonbonded_cutoff: float = gt(0, 9.0, "Å")
    equilibration_npt: float = ge(0, 20.0, "ps")
    equilibration_nvt: float = ge(0, 5.0, "ps")
    production: float = gt(0, 50.0, "ps")
    save_interval: float = gt(0, 0.1, "ps")
    chunk: float = gt(0, 10.0, "ps")
    seed: int = 1

    @classmethod
    def from_dict(cls, d: dict) -> ReferenceSettings:
        d = dict(d)
        if "forcefield" in d:
            d["forcefield"] = tuple(d["forcefield"]) if not isinstance(d["forcefield"], str) else (d["forcefield"],)
        return settings_from_dict(cls, d, "reference")


def build_water_box(settings: ReferenceSettings):
    """Build a cubic water box of ``settings.n_molecules`` molecules with OpenMM's Modeller.

    Returns (topology, positions) as OpenMM objects. The box starts near the liquid density;
    the NPT stage of :func:`run_reference` equilibrates it.
    """
    from openmm import app

    ff = app.ForceField(*settings.forcefield)
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, model=settings.water_model, numAdded=settings.n_molecules, neutralize=False)
    n_res = modeller.topology.getNumResidues()
    if n_res != settings.n_molecules:
        raise RuntimeError(f"Modeller added {n_res} molecules, expected {settings.n_molecules}")
    return ff, modeller.topology, modeller.positions


#: one-particle fluids with an analytic potential: (potential class name, residue/atom name, element, mass amu)
BEAD_FLUIDS = {"lj": ("LennardJones", "AR", "Ar", 39.948), "mw": ("MW", "MW", None, 18.015)}


def build_bead_fluid(settings: ReferenceSettings):
    """A box of ``settings.n_molecules`` one-particle molecules of a :data:`BEAD_FLUIDS` fluid
    (``settings.system``: "lj" argon, "mw" water) on a jittered simple cubic lattice at
    ``settings.density`` g/cm³, with the analytic potential of :mod:`cgexplain.reference.potentials`.

    Returns (potential, topology, positions Å (n, 3), cell Å (3, 3), mass amu).
    Raises ValueError for a density <= 0 or a box shorter than twice the potential's cutoff."""
    from openmm import Vec3, app, unit

    cls_name, name, element, mass = BEAD_FLUIDS[settings.system]
    pot = getattr(potentials, cls_name)(**settings.potential)
    if settings.density <= 0:
        raise ValueError(f"reference.density must be > 0 g/cm³ for system {settings.system!r}, got {settings.density}")
    n = int(settings.n_molecules)
    side = (n * mass / (settings.density * units.AVOGADRO * 1e-24)) ** (1 / 3)
    if side < 2 * pot.cutoff:
        raise ValueError(
            f"reference: a box of {n} particles at {settings.density} g/cm³ is {side:.2f} Å, shorter than twice "
            f"the potential cutoff {pot.cutoff:.2f} Å; use more particles"
        )
    k = int(np.ceil(n ** (1 / 3)))
    g = (np.arange(k) + 0.5) * side / k
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(settings.seed)
    x = grid[rng.permutation(len(grid))[:n]] + rng.normal(0, 0.05 * side / k, (n, 3))
    top = app.Topology()
    chain = top.addChain()
    el = app.Element.getBySymbol(element) if element else None
    for _ in range(n):
        top.addAtom(name, el, top.addResidue(name, chain))
    top.setPeriodicBoxVectors([Vec3(side, 0, 0), Vec3(0, side, 0), Vec3(0, 0, side)] * unit.angstrom)
    return pot, top, x % side, np.eye(3) * side, mass


def build_system(settings: ReferenceSettings):
    """The reference system: (make_system() -> openmm.System, topology, positions).

    ``settings.system`` picks water (force field files + Modeller, :func:`build_water_box`),
    methane (OPLS-AA, :mod:`cgexplain.reference.methane`), or a fluid with an analytic potential whose
    many-body split is known ("lj", "mw"; :func:`build_bead_fluid`). Raises ValueError for
    another name."""
    from openmm import app, unit

    if settings.system == "water":
        ff, top, pos = build_water_box(settings)
        return (
            (
                lambda: ff.createSystem(
                    top,
                    nonbondedMethod=app.PME,
                    nonbondedCutoff=settings.nonbonded_cutoff / 10.0 * unit.nanometer,
                    constraints=app.HBonds,
                    rigidWater=True,
                )
            ),
            top,
            pos,
        )
    if settings.system == "methane":
        top, pos, _ = build_methane_box(settings.n_molecules, settings.density, seed=settings.seed)
        return (lambda: methane_system(top, settings.nonbonded_cutoff)), top, pos * unit.angstrom
    if settings.system in BEAD_FLUIDS:
        pot, top, x, cell, mass = build_bead_fluid(settings)
        return (lambda: openmm_system(pot, len(x), cell, mass)), top, x * unit.angstrom
    raise ValueError(f"reference.system {settings.system!r} is not known; use 'water', 'methane', 'lj' or 'mw'")


def _make_simulation(make_system, topology, positions, settings: ReferenceSettings, barostat: bool, seed: int):
    import openmm
    from openmm import app, unit

    system = make_system()
    if barostat:
        system.addForce(openmm.MonteCarloBarostat(settings.pressure * unit.bar, settings.temperature * unit.kelvin, 25))
    integrator = openmm.LangevinMiddleIntegrator(
        settings.temperature * unit.kelvin, settings.friction / unit.picosecond, settings.timestep * unit.picoseconds
    )
    integrator.setRandomNumberSeed(seed)
    platform = openmm.Platform.getPlatformByName("CPU") if _has_platform("CPU") else None
    sim = app.Simulation(topology, system, integrator, platform) if platform else app.Simulation(topology, system, integrator)
    if positions is not None:
        sim.context.setPositions(positions)
    return sim


def _has_platform(name: str) -> bool:
    import openmm

    return any(openmm.Platform.getPlatform(i).getName() == name for i in range(openmm.Platform.getNumPlatforms()))


def _total_mass_amu(system) -> float:
    from openmm import unit

    return sum(system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles()))


def _steps(time_ps: float, dt: float) -> int:
    return int(round(time_ps / dt))


def run_reference(settings: ReferenceSettings, out_dir: str | Path, progress: bool = True) -> dict:
    """Run (or resume) the reference MD of a fluid (water or methane) and write it to ``out_dir``.

    With ``equilibration_npt`` 0 the box keeps its start density (minimise, NVT equilibration).
    Otherwise NPT equilibration stores the states of its second half; the NVT stages start from the one whose
    volume is closest to the mean volume of that half, so the production density is the
    equilibrium density.

    Writes ``topology.pdb``, ``trajectory.trr`` (positions, box, total forces), and
    ``reference.json`` (settings, density, timings). Production frames are kept in
    ``chunks/`` with an OpenMM state after each chunk, so an interrupted run resumes.

    Returns the contents of ``reference.json``.
    Raises RuntimeError if OpenMM produces NaN positions or forces.
    """
    from openmm import app, unit
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = out / "reference.json"
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    make_system, topology, positions = build_system(settings)
    chunks = out / "chunks"
    chunks.mkdir(exist_ok=True)
    eq_state = out / "equilibrated_state.xml"
    info_path = out / "equilibration.json"

    if not eq_state.exists() and settings.equilibration_npt <= 0:
        # fixed density (methane at the publication's state point): minimise, NVT equilibration
        sim = _make_simulation(make_system, topology, positions, settings, barostat=False, seed=settings.seed)
        sim.minimizeEnergy()
        sim.context.setVelocitiesToTemperature(settings.temperature * unit.kelvin, settings.seed)
        block = max(1, _steps(0.2, settings.timestep))
        for _ in tqdm(
            range(0, _steps(settings.equilibration_nvt, settings.timestep), block), desc="reference NVT equilibration", disable=not progress
        ):
            sim.step(block)
        box = sim.context.getState().getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
        mass = _total_mass_amu(sim.system)
        info = {
            "total_mass_amu": mass,
            "production_box_A": box.tolist(),
            "production_density_g_cm3": units.density_g_cm3(mass, float(np.linalg.det(box))),
        }
        write_json(info_path, info)  # before the state file, which marks equilibration done
        save_state(sim, eq_state)
        timings["equilibration_s"] = time.perf_counter() - t0
    if not eq_state.exists():
        sim = _make_simulation(make_system, topology, positions, settings, barostat=True, seed=settings.seed)
        sim.minimizeEnergy()
        sim.context.setVelocitiesToTemperature(settings.temperature * unit.kelvin, settings.seed)
        mass = _total_mass_amu(sim.system)
        n_npt = _steps(settings.equilibration_npt, settings.timestep)
        block = max(1, _steps(0.2, settings.timestep))
        volumes, states = [], []
        n_blocks = max(2, -(-n_npt // block))
        for k in tqdm(range(n_blocks), desc="reference NPT equilibration", disable=not progress):
            sim.step(block)
            st = sim.context.getState(getPositions=True, getVelocities=True, enforcePeriodicBox=True)
            volumes.append(float(np.linalg.det(st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom))))
            if k >= n_blocks // 2:
                states.append(st)
        half = np.asarray(volumes[n_blocks // 2 :])
        # production box: the second-half NPT state whose volume is closest to the mean volume
        state = states[int(np.argmin(np.abs(half - half.mean())))]
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
        info = {
            "total_mass_amu": mass,
            "npt_mean_volume_A3": float(half.mean()),
            "npt_mean_density_g_cm3": units.density_g_cm3(mass, float(half.mean())),
            "npt_density_std_g_cm3": float(np.std([units.density_g_cm3(mass, v) for v in half])),
            "production_box_A": box.tolist(),
            "production_density_g_cm3": units.density_g_cm3(mass, float(np.linalg.det(box))),
        }
        # NVT equilibration in the final NPT box
        sim2 = _make_simulation(make_system, topology, None, settings, barostat=False, seed=settings.seed + 1)
        sim2.context.setPeriodicBoxVectors(*state.getPeriodicBoxVectors())
        sim2.context.setPositions(state.getPositions())
        sim2.context.setVelocities(state.getVelocities())
        n_nvt = _steps(settings.equilibration_nvt, settings.timestep)
        for _ in tqdm(range(0, n_nvt, block), desc="reference NVT equilibration", disable=not progress):
            sim2.step(block)
        write_json(info_path, info)  # before the state file, which marks equilibration done
        save_state(sim2, eq_state)
        timings["equilibration_s"] = time.perf_counter() - t0
    info = read_json(info_path)

    # production, chunk by chunk
    sim = _make_simulation(make_system, topology, None, settings, barostat=False, seed=settings.seed + 2)
    every = _steps(settings.save_interval, settings.timestep)
    per_chunk = max(1, int(round(settings.chunk / settings.save_interval)))
    n_frames = int(round(settings.production / settings.save_interval))
    n_chunks = -(-n_frames // per_chunk)
    t1 = time.perf_counter()
    with tqdm(total=n_frames, desc="reference production (frames)", disable=not progress) as bar:
        run_chunks(sim, chunks, eq_state, n_frames, per_chunk, every, lambda c: settings.seed + 100 + c, bar, "reference MD")
    timings["production_s"] = time.perf_counter() - t1

    parts = [dict(np.load(chunks / f"chunk_{c:04d}.npz")) for c in range(n_chunks)]
    pos, frc, cell = (np.concatenate([p[k] for p in parts]) for k in ("positions", "forces", "cell"))
    with atomic_path(out / "topology.pdb") as tmp:
        with open(tmp, "w") as fh:
            app.PDBFile.writeFile(topology, pos[0] * unit.angstrom, fh)
    write_trajectory_with_forces(out / "topology.pdb", out / "trajectory.trr", pos, frc, cell, settings.save_interval)

    summary = {
        "settings": dataclasses.asdict(settings),
        "n_atoms": int(pos.shape[1]),
        "n_frames": int(pos.shape[0]),
        **info,
        "steps_per_frame": every,
        "timings_s": timings,
    }
    write_json(done, summary)
    return summary


def save_state(sim, path) -> None:
    """Write the OpenMM simulation's state (positions, velocities, box, integrator) to ``path``
    atomically, so an interrupted write leaves no half-written checkpoint."""
    with atomic_path(path) as tmp:
        sim.saveState(str(tmp))


def run_chunks(
    sim, chunk_dir, start_state, n_frames: int, per_chunk: int, steps_per_frame: int, seed_of, bar, where: str, with_cell: bool = True
) -> None:
    """Production in checkpointed chunks: ``chunk_dir/chunk_XXXX.npz`` (positions Å, total forces
    kcal/mol/Å, and box vectors Å with ``with_cell``, one frame every ``steps_per_frame`` steps)
    and the OpenMM state after each chunk, ``state_XXXX.xml``. Chunk 0 starts from the state file
    ``start_state``, chunk c from ``state_{c-1}``; a chunk already written is skipped, so an
    interrupted run resumes and gives the same frames as an uninterrupted one. ``seed_of(c)`` seeds
    the integrator of chunk c (the context is reinitialised so that the seed takes effect); ``bar`` (tqdm)
    advances by one per frame. Raises RuntimeError naming ``where``, the chunk and the frame for
    non-finite positions or forces."""
    from openmm import unit

    chunk_dir = Path(chunk_dir)
    n_atoms = sim.topology.getNumAtoms()
    for c in range(-(-n_frames // per_chunk)):
        path = chunk_dir / f"chunk_{c:04d}.npz"
        nf = min(per_chunk, n_frames - c * per_chunk)
        if path.exists():
            bar.update(nf)
            continue
        sim.loadState(str(start_state if c == 0 else chunk_dir / f"state_{c - 1:04d}.xml"))
        # a new seed takes effect only when the context is rebuilt: the noise of chunk c then depends
        # on seed_of(c) alone, so a run resumed at any chunk gives the same frames as one never killed
        sim.integrator.setRandomNumberSeed(seed_of(c))
        sim.context.reinitialize(preserveState=True)
        pos = np.empty((nf, n_atoms, 3), np.float32)
        frc = np.empty_like(pos)
        cell = np.empty((nf, 3, 3), np.float32)
        for k in range(nf):
            sim.step(steps_per_frame)
            st = sim.context.getState(getPositions=True, getForces=True)
            pos[k] = st.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
            frc[k] = units.kj_nm_to_kcal_a(st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
            if with_cell:
                cell[k] = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
            if not (np.isfinite(pos[k]).all() and np.isfinite(frc[k]).all()):
                raise RuntimeError(f"{where}: non-finite positions or forces at chunk {c}, frame {k}")
            bar.update(1)
        # the state first: a chunk file on disk then always has the state its successor starts from
        save_state(sim, chunk_dir / f"state_{c:04d}.xml")
        save_npz(path, positions=pos, forces=frc, **({"cell": cell} if with_cell else {}))


def write_trajectory_with_forces(topology, path, positions, forces, cells, dt: float) -> None:
    """Write positions (Å), forces (kcal/mol/Å) and cells (Å) to a trajectory MDAnalysis reads.

    Parameters: ``positions`` and ``forces`` (n_frames, n_atoms, 3); ``cells`` (n_frames, 3, 3)
    box vectors as rows, all zero for a system without a box; ``dt`` frame spacing in ps. The format follows the suffix of ``path``
    (TRR or H5MD store forces). Written atomically.
    """
    import MDAnalysis as mda
    from MDAnalysis.lib.mdamath import triclinic_box

    u = mda.Universe(str(topology))
    if u.atoms.n_atoms != positions.shape[1]:
        raise ValueError(f"{topology}: {u.atoms.n_atoms} atoms, trajectory has {positions.shape[1]}")
    with atomic_path(path) as tmp:
        with mda.Writer(str(tmp), n_atoms=u.atoms.n_atoms) as w:
            for k in range(positions.shape[0]):
                ts = u.trajectory.ts
                ts.positions = positions[k]
                ts.forces = units.kcal_a_to_kj_a(forces[k])
                ts.dimensions = triclinic_box(*cells[k]) if np.abs(cells[k]).sum() > 0 else None  # no box: not periodic
                ts.time = k * dt
                ts.frame = k
                w.write(u.atoms)


def read_reference(out_dir: str | Path):
    """Open a finished reference run as an MDAnalysis Universe (topology.pdb + trajectory.trr)."""
    import MDAnalysis as mda

    out = Path(out_dir)
    return mda.Universe(str(out / "topology.pdb"), str(out / "trajectory.trr"))
