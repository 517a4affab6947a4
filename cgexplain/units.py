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
