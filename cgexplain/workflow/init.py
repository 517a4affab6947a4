"""``cgexplain init``: a system folder for the user's own simulation.

Opens the files once (so a missing file, a trajectory without forces, differing atom counts or an
empty selection fail here, before any run), decides the kind from the mapping (amino-acid residue
beads: a protein, with priors and protein analyses; anything else: a fluid) and writes a
commented ``system.yaml`` whose settings suit the data (frame count, box, temperature) and which
the user can edit before ``cgexplain run``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cgexplain.aminoacids import AMINO_ACID_TYPES, CAP_RESIDUES, RESIDUE_ALIASES
from cgexplain.fileio import atomic_path
from cgexplain.mapping.maps import (
    Mapping,
    MappingError,
    load_universe,
    make_mapping,
)
from cgexplain.reference.external import frames_per_file
from cgexplain.units import FORCE_UNITS, LENGTH_UNITS, canonical_unit, length_factor

__all__ = ["init_system", "BEADS"]

#: --beads: where a bead sits
BEADS = ("CA", "com", "cog")

#: trajectory extensions MDAnalysis does not recognise -> the MDAnalysis format they hold
EXTENSION_FORMATS = {".lammpstrj": "LAMMPSDUMP"}

#: compression suffixes MDAnalysis reads through (stripped before looking at the extension)
_COMPRESSED = (".gz", ".bz2")

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
    length_unit: str | None = None,
    force_unit: str | None = None,
    trajectory_format: str | None = None,
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
        length_unit, force_unit: the units of the files, declared together where MDAnalysis cannot
            know them (a LAMMPS dump); the files are then read unconverted (keys of
            :data:`cgexplain.units.LENGTH_UNITS` and :data:`cgexplain.units.FORCE_UNITS`).
        trajectory_format: MDAnalysis format of the trajectories where the extension does not say
            (default: from the extension; ``.lammpstrj`` reads as ``LAMMPSDUMP``).

    Every string is written quoted and the temperature exactly, so that system.yaml reads back the
    given paths, name and selection. Nothing is written before every check has passed.

    Returns the path of system.yaml. Raises FileExistsError for an existing system.yaml without
    ``force``; ValueError naming the option for an unknown ``beads``, a temperature that is not a
    finite number > 0, one unit without the other or an unknown unit, a trajectory format MDAnalysis
    does not know, or an invalid ``select``;
    :class:`cgexplain.mapping.maps.MappingError` (a ValueError) naming the file for missing or
    unreadable files, no forces, forces in a unit MDAnalysis does not know and none declared,
    differing atom counts, an empty selection, a selection under which constraint forces would not
    cancel, or a topology without residue names; :class:`cgexplain.reference.external.ExternalDataError`
    naming a trajectory file that is shorter than its header says.
    """
    d = Path(directory)
    path = d / "system.yaml"
    _check_arguments(path, beads, temperature, force)
    units = _declared_units(length_unit, force_unit)
    trajs = [Path(t) for t in trajectories]
    fmt = _trajectory_format(trajs, trajectory_format)
    u = _open(topology, trajs, fmt, units)
    atoms = _selected_atoms(u, select, topology)
    _check_residue_names(u, topology)
    protein = _is_protein(atoms)
    method, atom_name = _bead_method(beads, protein)
    m = make_mapping(u, by="residue", method=method, atom_name=atom_name, type_table="amino_acids" if protein else None, selection=select)
    n_frames = int(sum(frames_per_file(u, trajs)))  # every file's last frame read: a truncated file is named here
    name = name or d.resolve().name
    lines = _header_lines(name, u, m, n_frames, select, protein, length_factor(units[0]) if units else 1.0)
    lines += _reference_lines(d, topology, trajs, temperature, protein, fmt, units)
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


def _q(value: str | Path) -> str:
    """``value`` as a quoted YAML scalar that reads back as exactly this string (a path holding
    ``#`` or ``: ``, a name like ``123`` or ``yes``): single-quoted where it is one printable line,
    else double-quoted with escapes."""
    text = str(value)
    out = yaml.safe_dump(text, default_style="'", allow_unicode=True, width=1 << 30)
    if "\n" in out.rstrip("\n"):  # a line break: single quotes would fold it over lines
        out = yaml.safe_dump(text, default_style='"', allow_unicode=True, width=1 << 30)
    return out.rstrip("\n")


def _float(x: float) -> str:
    """``x`` written exactly (``repr``) in a form YAML reads as a float (``1e-05`` -> ``1.0e-05``)."""
    r = repr(float(x))
    return r.replace("e", ".0e") if "e" in r and "." not in r else r


def _one_line(text: str) -> str:
    """``text`` with line breaks as spaces, for a comment line."""
    return " ".join(str(text).splitlines())


