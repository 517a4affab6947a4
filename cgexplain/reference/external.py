"""The user's own atomistic data as the reference: ``reference.source: files`` in system.yaml.

A topology and one or more trajectories with forces, in anything MDAnalysis reads (GROMACS
TPR + TRR or H5MD, AMBER prmtop + NetCDF, LAMMPS data + dump, CHARMM/NAMD PSF + DCD with a force
file, ...). Nothing is copied: the reference stage checks the files (they exist, MDAnalysis
reads them, the atom counts agree, the trajectory holds forces, the selected frames exist),
records their sizes and modification times, and writes ``reference/reference.json``; the map
stage reads the frames from the files, one at a time. For a protein it also writes
``reference/native.pdb``, the structure RMSD and native contacts are measured against: a PDB
the user names, or one frame of the trajectory.

Units: MDAnalysis converts what the format fixes (positions Å, forces kJ/mol/Å, converted to
kcal/mol/Å at the mapping). For a format whose units MDAnalysis cannot know (an H5MD without
unit attributes, a LAMMPS dump of ``units real``...), declare ``length_unit`` and
``force_unit``: the values are then read unconverted and converted by cgexplain
(:data:`cgexplain.units.LENGTH_UNITS`, :data:`cgexplain.units.FORCE_UNITS`).
A sanity check on the mean |force| catches units declared wrong (:func:`~cgexplain.mapping.maps.map_universe`).

The temperature the data were sampled at is required: priors (Boltzmann inversion) and the CG
simulation's defaults use it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

from cgexplain.fileio import atomic_path, read_json, write_json
from cgexplain.mapping.maps import MappingError, load_universe
from cgexplain.settings import ge, gt, one_of
from cgexplain.units import force_factor, length_factor

__all__ = [
    "FilesReference",
    "ExternalDataError",
    "files_reference",
    "open_reference",
    "resolve",
    "write_native_pdb",
    "fingerprint",
    "frames_per_file",
]


class ExternalDataError(ValueError):
    """The user's reference files cannot be used as they are: the message names the file, key or frame."""


@dataclasses.dataclass
class FilesReference:
    """``reference`` with ``source: files``: the user's topology and trajectories with forces.

    topology: a file MDAnalysis reads a topology from (TPR, prmtop, PSF, PDB, GRO, LAMMPS data, ...);
    trajectories: one or more trajectory files with forces, read in order as one trajectory;
    temperature: K, the temperature the data were sampled at (required);
    start, stop, step: which frames of the concatenated trajectory (Python slice);
    format, topology_format: MDAnalysis format names where the extension does not say;
    length_unit ('A' or 'nm') and force_unit ('kcal/mol/A', 'kJ/mol/A', 'kJ/mol/nm', 'kcal/mol/nm'):
    declare both for a file whose units MDAnalysis cannot know (then it does not convert);
    native (proteins): a PDB of the native structure (its CA atoms, one per bead) or 'frame N'
    (frame N of the selected frames, the mapped selection written as PDB); default 'frame 0'.
    Paths are relative to the system folder unless absolute.
    """

    topology: str
    trajectories: list[str]
    temperature: float = gt(0, unit="K")
    source: str = one_of("files")
    start: int = ge(0, 0)
    stop: int | None = None
    step: int = gt(0, 1)
    format: str | None = None
    topology_format: str | None = None
    length_unit: str | None = None
    force_unit: str | None = None
    native: str | None = None

    def __post_init__(self):
        if isinstance(self.trajectories, str):
            self.trajectories = [self.trajectories]
        if not self.trajectories:
            raise ValueError("trajectories: give at least one trajectory file with forces")
        if (self.length_unit is None) != (self.force_unit is None):
            raise ValueError("length_unit and force_unit go together (declare both, or neither to let MDAnalysis convert)")
        if self.length_unit is not None:
            length_factor(self.length_unit)  # ValueError naming the key for a unit not in the table
        if self.force_unit is not None:
            force_factor(self.force_unit)
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"stop {self.stop} must be > start {self.start}")
        if self.native is not None and self.native.startswith("frame"):
            try:
                int(self.native.split()[1])
            except (IndexError, ValueError):
                raise ValueError(f"native {self.native!r}: use a PDB path or 'frame N'") from None


