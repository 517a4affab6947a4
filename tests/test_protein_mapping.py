"""NTL9 mapping: one bead per residue at the CA, the C-terminal cap joins residue 39, bead types
from the amino-acid table; the force map is consistent and cancels the H-bond constraint forces."""

from pathlib import Path

import MDAnalysis as mda
import numpy as np
import pytest

from cgexplain.aminoacids import AMINO_ACID_TYPES
from cgexplain.aminoacids import ONE_LETTER as ONE
from cgexplain.mapping.maps import MappingError, amino_acid_name, make_mapping

PDB = Path(__file__).resolve().parents[1] / "systems" / "ntl9" / "ntl9_k12m.pdb"
SEQ = "MKVIFLKDVKGMGKKGEIKNVADGYANNFLFKQGLAIEA"


@pytest.fixture(scope="module")
def universe():
    return mda.Universe(str(PDB))


@pytest.fixture(scope="module")
def mapping(universe):
    return make_mapping(universe, by="residue", method="atom", atom_name="CA", type_table="amino_acids")


def test_beads_types_and_cap(universe, mapping):
    assert mapping.n_beads == 39 and mapping.n_atoms == universe.atoms.n_atoms == 624
    assert "".join(ONE[n] for n in mapping.bead_names) == SEQ
    assert list(mapping.bead_types) == [AMINO_ACID_TYPES[n] for n in mapping.bead_names]
    assert sorted(AMINO_ACID_TYPES.values()) == list(range(1, 21))
    # the NHE amide atoms are in the last bead; every atom is in exactly one bead
    nhe = universe.select_atoms("resname NHE").indices
    assert len(nhe) == 3 and set(nhe) <= set(mapping.bead_atoms[-1])
    assert np.array_equal(np.sort(np.concatenate(mapping.bead_atoms)), np.arange(624))
    # bead position = the CA atom
    ca = universe.select_atoms("name CA")
    assert np.allclose(mapping.position_map @ universe.atoms.positions, ca.positions)
    assert np.isclose(mapping.bead_masses.sum(), universe.atoms.masses.sum())


def test_force_map_consistency_and_constraint_cancellation(universe, mapping):
    C, D = mapping.position_map, mapping.force_map
    # Noid et al. (2008) eq. 14: D C^T = 1 (a bead's force map weights its position atoms by 1)
    assert np.allclose((D @ C.T).toarray(), np.eye(39), atol=0)
    # the H-bond constraints OpenMM applies (amber14, constraints=HBonds): every constrained pair
    # lies in one bead, so constraint forces lambda_k (r_i - r_j) on i and the opposite on j cancel
    from openmm import app

    pdb = app.PDBFile(str(PDB))
    system = app.ForceField("amber14-all.xml", "implicit/gbn2.xml").createSystem(pdb.topology, constraints=app.HBonds)
    pairs = np.array([system.getConstraintParameters(k)[:2] for k in range(system.getNumConstraints())])
    assert len(pairs) > 250
    x = universe.atoms.positions.astype(np.float64)
    lam = np.random.default_rng(0).normal(size=len(pairs))
    f = np.zeros_like(x)
    np.add.at(f, pairs[:, 0], lam[:, None] * (x[pairs[:, 0]] - x[pairs[:, 1]]))
    np.add.at(f, pairs[:, 1], -lam[:, None] * (x[pairs[:, 0]] - x[pairs[:, 1]]))
    assert np.abs(f).max() > 1.0
    assert np.abs(D @ f).max() < 1e-12
    # without merging the cap the amide N-H constraints would straddle two beads: the NHE residue
    # has no CA, which the mapping reports instead of producing a wrong force map
    with pytest.raises(MappingError, match="CA"):
        make_mapping(universe, by="residue", method="atom", atom_name="CA", type_table="amino_acids", merge_caps=False)


def test_residue_names():
    assert amino_acid_name("HIE") == "HIS" and amino_acid_name("ala") == "ALA"
    with pytest.raises(MappingError, match="XYZ"):
        amino_acid_name("XYZ")
