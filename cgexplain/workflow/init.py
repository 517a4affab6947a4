"""``cgexplain init``: a system folder for the user's own simulation.

Opens the files once (so a missing file, a trajectory without forces, differing atom counts or an
empty selection fail here, before any run), decides the kind from the mapping (amino-acid residue
beads: a protein, with priors and protein analyses; anything else: a fluid) and writes a
commented ``system.yaml`` whose settings suit the data (frame count, box, temperature) and which
the user can edit before ``cgexplain run``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cgexplain.aminoacids import AMINO_ACID_TYPES, CAP_RESIDUES, RESIDUE_ALIASES
from cgexplain.fileio import atomic_path
from cgexplain.mapping.maps import (
    Mapping,
    MappingError,
    load_universe,
    make_mapping,
)

__all__ = ["init_system", "BEADS"]

#: --beads: where a bead sits
BEADS = ("CA", "com", "cog")

#: the ``priors`` section a protein gets
_PRIOR_LINES = (
    "priors:                     # fitted by Boltzmann inversion at the reference temperature",
    "  n_fourier: 3              # dihedral Fourier terms with sine parts: keeps the chain's handedness",
    "  repulsion_exponent: 12",
    "  repulsion_scale: 0.8",
    "  min_separation: 3",
    "",
)

#: the ``lrp`` and ``profiles`` sections that close every system.yaml
_CLOSING_LINES = ("", "lrp:", "  gamma: 0.1", "  bias_rule: true", "  n_frames: 5", "", "profiles:", "  quick: {}", "")


def _rel(p: Path, d: Path) -> str:
    """``p`` relative to ``d`` where it lies inside ``d``, else absolute."""
    p = p.resolve()
    try:
        return os.path.relpath(p, d.resolve()) if p.is_relative_to(d.resolve()) else str(p)
    except ValueError:  # another drive
        return str(p)


def init_system(
    directory: str | Path,
    topology: str | Path,
    trajectories: list[str | Path],
    select: str | None = None,
    beads: str = "CA",
    temperature: float | None = None,
    name: str | None = None,
    force: bool = False,
) -> Path:
    """Write ``directory/system.yaml`` for a topology and trajectories with forces.

    Args:
        directory: the system folder (created).
        topology, trajectories: files MDAnalysis reads (trajectories with forces).
        select: MDAnalysis selection of the atoms the beads cover (default: all; e.g. 'protein':
            the rest, a solvent, is integrated out).
        beads: 'CA' (one bead per residue at its CA atom), 'com' or 'cog' (one bead per residue at
            its centre of mass or geometry).
        temperature: K the data were sampled at (written as a required placeholder if None).
        name: system name (default: the folder's name).
        force: overwrite an existing system.yaml.

    Returns the path of system.yaml. Raises FileExistsError for an existing system.yaml without
    ``force``; ValueError for an unknown ``beads`` or a temperature <= 0;
    :class:`cgexplain.mapping.maps.MappingError` naming the file for missing or unreadable files,
    no forces, differing atom counts, an empty selection, or a selection under which constraint
    forces would not cancel.
    """
    d = Path(directory)
    path = d / "system.yaml"
    _check_arguments(path, beads, temperature, force)
    trajs = [Path(t) for t in trajectories]
    u = load_universe(topology, trajs)
    atoms = _selected_atoms(u, select, topology)
    protein = _is_protein(atoms)
    method, atom_name = _bead_method(beads, protein)
    m = make_mapping(u, by="residue", method=method, atom_name=atom_name, type_table="amino_acids" if protein else None, selection=select)
    n_frames = int(u.trajectory.n_frames)
    name = name or d.resolve().name
    lines = _header_lines(name, u, m, n_frames, select, protein)
    lines += _reference_lines(d, topology, trajs, temperature, protein)
    lines += _mapping_lines(select, method, atom_name, protein)
    if protein:
        lines += _PRIOR_LINES
    lines += _model_training_simulation_lines(n_frames, temperature, protein)
    lines += _analysis_lines(n_frames, protein)
    lines += _CLOSING_LINES
    d.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


def _check_arguments(path: Path, beads: str, temperature: float | None, force: bool) -> None:
    """Refuse an existing system.yaml without ``force``, an unknown ``beads`` or a temperature <= 0."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    if beads not in BEADS:
        raise ValueError(f"--beads {beads!r}: use one of {list(BEADS)}")
    if temperature is not None and not float(temperature) > 0:
        raise ValueError(f"--temperature {temperature}: must be > 0 K")


def _selected_atoms(u: Any, select: str | None, topology: str | Path) -> Any:
    """The atoms ``select`` picks from the universe (all without it); MappingError if none."""
    atoms = u.select_atoms(select) if select else u.atoms
    if atoms.n_atoms == 0:
        raise MappingError(f"--select {select!r} selects no atoms of {topology} ({u.atoms.n_atoms} atoms)")
    return atoms


def _is_protein(atoms: Any) -> bool:
    """Whether the atoms form a protein: at least 4 residues, all amino acids or chain caps."""
    resnames = {RESIDUE_ALIASES.get(r, r) for r in atoms.residues.resnames}
    return len(atoms.residues) >= 4 and len(resnames - set(AMINO_ACID_TYPES) - set(CAP_RESIDUES)) == 0


def _bead_method(beads: str, protein: bool) -> tuple[str, str | None]:
    """The mapping method and atom name for ``--beads`` ('CA' falls back to 'com' outside a protein)."""
    method, atom_name = ("atom", "CA") if beads == "CA" else (beads, None)
    if not protein and beads == "CA":
        method = "com"
    return method, atom_name


def _header_lines(name: str, u: Any, m: Mapping, n_frames: int, select: str | None, protein: bool) -> list[str]:
    """The comment header describing the data and mapping, then the ``name`` and ``kind`` keys."""
    box = u.dimensions
    periodic = box is not None and bool(np.all(np.asarray(box[:3]) > 0))
    box_text = f"{box[0]:.1f} x {box[1]:.1f} x {box[2]:.1f} Å" if periodic else "none"
    kind = "protein" if protein else "fluid"
    return [
        f"# {name}: a CG model of the user's own simulation (written by cgexplain init; edit freely).",
        "# Units: Å, ps, K, amu, kcal/mol. Paths are relative to this folder unless absolute.",
        f"# Data: {u.atoms.n_atoms} atoms, {n_frames} frames with forces; box {box_text}.",
        f"# Mapping: {m.n_beads} beads over {sum(len(g) for g in m.bead_atoms)} atoms of selection {select or 'all'!r}"
        + ("; the other atoms are integrated out (their forces on the beads stay in the mapped forces)." if select else "."),
        f"name: {name}",
        f"kind: {kind}" + ("               # amino-acid residue beads: priors, RMSD/Q/Rg/TICA, residue maps" if protein else ""),
        "",
    ]


def _reference_lines(d: Path, topology: str | Path, trajs: list[Path], temperature: float | None, protein: bool) -> list[str]:
    """The ``reference`` section: the files (relative to ``d`` where inside it), temperature and frames."""
    T = "null   # REQUIRED: K, the temperature the data were sampled at" if temperature is None else f"{float(temperature):g}"
    trj = "\n".join(f"    - {_rel(t, d)}" for t in trajs)
    lines = [
        "reference:",
        "  source: files",
        f"  topology: {_rel(Path(topology), d)}",
        "  trajectories:",
        trj,
        f"  temperature: {T}",
        "  start: 0                 # frames start:stop:step of the trajectories, in order",
        "  stop: null",
        "  step: 1",
        "  # length_unit: nm        # declare both units only where MDAnalysis cannot know them (then it does not convert)",
        "  # force_unit: kJ/mol/nm",
    ]
    if protein:
        lines += ["  native: frame 0          # the structure RMSD and native contacts refer to: 'frame N' or a PDB path"]
    return lines


def _mapping_lines(select: str | None, method: str, atom_name: str | None, protein: bool) -> list[str]:
    """The ``mapping`` section: selection, bead method and constraints."""
    return [
        "",
        "mapping:",
        f"  select: {select!r}" if select else "  select: null             # MDAnalysis selection; atoms outside are integrated out",
        "  by: residue",
        f"  method: {method}" + (f"\n  atom_name: {atom_name}" if atom_name else ""),
        "  type_table: amino_acids" if protein else "  type_table: null",
        "  constraints: h-bonds       # the bonds the simulation constrained: h-bonds, all-bonds or none",
        "",
    ]


def _model_training_simulation_lines(n_frames: int, temperature: float | None, protein: bool) -> list[str]:
    """The ``model``, ``training`` and ``simulation`` sections, sized to the frame count and kind."""
    sim_T = "300.0  # K: set to the reference temperature" if temperature is None else f"{float(temperature):g}"
    n_val = max(1, n_frames // 10)
    return [
        "model:",
        "  representation: painn",
        "  n_atom_basis: 32",
        "  n_interactions: 2",
        f"  cutoff: {10.0 if protein else 6.0}             # Å",
        "  n_rbf: 20",
        "",
        "training:",
        "  epochs: 10",
        f"  batch_size: {min(8, max(1, n_frames - n_val))}",
        "  lr: 0.001",
        "  val_fraction: 0.1",
        "",
        "simulation:",
        f"  temperature: {sim_T}",
        f"  timestep: {0.002 if protein else 0.005}           # ps (the simulate stage warns when it is long for the stiffest prior term)",
        "  friction: 1.0             # 1/ps",
        "  n_steps: 2000",
        "  save_interval: 20         # steps",
        f"  n_replicas: {4 if protein else 1}",
        "",
    ]


def _analysis_lines(n_frames: int, protein: bool) -> list[str]:
    """The ``analysis`` section: protein observables (RMSD, contacts, TICA) or fluid RDF/ADF settings."""
    if protein:
        return [
            "analysis:",
            "  rmsd_threshold: 3.0       # Å",
            "  contact_cutoff: 8.0       # Å",
            f"  tica_lag: {max(1, min(10, n_frames // 10))}               # frames",
            "  tica_dim: 2",
        ]
    return [
        "analysis:",
        "  shell_cutoff: 3.5         # Å: set to the first minimum of the bead RDF",
        "  rdf_r_max: 9.0",
        "  rdf_bins: 180",
        "  adf_bins: 90",
    ]