def resolve(cfg: dict, rel: str) -> Path:
    """A path of system.yaml: absolute as given, else relative to the system folder."""
    p = Path(os.path.expanduser(str(rel)))
    return p if p.is_absolute() else Path(cfg["system_dir"]) / p


def open_reference(cfg: dict):
    """The MDAnalysis Universe of a ``source: files`` reference (topology + every trajectory).

    Raises :class:`cgexplain.mapping.maps.MappingError` naming the file for a missing file, a file
    MDAnalysis cannot read, differing atom counts or a trajectory without forces."""

    rc = cfg["reference"]
    kw: dict = {}
    if rc.get("format"):
        kw["format"] = rc["format"]
    if rc.get("topology_format"):
        kw["topology_format"] = rc["topology_format"]
    if rc.get("length_unit"):
        kw["convert_units"] = False
    u = load_universe(
        resolve(cfg, rc["topology"]), [resolve(cfg, t) for t in rc["trajectories"]], force_unit_declared=bool(rc.get("force_unit")), **kw
    )
    if rc.get("length_unit"):
        u.trajectory.add_transformations(_scale_lengths(length_factor(rc["length_unit"])))
    return u


def _scale_lengths(factor: float):
    """An MDAnalysis on-the-fly transformation: positions and box lengths of every frame read
    (declared units, read unconverted) times ``factor`` -> Å, so that every consumer (mapping, CG
    bonds, the native structure) sees Å."""

    def scale(ts):
        ts.positions = ts.positions * factor
        if ts.dimensions is not None:
            d = ts.dimensions.copy()
            d[:3] *= factor
            ts.dimensions = d
        return ts

    return scale


def fingerprint(paths: list) -> list[dict]:
    """Each file's resolved path, size (bytes) and modification time (ns), recorded in
    reference.json so that a changed file is noticed. Raises FileNotFoundError for a missing one."""
    return [{"path": str(Path(p).resolve()), "bytes": Path(p).stat().st_size, "mtime_ns": Path(p).stat().st_mtime_ns} for p in paths]


def frames_per_file(u, files: list | None = None) -> list[int]:
    """Frames of each trajectory file, each file's last frame read to check that it is all there
    (MDAnalysis counts the frames of a TRR or XTC from its size and offsets; a file cut inside a
    frame is counted whole and its iteration stops early without a word). Raises ExternalDataError
    naming the file and the frame that cannot be read."""
    readers = getattr(u.trajectory, "readers", None) or [u.trajectory]
    names = (
        [str(f) for f in files] if files is not None and len(files) == len(readers) else [str(getattr(r, "filename", "trajectory")) for r in readers]
    )
    counts = []
    for r, name in zip(readers, names):
        n = int(r.n_frames)
        if n > 0:
            try:
                r[n - 1]
                ok = r.ts.has_forces
            except (OSError, EOFError, ValueError, IndexError, RuntimeError) as e:
                raise ExternalDataError(
                    f"{name}: the file says {n} frames but frame {n - 1} cannot be read ({type(e).__name__}: {e}): the file is shorter "
                    "than its header or offsets say (cut off while copying?)"
                ) from None
            if not ok:
                raise ExternalDataError(f"{name}: frame {n - 1} has no forces")
        counts.append(n)
    r0 = readers[0]
    r0[0]  # back to the first frame
    return counts


