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

**Selections: the solvent integrated out.** With ``selection`` (MDAnalysis selection language,
e.g. ``"protein"``) the beads cover only the selected atoms; the columns of the other atoms are
zero in both maps. The force map still sums the forces on the selected atoms, which already hold
the forces the unselected atoms (the solvent) exert on them, so the mapped force is the
instantaneous force whose conditional mean is the CG mean force (the standard CG protein setup
of CGSchNet, Husic et al. 2020). Constraint forces cancel as long as every constrained group
lies wholly inside one bead or wholly outside the selection (a group split by a bead boundary,
or half selected, leaves a constraint force in the mapped force): :func:`check_constraint_groups`
refuses such a mapping, for the bonds declared constrained (``"h-bonds"``: every bond to a
hydrogen, and every bond of a water molecule, as in SETTLE; ``"all-bonds"``; ``"none"``).

**Virtual sites and massless atoms** (a TIP4P M site, a lone pair) get weight 0 in a centre of
mass; a bead whose atoms have total mass 0 is an error. Their forces are summed like any other
atom's: GROMACS (TRR, H5MD) and OpenMM spread a virtual site's force onto its constructing atoms
before writing, so the site's own force is written as 0 and summing it changes nothing; an engine
that wrote an unspread force would need the site in the same bead as its constructing atoms.

**Sparse maps.** ``position_map`` and ``force_map`` are ``scipy.sparse`` CSR arrays, so the
memory of a mapping is O(atoms), not O(beads × atoms), and frames are mapped one at a time
(streaming), so a mapped trajectory needs O(frames × beads).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cgexplain import units
from cgexplain.aminoacids import AMINO_ACID_TYPES, CAP_RESIDUES, RESIDUE_ALIASES
from cgexplain.fileio import atomic_path, save_npz
from cgexplain.settings import one_of

__all__ = [
    "MappingSection",
    "amino_acid_name",
    "MappingError",
    "Mapping",
    "make_mapping",
    "mapping_from_section",
    "validate_groups",
    "check_constraint_groups",
    "constrained_bonds",
    "CONSTRAINTS",
    "WATER_RESIDUES",
    "load_universe",
    "map_universe",
    "MappedTrajectory",
    "write_cg_dataset",
    "write_cg_topology",
]


@dataclasses.dataclass
class MappingSection:
    """``mapping``: which atoms form a bead and where it sits (:func:`cgexplain.mapping.maps.make_mapping`).

    by: 'residue' or 'fragment' (one bead per molecule); method: 'com' (centre of mass), 'cog'
    (centre of geometry) or 'atom' (the atom named ``atom_name``); bead_name: name(s) of the
    residues/atoms mapped; type_table: 'amino_acids' or {bead name: type >= 1} (default: order of
    appearance); merge_caps: merge ACE/NME caps into their neighbour residue; masses: {atom name:
    amu} for particles without an element (mW); select: MDAnalysis selection of the atoms the beads
    cover (default all; the others, e.g. a solvent, are integrated out); constraints: the bonds the
    simulation constrained ('h-bonds' (default; also rigid waters), 'all-bonds' or 'none'): a bead
    boundary or the selection's edge may not split them (:func:`cgexplain.mapping.maps.check_constraint_groups`);
    check_length_scale: stop the map stage when the beads' nearest-neighbour or bond distances are
    not those of molecules (:func:`cgexplain.diagnostics.check_length_scale`; a wrong length unit);
    beads: explicit beads of one bonded chain, in chain order, each ``{name, select, atom}``: the
    MDAnalysis selection of the atoms the bead carries (its force sums theirs) and, with ``atom``, the
    atom that gives its position (else ``method``); overrides ``by``, ``atom_name`` and ``bead_name``;
    consecutive beads are bonded."""

    by: str = one_of("residue", "fragment")
    method: str = one_of("com", "cog", "atom")
    atom_name: str | None = None
    bead_name: str | list[str] | None = None
    type_table: str | dict[str, int] | None = None
    merge_caps: bool = True
    masses: dict[str, float] | None = None
    select: str | None = None
    constraints: str = one_of("h-bonds", "all-bonds", "none")
    check_length_scale: bool = True
    beads: list[dict] | None = None


