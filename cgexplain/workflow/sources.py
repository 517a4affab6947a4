"""Where a run's reference comes from (``reference.source`` in system.yaml), one class each.

- ``openmm`` (default): the kind of system runs its own OpenMM reference (the bundled systems);
  the map stage reads ``reference/topology.pdb`` + ``reference/trajectory.trr``.
- ``files``: the user's topology and trajectories with forces (:mod:`cgexplain.reference.external`);
  the map stage reads them in place, one frame at a time.
- ``arrays`` and ``mdcath``: data sets already mapped to beads (:mod:`cgexplain.reference.premapped`);
  the map stage only writes them into ``cg/``.

The reference and map stages ask the run's source, as every stage asks the run's kind; neither
branches on the source itself.
"""

from __future__ import annotations

import time

import numpy as np

from cgexplain.fileio import read_json, write_json
from cgexplain.workflow.run import RunFolder

__all__ = ["Source", "OpenMMSource", "FilesSource", "SOURCES", "source_for", "SOURCE_NAMES"]


class Source:
    """Base class: how the reference and map stages get their data."""

    name = "base"

    def reference(self, cfg: dict, run: RunFolder, kind, progress: bool = True) -> dict:
        """Produce or check the reference in ``run.reference``; returns its summary."""
        raise NotImplementedError

    def map(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        """Write ``cg/`` (mapped.npz, topology.pdb, dataset.db, mapping.json); returns mapping.json's content."""
        raise NotImplementedError


def _mapping_from_universe(cfg: dict, run: RunFolder, u, progress: bool, start=0, stop=None, step=1, length_unit=None, force_unit=None) -> dict:
    """Map a Universe with the ``mapping`` section and write ``cg/``: the shared body of the
    sources that read atomistic trajectories."""
    from cgexplain.mapping.maps import MappingError, make_mapping, map_universe, write_cg_dataset, write_cg_topology

    t0 = time.perf_counter()
    mc = cfg["mapping"]
    for name, mass in (mc.get("masses") or {}).items():  # masses by atom name, for particles without an element (mW)
        sel = u.atoms[u.atoms.names == name]
        if len(sel) == 0:
            raise MappingError(f"mapping.masses: no atom named {name!r} in the topology")
        sel.masses = float(mass)
    m = make_mapping(
        u,
        by=mc["by"],
        method=mc["method"],
        atom_name=mc.get("atom_name"),
        bead_names=mc.get("bead_name"),
        type_table=mc.get("type_table"),
        merge_caps=bool(mc["merge_caps"]),
        selection=mc.get("select"),
        constraints=mc["constraints"],
    )
    if cfg["kind"] == "protein" and (run.reference / "native.pdb").exists():
        from cgexplain.workflow.kinds.protein import native_ca_positions

        n_ca = len(native_ca_positions(run.reference))
        if n_ca != m.n_beads:
            raise MappingError(f"{run.reference / 'native.pdb'}: {n_ca} CA atoms, but the mapping has {m.n_beads} beads (one CA per bead is needed)")
    traj = map_universe(u, m, start=start, stop=stop, step=step, progress=progress, length_unit=length_unit, force_unit=force_unit)
    traj.save(run.mapped)
    write_cg_topology(run.cg_topology, m, traj.positions[0], traj.cells[0])
    write_cg_dataset(run.dataset, traj, progress=progress)
    from cgexplain.mapping.maps import check_constraint_groups

    res = {
        "n_beads": m.n_beads,
        "n_atoms_mapped": int(sum(len(g) for g in m.bead_atoms)),
        "n_atoms": int(m.n_atoms),
        "selection": m.selection,
        "n_frames": int(len(traj.positions)),
        "type_table": m.type_table,
        "bead_mass_amu": float(m.bead_masses[0]),
        "method": mc["method"],
        "chains": sorted(set(m.chains)),
        "cg_bonds": m.bonds.tolist(),
        "constraint_check": check_constraint_groups(u, m.bead_atoms, mc["constraints"], m.selection),
        "mean_abs_force_kcal_mol_A": float(np.abs(traj.forces).mean()),
        "wall_time_s": time.perf_counter() - t0,
    }
    write_json(run.mapping_json, res)
    return res


class OpenMMSource(Source):
    """The kind's own OpenMM reference (the bundled systems)."""

    name = "openmm"

    def reference(self, cfg: dict, run: RunFolder, kind, progress: bool = True) -> dict:
        return kind.reference(cfg, run, progress)

    def map(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        from cgexplain.mapping.maps import load_universe

        return _mapping_from_universe(cfg, run, load_universe(run.reference_topology, run.reference_trajectory), progress)


class FilesSource(Source):
    """The user's topology and trajectories with forces (:mod:`cgexplain.reference.external`)."""

    name = "files"

    def reference(self, cfg: dict, run: RunFolder, kind, progress: bool = True) -> dict:
        from cgexplain.reference.external import files_reference

        return files_reference(cfg, run, progress)

    def map(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        from cgexplain.reference.external import open_reference

        rc = cfg["reference"]
        ref = read_json(run.reference_json)
        u = open_reference(cfg)
        return _mapping_from_universe(
            cfg,
            run,
            u,
            progress,
            start=int(rc["start"]),
            stop=rc["stop"],
            step=int(rc["step"]),
            length_unit=rc.get("length_unit"),
            force_unit=rc.get("force_unit"),
        ) | {"reference_frames": ref["n_frames"]}


SOURCES: dict[str, type[Source]] = {"openmm": OpenMMSource, "files": FilesSource}
SOURCE_NAMES = ("openmm", "files", "arrays", "mdcath")


def source_for(cfg: dict) -> Source:
    """The :class:`Source` of a configuration's ``reference.source`` (default 'openmm').
    Raises KeyError for a source not known."""
    name = (cfg.get("reference") or {}).get("source") or "openmm"
    if name not in SOURCES:
        raise KeyError(f"reference.source {name!r} is not known; sources: {', '.join(SOURCES)}")
    return SOURCES[name]()
