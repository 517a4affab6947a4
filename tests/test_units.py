"""One unit table (cgexplain.units): every source that takes declared units accepts exactly the
units of the table, spelled any of the ways the table reads, and converts with the same factor;
a unit outside the table is refused by every source with the key named."""

from __future__ import annotations

import numpy as np
import pytest

from cgexplain import units
from cgexplain.mapping.maps import MappingError
from cgexplain.reference.external import FilesReference
from cgexplain.reference.premapped import PremappedError, read_arrays
from cgexplain.reference.premapped_config import ArraysReference
from cgexplain.settings import ConfigError, validate_section

# the factors by hand: 1 nm = 10 Å, 1 kcal = 4.184 kJ
BY_HAND_FORCE = {"kcal/mol/A": 1.0, "kJ/mol/A": 1 / 4.184, "kJ/mol/nm": 1 / 41.84, "kcal/mol/nm": 0.1}
BY_HAND_LENGTH = {"A": 1.0, "nm": 10.0}


def test_table_factors_by_hand():
    assert units.FORCE_UNITS.keys() == BY_HAND_FORCE.keys() and units.LENGTH_UNITS.keys() == BY_HAND_LENGTH.keys()
    for u, f in BY_HAND_FORCE.items():
        assert units.force_factor(u) == pytest.approx(f, rel=1e-12)
    for u, f in BY_HAND_LENGTH.items():
        assert units.length_factor(u) == pytest.approx(f, rel=1e-12)
    # spellings: Å, Angstrom, any case
    assert units.force_factor("kcal/mol/Å") == units.force_factor("KCAL/MOL/angstrom") == 1.0
    assert units.length_factor("Å") == units.length_factor("angstrom") == 1.0
    with pytest.raises(ValueError, match="unknown force_unit 'eV/A'"):
        units.force_factor("eV/A")
    with pytest.raises(ValueError, match="unknown length_unit 'pm'"):
        units.length_factor("pm")


def _sources(force_unit: str, length_unit: str) -> dict:
    """Each way a unit reaches cgexplain: the two system.yaml sections and the two readers' checks."""
    return {
        "reference (source: arrays)": lambda: validate_section(
            "system.yaml",
            "reference",
            ArraysReference,
            {"source": "arrays", "positions": "x.npz", "temperature": 300.0, "length_unit": length_unit, "force_unit": force_unit},
        ),
        "reference (source: files)": lambda: validate_section(
            "system.yaml",
            "reference",
            FilesReference,
            {
                "source": "files",
                "topology": "t.pdb",
                "trajectories": ["x.trr"],
                "temperature": 300.0,
                "length_unit": length_unit,
                "force_unit": force_unit,
            },
        ),
    }


@pytest.mark.parametrize("force_unit", [*units.FORCE_UNITS, "kcal/mol/Å"])
@pytest.mark.parametrize("length_unit", [*units.LENGTH_UNITS, "Angstrom"])
def test_every_source_accepts_every_unit_of_the_table(force_unit, length_unit):
    for name, check in _sources(force_unit, length_unit).items():
        out = check()
        assert out["force_unit"] == force_unit and out["length_unit"] == length_unit, name


@pytest.mark.parametrize("bad", [("eV/A", "A"), ("kcal/mol/A", "pm"), ("N", "nm")])
def test_every_source_refuses_a_unit_outside_the_table(bad):
    force_unit, length_unit = bad
    key = "force_unit" if force_unit not in BY_HAND_FORCE else "length_unit"
    for name, check in _sources(force_unit, length_unit).items():
        with pytest.raises(ConfigError, match=f"unknown {key}"):
            check()
        del name


@pytest.mark.parametrize("force_unit", list(units.FORCE_UNITS))
def test_arrays_reader_converts_with_the_table(tmp_path, force_unit):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 2.0, (3, 4, 3))  # nm
    f = rng.normal(0, 50.0, (3, 4, 3))
    np.savez(tmp_path / "d.npz", positions=x, forces=f)
    traj, _ = read_arrays(tmp_path / "d.npz", length_unit="nm", force_unit=force_unit, force_scale_range=None)
    np.testing.assert_allclose(traj.positions, x * 10.0, rtol=1e-6)
    np.testing.assert_allclose(traj.forces, f * BY_HAND_FORCE[force_unit], rtol=1e-6)
    with pytest.raises(PremappedError, match="unknown force_unit 'eV/A'"):
        read_arrays(tmp_path / "d.npz", length_unit="nm", force_unit="eV/A")


def test_mapping_takes_the_same_table():
    """map_universe's declared units go through the same table (an unknown one is a MappingError
    naming the key before any frame is read)."""
    from cgexplain.mapping.maps import map_universe

    with pytest.raises(MappingError, match="unknown force_unit 'eV/A'"):
        map_universe(None, None, force_unit="eV/A", length_unit="A", progress=False)  # type: ignore[arg-type]