def amino_acid_name(name: str) -> str:
    """The standard three-letter name of a residue name (``HIE`` -> ``HIS``). Raises MappingError
    for a name that is neither standard nor a known variant, listing the allowed names."""
    n = RESIDUE_ALIASES.get(str(name).upper(), str(name).upper())
    if n not in AMINO_ACID_TYPES:
        raise MappingError(
            f"residue name {name!r} is not a standard amino acid; allowed: {', '.join(AMINO_ACID_TYPES)} (and variants {', '.join(RESIDUE_ALIASES)})"
        )
    return n


#: residue names of water models (rigid: every bond of the molecule is constrained, e.g. SETTLE)
WATER_RESIDUES = ("SOL", "WAT", "HOH", "TIP3", "TIP4", "TIP5", "SPC", "T3P", "T4P", "T4E", "OPC", "H2O")
#: which bonds a constraint check assumes constrained (:func:`constrained_bonds`)
CONSTRAINTS = ("h-bonds", "all-bonds", "none")


class MappingError(ValueError):
    """Bad input to the mapping stage: the message names the file, frame, atom or bead."""


@dataclasses.dataclass
class Mapping:
    """A linear atoms-to-beads map.

    Attributes:
        position_map: (n_beads, n_atoms) weights ``C`` (``scipy.sparse`` CSR); rows sum to 1.
        force_map: (n_beads, n_atoms) weights ``D`` (CSR; 1 on a bead's atoms, else 0; the
            columns of atoms outside the selection are 0: they are integrated out).
        bead_atoms: per bead, the atom indices (0-based, of the whole topology) it holds.
        bead_names: (n_beads,) bead type names, e.g. ``"W"`` or residue names.
        bead_types: (n_beads,) int type given to the model's embedding (from ``type_table``).
        bead_masses: (n_beads,) amu, the summed mass of the bead's atoms.
        type_table: bead type name -> int (>= 1).
        resnames, resids: (n_beads,) names and numbers written to the CG topology.
        chains: (n_beads,) chain label of each bead (the segment or chain of its first atom).
        bonds: (n_bonds, 2) CG bonds: consecutive residue beads of one chain that are bonded in
            the topology (or consecutive in the chain when it has no bonds); chain breaks have
            none. Empty for one bead per molecule.
        selection: the MDAnalysis selection the beads cover ("all" when every atom is mapped).
    """

    position_map: sp.csr_array
    force_map: sp.csr_array
    bead_atoms: list
    bead_names: list
    bead_types: np.ndarray
    bead_masses: np.ndarray
    type_table: dict
    resnames: list
    resids: np.ndarray
    chains: list = dataclasses.field(default_factory=list)
    bonds: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    selection: str = "all"

    @property
    def n_beads(self) -> int:
        return self.position_map.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.position_map.shape[1]


