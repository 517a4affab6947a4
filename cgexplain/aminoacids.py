"""The amino-acid vocabulary, in one place: the 20 standard residues (three- and one-letter
codes), their bead types in a one-bead-per-residue model, force-field variants and terminal caps.
Used by the mapping, the pre-mapped readers, ``cgexplain init`` and the mutation what-ifs."""

from __future__ import annotations

__all__ = ["ONE_LETTER", "THREE_LETTER", "AMINO_ACID_TYPES", "RESIDUE_ALIASES", "CAP_RESIDUES", "canonical_resname", "allowed_names"]

#: three-letter -> one-letter code.
ONE_LETTER: dict[str, str] = {
    "ALA": "A",
    "ARG": "R",
    "ASN": "N",
    "ASP": "D",
    "CYS": "C",
    "GLN": "Q",
    "GLU": "E",
    "GLY": "G",
    "HIS": "H",
    "ILE": "I",
    "LEU": "L",
    "LYS": "K",
    "MET": "M",
    "PHE": "F",
    "PRO": "P",
    "SER": "S",
    "THR": "T",
    "TRP": "W",
    "TYR": "Y",
    "VAL": "V",
}
#: one-letter -> three-letter code.
THREE_LETTER: dict[str, str] = {v: k for k, v in ONE_LETTER.items()}


#: bead types of a one-bead-per-residue protein model: the 20 standard residues, alphabetical
#: three-letter codes -> 1..20. A mutation changes only this integer.
AMINO_ACID_TYPES: dict[str, int] = {name: k + 1 for k, name in enumerate(sorted(ONE_LETTER))}

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


def allowed_names() -> str:
    """The allowed residue names, for error messages: three-letter, one-letter and variants."""
    return (
        ", ".join(AMINO_ACID_TYPES)
        + " (one-letter: "
        + "".join(ONE_LETTER[x] for x in AMINO_ACID_TYPES)
        + "; variants "
        + ", ".join(f"{a}->{b}" for a, b in RESIDUE_ALIASES.items())
        + ")"
    )


def canonical_resname(name: str, where: str = "") -> str:
    """Standard three-letter name of a residue name (three-letter, one-letter or a variant in
    :data:`RESIDUE_ALIASES`; case-insensitive). Raises ValueError naming the residue, ``where``
    and the allowed names."""
    s = str(name).strip().upper()
    if s in AMINO_ACID_TYPES:
        return s
    if s in RESIDUE_ALIASES:
        return RESIDUE_ALIASES[s]
    if len(s) == 1 and s in THREE_LETTER:
        return THREE_LETTER[s]
    raise ValueError(f"unknown residue name {str(name)!r}{where}; allowed names: {allowed_names()}")
