"""The ground-truth fluids (systems/lj, systems/mw) through the reference and map stages: the
forces OpenMM writes, read back from the TRR and mapped with the identity mapping, are the
analytic potential's forces at the mapped positions, so the true pair and triplet energies of
every saved frame can be recomputed (cgexplain.reference.potentials)."""

import numpy as np
import pytest

from cgexplain.reference.fluids import ReferenceSettings, build_bead_fluid, run_reference
from cgexplain.reference.potentials import MW, LennardJones
from cgexplain.workflow.config import load_system


@pytest.mark.parametrize("system,n,extra", [("lj", 80, {}), ("mw", 64, {"equilibration_npt": 0.2, "equilibration_nvt": 0.1})])
def test_bead_fluid_reference_forces_are_the_analytic_ones(tmp_path, system, n, extra):
    from cgexplain.mapping.maps import load_universe, make_mapping, map_universe

    rc = dict(load_system(f"systems/{system}")["reference"])
    rc.pop("check")
    rc.update({"n_molecules": n, "equilibration_nvt": 0.2, "production": 0.4, "save_interval": 0.04, "chunk": 0.2, **extra})
    s = ReferenceSettings.from_dict(rc)
    summary = run_reference(s, tmp_path, progress=False)
    assert summary["n_frames"] == 10 and summary["n_atoms"] == n
    u = load_universe(tmp_path / "topology.pdb", tmp_path / "trajectory.trr")
    if system == "mw":
        u.atoms.masses = 18.015
    m = make_mapping(u, by="residue", method="com")
    assert m.n_beads == n
    traj = map_universe(u, m, progress=False)
    pot = LennardJones(**s.potential) if system == "lj" else MW(**s.potential)
    worst = 0.0
    for x, f, c in zip(traj.positions, traj.forces, traj.cells):
        ref = pot.forces(x, c)
        assert np.abs(ref).max() > 1.0
        worst = max(worst, float(np.abs(f - ref).max() / np.abs(ref).max()))
    assert worst < 2e-4  # the TRR holds float32 positions and forces
    if system == "mw":  # NPT: the box changed, the potential is still the same function of it
        assert summary["npt_mean_density_g_cm3"] > 0.5
        tri, te = pot.triplet_energies(traj.positions[-1], traj.cells[-1])
        assert len(tri) > 10 and np.abs(te).max() > 0.05


def test_bead_fluid_bad_settings():
    with pytest.raises(ValueError, match="shorter than twice the potential cutoff"):
        build_bead_fluid(ReferenceSettings(system="lj", n_molecules=20, density=1.3447))
    with pytest.raises(ValueError, match="density must be > 0"):
        build_bead_fluid(ReferenceSettings(system="mw", n_molecules=64, density=0.0))
    with pytest.raises(TypeError):
        build_bead_fluid(ReferenceSettings(system="lj", n_molecules=80, density=1.3, potential={"sigmaa": 3.4}))
