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
from pathlib import Path
from typing import Any

import numpy as np

from cgexplain.aminoacids import AMINO_ACID_TYPES
from cgexplain.fileio import atomic_path, read_json, write_json
from cgexplain.mapping.maps import (
    Mapping,
    MappingError,
    check_constraint_groups,
    load_universe,
    map_universe,
    mapping_from_section,
    write_cg_dataset,
    write_cg_topology,
)
from cgexplain.reference.external import ExternalDataError, FilesReference, files_reference, fingerprint, open_reference, resolve
from cgexplain.reference.premapped import mdcath_info, read_arrays, read_mdcath
from cgexplain.reference.premapped_config import ArraysReference, MdcathReference
from cgexplain.settings import validate_section
from cgexplain.workflow.kinds.base import Kind
from cgexplain.workflow.run import RunFolder

__all__ = ["Source", "OpenMMSource", "FilesSource", "ArraysSource", "MdcathSource", "SOURCES", "source_for"]


class Source:
    """Base class: how the reference and map stages get their data."""

    name = "base"

    #: the schema of the ``reference`` section with this source
    reference_schema: Any = None

    def validate_reference(self, path: Path, ref: dict, kind: Kind) -> dict:
        """The validated ``reference`` section (:func:`cgexplain.settings.validate_section`).
        Raises :class:`cgexplain.settings.ConfigError` naming ``path`` and the key."""
        return validate_section(path, "reference", self.reference_schema, ref)

    def reference(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:
        """Produce or check the reference in ``run.reference``; returns its summary."""
        raise NotImplementedError

    def map(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:
        """Write ``cg/`` (mapped.npz, topology.pdb, dataset.db); returns the content of mapping.json,
        which the map stage writes last."""
        raise NotImplementedError


def _mapping_from_universe(
    cfg: dict, run: RunFolder, kind: Kind, u, progress: bool, start=0, stop=None, step=1, length_unit=None, force_unit=None
) -> dict:
    """Map a Universe with the ``mapping`` section and write ``cg/``: the shared body of the
    sources that read atomistic trajectories."""

    t0 = time.perf_counter()
    mc = cfg["mapping"]
    for name, mass in (mc.get("masses") or {}).items():  # masses by atom name, for particles without an element (mW)
        sel = u.atoms[u.atoms.names == name]
        if len(sel) == 0:
            raise MappingError(f"mapping.masses: no atom named {name!r} in the topology")
        sel.masses = float(mass)
    m = mapping_from_section(u, mc)
    kind.check_mapping(run, m.n_beads)
    traj = map_universe(u, m, start=start, stop=stop, step=step, progress=progress, length_unit=length_unit, force_unit=force_unit)
    if kind.residue_chains and np.abs(traj.cells).sum() > 0:
        traj = _whole_chains(traj, m.bonds)
    traj.save(run.mapped)
    write_cg_topology(run.cg_topology, m, traj.positions[0], traj.cells[0])
    write_cg_dataset(run.dataset, traj, progress=progress)

    res = {
        "n_beads": m.n_beads,
        "n_atoms_mapped": int(sum(len(g) for g in m.bead_atoms)),
        "n_atoms": int(m.n_atoms),
        "selection": m.selection,
        "n_frames": int(len(traj.positions)),
        "type_table": m.type_table,
        **({"bead_names": list(m.bead_names)} if kind.named_beads else {}),
        "bead_mass_amu": float(m.bead_masses[0]),
        "method": mc["method"],
        "chains": sorted(set(m.chains)),
        "cg_bonds": m.bonds.tolist(),
        "constraint_check": check_constraint_groups(u, m.bead_atoms, mc["constraints"], m.selection),
        "mean_abs_force_kcal_mol_A": float(np.abs(traj.forces).mean()),
        "wall_time_s": time.perf_counter() - t0,
    }
    return res  # the map stage writes mapping.json (its done file) after the diagnostics


def _whole_chains(traj, bonds: np.ndarray):
    """A protein from a periodic (solvated) simulation as the CG model sees it, without a box:
    each chain made whole along its CG bonds (bead k+1 at the minimum image of bead k), each
    chain placed at the minimum image of the first chain's centre, and the cells set to zero."""
    import dataclasses

    from MDAnalysis.lib.distances import minimize_vectors
    from MDAnalysis.lib.mdamath import triclinic_box

    x = traj.positions.astype(np.float64).copy()
    n = x.shape[1]
    nxt = {int(a): int(b) for a, b in np.asarray(bonds).reshape(-1, 2)}
    heads = [k for k in range(n) if k not in set(nxt.values())]
    for f in range(len(x)):
        box = triclinic_box(*traj.cells[f])
        for h in heads:
            k = h
            while k in nxt:
                j = nxt[k]
                x[f, j] = x[f, k] + minimize_vectors((x[f, j] - x[f, k])[None].astype(np.float32), box)[0]
                k = j
        if len(heads) > 1:  # each further chain at the minimum image of its centroid from the first chain's centroid
            members = []
            for h in heads:
                k, mem = h, [h]
                while k in nxt:
                    k = nxt[k]
                    mem.append(k)
                members.append(mem)
            ref = x[f, members[0]].mean(0)
            for mem in members[1:]:
                c = x[f, mem].mean(0)
                target = ref + minimize_vectors((c - ref)[None].astype(np.float32), box)[0]
                x[f, mem] += target - c
    return dataclasses.replace(traj, positions=x.astype(np.float32), cells=np.zeros_like(traj.cells))


class OpenMMSource(Source):
    """The kind's own OpenMM reference (the bundled systems)."""

    name = "openmm"

    def validate_reference(self, path: Path, ref: dict, kind: Kind) -> dict:
        ref = {k: v for k, v in ref.items() if k != "source"}
        return kind.validate_reference(path, ref)

    def reference(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:
        return kind.reference(cfg, run, progress)

    def map(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:

        return _mapping_from_universe(cfg, run, kind, load_universe(run.reference_topology, run.reference_trajectory), progress)


class FilesSource(Source):
    """The user's topology and trajectories with forces (:mod:`cgexplain.reference.external`)."""

    name = "files"
    reference_schema = FilesReference

    def reference(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:

        return files_reference(cfg, run, progress, native=kind.residue_chains)

    def map(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:

        rc = cfg["reference"]
        ref = read_json(run.reference_json)
        u = open_reference(cfg)
        return _mapping_from_universe(
            cfg,
            run,
            kind,
            u,
            progress,
            start=int(rc["start"]),
            stop=rc["stop"],
            step=int(rc["step"]),
            length_unit=None,  # open_reference scales declared lengths to Å as frames are read
            force_unit=rc.get("force_unit"),
        ) | {"reference_frames": ref["n_frames"]}


def _bead_pdb(path, names: list[str], positions: np.ndarray) -> None:
    """A CA-only PDB (one atom named CA per bead, residue = bead name): the native structure of
    data already mapped."""

    lines = [
        f"ATOM  {k + 1:5d}  CA  {str(n)[:3]:>3s} A{k + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C"
        for k, (n, (x, y, z)) in enumerate(zip(names, positions))
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines + ["END", ""]))


def _write_premapped(
    cfg: dict, run: RunFolder, traj, names: list[str], chains: list[str], bonds: np.ndarray, type_table: dict, info: dict, progress: bool
) -> dict:
    """Write data already mapped into ``cg/`` (identity mapping over the beads)."""
    import scipy.sparse as sp

    n = traj.positions.shape[1]
    eye = sp.csr_array(sp.identity(n, format="csr"))
    m = Mapping(
        position_map=eye,
        force_map=eye,
        bead_atoms=[np.array([k]) for k in range(n)],
        bead_names=list(names),
        bead_types=np.asarray(traj.bead_types, dtype=int),
        bead_masses=np.asarray(traj.bead_masses, dtype=float),
        type_table=dict(type_table),
        resnames=list(names),
        resids=np.arange(1, n + 1),
        chains=list(chains),
        bonds=np.asarray(bonds, dtype=np.int64).reshape(-1, 2),
        selection="premapped",
    )
    traj.save(run.mapped)
    write_cg_topology(run.cg_topology, m, traj.positions[0], traj.cells[0])
    write_cg_dataset(run.dataset, traj, progress=progress)
    res = {
        "n_beads": int(n),
        "n_frames": int(len(traj.positions)),
        "selection": "premapped",
        "type_table": m.type_table,
        "bead_names": list(m.bead_names),
        "bead_mass_amu": float(m.bead_masses[0]),
        "method": "premapped",
        "chains": sorted(set(m.chains)),
        "cg_bonds": m.bonds.tolist(),
        "notes": list(info.get("notes", [])),
        "mean_abs_force_kcal_mol_A": float(np.abs(traj.forces).mean()),
    }
    return res  # the map stage writes mapping.json (its done file) after the diagnostics


def _premapped_reference(
    cfg: dict,
    run: RunFolder,
    kind: Kind,
    files: list,
    traj,
    names: list[str],
    run_lengths: list[int],
    extra: dict,
    progress: bool,
    native_pdb_text: str | None = None,
) -> dict:
    """reference.json (and native.pdb for a protein: ``native_pdb_text`` if given, else the frame
    ``reference.native`` names) of data already mapped."""

    rc = cfg["reference"]
    out = {
        "source": rc["source"],
        "settings": dict(rc),
        "files": fingerprint(files),
        "n_beads": int(traj.positions.shape[1]),
        "n_frames": int(len(traj.positions)),
        "run_lengths": [int(r) for r in run_lengths if r > 0],
        "run_kinds": ["native"] * len([r for r in run_lengths if r > 0]),
        "temperature_K": float(rc["temperature"]),
        **extra,
    }
    if kind.residue_chains:
        native = rc.get("native") or "frame 0"
        if native_pdb_text is not None:
            with atomic_path(run.native_pdb) as tmp:
                tmp.write_text(native_pdb_text)
        elif native.startswith("frame"):
            k = int(native.split()[1])
            if not -len(traj.positions) <= k < len(traj.positions):
                raise ExternalDataError(f"reference.native {native!r}: only {len(traj.positions)} frames are read")
            _bead_pdb(run.native_pdb, names, traj.positions[k])
        out["native"] = str(run.native_pdb)
    write_json(run.reference_json, out)
    if progress:
        print(f"reference ({cfg['name']}): {out['n_frames']} frames of {out['n_beads']} beads already mapped ({rc['source']})")
    return out


class ArraysSource(Source):
    """Positions and forces already mapped, as arrays (:func:`cgexplain.reference.premapped.read_arrays`)."""

    name = "arrays"
    reference_schema = ArraysReference

    def _read(self, cfg: dict, kind: Kind):

        rc = cfg["reference"]
        files = [resolve(cfg, rc["positions"])] + ([resolve(cfg, rc["forces"])] if rc.get("forces") else [])
        traj, info = read_arrays(
            files[0],
            files[1] if len(files) > 1 else None,
            length_unit=rc["length_unit"],
            force_unit=rc["force_unit"],
            default_mass=float(rc["default_mass"]),
            start=int(rc["start"]),
            stop=rc["stop"],
            step=int(rc["step"]),
        )

        names, table = kind.premapped_names(traj.bead_types, info.get("bead_names"))
        return files, traj, info, names, table

    def reference(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:
        if run.reference_json.exists():
            return read_json(run.reference_json)
        files, traj, info, names, _ = self._read(cfg, kind)
        return _premapped_reference(cfg, run, kind, files, traj, names, [len(traj.positions)], {"notes": info.get("notes", [])}, progress)

    def map(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:
        files, traj, info, names, table = self._read(cfg, kind)
        n = traj.positions.shape[1]
        bonds = kind.premapped_bonds(n)
        return _write_premapped(cfg, run, traj, names, ["A"] * n, bonds, table, info, progress)


class MdcathSource(Source):
    """One mdCATH domain file, mapped to CA beads on reading (:func:`cgexplain.reference.premapped.read_mdcath`)."""

    name = "mdcath"
    reference_schema = MdcathReference

    def validate_reference(self, path: Path, ref: dict, kind: Kind) -> dict:
        out = super().validate_reference(path, ref, kind)
        if out["temperature"] is None:  # the one temperature read (several need it declared)
            out["temperature"] = float(out["temperatures"][0])
        return out

    def _read(self, cfg: dict, progress: bool):

        rc = cfg["reference"]
        path = resolve(cfg, rc["file"])
        traj, info = read_mdcath(
            path,
            temperatures=rc["temperatures"],
            replicas=rc["replicas"],
            domain=rc.get("domain"),
            start=int(rc["start"]),
            stop=rc["stop"],
            step=int(rc["step"]),
            chunk=int(rc["chunk"]),
            progress=progress,
        )
        return path, traj, info

    def reference(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:
        import h5py

        if run.reference_json.exists():
            return read_json(run.reference_json)
        rc = cfg["reference"]
        path, traj, info = self._read(cfg, progress)
        src = np.asarray(info["source"])
        keys = [(int(T), int(r)) for T in rc["temperatures"] for r in rc["replicas"]]
        run_lengths = [int(((src[:, 0] == T) & (src[:, 1] == r)).sum()) for T, r in keys]
        txt = None
        if kind.residue_chains and (rc.get("native") or "pdb") == "pdb":  # the file's own structure
            with h5py.File(path, "r") as h5:
                raw = h5[f"/{info['domain']}/pdbProteinAtoms"][()]
            txt = raw.decode() if isinstance(raw, bytes) else str(raw)
        meta = mdcath_info(path, rc.get("domain"))
        return _premapped_reference(
            cfg,
            run,
            kind,
            [path],
            traj,
            info["bead_names"],
            run_lengths,
            {"domain": info["domain"], "available": {"temperatures": meta["temperatures"], "replicas": meta["replicas"]}},
            progress,
            native_pdb_text=txt,
        )

    def map(self, cfg: dict, run: RunFolder, kind: Kind, progress: bool = True) -> dict:

        _, traj, info = self._read(cfg, progress)
        n = traj.positions.shape[1]
        return _write_premapped(
            cfg, run, traj, info["bead_names"], ["A"] * n, np.array([[k, k + 1] for k in range(n - 1)]), AMINO_ACID_TYPES, info, progress
        )


#: ``reference.source`` in system.yaml -> class
SOURCES: dict[str, type[Source]] = {"openmm": OpenMMSource, "files": FilesSource, "arrays": ArraysSource, "mdcath": MdcathSource}


def source_for(cfg: dict) -> Source:
    """The :class:`Source` of a configuration's ``reference.source`` (default 'openmm').
    Raises KeyError for a source not known."""
    name = (cfg.get("reference") or {}).get("source") or "openmm"
    if name not in SOURCES:
        raise KeyError(f"reference.source {name!r} is not known; sources: {', '.join(SOURCES)}")
    return SOURCES[name]()