def _check_arguments(path: Path, beads: str, temperature: float | None, force: bool) -> None:
    """Refuse an existing system.yaml without ``force``, an unknown ``beads`` or a temperature that
    is not a finite number > 0 (ValueError naming the option)."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    if beads not in BEADS:
        raise ValueError(f"--beads {beads!r}: use one of {list(BEADS)}")
    if temperature is not None and not (math.isfinite(float(temperature)) and float(temperature) > 0):
        raise ValueError(f"--temperature {temperature}: must be a finite number > 0 (K)")


def _declared_units(length_unit: str | None, force_unit: str | None) -> tuple[str, str] | None:
    """The declared (length, force) units by their table names, or None where neither is declared.
    Raises ValueError naming --length-unit and --force-unit for one without the other or an unknown unit."""
    if (length_unit is None) != (force_unit is None):
        given = "--length-unit" if length_unit is not None else "--force-unit"
        raise ValueError(
            f"--length-unit and --force-unit go together: only {given} is given; declare both (the files are then read "
            f"unconverted: --length-unit {{{','.join(LENGTH_UNITS)}}} --force-unit {{{','.join(FORCE_UNITS)}}}) or neither (MDAnalysis converts)"
        )
    if length_unit is None or force_unit is None:
        return None
    return canonical_unit(length_unit, LENGTH_UNITS, "--length-unit"), canonical_unit(force_unit, FORCE_UNITS, "--force-unit")


def _implied_format(t: Path) -> str | None:
    """The format the extension of ``t`` implies where MDAnalysis does not know it (:data:`EXTENSION_FORMATS`)."""
    name = t.name.lower()
    for c in _COMPRESSED:
        name = name.removesuffix(c)
    return EXTENSION_FORMATS.get(Path(name).suffix)


def _trajectory_format(trajs: list[Path], fmt: str | None) -> str | None:
    """The MDAnalysis format the trajectories are read with: ``fmt`` (upper case), else the one their
    extension implies (``.lammpstrj``: LAMMPSDUMP), else None (MDAnalysis goes by each extension).
    Raises ValueError naming --format for a format MDAnalysis has no reader for, an existing
    trajectory whose extension MDAnalysis does not know, or a ``.lammpstrj`` among other formats."""
    from MDAnalysis.coordinates.core import get_reader_for

    implied = {_implied_format(t) for t in trajs}
    if fmt is None and implied != {None}:
        if len(implied) > 1:
            raise ValueError(f"--trajectory {' '.join(map(str, trajs))}: LAMMPS dumps mixed with other formats; give files of one format")
        fmt = implied.pop()
    for t in trajs:
        if not t.exists():
            continue  # load_universe names the missing file
        try:
            get_reader_for(str(t), format=fmt)
        except (ValueError, TypeError):
            what = f"--format {fmt!r}: MDAnalysis has no trajectory reader of that name" if fmt else f"{t}: MDAnalysis does not know the format"
            raise ValueError(f"{what}; name the trajectory format with --format NAME (e.g. --format LAMMPSDUMP for a LAMMPS dump)") from None
    return fmt.upper() if fmt else None


def _open(topology: str | Path, trajs: list[Path], fmt: str | None, units: tuple[str, str] | None) -> Any:
    """The Universe, opened as the reference stage opens it (declared units: read unconverted).
    Raises MappingError for files :func:`load_universe` refuses, or naming --length-unit and
    --force-unit for forces in a unit MDAnalysis does not know when none is declared."""
    kw: dict[str, Any] = {"format": fmt} if fmt else {}
    if units:
        kw["convert_units"] = False
    u = load_universe(topology, trajs, force_unit_declared=True, **kw)
    readers = getattr(u.trajectory, "readers", None) or [u.trajectory]
    for r, t in zip(readers, trajs):
        if units is None and (getattr(r, "units", None) or {}).get("force") is None:
            raise MappingError(
                f"{t}: MDAnalysis does not know the units of this format (a LAMMPS dump: they follow the run's 'units'); declare "
                f"them with --length-unit {{{','.join(LENGTH_UNITS)}}} and --force-unit {{{','.join(FORCE_UNITS)}}} "
                "(LAMMPS 'units real': --length-unit A --force-unit kcal/mol/A)"
            )
    return u


def _selected_atoms(u: Any, select: str | None, topology: str | Path) -> Any:
    """The atoms ``select`` picks from the universe (all without it). Raises ValueError naming
    --select, the selection and MDAnalysis's reason for an invalid selection; MappingError if none."""
    from MDAnalysis.exceptions import SelectionError

    try:
        atoms = u.select_atoms(select) if select else u.atoms
    except (SelectionError, ValueError, AttributeError) as e:
        reason = str(e)
        if reason.endswith("token: 'None'"):
            reason = f"it ends where more is expected ({reason})"
        raise ValueError(f"--select {select!r} is not a valid MDAnalysis selection for {topology}: {reason}") from None
    if atoms.n_atoms == 0:
        raise MappingError(f"--select {select!r} selects no atoms of {topology} ({u.atoms.n_atoms} atoms)")
    return atoms


