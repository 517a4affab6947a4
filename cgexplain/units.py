"""Unit conversions, in one place.

The public API of cgexplain uses Å, kcal/mol, kcal/mol/Å, ps, K and amu. OpenMM speaks nm and
kJ/mol; MDAnalysis speaks Å and kJ/(mol·Å) for forces. Every conversion at those boundaries goes
through the constants below.
"""

KJ_PER_KCAL = 4.184
ANGSTROM_PER_NM = 10.0

#: Boltzmann constant in kcal/mol/K (CODATA 2018: R = 8.314462618 J/mol/K).
KB_KCAL = 8.314462618e-3 / KJ_PER_KCAL

#: 1 kcal/mol expressed in amu·Å²/ps² (1 amu·Å²/ps² = 10 J/mol).
KCAL_IN_AMU_A2_PS2 = 418.4

#: Avogadro constant, 1/mol.
AVOGADRO = 6.02214076e23


def kj_nm_to_kcal_a(force):
    """Force kJ/mol/nm -> kcal/mol/Å (works on floats and arrays)."""
    return force / (KJ_PER_KCAL * ANGSTROM_PER_NM)


def kj_a_to_kcal_a(force):
    """Force kJ/mol/Å (MDAnalysis) -> kcal/mol/Å."""
    return force / KJ_PER_KCAL


def kcal_a_to_kj_a(force):
    """Force kcal/mol/Å -> kJ/mol/Å (MDAnalysis)."""
    return force * KJ_PER_KCAL


def density_g_cm3(total_mass_amu: float, volume_a3: float) -> float:
    """Mass density in g/cm³ from a mass in amu and a volume in Å³."""
    return total_mass_amu / AVOGADRO / (volume_a3 * 1e-24)


# ------------------------------------------------------------------ declared units of the user's data
#: length units a user may declare for data whose format does not fix them -> factor to Å
#: (spellings ``Å``, ``Angstrom`` and any case are read as these names, :func:`canonical_unit`)
LENGTH_UNITS = {"A": 1.0, "nm": ANGSTROM_PER_NM}

#: force units a user may declare -> factor to kcal/mol/Å
FORCE_UNITS = {
    "kcal/mol/A": 1.0,
    "kJ/mol/A": 1.0 / KJ_PER_KCAL,
    "kJ/mol/nm": 1.0 / (KJ_PER_KCAL * ANGSTROM_PER_NM),
    "kcal/mol/nm": 1.0 / ANGSTROM_PER_NM,
}


def canonical_unit(unit: str, table: dict[str, float], what: str = "unit") -> str:
    """The key of ``table`` (:data:`LENGTH_UNITS` or :data:`FORCE_UNITS`) that ``unit`` names:
    ``Å`` and ``Angstrom`` read as ``A``, case ignored. Raises ValueError naming ``what`` (the
    key, e.g. 'length_unit'), the unit and the allowed ones."""
    import re

    u = re.sub("angstrom", "A", str(unit).strip().replace("Å", "A"), flags=re.IGNORECASE)
    for name in table:
        if u.lower() == name.lower():
            return name
    raise ValueError(f"unknown {what} {unit!r}; use one of {', '.join(table)} (A = Å)")


def length_factor(unit: str) -> float:
    """Factor from the declared length ``unit`` to Å (:data:`LENGTH_UNITS`). Raises ValueError."""
    return LENGTH_UNITS[canonical_unit(unit, LENGTH_UNITS, "length_unit")]


def force_factor(unit: str) -> float:
    """Factor from the declared force ``unit`` to kcal/mol/Å (:data:`FORCE_UNITS`). Raises ValueError."""
    return FORCE_UNITS[canonical_unit(unit, FORCE_UNITS, "force_unit")]
