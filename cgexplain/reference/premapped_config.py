"""``reference`` sections for data sets already mapped to beads (:mod:`cgexplain.reference.premapped`).

``source: arrays``: positions and forces as an ``.npz`` (or a pair of ``.npy``) of shape
(frames, beads, 3), with their units declared; ``source: mdcath``: one mdCATH HDF5 domain file,
mapped to CA beads on reading. Paths are relative to the system folder unless absolute.
"""

from __future__ import annotations

import dataclasses

from cgexplain.settings import ge, gt, one_of
from cgexplain.units import force_factor, length_factor

__all__ = ["ArraysReference", "MdcathReference"]


@dataclasses.dataclass
class ArraysReference:
    """``reference`` with ``source: arrays``.

    positions: an .npz (keys positions, forces, optional cells, bead_types, bead_masses, bead_names) or a .npy
    of positions (frames, beads, 3); forces: the .npy of forces with a .npy ``positions`` (else
    None); length_unit and force_unit: names of the one unit table (:data:`cgexplain.units.LENGTH_UNITS`,
    :data:`cgexplain.units.FORCE_UNITS`: 'A' or 'nm'; 'kcal/mol/A', 'kJ/mol/A', 'kJ/mol/nm' or 'kcal/mol/nm');
    temperature K (required); default_mass amu for beads without masses; start, stop, step:
    which frames; native (proteins): 'frame N' of the selected frames."""

    positions: str
    temperature: float = gt(0, unit="K")
    source: str = one_of("arrays")
    forces: str | None = None
    length_unit: str = "A"
    force_unit: str = "kcal/mol/A"
    default_mass: float = gt(0, 100.0, "amu")
    start: int = ge(0, 0)
    stop: int | None = None
    step: int = gt(0, 1)
    native: str | None = None

    def __post_init__(self):
        _check_native(self.native, ("frame",))
        length_factor(self.length_unit)  # ValueError naming the key for a unit not in the one table
        force_factor(self.force_unit)


def _check_native(native: str | None, allowed: tuple[str, ...]) -> None:
    if native is None or native == "pdb" and "pdb" in allowed:
        return
    parts = native.split()
    if parts[0] != "frame" or len(parts) != 2 or not parts[1].lstrip("-").isdigit():
        raise ValueError(f"native {native!r}: use " + (" or ".join(["'frame N'"] + (["'pdb'"] if "pdb" in allowed else []))))


@dataclasses.dataclass
class MdcathReference:
    """``reference`` with ``source: mdcath``: one mdCATH domain file (Mirarchi et al., Sci. Data
    11, 1299 (2024)); beads at the CA atoms, forces summed per residue.

    file: the ``mdcath_dataset_<domain>.h5``; domain: its group (default: the only one);
    temperatures (K) and replicas to read, concatenated in that order; start, stop, step: frames of
    each trajectory; chunk: frames read at a time; temperature: K the priors are fitted at
    (default: the one temperature read; required when several are read); native: 'frame N' of
    the frames read, or 'pdb' (default: the file's pdbProteinAtoms)."""

    file: str
    source: str = one_of("mdcath")
    domain: str | None = None
    temperatures: list[int] = dataclasses.field(default_factory=lambda: [320])
    replicas: list[int] = dataclasses.field(default_factory=lambda: [0])
    start: int = ge(0, 0)
    stop: int | None = None
    step: int = gt(0, 1)
    chunk: int = gt(0, 256)
    temperature: float | None = None
    native: str | None = None

    def __post_init__(self):
        _check_native(self.native, ("frame", "pdb"))
        if not self.temperatures or not self.replicas:
            raise ValueError("temperatures and replicas must each name at least one")
        if self.temperature is None and len(self.temperatures) > 1:
            raise ValueError(f"temperature: required when several temperatures ({self.temperatures}) are read (the priors' fit temperature, K)")