def validate_groups(
    groups: Sequence[Sequence[int] | np.ndarray],
    n_atoms: int,
    atom_names: Sequence[str] | None = None,
    selected: np.ndarray | None = None,
    selection: str = "all",
) -> None:
    """Check that ``groups`` (bead -> atom indices) assigns every atom of the selection to exactly
    one bead and no other atom to any.

    selected: (n_selected,) atom indices of the selection (default: every atom).
    Raises MappingError naming the first unassigned atom, or the atom put into two beads, or an
    atom outside the selection, or an index outside 0..n_atoms-1, or an empty bead.
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
    insel = np.ones(n_atoms, bool)
    if selected is not None:
        insel[:] = False
        insel[np.asarray(selected, dtype=int)] = True
        outside = np.flatnonzero((owner >= 0) & ~insel)
        if outside.size:
            raise MappingError(f"{name(int(outside[0]))} is in bead {owner[outside[0]]} but outside the selection {selection!r}")
    missing = np.flatnonzero((owner < 0) & insel)
    if missing.size:
        raise MappingError(
            f"{missing.size} atom(s) of the selection {selection!r} are in no bead; the first is {name(int(missing[0]))}. "
            "Every selected atom's force must be mapped to a bead, or constraint forces do not cancel "
            "(atoms to integrate out, such as a solvent, go outside the selection: mapping.select)."
        )


def constrained_bonds(universe, constraints: str = "h-bonds") -> tuple[np.ndarray, str]:
    """The bonds a constraint check takes as constrained: (m, 2) atom indices, and a note.

    constraints: ``"h-bonds"`` (every bond to a hydrogen, and every bond of a water residue,
    :data:`WATER_RESIDUES`: rigid water), ``"all-bonds"`` or ``"none"``. Hydrogens are found by
    element (or, without elements, by a name starting with H). A topology without bonds gives the
    bonds of nothing but water residues (atoms of one water residue are taken as one rigid group);
    the note says so. Raises MappingError for an unknown ``constraints``.
    """
    if constraints not in CONSTRAINTS:
        raise MappingError(f"mapping.constraints {constraints!r}: use one of {list(CONSTRAINTS)}")
    if constraints == "none":
        return np.zeros((0, 2), dtype=np.int64), "no constraint check (constraints: none)"
    atoms = universe.atoms
    water = np.isin(np.char.upper(np.asarray(atoms.resnames, dtype=str)), WATER_RESIDUES)
    try:
        b = np.asarray(universe.bonds.to_indices(), dtype=np.int64).reshape(-1, 2)
        note = f"constrained bonds assumed: {constraints}, from the topology's {len(b)} bonds"
    except Exception:  # no bonds in the topology: the water residues are the only known rigid groups
        res = np.asarray(atoms.resindices)
        wi = np.flatnonzero(water)
        b = np.array([[wi[k], wi[k + 1]] for k in range(len(wi) - 1) if res[wi[k]] == res[wi[k + 1]]], dtype=np.int64).reshape(-1, 2)
        return b, "the topology has no bonds: only water residues checked as rigid groups"
    if constraints == "all-bonds" or len(b) == 0:
        return b, note
    try:
        el = np.char.upper(np.asarray(atoms.elements, dtype=str))
        is_h = el == "H"
    except Exception:
        is_h = np.char.startswith(np.char.upper(np.asarray(atoms.names, dtype=str)), "H")
    keep = is_h[b[:, 0]] | is_h[b[:, 1]] | water[b[:, 0]] | water[b[:, 1]]
    return b[keep], note


def check_constraint_groups(universe, bead_atoms: Sequence[np.ndarray], constraints: str = "h-bonds", selection: str = "all") -> str:
    """Refuse a mapping under which constraint forces would not cancel.

    A constraint force acts along a constrained bond, equal and opposite on its two atoms; the
    force map cancels it only when both atoms are summed into the same bead, or both are left out
    (integrated out). A bond of :func:`constrained_bonds` whose atoms are in two beads, or with one
    atom selected and the other not, is an error. Returns a note on what was checked.
    Raises MappingError naming the bond (atoms, names, residues) and the beads.
    """
    bonds, note = constrained_bonds(universe, constraints)
    if len(bonds) == 0:
        return note
    owner = np.full(universe.atoms.n_atoms, -1)
    for k, g in enumerate(bead_atoms):
        owner[np.asarray(g, dtype=int)] = k
    oa, ob = owner[bonds[:, 0]], owner[bonds[:, 1]]
    bad = np.flatnonzero(oa != ob)
    if bad.size:
        a, b = (int(i) for i in bonds[bad[0]])
        A, B = universe.atoms[a], universe.atoms[b]

        def where(o):
            return f"in bead {o}" if o >= 0 else f"outside the selection {selection!r}"

        raise MappingError(
            f"the constrained bond {a}-{b} ({A.name} {A.resname}{A.resid} - {B.name} {B.resname}{B.resid}; {constraints}) has one atom "
            f"{where(oa[bad[0]])} and the other {where(ob[bad[0]])}: its constraint force would not cancel in the force map "
            f"({bad.size} such bond(s)). Put each constrained group wholly inside one bead or wholly outside the selection, "
            "or set mapping.constraints to what the simulation constrained."
        )
    return note + f"; {len(bonds)} constrained bonds, none split"


def make_mapping(
    universe,
    by: str = "fragment",
    method: str = "com",
    atom_name: str | Sequence[str] | None = None,
    groups: Sequence[Sequence[int]] | None = None,
    bead_names: Sequence[str] | str | None = None,
    type_table: dict | str | None = None,
    merge_caps: bool = True,
    selection: str | None = None,
    constraints: str = "h-bonds",
) -> Mapping:
    """Build a :class:`Mapping` from an MDAnalysis Universe.

    Args:
        universe: MDAnalysis Universe (topology with masses; bonds are needed for ``by="fragment"``).
        by: ``"fragment"`` (one bead per molecule), ``"residue"`` (one per residue), or ignored
            when ``groups`` is given.
        method: position map: ``"com"`` centre of mass (massless atoms, e.g. virtual sites, get
            weight 0), ``"cog"`` centre of geometry, or ``"atom"``: the single atom named
            ``atom_name`` in each bead (e.g. ``"CA"``; a list gives one name per bead).
        groups: explicit bead -> atom indices (0-based); overrides ``by``.
        bead_names: per-bead type names, or one name for every bead; default the residue name
            of the bead's first atom.
        type_table: name -> int (>= 1); default numbers the names in order of appearance.
            ``"amino_acids"``: :data:`cgexplain.aminoacids.AMINO_ACID_TYPES`, with bead names made standard by
            :func:`amino_acid_name` (``HIE`` -> ``HIS``).
        merge_caps: with ``by="residue"``, put the atoms of a terminal cap (:data:`cgexplain.aminoacids.CAP_RESIDUES`,
            e.g. the C-terminal amide ``NHE``) into the residue it is bonded to, so the force map
            sums them with that residue (their bond constraints then cancel).
        selection: MDAnalysis selection of the atoms the beads cover (default: all atoms); the
            others are integrated out (module docstring).
        constraints: which bonds to take as constrained for :func:`check_constraint_groups`
            (``"h-bonds"`` default, ``"all-bonds"``, ``"none"``).

    Returns: Mapping (sparse maps).
    Raises: MappingError for an empty or invalid selection, unassigned atoms, atoms in two beads
        or outside the selection, an unknown ``method`` or ``by``, a bead without the atom named
        ``atom_name``, a bead of total mass 0 (or a negative mass) under ``"com"``, a split
        constrained group, or a bead name not in ``type_table``.
    """
    n_atoms = universe.atoms.n_atoms
    if atom_name is not None and not isinstance(atom_name, str) and (groups is None or len(atom_name) != len(groups)):
        raise MappingError(
            f"{len(atom_name)} atom names for {'no explicit' if groups is None else len(groups)} bead groups: a list of atom names needs one per group"
        )
    sel_text = selection or "all"
    try:
        sel_atoms = universe.select_atoms(sel_text) if selection else universe.atoms
    except Exception as exc:
        raise MappingError(f"mapping.select {sel_text!r} is not a valid MDAnalysis selection: {exc}") from exc
    if sel_atoms.n_atoms == 0:
        raise MappingError(f"mapping.select {sel_text!r} selects no atoms (of {n_atoms})")
    selected = np.asarray(sel_atoms.indices, dtype=int)
    raw: Sequence[Sequence[int]]
    if groups is not None:
        raw = groups
    else:
        if by == "fragment":
            try:
                frags = universe.atoms.fragments
            except Exception as exc:  # no bonds in the topology
                raise MappingError(f"by='fragment' needs bonds in the topology ({exc}); use by='residue'") from exc
            insel = np.zeros(n_atoms, bool)
            insel[selected] = True
            raw = [f.indices[insel[f.indices]] for f in frags if insel[f.indices].any()]
        elif by == "residue":
            residues = sel_atoms.residues
            insel = np.zeros(n_atoms, bool)
            insel[selected] = True
            order = np.argsort(universe.atoms.resindices, kind="stable")  # atoms grouped by residue, in one pass
            starts = np.searchsorted(universe.atoms.resindices[order], residues.resindices)
            ends = np.searchsorted(universe.atoms.resindices[order], residues.resindices, side="right")
            res: list[list[int]] = [[int(i) for i in order[a:b] if insel[i]] for a, b in zip(starts, ends)]
            names_ = [r.resname for r in residues]
            if merge_caps:
                for k in [k for k, n in enumerate(names_) if n in CAP_RESIDUES]:
                    t = k + CAP_RESIDUES[names_[k]]
                    if not 0 <= t < len(res) or names_[t] in CAP_RESIDUES:
                        raise MappingError(f"cap residue {names_[k]} {residues[k].resid} has no residue to join")
                    res[t] = sorted(res[t] + res[k])
                res = [g for g, n in zip(res, names_) if n not in CAP_RESIDUES]
            raw = res
        else:
            raise MappingError(f"unknown grouping by={by!r}; use 'fragment' or 'residue', or pass groups")
    bead_atoms = [np.asarray(g, dtype=int) for g in raw]
    atom_names = list(universe.atoms.names)
    validate_groups(bead_atoms, n_atoms, atom_names, selected=selected if selection else None, selection=sel_text)
    check_constraint_groups(universe, bead_atoms, constraints, sel_text)
    masses = np.asarray(universe.atoms.masses, dtype=float)
    n_beads = len(bead_atoms)
    rows, cols, cw = [], [], []
    for b, g in enumerate(bead_atoms):
        if method == "com":
            m = masses[g]
            if np.any(m < 0) or not m.sum() > 0:
                i = int(g[np.argmin(m)])
                raise MappingError(
                    f"bead {b} ({universe.atoms[g[0]].resname}{universe.atoms[g[0]].resid}): total mass {m.sum()} amu "
                    f"(atom {i} {atom_names[i]} has {masses[i]}); a centre of mass needs a positive total mass"
                    + ("" if np.all(m >= 0) else " and no negative masses")
                    + " (set masses for particles without an element: mapping.masses)"
                )
            w = m / m.sum()  # massless atoms (virtual sites) get weight 0
            rows.append(np.full(len(g), b))
            cols.append(g)
            cw.append(w)
        elif method == "cog":
            rows.append(np.full(len(g), b))
            cols.append(g)
            cw.append(np.full(len(g), 1.0 / len(g)))
        elif method == "atom":
            an = atom_name if isinstance(atom_name, str) or atom_name is None else atom_name[b]
            hit = [i for i in g if atom_names[i] == an]
            if len(hit) != 1:
                r0 = universe.atoms[g[0]]
                raise MappingError(f"bead {b} ({r0.resname}{r0.resid}): {len(hit)} atoms named {an!r} (need exactly one)")
            rows.append(np.array([b]))
            cols.append(np.array(hit))
            cw.append(np.ones(1))
        else:
            raise MappingError(f"unknown position map method={method!r}; use 'com', 'cog' or 'atom'")
    C = sp.csr_array((np.concatenate(cw), (np.concatenate(rows), np.concatenate(cols))), shape=(n_beads, n_atoms))
    frows = np.concatenate([np.full(len(g), b) for b, g in enumerate(bead_atoms)])
    fcols = np.concatenate(bead_atoms)
    D = sp.csr_array((np.ones(len(fcols)), (frows, fcols)), shape=(n_beads, n_atoms))
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
    chains = _bead_chains(universe, bead_atoms)
    bonds = _cg_bonds(universe, bead_atoms, chains) if (by == "residue" and groups is None) else np.zeros((0, 2), dtype=np.int64)
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
        chains=chains,
        bonds=bonds,
        selection=sel_text,
    )


def mapping_from_section(universe, section: dict, **overrides) -> Mapping:
    """:func:`make_mapping` with the keys of a system.yaml ``mapping`` section (``by``, ``method``,
    ``atom_name``, ``bead_name``, ``type_table``, ``merge_caps``, ``select``, ``constraints``;
    :class:`MappingSection`); ``overrides`` replace make_mapping arguments.
    Raises what make_mapping raises."""
    args = {
        "by": section["by"],
        "method": section["method"],
        "atom_name": section.get("atom_name"),
        "bead_names": section.get("bead_name"),
        "type_table": section.get("type_table"),
        "merge_caps": bool(section.get("merge_caps", True)),
        "selection": section.get("select"),
        "constraints": section.get("constraints", "h-bonds"),
    }
    beads = section.get("beads")
    if not beads:
        return make_mapping(universe, **{**args, **overrides})
    groups, atoms = [], []
    for k, b in enumerate(beads):
        missing = {"name", "select"} - set(b)
        if missing or set(b) - {"name", "select", "atom"}:
            raise MappingError(f"mapping.beads[{k}]: give name, select and optionally atom (got {sorted(b)})")
        try:
            g = universe.select_atoms(str(b["select"])).indices
        except Exception as exc:
            raise MappingError(f"mapping.beads[{k}] ({b['name']}): select {b['select']!r} is not a valid MDAnalysis selection: {exc}") from exc
        if len(g) == 0:
            raise MappingError(f"mapping.beads[{k}] ({b['name']}): select {b['select']!r} selects no atoms")
        groups.append(g)
        atoms.append(b.get("atom"))
    if any(a is not None for a in atoms):
        if any(a is None for a in atoms):
            raise MappingError("mapping.beads: give `atom` for every bead or for none")
        args.update(method="atom", atom_name=atoms)
    args.update(groups=groups, bead_names=[str(b["name"]) for b in beads])
    m = make_mapping(universe, **{**args, **overrides})
    chain = np.array([[k, k + 1] for k in range(m.n_beads - 1)], dtype=np.int64).reshape(-1, 2)
    return dataclasses.replace(m, bonds=chain, chains=["A"] * m.n_beads)


def _bead_chains(universe, bead_atoms) -> list:
    """Chain label per bead: the chainID of its first atom if the topology has one, else its segment id."""
    first = np.array([g[0] for g in bead_atoms], dtype=int)
    atoms = universe.atoms
    for attr in ("chainIDs", "segids"):
        try:
            v = np.asarray(getattr(atoms, attr), dtype=str)[first]
        except Exception:
            continue
        if len(v) and all(x.strip() for x in v):
            return [str(x) for x in v]
    return ["A"] * len(bead_atoms)


def _cg_bonds(universe, bead_atoms, chains) -> np.ndarray:
    """CG bonds between consecutive residue beads of one chain: a bond of the topology joins
    their atoms, or (no such bond listed: PDB topologies list few) the backbone C of the first lies
    within 2 Å (minimum image) of the N of the second in the current frame. A chain break, or
    molecules that are not bonded (waters), give no bond."""
    from MDAnalysis.lib.distances import calc_bonds

    n = len(bead_atoms)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    atoms = universe.atoms
    owner = np.full(atoms.n_atoms, -1)
    for k, g in enumerate(bead_atoms):
        owner[g] = k
    bonded: set = set()
    try:
        b = np.asarray(universe.bonds.to_indices(), dtype=np.int64).reshape(-1, 2)
        ob = owner[b]
        ok = (ob[:, 0] >= 0) & (ob[:, 1] >= 0) & (np.abs(ob[:, 0] - ob[:, 1]) == 1)
        bonded = {tuple(sorted(p)) for p in ob[ok].tolist()}
    except Exception:  # no bonds in the topology
        pass
    names = np.asarray(atoms.names, dtype=str)
    c_atom = {k: next((i for i in g if names[i] == "C"), -1) for k, g in enumerate(bead_atoms)}
    n_atom = {k: next((i for i in g if names[i] == "N"), -1) for k, g in enumerate(bead_atoms)}
    cand = [k for k in range(n - 1) if chains[k] == chains[k + 1] and (k, k + 1) not in bonded and c_atom[k] >= 0 and n_atom[k + 1] >= 0]
    if cand:
        x = atoms.positions
        box = universe.dimensions if universe.dimensions is not None and np.all(universe.dimensions[:3] > 0) else None
        d = calc_bonds(x[[c_atom[k] for k in cand]], x[[n_atom[k + 1] for k in cand]], box=box)
        bonded |= {(k, k + 1) for k, dk in zip(cand, d) if dk < 2.0}
    return np.array(sorted(p for p in bonded if chains[p[0]] == chains[p[1]]), dtype=np.int64).reshape(-1, 2)


#: the mean |force component| (kcal/mol/Å) on the mapped atoms of an atomistic frame outside which the
#: declared units are taken to be wrong: all-atom liquids and proteins give about 3–30 (cobrotoxin's protein
#: atoms 20), and the common confusions are factors of 4.184, 10 and 41.84 (kJ/mol/nm read as kcal/mol/Å: ~850)
FORCE_SANITY_KCAL_A = (0.1, 250.0)


def load_universe(topology: str | Path, trajectory: str | Path | Sequence[str | Path], force_unit_declared: bool = False, **kwargs):
    """Open ``topology`` + ``trajectory`` (one file or a list, read in order as one trajectory)
    with MDAnalysis and check that it carries forces.

    ``kwargs`` go to ``MDAnalysis.Universe`` (e.g. ``format``, ``topology_format``; for a file
    whose units MDAnalysis cannot know, pass ``convert_units=False`` and declare the units to
    :func:`map_universe`). ``force_unit_declared``: the caller declares the force unit, so a
    format whose force unit MDAnalysis does not know (a LAMMPS dump) is accepted. Raises
    MappingError naming the file for a missing file, a file MDAnalysis cannot read, atom counts
    that differ between topology and trajectory, a trajectory without forces, or forces in a unit
    MDAnalysis does not know when none is declared.
    """
    import MDAnalysis as mda

    trajs = [trajectory] if isinstance(trajectory, (str, Path)) else list(trajectory)
    for f in [topology, *trajs]:
        if not Path(f).exists():
            raise MappingError(f"{f}: no such file")
    try:
        u = mda.Universe(str(topology), *[str(t) for t in trajs], **kwargs)
    except ValueError as exc:
        if "number of atoms" in str(exc).lower() or "n_atoms" in str(exc):
            raise MappingError(f"atom counts differ between topology {topology} and trajectory {', '.join(map(str, trajs))}: {exc}") from exc
        raise MappingError(f"{topology} + {', '.join(map(str, trajs))}: MDAnalysis cannot read them: {exc}") from exc
    except (OSError, TypeError, KeyError, NotImplementedError, EOFError, IndexError, RuntimeError, struct.error) as exc:
        raise MappingError(f"{topology} + {', '.join(map(str, trajs))}: MDAnalysis cannot read them: {exc}") from exc
    if u.atoms.n_atoms != u.trajectory.n_atoms:
        raise MappingError(f"atom counts differ: topology {topology} has {u.atoms.n_atoms}, trajectory {trajs[0]} has {u.trajectory.n_atoms}")
    if not u.trajectory.ts.has_forces:
        raise MappingError(
            f"{trajs[0]}: the trajectory has no forces; force matching needs atomistic forces (a TRR, H5MD, NetCDF or dump written with forces)"
        )
    if not force_unit_declared and kwargs.get("convert_units", True):
        readers = getattr(u.trajectory, "readers", None) or [u.trajectory]
        for r, t in zip(readers, trajs):
            if (getattr(r, "units", None) or {}).get("force") is None:
                raise MappingError(
                    f"{t}: MDAnalysis does not know this format's force unit (e.g. a LAMMPS dump: it depends on 'units'); "
                    "declare reference.length_unit and reference.force_unit"
                )
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


def _owner_anchor(mapping: Mapping) -> tuple[np.ndarray, np.ndarray, sp.csr_array, sp.csr_array, np.ndarray]:
    """The mapped atoms (sorted), the position in that list of each one's bead anchor (its bead's
    first atom), the maps restricted to the mapped atoms' columns, and each bead's first atom."""
    sel = np.unique(np.concatenate(mapping.bead_atoms))
    where = np.full(mapping.n_atoms, -1)
    where[sel] = np.arange(len(sel))
    anchor = np.empty(len(sel), dtype=int)
    for g in mapping.bead_atoms:
        anchor[where[g]] = where[g[0]]
    first = np.array([g[0] for g in mapping.bead_atoms], dtype=int)
    return sel, anchor, sp.csr_array(mapping.position_map[:, sel]), sp.csr_array(mapping.force_map[:, sel]), first


def map_positions(positions: np.ndarray, mapping: Mapping, box=None, _cache=None) -> np.ndarray:
    """Bead positions of one frame: positions (n_atoms, 3) Å -> (n_beads, 3) Å.

    With ``box`` (MDAnalysis dimensions [a, b, c, alpha, beta, gamma]) each atom is taken at its
    minimum image relative to the first atom of its bead, so molecules broken by the periodic
    boundary map correctly. Only the mapped atoms are read.
    """
    from MDAnalysis.lib.distances import minimize_vectors

    sel, anchor, C, _, first = _cache if _cache is not None else _owner_anchor(mapping)
    x = np.asarray(positions)
    xs = x if (len(sel) == len(x) and sel[-1] == len(x) - 1) else x[sel]
    rel = xs - xs[anchor]
    if box is not None and np.all(np.asarray(box[:3]) > 0):
        b = np.asarray(box, dtype=np.float64)
        if np.allclose(b[3:], 90.0):  # orthorhombic: the minimum image per axis, vectorised
            rel = rel - (b[:3] * np.round(rel / b[:3])).astype(rel.dtype)
        else:
            rel = minimize_vectors(rel.astype(np.float32), b.astype(np.float32))
    return x[first].astype(float) + C @ rel.astype(float)


def map_universe(
    universe,
    mapping: Mapping,
    start: int = 0,
    stop: int | None = None,
    step: int = 1,
    progress: bool = True,
    length_unit: str | None = None,
    force_unit: str | None = None,
) -> MappedTrajectory:
    """Map every selected frame of ``universe`` (positions and forces) to beads, one frame at a
    time (memory O(frames × beads)).

    length_unit, force_unit: the units the trajectory holds when MDAnalysis did not convert them
    (a Universe opened with ``convert_units=False``): names of :data:`cgexplain.units.LENGTH_UNITS` and
    :data:`cgexplain.units.FORCE_UNITS`; default None: MDAnalysis's units (Å, kJ/mol/Å).
    Returns a MappedTrajectory in Å and kcal/mol/Å.
    Raises MappingError naming the frame and atom for NaN or infinite coordinates or forces,
    a trajectory without forces, an atom count that differs from the mapping, an unknown unit,
    or mapped forces whose mean |component| lies outside :data:`FORCE_SANITY_KCAL_A` (the
    declared or assumed units are then almost surely wrong).
    """
    from MDAnalysis.lib.mdamath import triclinic_vectors
    from tqdm.auto import tqdm

    try:
        lf = units.length_factor(length_unit) if length_unit else 1.0
        ff = units.force_factor(force_unit or "kJ/mol/A")  # MDAnalysis: kJ/mol/Å
    except ValueError as e:
        raise MappingError(str(e)) from None
    fname = getattr(universe.trajectory, "filename", "trajectory")
    if universe.atoms.n_atoms != mapping.n_atoms:
        raise MappingError(f"{fname}: {universe.atoms.n_atoms} atoms, the mapping expects {mapping.n_atoms}")
    if not universe.trajectory.ts.has_forces:
        raise MappingError(f"{fname}: the trajectory has no forces; force matching needs atomistic forces")
    cache = _owner_anchor(mapping)
    sel, D = cache[0], cache[3]
    whole = len(sel) == mapping.n_atoms
    n = len(universe.trajectory[start:stop:step])
    pos = np.empty((n, mapping.n_beads, 3), np.float32)
    frc = np.empty_like(pos)
    cells = np.zeros((n, 3, 3), np.float32)
    k = 0
    for ts in tqdm(universe.trajectory[start:stop:step], total=n, desc="mapping frames", disable=not progress):
        x = ts.positions
        f = ts.forces if ts.has_forces else None
        if f is None:
            raise MappingError(f"{fname}: frame {ts.frame} has no forces")
        xs, fs = (x, f) if whole else (x[sel], f[sel])
        for what, arr in (("coordinates", xs), ("forces", fs)):
            if not np.isfinite(arr).all():  # one fast reduction per frame; the atom only when it fails
                i = int(sel[np.flatnonzero(~np.isfinite(arr).all(axis=1))[0]])
                raise MappingError(f"{fname}: frame {ts.frame} has NaN/inf {what} (atom {i}, {universe.atoms[i].name})")
        box = ts.dimensions
        periodic = box is not None and np.all(box[:3] > 0)
        if lf != 1.0:
            x = x * lf
            if periodic:
                box = np.concatenate([box[:3] * lf, box[3:]])
        pos[k] = map_positions(x, mapping, box if periodic else None, _cache=cache)
        frc[k] = (D @ fs.astype(float)) * ff
        cells[k] = triclinic_vectors(box) if periodic else 0.0
        if k == 0:
            m = float(np.abs(fs).mean()) * ff
            lo, hi = FORCE_SANITY_KCAL_A
            if not lo <= m <= hi:
                raise MappingError(
                    f"{fname}: frame {ts.frame}: the mean |force component| on the mapped atoms is {m:.3g} kcal/mol/Å "
                    f"(read as {force_unit or 'kJ/mol/Å (MDAnalysis)'}), outside {lo:g}..{hi:g}: the declared units are probably wrong"
                )
        k += 1
    if k == 0:
        raise MappingError(f"{fname}: no frames selected (start={start}, stop={stop}, step={step})")
    if k < n:  # MDAnalysis stops early, without an error, at a frame it cannot read
        raise MappingError(
            f"{fname}: {n} frames selected but only {k} could be read: the trajectory is cut short after frame {k - 1} of the selection"
        )
    return MappedTrajectory(
        positions=pos[:k],
        forces=frc[:k],
        cells=cells[:k],
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
    """Write the CG topology as a PDB (one atom per bead, residue name and bead name, chain IDs,
    CONECT records for the CG bonds, CRYST1 box).

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
    chains = list(mapping.chains) if len(mapping.chains) == n else ["A"] * n
    labels = {c: k for k, c in enumerate(dict.fromkeys(chains))}
    # one-character PDB chain IDs: the first character of each chain label when they stay distinct, else A, B, C, ...
    ids = [str(c)[:1] or "A" for c in chains] if len({str(c)[:1] for c in labels}) == len(labels) else [chr(65 + labels[c] % 26) for c in chains]
    u.add_TopologyAttr("chainIDs", ids)
    if len(mapping.bonds):
        u.add_TopologyAttr("bonds", [tuple(int(i) for i in b) for b in mapping.bonds])
    u.atoms.positions = positions
    if cell is not None and np.abs(cell).sum() > 0:
        u.dimensions = triclinic_box(*cell)
    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        # MDAnalysis warns for every PDB column a CG topology has no use for (altLocs, icodes, ...)
        warnings.filterwarnings("ignore", message="Found no information for attr", category=UserWarning)
        warnings.filterwarnings("ignore", message="Found missing chainIDs", category=UserWarning)
        u.atoms.write(str(tmp), bonds="all" if len(mapping.bonds) else None)