def files_reference(cfg: dict, run, progress: bool = True, native: bool = False) -> dict:
    """The reference stage for ``source: files``: check the files and write ``reference.json``
    (and, with ``native`` (chains of residues: a protein), ``native.pdb``). Returns the summary.

    reference.json holds the files with their sizes and modification times, the atom count, the
    frames selected per file (``run_lengths``: frames of different files are never paired as
    lagged frames by TICA), the time step between frames (ps, as MDAnalysis reads it), the units and
    the temperature. A rerun checks that the files did not change since.
    Raises ExternalDataError naming the file for files that changed since the stage ran, no frame
    selected, or a native structure that cannot be read; MappingError (from the reader) for
    missing or unreadable files, differing atom counts, or no forces."""

    rc = cfg["reference"]
    files = [resolve(cfg, rc["topology"]), *[resolve(cfg, t) for t in rc["trajectories"]]]
    path = run.reference_json
    if path.exists():
        old = read_json(path)
        for f, fp in zip(files, old.get("files", [])):
            if not f.exists():
                raise MappingError(f"{f}: no such file (the reference stage read it before)")
            if f.stat().st_size != fp["bytes"] or f.stat().st_mtime_ns != fp["mtime_ns"]:
                raise ExternalDataError(
                    f"{f} changed since the reference stage read it (size or modification time); start a new run folder (--out) or delete {run.root}"
                )
        return old
    u = open_reference(cfg)
    per_file = frames_per_file(u, files[1:])
    total = int(sum(per_file))
    sel = np.arange(total)[int(rc["start"]) : rc["stop"] : int(rc["step"])]
    if len(sel) == 0:
        raise ExternalDataError(
            f"reference: start {rc['start']}, stop {rc['stop']}, step {rc['step']} select no frame of the {total} in {', '.join(map(str, files[1:]))}"
        )
    bounds = np.concatenate([[0], np.cumsum(per_file)])
    run_lengths = [int(((sel >= a) & (sel < b)).sum()) for a, b in zip(bounds[:-1], bounds[1:])]
    run_lengths = [n for n in run_lengths if n > 0]
    dt = None
    try:
        dt = float(u.trajectory.dt) * int(rc["step"])
    except Exception:  # a format without times
        pass
    out = {
        "source": "files",
        "settings": dict(rc),
        "files": fingerprint(files),
        "n_atoms": int(u.atoms.n_atoms),
        "n_frames": int(len(sel)),
        "n_frames_in_files": total,
        "frames_per_file": per_file,
        "run_lengths": run_lengths,
        "run_kinds": ["native"] * len(run_lengths),
        "frame_interval_ps": dt,
        "temperature_K": float(rc["temperature"]),
        "units": {"length": rc.get("length_unit") or "MDAnalysis (Å)", "force": rc.get("force_unit") or "MDAnalysis (kJ/mol/Å)"},
    }
    if native:
        out["native"] = str(write_native_pdb(cfg, u, sel, run.native_pdb))
    write_json(path, out)
    if progress:
        print(
            f"reference ({cfg['name']}): {len(sel)} of {total} frames of {', '.join(Path(t).name for t in rc['trajectories'])}; "
            f"{u.atoms.n_atoms} atoms; forces present"
        )
    return out


def write_native_pdb(cfg: dict, u, frames: np.ndarray, path: Path) -> Path:
    """Write the native structure of a protein reference to ``path`` (atomically): a copy of
    ``reference.native`` (a PDB) or, for ``'frame N'`` (default ``'frame 0'``), frame N of the
    selected ``frames`` with the atoms of ``mapping.select``. Returns ``path``.
    Raises ExternalDataError for a missing PDB, a frame outside the selected frames, or a PDB
    without CA atoms."""
    import warnings

    import MDAnalysis as mda

    native = cfg["reference"].get("native") or "frame 0"
    path.parent.mkdir(parents=True, exist_ok=True)
    if native.startswith("frame"):
        k = int(native.split()[1])
        if not -len(frames) <= k < len(frames):
            raise ExternalDataError(f"reference.native {native!r}: only {len(frames)} frames are selected")
        u.trajectory[int(frames[k])]
        atoms = u.select_atoms(cfg["mapping"].get("select") or "all")
        if u.dimensions is not None and np.all(u.dimensions[:3] > 0):
            try:  # a protein split across the periodic box is made whole (needs bonds in the topology)
                atoms.unwrap(compound="fragments")
            except Exception:  # no bonds: written as read; the CA-RMSD reference is then only as whole as the frame
                pass
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PDB columns a TPR topology has no values for
            atoms.write(str(tmp))
    else:
        src = resolve(cfg, native)
        if not src.exists():
            raise ExternalDataError(f"reference.native: {src}: no such file")
        with atomic_path(path) as tmp:
            shutil.copyfile(src, tmp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n_ca = len(mda.Universe(str(path)).select_atoms("name CA"))
    if n_ca == 0:
        raise ExternalDataError(f"reference.native {native!r}: the structure ({path}) has no CA atoms; a protein needs one per bead")
    return path
