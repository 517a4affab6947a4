"""Stage 2: map atoms to beads.

A mapping holds a *position map* ``C`` (n_beads, n_atoms), whose rows sum to one, and a
*force map* ``D`` (n_beads, n_atoms). Bead positions are ``R = C r`` and bead forces
``F = D f``. cgexplain's force map sums the forces of every atom of a bead (``D[I, i] = 1`` for
atom ``i`` in bead ``I``). For non-overlapping beads this satisfies the consistency condition
of Noid et al., J. Chem. Phys. 128, 244114 (2008), ``D Cᵀ = 1`` (eq. 14), and, when each rigid
unit (a rigid water, a residue with its constrained H bonds) lies inside one bead, the
constraint forces, which are internal to the unit and sum to zero, cancel. The position map
may be the centre of mass (``"com"``), the centre of geometry (``"cog"``) or one atom per bead
(``"atom"``, e.g. the CA of a residue).

Atoms of one bead may be split across the periodic boundary; bead positions are computed from
each atom's minimum-image vector to the bead's first atom.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cgexplain import units
from cgexplain.fileio import atomic_path, save_npz

__all__ = [
    "AMINO_ACID_TYPES",
    "RESIDUE_ALIASES",
    "CAP_RESIDUES",
    "amino_acid_name",
    "MappingError",
    "Mapping",
    "make_mapping",
    "validate_groups",
    "load_universe",
    "map_universe",
    "MappedTrajectory",
    "write_cg_dataset",
    "write_cg_topology",
]


#: bead types of a one-bead-per-residue protein model: the 20 standard residues, alphabetical
#: three-letter codes -> 1..20. A mutation changes only this integer.
AMINO_ACID_TYPES = {
    name: k + 1
    for k, name in enumerate(
        sorted(
            [
                "ALA",
                "ARG",
                "ASN",
                "ASP",
                "CYS",
                "GLN",
                "GLU",
                "GLY",
                "HIS",
                "ILE",
                "LEU",
                "LYS",
                "MET",
                "PHE",
                "PRO",
                "SER",
                "THR",
                "TRP",
                "TYR",
                "VAL",
            ]
        )
    )
}

#: force-field residue variants (protonation states, disulfides) -> the standard name
RESIDUE_ALIASES = {
    "HID": "HIS",
    "HIE": "HIS",
    "HIP": "HIS",
    "HSD": "HIS",
    "HSE": "HIS",
    "HSP": "HIS",
    "CYX": "CYS",
    "CYM": "CYS",
    "ASH": "ASP",
    "GLH": "GLU",
    "LYN": "LYS",
}

#: terminal caps and the neighbour residue they join (-1 the previous, +1 the next)
CAP_RESIDUES = {"ACE": +1, "NME": -1, "NHE": -1, "NH2": -1}


def amino_acid_name(name: str) -> str:
    """The standard three-letter name of a residue name (``HIE`` -> ``HIS``). Raises MappingError
    for a name that is neither standard nor a known variant, listing the allowed names."""
    n = RESIDUE_ALIASES.get(str(name).upper(), str(name).upper())
    if n not in AMINO_ACID_TYPES:
        raise MappingError(
            f"residue name {name!r} is not a standard amino acid; allowed: {', '.join(AMINO_ACID_TYPES)} (and variants {', '.join(RESIDUE_ALIASES)})"
        )
    return n


class MappingError(ValueError):
    """Bad input to the mapping stage: the message names the file, frame, atom or bead."""


@dataclasses.dataclass
class Mapping:
    """A linear atoms-to-beads map.

    Attributes:
        position_map: (n_beads, n_atoms) weights ``C``; rows sum to 1.
        force_map: (n_beads, n_atoms) weights ``D`` (1 on a bead's atoms, else 0).
        bead_atoms: per bead, the atom indices (0-based) it holds.
        bead_names: (n_beads,) bead type names, e.g. ``"W"`` or residue names.
        bead_types: (n_beads,) int type given to the model's embedding (from ``type_table``).
        bead_masses: (n_beads,) amu, the summed mass of the bead's atoms.
        type_table: bead type name -> int (>= 1).
        resnames, resids: (n_beads,) names and numbers written to the CG topology.
    """

    position_map: np.ndarray
    force_map: np.ndarray
    bead_atoms: list
    bead_names: list
    bead_types: np.ndarray
    bead_masses: np.ndarray
    type_table: dict
    resnames: list
    resids: np.ndarray

    @property
    def n_beads(self) -> int:
        return self.position_map.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.position_map.shape[1]


def validate_groups(groups: Sequence[Sequence[int] | np.ndarray], n_atoms: int, atom_names: Sequence[str] | None = None) -> None:
    """Check that ``groups`` (bead -> atom indices) assigns every atom to exactly one bead.

    Raises MappingError naming the first unassigned atom, or the atom put into two beads,
    or an index outside 0..n_atoms-1, or an empty bead.
    """

    def name(i):
        return f"atom {i}" + (f" ({atom_names[i]})" if atom_names is not None else "")

    owner = np.full(n_atoms, -1)
    for b, grp in enumerate(groups):
        g = np.asarray(grp, dtype=int)
        if g.size == 0:
            raise MappingError(f"bead {b} has no atoms")
        if g.min() < 0 or g.max() >= n_atoms:
            bad = g[(g < 0) | (g >= n_atoms)][0]
            raise MappingError(f"bead {b} names atom index {bad}, outside 0..{n_atoms - 1}")
        for i in g:
            if owner[i] != -1:
                raise MappingError(f"{name(i)} is in two beads ({owner[i]} and {b})")
            owner[i] = b
    missing = np.flatnonzero(owner < 0)
    if missing.size:
        raise MappingError(
            f"{missing.size} atom(s) are in no bead; the first is {name(int(missing[0]))}. "
            "Every atom's force must be mapped to a bead, or constraint forces do not cancel."
        )


def make_mapping(
    universe,
    by: str = "fragment",
    method: str = "com",
    atom_name: str | None = None,
    groups: Sequence[Sequence[int]] | None = None,
    bead_names: Sequence[str] | None = None,
    type_table: dict | str | None = None,
    merge_caps: bool = True,
) -> Mapping:
    """Build a :class:`Mapping` from an MDAnalysis Universe.

    Args:
        universe: MDAnalysis Universe (topology with masses; bonds are needed for ``by="fragment"``).
        by: ``"fragment"`` (one bead per molecule), ``"residue"`` (one per residue), or ignored
            when ``groups`` is given.
        method: position map: ``"com"`` centre of mass, ``"cog"`` centre of geometry, or
            ``"atom"``: the single atom named ``atom_name`` in each bead (e.g. ``"CA"``).
        groups: explicit bead -> atom indices (0-based); overrides ``by``.
        bead_names: per-bead type names, or one name for every bead; default the residue name
            of the bead's first atom.
        type_table: name -> int (>= 1); default numbers the names in order of appearance.
            ``"amino_acids"``: :data:`AMINO_ACID_TYPES`, with bead names made standard by
            :func:`amino_acid_name` (``HIE`` -> ``HIS``).
        merge_caps: with ``by="residue"``, put the atoms of a terminal cap (:data:`CAP_RESIDUES`,
            e.g. the C-terminal amide ``NHE``) into the residue it is bonded to, so the force map
            sums them with that residue (their bond constraints then cancel).

    Returns: Mapping.
    Raises: MappingError for unassigned atoms, atoms in two beads, an unknown ``method`` or
        ``by``, a bead without the atom named ``atom_name``, or a bead name not in ``type_table``.
    """
    n_atoms = universe.atoms.n_atoms
    raw: Sequence[Sequence[int]]
    if groups is not None:
        raw = groups
    else:
        if by == "fragment":
            try:
                raw = [f.indices for f in universe.atoms.fragments]
            except Exception as exc:  # no bonds in the topology
                raise MappingError(f"by='fragment' needs bonds in the topology ({exc}); use by='residue'") from exc
        elif by == "residue":
            res: list[list[int]] = [list(r.atoms.indices) for r in universe.residues]
            names_ = [r.resname for r in universe.residues]
            if merge_caps:
                for k in [k for k, n in enumerate(names_) if n in CAP_RESIDUES]:
                    t = k + CAP_RESIDUES[names_[k]]
                    if not 0 <= t < len(res) or names_[t] in CAP_RESIDUES:
                        raise MappingError(f"cap residue {names_[k]} {universe.residues[k].resid} has no residue to join")
                    res[t] = sorted(res[t] + res[k])
                res = [g for g, n in zip(res, names_) if n not in CAP_RESIDUES]
            raw = res
        else:
            raise MappingError(f"unknown grouping by={by!r}; use 'fragment' or 'residue', or pass groups")
    bead_atoms = [np.asarray(g, dtype=int) for g in raw]
    atom_names = list(universe.atoms.names)
    validate_groups(bead_atoms, n_atoms, atom_names)
    masses = np.asarray(universe.atoms.masses, dtype=float)
    n_beads = len(bead_atoms)
    C = np.zeros((n_beads, n_atoms))
    D = np.zeros((n_beads, n_atoms))
    for b, g in enumerate(bead_atoms):
        D[b, g] = 1.0
        if method == "com":
            m = masses[g]
            if not np.all(m > 0):
                raise MappingError(f"bead {b}: atom {g[np.argmin(m)]} has mass {m.min()}; centre of mass needs masses > 0")
            C[b, g] = m / m.sum()
        elif method == "cog":
            C[b, g] = 1.0 / len(g)
        elif method == "atom":
            hit = [i for i in g if atom_names[i] == atom_name]
            if len(hit) != 1:
                raise MappingError(f"bead {b}: {len(hit)} atoms named {atom_name!r} (need exactly one)")
            C[b, hit[0]] = 1.0
        else:
            raise MappingError(f"unknown position map method={method!r}; use 'com', 'cog' or 'atom'")
    all_res = universe.atoms.resnames
    resnames = [next((all_res[i] for i in g if all_res[i] not in CAP_RESIDUES), all_res[g[0]]) for g in bead_atoms]
    if isinstance(type_table, str):
        if type_table != "amino_acids":
            raise MappingError(f"type_table {type_table!r}: use 'amino_acids' or a name -> int mapping")
        type_table = dict(AMINO_ACID_TYPES)
        if bead_names is None:
            bead_names = [amino_acid_name(r) for r in resnames]
    if isinstance(bead_names, str):
        bead_names = [bead_names] * n_beads
    names = list(bead_names) if bead_names is not None else resnames
    if len(names) != n_beads:
        raise MappingError(f"{len(names)} bead names for {n_beads} beads")
    if type_table is None:
        type_table = {}
        for n in names:
            type_table.setdefault(n, len(type_table) + 1)
    missing = [n for n in names if n not in type_table]
    if missing:
        raise MappingError(f"bead name {missing[0]!r} is not in the type table {sorted(type_table)}")
    return Mapping(
        position_map=C,
        force_map=D,
        bead_atoms=bead_atoms,
        bead_names=names,
        bead_types=np.array([type_table[n] for n in names], dtype=int),
        bead_masses=np.array([masses[g].sum() for g in bead_atoms]),
        type_table=dict(type_table),
        resnames=resnames,
        resids=np.arange(1, n_beads + 1),
    )


def load_universe(topology: str | Path, trajectory: str | Path, **kwargs):
    """Open ``topology`` + ``trajectory`` with MDAnalysis and check that it carries forces.

    ``kwargs`` go to ``MDAnalysis.Universe`` (for H5MD pass units explicitly, e.g.
    ``convert_units=True`` with the file's units set). Raises MappingError if the atom counts
    differ, or if the trajectory has no forces.
    """
    import MDAnalysis as mda

    try:
        u = mda.Universe(str(topology), str(trajectory), **kwargs)
    except ValueError as exc:
        if "number of atoms" in str(exc) or "n_atoms" in str(exc):
            raise MappingError(f"atom counts differ between topology {topology} and trajectory {trajectory}: {exc}") from exc
        raise
    if not u.trajectory.ts.has_forces:
        raise MappingError(f"{trajectory}: the trajectory has no forces; force matching needs atomistic forces")
    return u


@dataclasses.dataclass
class MappedTrajectory:
    """CG trajectory: positions (n_frames, n_beads, 3) Å, forces (n_frames, n_beads, 3)
    kcal/mol/Å, cells (n_frames, 3, 3) Å (rows are box vectors; zeros if not periodic),
    bead types (n_beads,), bead masses (n_beads,) amu."""

    positions: np.ndarray
    forces: np.ndarray
    cells: np.ndarray
    bead_types: np.ndarray
    bead_masses: np.ndarray

    def save(self, path: str | Path) -> None:
        save_npz(path, **dataclasses.asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> MappedTrajectory:
        with np.load(path) as z:
            return cls(**{k: z[k] for k in ("positions", "forces", "cells", "bead_types", "bead_masses")})


def map_positions(positions: np.ndarray, mapping: Mapping, box=None) -> np.ndarray:
    """Bead positions of one frame: positions (n_atoms, 3) Å -> (n_beads, 3) Å.

    With ``box`` (MDAnalysis dimensions [a, b, c, alpha, beta, gamma]) each atom is taken at its
    minimum image relative to the first atom of its bead, so molecules broken by the periodic
    boundary map correctly.
    """
    from MDAnalysis.lib.distances import minimize_vectors

    first = np.array([g[0] for g in mapping.bead_atoms])
    owner = np.empty(mapping.n_atoms, dtype=int)
    for b, g in enumerate(mapping.bead_atoms):
        owner[g] = b
    anchor = positions[first[owner]]
    rel = positions - anchor
    if box is not None and np.all(np.asarray(box[:3]) > 0):
        rel = minimize_vectors(rel.astype(np.float32), np.asarray(box, dtype=np.float32)).astype(float)
    return positions[first] + mapping.position_map @ rel


def map_universe(universe, mapping: Mapping, start: int = 0, stop: int | None = None, step: int = 1, progress: bool = True) -> MappedTrajectory:
    """Map every selected frame of ``universe`` (positions and forces) to beads.

    Returns a MappedTrajectory in Å and kcal/mol/Å (MDAnalysis forces, kJ/mol/Å, are converted).
    Raises MappingError naming the frame and atom for NaN or infinite coordinates or forces,
    a trajectory without forces, or an atom count that differs from the mapping.
    """
    from MDAnalysis.lib.mdamath import triclinic_vectors
    from tqdm.auto import tqdm

    fname = getattr(universe.trajectory, "filename", "trajectory")
    if universe.atoms.n_atoms != mapping.n_atoms:
        raise MappingError(f"{fname}: {universe.atoms.n_atoms} atoms, the mapping expects {mapping.n_atoms}")
    if not universe.trajectory.ts.has_forces:
        raise MappingError(f"{fname}: the trajectory has no forces; force matching needs atomistic forces")
    pos, frc, cells = [], [], []
    frames = universe.trajectory[start:stop:step]
    for ts in tqdm(frames, desc="mapping frames", disable=not progress):
        x = ts.positions.astype(float)
        for what, arr in (("coordinates", x), ("forces", ts.forces if ts.has_forces else None)):
            if arr is None:
                raise MappingError(f"{fname}: frame {ts.frame} has no forces")
            bad = ~np.isfinite(arr).all(axis=1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise MappingError(f"{fname}: frame {ts.frame} has NaN/inf {what} (atom {i}, {universe.atoms[i].name})")
        box = ts.dimensions
        periodic = box is not None and np.all(box[:3] > 0)
        pos.append(map_positions(x, mapping, box if periodic else None))
        frc.append(mapping.force_map @ units.kj_a_to_kcal_a(ts.forces.astype(float)))
        cells.append(triclinic_vectors(box) if periodic else np.zeros((3, 3)))
    if not pos:
        raise MappingError(f"{fname}: no frames selected (start={start}, stop={stop}, step={step})")
    return MappedTrajectory(
        positions=np.asarray(pos, dtype=np.float32),
        forces=np.asarray(frc, dtype=np.float32),
        cells=np.asarray(cells, dtype=np.float32),
        bead_types=mapping.bead_types.copy(),
        bead_masses=mapping.bead_masses.copy(),
    )


def to_atoms(positions, types, cell=None, masses=None):
    """One frame as ``ase.Atoms``: bead types go into the atomic numbers (the model's embedding
    index); ``cell`` (3, 3) Å sets a periodic box, all-zero or None means not periodic."""
    from ase import Atoms

    periodic = cell is not None and np.abs(cell).sum() > 0
    return Atoms(
        numbers=np.asarray(types, dtype=int),
        positions=np.asarray(positions, dtype=float),
        cell=np.asarray(cell, dtype=float) if periodic else None,
        pbc=periodic,
        masses=None if masses is None else np.asarray(masses, dtype=float),
    )


def write_cg_dataset(path: str | Path, traj: MappedTrajectory, progress: bool = True):
    """Write a mapped trajectory as a schnetpack ``ASEAtomsData`` database (atomically).

    Properties: ``forces`` in kcal/mol/Å; distances in Å; periodic cell and pbc kept per frame.
    Returns the opened ``ASEAtomsData``.
    """
    from schnetpack.data import ASEAtomsData
    from tqdm.auto import tqdm

    path = Path(path)
    with atomic_path(path) as tmp:
        db = ASEAtomsData.create(str(tmp), distance_unit="Ang", property_unit_dict={"forces": "kcal/mol/Ang"})
        atoms = [to_atoms(p, traj.bead_types, c, traj.bead_masses) for p, c in zip(traj.positions, traj.cells)]
        props = [{"forces": f.astype(np.float64)} for f in traj.forces]
        batch = 200
        for k in tqdm(range(0, len(atoms), batch), desc="writing CG dataset", disable=not progress):
            db.add_systems(props[k : k + batch], atoms[k : k + batch])
    return ASEAtomsData(str(path))


def write_cg_topology(path: str | Path, mapping: Mapping, positions: np.ndarray, cell: np.ndarray | None = None) -> None:
    """Write the CG topology as a PDB (one atom per bead, residue name and bead name, CRYST1 box).

    positions (n_beads, 3) Å; cell (3, 3) Å or None. Written atomically.
    """
    import MDAnalysis as mda
    from MDAnalysis.lib.mdamath import triclinic_box

    n = mapping.n_beads
    u = mda.Universe.empty(n, n_residues=n, atom_resindex=np.arange(n), trajectory=True)
    u.add_TopologyAttr("names", [str(b)[:4] for b in mapping.bead_names])
    u.add_TopologyAttr("types", [str(b)[:4] for b in mapping.bead_names])
    u.add_TopologyAttr("elements", ["C"] * n)
    u.add_TopologyAttr("resnames", [str(r)[:4] for r in mapping.resnames])
    u.add_TopologyAttr("resids", mapping.resids)
    u.add_TopologyAttr("masses", mapping.bead_masses)
    u.atoms.positions = positions
    if cell is not None and np.abs(cell).sum() > 0:
        u.dimensions = triclinic_box(*cell)
    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        # MDAnalysis warns for every PDB column a CG topology has no use for (altLocs, icodes, ...)
        warnings.filterwarnings("ignore", message="Found no information for attr", category=UserWarning)
        warnings.filterwarnings("ignore", message="Found missing chainIDs", category=UserWarning)
        u.atoms.write(str(tmp))
