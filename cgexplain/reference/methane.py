"""All-atom OPLS-AA liquid methane for OpenMM.

Parameters (shared/data/README.md): Jorgensen, Maxwell, Tirado-Rives, JACS 118, 11225 (1996),
GROMACS oplsaa.ff opls_138/opls_140: C charge -0.24 e, σ 3.50 Å, ε 0.276144 kJ/mol; H charge
+0.06 e, σ 2.50 Å, ε 0.12552 kJ/mol; C–H 1.09 Å (constrained here, as H bonds in the water
and protein systems); H–C–H 107.8°, k 276.144 kJ/mol/rad². OPLS mixes σ geometrically, which
OpenMM's NonbondedForce does not, so Lennard-Jones is a CustomNonbondedForce with geometric
mixing of σ and ε (long-range correction on); charges use PME in a NonbondedForce. All pairs
inside a molecule are excluded (they are 1-2 or 1-3 pairs).
"""

from __future__ import annotations

import numpy as np

from cgexplain.units import AVOGADRO

__all__ = ["METHANE_MASS_AMU", "build_methane_box", "methane_system"]

_C = {"q": -0.24, "sigma": 0.350, "eps": 0.276144, "mass": 12.011}
_H = {"q": 0.06, "sigma": 0.250, "eps": 0.12552, "mass": 1.008}
_BOND_NM = 0.109
_ANGLE_DEG, _ANGLE_K = 107.8, 276.144
METHANE_MASS_AMU = _C["mass"] + 4 * _H["mass"]


def _tetrahedron(bond_A: float) -> np.ndarray:
    v = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)
    return v * bond_A


def build_methane_box(n_molecules: int, density_g_cm3: float, seed: int = 0):
    """Topology and positions of ``n_molecules`` CH4 in a cubic box at ``density_g_cm3``.

    Molecules sit on a simple cubic lattice with random orientations (minimise before
    dynamics). Returns (openmm.app.Topology with box vectors, positions (n_atoms, 3) Å,
    box edge Å). Raises ValueError for n_molecules < 1 or density <= 0.
    """
    from openmm import app, unit

    if n_molecules < 1 or density_g_cm3 <= 0:
        raise ValueError(f"methane box: need n_molecules >= 1 and density > 0, got {n_molecules}, {density_g_cm3}")
    volume_A3 = n_molecules * METHANE_MASS_AMU / AVOGADRO / density_g_cm3 * 1e24
    edge = volume_A3 ** (1 / 3)
    side = int(np.ceil(n_molecules ** (1 / 3)))
    grid = (np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n_molecules] + 0.5) * edge / side
    from scipy.spatial.transform import Rotation

    rot = Rotation.random(n_molecules, random_state=seed).as_matrix()
    tet = _tetrahedron(_BOND_NM * 10)
    top = app.Topology()
    chain = top.addChain()
    pos = []
    for k in range(n_molecules):
        res = top.addResidue("CH4", chain)
        c = top.addAtom("C", app.element.carbon, res)
        pos.append(grid[k])
        for h in range(4):
            a = top.addAtom(f"H{h + 1}", app.element.hydrogen, res)
            top.addBond(c, a)
            pos.append(grid[k] + rot[k] @ tet[h])
    top.setPeriodicBoxVectors(np.eye(3) * edge / 10.0 * unit.nanometer)
    return top, np.array(pos), edge


def methane_system(topology, cutoff_A: float = 9.0):
    """OpenMM System of the OPLS-AA methane ``topology`` (residues of C, H1..H4) with PME
    electrostatics and geometric-mixing Lennard-Jones cut at ``cutoff_A`` (Å) with long-range
    correction; C–H bonds constrained. Raises ValueError for a residue that is not CH4."""
    import openmm

    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.PME)
    nb.setCutoffDistance(cutoff_A / 10.0)
    nb.setUseDispersionCorrection(False)
    lj = openmm.CustomNonbondedForce("4*eps*((sig/r)^12-(sig/r)^6); sig=sqrt(sig1*sig2); eps=sqrt(eps1*eps2)")
    lj.addPerParticleParameter("sig")
    lj.addPerParticleParameter("eps")
    lj.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    lj.setCutoffDistance(cutoff_A / 10.0)
    lj.setUseLongRangeCorrection(True)
    ang = openmm.HarmonicAngleForce()
    theta0 = np.deg2rad(_ANGLE_DEG)
    for res in topology.residues():
        atoms = list(res.atoms())
        names = [a.name for a in atoms]
        if res.name != "CH4" or len(atoms) != 5 or names[0] != "C":
            raise ValueError(f"methane topology: residue {res.name} {res.index} has atoms {names}, expected C H1 H2 H3 H4")
        idx = []
        for a in atoms:
            p = _C if a.name == "C" else _H
            i = system.addParticle(p["mass"])
            nb.addParticle(p["q"], 1.0, 0.0)
            lj.addParticle([p["sigma"], p["eps"]])
            idx.append(i)
        c, hs = idx[0], idx[1:]
        for h in hs:
            system.addConstraint(c, h, _BOND_NM)
        for a in range(4):
            for b in range(a + 1, 4):
                ang.addAngle(hs[a], c, hs[b], theta0, _ANGLE_K)
        for a in range(5):
            for b in range(a + 1, 5):
                nb.addException(idx[a], idx[b], 0.0, 1.0, 0.0)
                lj.addExclusion(idx[a], idx[b])
    for f in (nb, lj, ang):
        system.addForce(f)
    return system