def _check_residue_names(u: Any, topology: str | Path) -> None:
    """Raise MappingError naming the topology where it has no residue names (the residue mapping needs them)."""
    if not hasattr(u.atoms, "resnames"):  # MDAnalysis's NoDataError is an AttributeError
        raise MappingError(
            f"{topology}: the topology has no residue names (a LAMMPS data file has none) and the residue mapping needs them; "
            "give --topology a file of the same atoms in the same order that has them (PDB, PSF, GRO, ...)"
        )


def _is_protein(atoms: Any) -> bool:
    """Whether the atoms form a protein: at least 4 residues, all amino acids or chain caps."""
    resnames = {RESIDUE_ALIASES.get(r, r) for r in atoms.residues.resnames}
    return len(atoms.residues) >= 4 and len(resnames - set(AMINO_ACID_TYPES) - set(CAP_RESIDUES)) == 0


def _bead_method(beads: str, protein: bool) -> tuple[str, str | None]:
    """The mapping method and atom name for ``--beads`` ('CA' falls back to 'com' outside a protein)."""
    method, atom_name = ("atom", "CA") if beads == "CA" else (beads, None)
    if not protein and beads == "CA":
        method, atom_name = "com", None
    return method, atom_name


def _header_lines(name: str, u: Any, m: Mapping, n_frames: int, select: str | None, protein: bool, lf: float = 1.0) -> list[str]:
    """The comment header describing the data and mapping (box lengths times ``lf``, the declared
    length unit's factor to Å), then the ``name`` and ``kind`` keys."""
    box = u.dimensions
    periodic = box is not None and bool(np.all(np.asarray(box[:3]) > 0))
    box_text = f"{box[0] * lf:.1f} x {box[1] * lf:.1f} x {box[2] * lf:.1f} Å" if periodic else "none"
    kind = "protein" if protein else "fluid"
    return [
        f"# {_one_line(name)}: a CG model of the user's own simulation (written by cgexplain init; edit freely).",
        "# Units: Å, ps, K, amu, kcal/mol. Paths are relative to this folder unless absolute.",
        f"# Data: {u.atoms.n_atoms} atoms, {n_frames} frames with forces; box {box_text}.",
        f"# Mapping: {m.n_beads} beads over {sum(len(g) for g in m.bead_atoms)} atoms of selection {select or 'all'!r}"
        + ("; the other atoms are integrated out (their forces on the beads stay in the mapped forces)." if select else "."),
        f"name: {_q(name)}",
        f"kind: {kind}" + ("               # amino-acid residue beads: priors, RMSD/Q/Rg/TICA, residue maps" if protein else ""),
        "",
    ]


def _reference_lines(
    d: Path, topology: str | Path, trajs: list[Path], temperature: float | None, protein: bool, fmt: str | None, units: tuple[str, str] | None
) -> list[str]:
    """The ``reference`` section: the files (relative to ``d`` where inside it), their format and
    declared units, temperature and frames."""
    T = "null   # REQUIRED: K, the temperature the data were sampled at" if temperature is None else _float(temperature)
    trj = "\n".join(f"    - {_q(_rel(t, d))}" for t in trajs)
    lines = [
        "reference:",
        "  source: files",
        f"  topology: {_q(_rel(Path(topology), d))}",
        "  trajectories:",
        trj,
        f"  temperature: {T}",
        "  start: 0                 # frames start:stop:step of the trajectories, in order",
        "  stop: null",
        "  step: 1",
    ]
    if fmt:
        lines += [f"  format: {_q(fmt)}".ljust(27) + "# the MDAnalysis format of the trajectories"]
    if units:
        lines += [f"  length_unit: {_q(units[0])}".ljust(27) + "# declared: the files are read unconverted", f"  force_unit: {_q(units[1])}"]
    else:
        lines += [
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
        f"  select: {_q(select)}" if select else "  select: null             # MDAnalysis selection; atoms outside are integrated out",
        "  by: residue",
        f"  method: {method}" + (f"\n  atom_name: {atom_name}" if atom_name else ""),
        "  type_table: amino_acids" if protein else "  type_table: null",
        "  constraints: h-bonds       # the bonds the simulation constrained: h-bonds, all-bonds or none",
        "",
    ]


def _model_training_simulation_lines(n_frames: int, temperature: float | None, protein: bool) -> list[str]:
    """The ``model``, ``training`` and ``simulation`` sections, sized to the frame count and kind."""
    sim_T = "300.0  # K: set to the reference temperature" if temperature is None else _float(temperature)
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
