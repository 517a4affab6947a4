"""Pre-mapped data sets as training data: CG data someone else already mapped, read directly.

Two readers, both returning ``(traj, info)``: a :class:`~cgexplain.mapping.maps.MappedTrajectory`
in cgexplain's units (positions Å float32, forces kcal/mol/Å float32, cells Å, masses amu) and a
plain ``dict`` that says where every frame came from and which defaults were filled in (the
dataclass has no room for such notes, so they travel beside it).

1. :func:`read_arrays`: plain bead arrays, a ``.npz`` file or a pair of ``.npy`` files, in Å or nm
   and kcal/mol/Å, kJ/mol/nm or kJ/mol/Å. A declared force unit that is probably wrong (mean |F|
   outside 1e-3..1e3 kcal/mol/Å after conversion) is an error.
2. :func:`read_mdcath`: one mdCATH HDF5 file (Mirarchi, Giorgino & De Fabritiis, "mdCATH: A
   Large-Scale MD Dataset for Data-Driven Computational Biophysics", Sci. Data 11, 1299 (2024);
   files on Hugging Face, ``compsciencelab/mdCATH``), mapped to one CA bead per residue, read in
   chunks of frames. :func:`mdcath_info` lists what a file holds.

The mdCATH layout (checked against the dataset's own repository, github.com/compsciencelab/mdCATH,
2024-10: ``generator/builder/generator.py`` and ``generator/builder/molAnalyzer.py`` write the
files, ``user/1_inspect_content.ipynb`` prints a downloaded file, ``user-utils/convert_mdCATH.py``
reads them; and against torchmd-net's ``torchmdnet/datasets/mdcath.py`` loader)::

    mdcath_dataset_<domain>.h5            attrs: layout = "mdcath-only-protein-v1.0"
      <domain>/                           attrs: numProteinAtoms, numResidues, numChains
        pdbProteinAtoms                   bytes, PDB text of the N protein atoms (ATOM records)
        pdb, psf                          bytes, the solvated system's input files (not read here)
        z (N,) int, element (N,) str, resid (N,) int, resname (N,) str, chain (N,) str
        <T>/                              T in 320, 348, 379, 413, 450 (K)
          <replica>/                      "0".."4"; attrs: numFrames
            coords (F, N, 3) float        Å           (attr unit = "Angstrom")
            forces (F, N, 3) float        kcal/mol/Å  (attr unit = "kcal/mol/Angstrom")
            box (3, 3)                    nm, the first frame's box of the solvated system
            dssp (F, R), gyrationRadius (F,) nm, rmsd (F,) nm, rmsf (R,) nm

The temperature groups are named ``"320"`` by the generator, in the inspected download and in
torchmd-net's loader, but ``"sims320K"`` by the repository's ``convert_mdCATH.py`` and
``load_mdCATH.tcl``; both spellings are accepted. Only protein atoms are stored: the solvent
is already integrated out, so the forces are the total forces on the protein atoms.

The CA map: bead position = the residue's CA atom; bead force = the sum of the forces on every
atom of the residue (terminal caps, :data:`~cgexplain.aminoacids.CAP_RESIDUES`, join their
neighbour residue). With ``C`` the one-atom position map and ``D`` the summing force map,
``D Cᵀ = 1`` (Noid et al., J. Chem. Phys. 128, 244114 (2008), eq. 14), and constraint forces
within a residue (its X–H bonds) cancel; see :mod:`cgexplain.mapping.maps`. Bead mass = the
summed standard atomic weights (``ase.data.atomic_masses``, IUPAC 2016) of the residue's atoms
from ``z``; hydrogen mass repartitioning, if the simulation used it, moves mass between atoms of
one residue and leaves this sum unchanged. Cells are zeros (not periodic): the CG protein has no
solvent box; the solvated system's box is reported in ``info["box"]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cgexplain import units
from cgexplain.aminoacids import AMINO_ACID_TYPES, CAP_RESIDUES
from cgexplain.mapping.maps import MappedTrajectory, MappingError, amino_acid_name

__all__ = [
    "PremappedError",
    "DEFAULT_BEAD_MASS",
    "FORCE_SCALE_RANGE",
    "read_arrays",
    "read_mdcath",
    "mdcath_info",
]

#: mass (amu) given to every bead when a plain-array data set carries no masses
DEFAULT_BEAD_MASS = 100.0

#: plausible mean |F| of CG beads in kcal/mol/Å; outside it the declared force unit is probably wrong
FORCE_SCALE_RANGE = (1e-3, 1e3)

_MDCATH_UNITS = {"coords": ("angstrom", "a", "å"), "forces": ("kcal/mol/angstrom", "kcal/mol/a", "kcal/mol/å")}


class PremappedError(ValueError):
    """Bad pre-mapped input: the message names the file, the key (or the path inside an HDF5
    file) and, where it applies, the frame and bead or atom."""


# ---------------------------------------------------------------------------------------------
# shared helpers


def _frame_range(n_frames: int, start: int, stop: int | None, step: int, where: str) -> range:
    """The frames ``start:stop:step`` of ``n_frames`` (Python slice rules) as a range with step > 0."""
    if int(step) < 1:
        raise PremappedError(f"{where}: step={step}; it must be >= 1")
    return range(n_frames)[slice(start, stop, int(step))]


def _first_bad(arr: np.ndarray) -> tuple[int, int] | None:
    """(frame, row) of the first non-finite entry of a (F, n, 3) array, or None."""
    bad = ~np.isfinite(arr).all(axis=-1)
    if not bad.any():
        return None
    f, i = np.argwhere(bad)[0]
    return int(f), int(i)


def _unit_factors(length_unit: str, force_unit: str) -> tuple[float, float]:
    """Factors to Å and kcal/mol/Å of the declared units (:data:`cgexplain.units.LENGTH_UNITS`,
    :data:`cgexplain.units.FORCE_UNITS`); PremappedError for an unknown unit."""
    try:
        return units.length_factor(length_unit), units.force_factor(force_unit)
    except ValueError as e:
        raise PremappedError(str(e)) from None


def _as_str(x: Any) -> str:
    if isinstance(x, bytes | np.bytes_):
        return x.decode("utf-8", errors="replace")
    return str(x)


# ---------------------------------------------------------------------------------------------
# plain arrays


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.exists():
        raise PremappedError(f"{path}: no such file ({what})")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise PremappedError(f"{path}: cannot read {what} as a .npy array: {exc}") from exc


def _npz_key(npz, path: Path, key: str) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise PremappedError(f"{path}: key {key!r} cannot be read without pickle ({exc}); store plain numeric or string arrays") from exc


def _optional_array(value: Any, what: str) -> tuple[np.ndarray | None, str | None]:
    """An optional per-data-set array given as an array, a list or the path of a .npy file."""
    if value is None:
        return None, None
    if isinstance(value, str | Path):
        p = Path(value)
        return np.asarray(_load_npy(p, what)), f"file {p}"
    return np.asarray(value), f"argument {what}"


def _check_traj_array(arr: np.ndarray, name: str, where: str) -> None:
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise PremappedError(f"{where}: {name} has shape {arr.shape} (rank {arr.ndim}); expected (n_frames, n_beads, 3)")
    if not np.issubdtype(arr.dtype, np.number):
        raise PremappedError(f"{where}: {name} has dtype {arr.dtype}; expected numbers")


def _cells_array(cells: np.ndarray, n_frames: int, frames: range, factor: float, where: str) -> np.ndarray:
    c = np.asarray(cells, dtype=float)
    if c.shape == (3,):
        out = np.repeat(np.diag(c)[None], len(frames), axis=0)
    elif c.shape == (3, 3):
        out = np.repeat(c[None], len(frames), axis=0)
    elif c.ndim == 3 and c.shape[1:] == (3, 3):
        if c.shape[0] != n_frames:
            raise PremappedError(f"{where}: cells has {c.shape[0]} frames, positions {n_frames}")
        out = c[frames.start : frames.stop : frames.step]
    else:
        raise PremappedError(f"{where}: cells has shape {c.shape}; expected (n_frames, 3, 3), (3, 3) or (3,) box lengths")
    if not np.isfinite(out).all():
        f = int(np.flatnonzero(~np.isfinite(out).reshape(len(out), -1).all(axis=1))[0])
        raise PremappedError(f"{where}: cells has NaN/inf at frame {frames[f]}")
    return (out * factor).astype(np.float32)


def _bead_types(types: np.ndarray, n: int, where: str) -> np.ndarray:
    t = np.asarray(types)
    if t.shape != (n,):
        raise PremappedError(f"{where}: bead_types has shape {t.shape}; expected ({n},), one per bead")
    if t.dtype.kind in "USO":
        try:
            return np.array([AMINO_ACID_TYPES[amino_acid_name(_as_str(x))] for x in t], dtype=int)
        except MappingError as exc:
            raise PremappedError(f"{where}: bead_types: {exc}") from exc
    if t.dtype.kind not in "iu" and not (t.dtype.kind == "f" and np.all(np.isfinite(t)) and np.all(t == np.round(t))):
        raise PremappedError(f"{where}: bead_types has dtype {t.dtype}; expected integers >= 1 or amino-acid names")
    ti = t.astype(int)
    if ti.size and ti.min() < 1:
        b = int(np.argmin(ti))
        raise PremappedError(f"{where}: bead_types[{b}] = {ti[b]}; bead types are integers >= 1 (0 is not a type)")
    return ti


def _bead_masses(masses: np.ndarray, n: int, where: str) -> np.ndarray:
    m = np.asarray(masses)
    if m.shape != (n,):
        raise PremappedError(f"{where}: bead_masses has shape {m.shape}; expected ({n},), one per bead")
    m = m.astype(float)
    bad = ~(np.isfinite(m) & (m > 0))
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise PremappedError(f"{where}: bead_masses[{b}] = {m[b]}; masses (amu) must be finite and > 0")
    return m


def read_arrays(
    positions: str | Path,
    forces: str | Path | None = None,
    *,
    length_unit: str = "A",
    force_unit: str = "kcal/mol/A",
    cells: str | Path | np.ndarray | Sequence | None = None,
    bead_types: str | Path | np.ndarray | Sequence | None = None,
    bead_masses: str | Path | np.ndarray | Sequence | None = None,
    bead_names: Sequence[str] | None = None,
    default_mass: float = DEFAULT_BEAD_MASS,
    start: int = 0,
    stop: int | None = None,
    step: int = 1,
    force_scale_range: tuple[float, float] | None = FORCE_SCALE_RANGE,
) -> tuple[MappedTrajectory, dict[str, Any]]:
    """Read a pre-mapped CG data set from plain arrays.

    Two layouts:

    - ``positions`` is a ``.npz`` file with keys ``positions`` (F, n, 3) and ``forces`` (F, n, 3),
      and optionally ``cells`` ((F, 3, 3), (3, 3) or (3,) box lengths; rows are box vectors),
      ``bead_types`` (n,), ``bead_masses`` (n,) amu and ``bead_names`` (n,) strings (e.g. the
      atoms a bead sits on: ``C N CA C N``); ``forces`` must then be None. A keyword argument
      given here replaces the key of the same name.
    - ``positions`` and ``forces`` are two ``.npy`` files, (F, n, 3) each; they are memory-mapped
      and only the selected frames are read. (A ``.npz`` member is read whole when first used.)

    ``cells``, ``bead_types`` and ``bead_masses`` may be arrays, lists or ``.npy`` paths.
    Bead types are integers >= 1, or amino-acid names (``"ALA"``, ``"HIE"``) turned into
    :data:`~cgexplain.aminoacids.AMINO_ACID_TYPES`. Defaults: no cells -> zeros (not
    periodic); no types -> every bead type 1; no masses -> every bead ``default_mass`` amu
    (100 amu, about one residue; it sets the CG dynamics' time scale, not the fitted forces).
    Bead names, when given, name the beads in every output; without bead types, beads of one name
    share a type (numbered in order of appearance); with both, each name must have one type and
    each type one name. Each default used is written to ``info["notes"]``.

    Args:
        positions, forces: file paths (see above); frames ``start:stop:step`` are kept (Python
            slice rules, ``step`` >= 1).
        length_unit: ``"A"`` or ``"nm"``, for positions and cells.
        force_unit: ``"kcal/mol/A"``, ``"kJ/mol/nm"`` or ``"kJ/mol/A"``.
        default_mass: amu, see above.
        force_scale_range: (low, high) kcal/mol/Å; the mean |F| of the selected frames after
            conversion must lie inside, or the declared unit is probably wrong. None: no check.

    Returns:
        ``(traj, info)``: ``traj`` a MappedTrajectory (positions (F', n, 3) Å float32, forces
        (F', n, 3) kcal/mol/Å float32, cells (F', 3, 3) Å float32, bead_types (n,) int,
        bead_masses (n,) amu float); ``info`` a dict with ``files``, ``n_frames_file`` (F),
        ``frames`` ((F',) int, the file's frame index of every output frame), ``length_unit``,
        ``force_unit`` (as declared), ``mean_abs_force`` (kcal/mol/Å), ``sources`` (where cells,
        types and masses came from), ``bead_names`` (list of n str, or None when not given) and
        ``notes`` (list of str, the defaults used).

    Raises:
        PremappedError: a missing file; a file that is neither ``.npz`` nor ``.npy``; a missing
            key (listing the keys present); positions or forces not of rank 3 with last axis 3;
            positions and forces of different shapes; cells, types or masses of the wrong shape
            or with bad values; NaN/inf (naming the first bad frame and bead); an unknown unit;
            a mean |F| outside ``force_scale_range`` (naming the declared unit and the mean);
            no frames selected.
    """
    pos_path = Path(positions)
    length_factor, force_factor = _unit_factors(length_unit, force_unit)
    if not pos_path.exists():
        raise PremappedError(f"{pos_path}: no such file (positions)")
    suffix = pos_path.suffix.lower()
    extra: dict[str, tuple[np.ndarray | None, str | None]] = {}
    files: dict[str, str] = {}
    if suffix == ".npz":
        if forces is not None:
            raise PremappedError(f"{pos_path}: a .npz file holds its own 'forces' key; pass forces=None (got {forces!r})")
        try:
            npz = np.load(pos_path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise PremappedError(f"{pos_path}: cannot read as .npz: {exc}") from exc
        with npz:
            present = list(npz.files)
            for key in ("positions", "forces"):
                if key not in present:
                    raise PremappedError(f"{pos_path}: no key {key!r}; the keys present are {present}")
            pos_arr = _npz_key(npz, pos_path, "positions")
            frc_arr = _npz_key(npz, pos_path, "forces")
            for key in ("cells", "bead_types", "bead_masses", "bead_names"):
                extra[key] = (_npz_key(npz, pos_path, key), f"key {key!r} of {pos_path}") if key in present else (None, None)
        pos_where, frc_where = f"{pos_path} key 'positions'", f"{pos_path} key 'forces'"
        files = {"positions": str(pos_path), "forces": str(pos_path)}
    elif suffix == ".npy":
        if forces is None:
            raise PremappedError(f"{pos_path}: positions in a .npy file need a forces .npy file (forces=...)")
        frc_path = Path(forces)
        if frc_path.suffix.lower() != ".npy":
            raise PremappedError(f"{frc_path}: forces must be a .npy file to pair with {pos_path}")
        pos_arr = _load_npy(pos_path, "positions")
        frc_arr = _load_npy(frc_path, "forces")
        pos_where, frc_where = str(pos_path), str(frc_path)
        files = {"positions": str(pos_path), "forces": str(frc_path)}
        extra = {k: (None, None) for k in ("cells", "bead_types", "bead_masses", "bead_names")}
    else:
        raise PremappedError(f"{pos_path}: unknown file type {pos_path.suffix!r}; use a .npz file or a .npy positions/forces pair")
    for key, value in (("cells", cells), ("bead_types", bead_types), ("bead_masses", bead_masses)):
        arr, src = _optional_array(value, key)
        if arr is not None:
            extra[key] = (arr, src)
    if bead_names is not None:
        extra["bead_names"] = (np.asarray(list(bead_names)), "the bead_names argument")

    _check_traj_array(pos_arr, "positions", pos_where)
    _check_traj_array(frc_arr, "forces", frc_where)
    if pos_arr.shape != frc_arr.shape:
        raise PremappedError(f"{pos_where}: positions have shape {pos_arr.shape} but {frc_where}: forces have shape {frc_arr.shape}")
    n_frames, n_beads = pos_arr.shape[:2]
    frames = _frame_range(n_frames, start, stop, step, pos_where)
    if len(frames) == 0:
        raise PremappedError(f"{pos_where}: no frames selected from {n_frames} (start={start}, stop={stop}, step={step})")
    sl = slice(frames.start, frames.stop, frames.step)
    x = np.array(pos_arr[sl], dtype=np.float64)  # a copy: the memory map is read-only
    f = np.array(frc_arr[sl], dtype=np.float64)
    for arr, where in ((x, pos_where), (f, frc_where)):
        bad = _first_bad(arr)
        if bad is not None:
            raise PremappedError(f"{where}: NaN/inf at frame {frames[bad[0]]}, bead {bad[1]} (first bad entry)")
    x *= length_factor
    f = f * force_factor
    mean_f = float(np.linalg.norm(f, axis=-1).mean())
    if force_scale_range is not None:
        lo, hi = force_scale_range
        if not lo <= mean_f <= hi:
            raise PremappedError(
                f"{frc_where}: mean |F| = {mean_f:.4g} kcal/mol/Å after converting from the declared force_unit {force_unit!r}, "
                f"outside the plausible range {lo:g}..{hi:g} kcal/mol/Å; the declared unit is probably wrong "
                f"(allowed: {', '.join(units.FORCE_UNITS)}; pass force_scale_range=None to skip this check)"
            )

    notes: list[str] = []
    sources: dict[str, str] = {}
    c_arr, c_src = extra["cells"]
    if c_arr is None:
        cell_out = np.zeros((len(frames), 3, 3), dtype=np.float32)
        sources["cells"] = "default"
        notes.append("no cells given: cells are zeros (not periodic)")
    else:
        cell_out = _cells_array(c_arr, n_frames, frames, length_factor, f"{c_src}")
        sources["cells"] = str(c_src)
    names_out = None
    nm_arr, nm_src = extra["bead_names"]
    if nm_arr is not None:
        names_out = _bead_names(nm_arr, n_beads, str(nm_src))
    t_arr, t_src = extra["bead_types"]
    if t_arr is None and names_out is not None:
        table: dict[str, int] = {}
        types_out = np.array([table.setdefault(nm, len(table) + 1) for nm in names_out], dtype=int)
        sources["bead_types"] = f"from the bead names ({nm_src})"
        notes.append(f"no bead_types given: one type per bead name {table}")
    elif t_arr is None:
        types_out = np.ones(n_beads, dtype=int)
        sources["bead_types"] = "default"
        notes.append("no bead_types given: every bead has type 1")
    else:
        types_out = _bead_types(t_arr, n_beads, str(t_src))
        sources["bead_types"] = str(t_src)
    if names_out is not None and t_arr is not None:
        _check_names_types(names_out, types_out, f"{nm_src} and {t_src}")
    m_arr, m_src = extra["bead_masses"]
    if m_arr is None:
        if not (np.isfinite(default_mass) and default_mass > 0):
            raise PremappedError(f"default_mass = {default_mass}; it must be finite and > 0 amu")
        masses_out = np.full(n_beads, float(default_mass))
        sources["bead_masses"] = "default"
        notes.append(f"no bead_masses given: every bead has the default mass {float(default_mass):g} amu")
    else:
        masses_out = _bead_masses(m_arr, n_beads, str(m_src))
        sources["bead_masses"] = str(m_src)

    traj = MappedTrajectory(
        positions=x.astype(np.float32),
        forces=f.astype(np.float32),
        cells=cell_out,
        bead_types=types_out,
        bead_masses=masses_out,
    )
    info = {
        "files": files,
        "n_frames_file": int(n_frames),
        "frames": np.array(frames, dtype=np.int64),
        "length_unit": length_unit,
        "force_unit": force_unit,
        "mean_abs_force": mean_f,
        "sources": sources,
        "bead_names": names_out,
        "notes": notes,
    }
    return traj, info


def _bead_names(arr: np.ndarray, n_beads: int, where: str) -> list[str]:
    """Bead names (n,) as str; PremappedError for a wrong shape, a non-string array or an empty name."""
    a = np.asarray(arr)
    if a.shape != (n_beads,) or a.dtype.kind not in "US":
        raise PremappedError(f"{where}: bead_names must be {n_beads} strings (one per bead), got shape {a.shape} of dtype {a.dtype}")
    names = [x.decode() if isinstance(x, bytes) else str(x) for x in a.tolist()]
    empty = [k for k, x in enumerate(names) if not x.strip()]
    if empty:
        raise PremappedError(f"{where}: bead {empty[0]} has an empty name")
    return [x.strip() for x in names]


def _check_names_types(names: list[str], types: np.ndarray, where: str) -> None:
    """Each bead name has one type and each type one name; PremappedError naming the first clash."""
    by_name: dict[str, int] = {}
    by_type: dict[int, str] = {}
    for k, (nm, t) in enumerate(zip(names, types.tolist())):
        if by_name.setdefault(nm, t) != t:
            raise PremappedError(f"{where}: bead {k} named {nm!r} has type {t}, an earlier bead of that name type {by_name[nm]}")
        if by_type.setdefault(t, nm) != nm:
            raise PremappedError(f"{where}: bead {k} of type {t} is named {nm!r}, an earlier bead of that type {by_type[t]!r}")


# ---------------------------------------------------------------------------------------------
# mdCATH


def _open_h5(path: str | Path):
    import h5py

    p = Path(path)
    if not p.exists():
        raise PremappedError(f"{p}: no such file")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise PremappedError(f"{p}: cannot open as HDF5: {exc}") from exc


def _listing(group) -> str:
    return ", ".join(sorted(group.keys())) or "(nothing)"


def _get(h5, inner: str, path: Path, kind: str = "dataset"):
    """``h5[inner]``, or a PremappedError naming ``inner`` and listing its parent's members."""
    import h5py

    parent, _, name = inner.rstrip("/").rpartition("/")
    parent = parent or "/"
    if parent not in h5:
        raise PremappedError(f"{path}: no group {parent!r} in the file")
    grp = h5[parent]
    if name not in grp:
        raise PremappedError(f"{path}: no {kind} {inner!r}; {parent!r} holds: {_listing(grp)}")
    obj = grp[name]
    want = h5py.Group if kind == "group" else h5py.Dataset
    if not isinstance(obj, want):
        raise PremappedError(f"{path}: {inner!r} is not a {kind}")
    return obj


def _domain(h5, path: Path, domain: str | None) -> str:
    import h5py

    groups = [k for k in h5.keys() if isinstance(h5[k], h5py.Group)]
    if domain is not None:
        if domain not in groups:
            raise PremappedError(f"{path}: no domain group {domain!r}; the file holds: {', '.join(groups) or '(nothing)'}")
        return domain
    if len(groups) == 1:
        return groups[0]
    m = re.match(r"mdcath_dataset_(.+)\.h5$", path.name)
    if m and m.group(1) in groups:
        return m.group(1)
    raise PremappedError(f"{path}: {len(groups)} top-level groups ({', '.join(groups) or 'none'}); pass domain=... to choose one")


def _temperature_groups(dom) -> dict[int, str]:
    """Temperature (K) -> group name, for groups named ``"320"`` or ``"sims320K"``."""
    import h5py

    out: dict[int, str] = {}
    for k in dom.keys():
        m = re.fullmatch(r"(?:sims)?(\d+)(?:K)?", k)
        if m and isinstance(dom[k], h5py.Group):
            out[int(m.group(1))] = k
    return dict(sorted(out.items()))


def _replicas(tgroup) -> dict[int, str]:
    import h5py

    return dict(sorted((int(k), k) for k in tgroup.keys() if k.isdigit() and isinstance(tgroup[k], h5py.Group)))


def _pdb_atom_names(text: str) -> list[str]:
    return [line[12:16].strip() for line in text.splitlines() if line.startswith(("ATOM", "HETATM"))]


def _residue_beads(path: Path, domain: str, names: list[str], resnames: list[str], resids: np.ndarray, chains: list[str]):
    """Group atoms into residues (runs of equal chain, resid, resname), join caps to their
    neighbours, and find each bead's CA. Returns (owner (n_atoms,), ca (n_beads,), bead names, residue labels)."""
    n = len(names)
    key = list(zip(chains, resids.tolist(), resnames))
    starts = [0] + [i for i in range(1, n) if key[i] != key[i - 1]]
    bounds = list(zip(starts, starts[1:] + [n]))
    res_names = [resnames[a] for a, _ in bounds]
    groups = [list(range(a, b)) for a, b in bounds]
    for k in [k for k, r in enumerate(res_names) if r.upper() in CAP_RESIDUES]:
        t = k + CAP_RESIDUES[res_names[k].upper()]
        if not 0 <= t < len(groups) or res_names[t].upper() in CAP_RESIDUES:
            raise PremappedError(f"{path}: /{domain}: cap residue {res_names[k]} {key[bounds[k][0]][1]} has no residue to join")
        groups[t] = sorted(groups[t] + groups[k])
    keep = [k for k, r in enumerate(res_names) if r.upper() not in CAP_RESIDUES]
    owner = np.empty(n, dtype=int)
    ca = []
    bead_names, labels = [], []
    for b, k in enumerate(keep):
        g = groups[k]
        owner[g] = b
        chain, resid, resname = key[bounds[k][0]]
        label = f"{resname} {resid}" + (f" chain {chain}" if chain.strip() else "")
        hits = [i for i in g if names[i] == "CA"]
        if len(hits) != 1:
            raise PremappedError(f"{path}: /{domain}/pdbProteinAtoms: residue {label} has {len(hits)} atoms named CA (need exactly one)")
        ca.append(hits[0])
        try:
            bead_names.append(amino_acid_name(resname))
        except MappingError as exc:
            raise PremappedError(f"{path}: /{domain}/resname: residue {label}: {exc}") from exc
        labels.append(label)
    return owner, np.asarray(ca, dtype=int), bead_names, labels


def _check_unit(ds, path: Path, inner: str, what: str) -> None:
    unit = ds.attrs.get("unit")
    if unit is None:
        return
    if _as_str(unit).strip().lower() not in _MDCATH_UNITS[what]:
        raise PremappedError(f"{path}: {inner} has unit {_as_str(unit)!r}; mdCATH {what} are in {_MDCATH_UNITS[what][0]}")


def mdcath_info(path: str | Path, domain: str | None = None) -> dict[str, Any]:
    """What an mdCATH HDF5 file holds (layout: this module's docstring), without reading frames.

    Returns:
        dict with ``path``; ``domain`` (str); ``layout`` (the file's ``layout`` attribute, or
        None); ``n_atoms`` (length of ``z``); ``n_residues`` (runs of equal chain, resid,
        resname; caps included); ``temperatures`` (sorted list of int, K); ``temperature_groups``
        (K -> group name, ``"320"`` or ``"sims320K"``); ``replicas`` (K -> sorted list of int);
        ``n_frames`` (K -> {replica: frames in ``coords``}).

    Raises:
        PremappedError: a missing or unreadable file; no or several domain groups (listing
            them); a missing ``z`` or ``coords`` dataset (naming its path inside the file and
            listing what is there).
    """
    p = Path(path)
    with _open_h5(p) as h5:
        dom_name = _domain(h5, p, domain)
        dom = h5[dom_name]
        z = _get(h5, f"/{dom_name}/z", p)
        n_atoms = int(z.shape[0])
        n_res = None
        if all(k in dom for k in ("resid", "chain", "resname")):
            resids = np.asarray(dom["resid"][()])
            chains = [_as_str(c) for c in dom["chain"][()]]
            rn = [_as_str(r) for r in dom["resname"][()]]
            key = list(zip(chains, resids.tolist(), rn))
            n_res = 1 + sum(key[i] != key[i - 1] for i in range(1, len(key))) if key else 0
        elif "numResidues" in dom.attrs:
            n_res = int(dom.attrs["numResidues"])
        tgroups = _temperature_groups(dom)
        replicas: dict[int, list[int]] = {}
        n_frames: dict[int, dict[int, int]] = {}
        for T, gname in tgroups.items():
            reps = _replicas(dom[gname])
            replicas[T] = list(reps)
            n_frames[T] = {r: int(_get(h5, f"/{dom_name}/{gname}/{rname}/coords", p).shape[0]) for r, rname in reps.items()}
        layout = h5.attrs.get("layout")
        return {
            "path": str(p),
            "domain": dom_name,
            "layout": None if layout is None else _as_str(layout),
            "n_atoms": n_atoms,
            "n_residues": n_res,
            "temperatures": list(tgroups),
            "temperature_groups": tgroups,
            "replicas": replicas,
            "n_frames": n_frames,
        }


def read_mdcath(
    path: str | Path,
    temperatures: Iterable[int | str] = (320,),
    replicas: Iterable[int | str] = (0,),
    *,
    domain: str | None = None,
    start: int = 0,
    stop: int | None = None,
    step: int = 1,
    chunk: int = 256,
    progress: bool = False,
) -> tuple[MappedTrajectory, dict[str, Any]]:
    """Read one mdCATH domain file as a CA-bead trajectory (layout and map: this module's docstring).

    Frames ``start:stop:step`` (Python slice rules, ``step`` >= 1) are taken from every chosen
    (temperature, replica) trajectory, and the trajectories are concatenated in the order given:
    every replica of the first temperature, in the order of ``replicas``, then the second
    temperature, and so on. Mixing temperatures in one training set is the caller's choice:
    ``info["source"]`` says where each frame came from. Frames are read ``chunk`` at a time
    (h5py slicing), never a whole dataset at once; the output holds only CA beads.

    Args:
        path: an ``mdcath_dataset_<domain>.h5`` file.
        temperatures: K, e.g. ``(320, 348)``; groups named ``"320"`` or ``"sims320K"`` match.
        replicas: replica numbers, e.g. ``(0, 1, 2)``.
        domain: the top-level group; default the only one, or the id in the file name.
        chunk: frames read at once (after ``step``); the peak memory is about
            2 x chunk x n_atoms x 3 x 8 bytes.
        progress: show a tqdm bar over chunks.

    Returns:
        ``(traj, info)``: ``traj`` a MappedTrajectory: positions (F', n_res, 3) Å float32 (the CA
        atoms), forces (F', n_res, 3) kcal/mol/Å float32 (summed over each residue's atoms),
        cells (F', 3, 3) zeros (not periodic), bead_types (n_res,) int
        (:data:`~cgexplain.aminoacids.AMINO_ACID_TYPES`), bead_masses (n_res,) amu (residue
        masses). ``info``: ``path``, ``domain``, ``source`` ((F', 3) int64: temperature K,
        replica, frame index within that replica), ``residues`` (labels ``"MET 1"``), ``bead_names``
        (standard three-letter names), ``ca_atoms`` ((n_res,) atom indices), ``bead_atoms``
        ((n_atoms,) bead index of every atom), ``box`` ({(T, replica): (3, 3) Å}, the solvated
        system's box), ``n_frames`` ({(T, replica): frames in the file}), ``notes``.

    Raises:
        PremappedError: a missing or unreadable file; a missing group or dataset (naming its
            path inside the file and listing what is there); a temperature or replica not in the
            file (listing those present); atom counts that differ between ``z``, the per-atom
            datasets, ``pdbProteinAtoms`` and ``coords``/``forces``; coords and forces of
            different shapes; a coords/forces ``unit`` attribute other than mdCATH's; a residue
            without exactly one CA or with a non-standard name; NaN/inf coordinates or forces
            (naming temperature, replica, frame and atom); no frames selected; ``chunk`` < 1.
    """
    from ase.data import atomic_masses
    from tqdm.auto import tqdm

    p = Path(path)
    if int(chunk) < 1:
        raise PremappedError(f"{p}: chunk={chunk}; it must be >= 1")
    try:
        temps = [int(str(t).removeprefix("sims").removesuffix("K")) for t in temperatures]
        reps = [int(r) for r in replicas]
    except ValueError as exc:
        raise PremappedError(f"{p}: temperatures (K) and replicas must be integers: {exc}") from exc
    if not temps or not reps:
        raise PremappedError(f"{p}: no temperatures or no replicas chosen (temperatures={temps}, replicas={reps})")
    with _open_h5(p) as h5:
        dom_name = _domain(h5, p, domain)
        dom = h5[dom_name]
        z = np.asarray(_get(h5, f"/{dom_name}/z", p)[()]).astype(int)
        n_atoms = int(z.shape[0])
        pdb_text = _as_str(_get(h5, f"/{dom_name}/pdbProteinAtoms", p)[()])
        names = _pdb_atom_names(pdb_text)
        resnames = [_as_str(x) for x in _get(h5, f"/{dom_name}/resname", p)[()]]
        resids = np.asarray(_get(h5, f"/{dom_name}/resid", p)[()]).astype(int)
        chains = [_as_str(x) for x in _get(h5, f"/{dom_name}/chain", p)[()]]
        for what, n in (("pdbProteinAtoms (ATOM records)", len(names)), ("resname", len(resnames)), ("resid", len(resids)), ("chain", len(chains))):
            if n != n_atoms:
                raise PremappedError(f"{p}: /{dom_name}/{what} has {n} atoms but /{dom_name}/z has {n_atoms}")
        if z.size and (z.min() < 1 or z.max() >= len(atomic_masses)):
            raise PremappedError(f"{p}: /{dom_name}/z holds {z.min()}..{z.max()}, not all atomic numbers")
        owner, ca, bead_names, labels = _residue_beads(p, dom_name, names, resnames, resids, chains)
        n_beads = len(ca)
        masses = np.zeros(n_beads)
        np.add.at(masses, owner, atomic_masses[z])
        order = np.argsort(owner, kind="stable")
        seg = np.searchsorted(owner[order], np.arange(n_beads))

        tgroups = _temperature_groups(dom)
        plan = []  # (T, replica, inner path, frames)
        for T in temps:
            if T not in tgroups:
                raise PremappedError(f"{p}: temperature {T} K not in /{dom_name}; present: {', '.join(map(str, tgroups)) or 'none'} K")
            rmap = _replicas(dom[tgroups[T]])
            for r in reps:
                if r not in rmap:
                    raise PremappedError(f"{p}: replica {r} not in /{dom_name}/{tgroups[T]} ({T} K); present: {', '.join(map(str, rmap)) or 'none'}")
                inner = f"/{dom_name}/{tgroups[T]}/{rmap[r]}"
                cds = _get(h5, f"{inner}/coords", p)
                fds = _get(h5, f"{inner}/forces", p)
                for name, ds in (("coords", cds), ("forces", fds)):
                    if ds.ndim != 3 or ds.shape[2] != 3:
                        raise PremappedError(f"{p}: {inner}/{name} has shape {ds.shape}; expected (n_frames, n_atoms, 3)")
                    if ds.shape[1] != n_atoms:
                        raise PremappedError(f"{p}: {inner}/{name} has {ds.shape[1]} atoms but /{dom_name}/z has {n_atoms}")
                    _check_unit(ds, p, f"{inner}/{name}", name)
                if cds.shape != fds.shape:
                    raise PremappedError(f"{p}: {inner}/coords has shape {cds.shape} but {inner}/forces has {fds.shape}")
                plan.append((T, r, inner, _frame_range(cds.shape[0], start, stop, step, f"{p}: {inner}")))
        total = sum(len(fr) for *_, fr in plan)
        if total == 0:
            counts = ", ".join(f"{inner}: {h5[inner + '/coords'].shape[0]}" for _, _, inner, _ in plan)
            raise PremappedError(f"{p}: no frames selected (start={start}, stop={stop}, step={step}); frames in the file: {counts}")

        pos_out = np.empty((total, n_beads, 3), dtype=np.float32)
        frc_out = np.empty((total, n_beads, 3), dtype=np.float32)
        source = np.empty((total, 3), dtype=np.int64)
        box: dict[tuple[int, int], np.ndarray] = {}
        n_frames: dict[tuple[int, int], int] = {}
        bar = tqdm(total=total, desc=f"reading {dom_name}", unit="frame", disable=not progress)
        k = 0
        for T, r, inner, frames in plan:
            g = h5[inner]
            cds, fds = g["coords"], g["forces"]
            n_frames[(T, r)] = int(cds.shape[0])
            if "box" in g:
                box[(T, r)] = np.asarray(g["box"][()], dtype=float) * units.ANGSTROM_PER_NM
            st = frames.step
            for c0 in range(0, len(frames), int(chunk)):
                sub = frames[c0 : c0 + int(chunk)]
                sl = np.s_[sub.start : sub[-1] + 1 : st]
                x = np.asarray(cds[sl], dtype=np.float64)
                f = np.asarray(fds[sl], dtype=np.float64)
                for name, arr in (("coords", x), ("forces", f)):
                    bad = _first_bad(arr)
                    if bad is not None:
                        raise PremappedError(f"{p}: {inner}/{name}: NaN/inf at frame {sub[bad[0]]} ({T} K, replica {r}), atom {bad[1]}")
                m = len(sub)
                pos_out[k : k + m] = x[:, ca]
                frc_out[k : k + m] = np.add.reduceat(f[:, order], seg, axis=1)
                source[k : k + m, 0], source[k : k + m, 1], source[k : k + m, 2] = T, r, np.asarray(sub)
                k += m
                bar.update(m)
        bar.close()

    traj = MappedTrajectory(
        positions=pos_out,
        forces=frc_out,
        cells=np.zeros((total, 3, 3), dtype=np.float32),
        bead_types=np.array([AMINO_ACID_TYPES[b] for b in bead_names], dtype=int),
        bead_masses=masses,
    )
    info = {
        "path": str(p),
        "domain": dom_name,
        "source": source,
        "residues": labels,
        "bead_names": bead_names,
        "ca_atoms": ca,
        "bead_atoms": owner,
        "box": box,
        "n_frames": n_frames,
        "notes": [
            "bead = residue: position of its CA, force summed over all its atoms (caps joined to their neighbour)",
            "cells are zeros (not periodic); the solvated system's box is in info['box']",
        ],
    }
    return traj, info
