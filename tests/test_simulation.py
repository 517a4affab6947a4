import numpy as np
import pytest
import torch

from cgexplain.simulation import SimSettings, SimulationError, kinetic_temperature, langevin, run_simulation
from conftest import random_painn


def _scaled(model, factor):
    with torch.no_grad():
        model.output_modules[0].outnet[1].weight.mul_(factor)
        model.output_modules[0].outnet[1].bias.mul_(factor)
    return model.float()


def _lattice(n_side=4, a=2.5):
    g = np.arange(n_side) * a
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) + 0.5, np.eye(3) * n_side * a


def test_langevin_keeps_temperature():
    model = _scaled(random_painn(F=8, L=2, cutoff=3.0, seed=0), 0.01)
    x, cell = _lattice()
    n = len(x)
    s = SimSettings(temperature=300.0, timestep=0.004, friction=5.0, n_steps=600, save_interval=10, seed=3)
    res = langevin(model, x, np.ones(n, int), np.full(n, 18.0), cell, 3.0, s, progress=False)
    T = np.asarray(res["log"]["temperature_K"])
    assert np.isfinite(res["x"]).all()
    # mean over 60 frames of 64 beads: standard error ~ 300*sqrt(2/192/60) ~ 4 K
    assert abs(T[10:].mean() - 300.0) < 25.0, T.mean()


def test_kinetic_temperature_formula():
    m = np.array([2.0, 4.0])
    from cgexplain import units

    v = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    ke = 0.5 * (2 + 4) / units.KCAL_IN_AMU_A2_PS2
    assert abs(kinetic_temperature(v, m) - 2 * ke / (6 * units.KB_KCAL)) < 1e-9


class _Boom(torch.nn.Module):
    """Wraps a model; from call ``after`` on its forces are NaN (or huge)."""

    def __init__(self, model, after, value):
        super().__init__()
        self.m, self.after, self.value, self.calls = model, after, value, 0

    def forward(self, inp):
        out = self.m(inp)
        self.calls += 1
        if self.calls > self.after:
            out["forces"] = out["forces"] * 0 + self.value
        return out


def _topology(tmp_path, x, L):
    import MDAnalysis as mda

    n = len(x)
    u = mda.Universe.empty(n, n_residues=n, atom_resindex=np.arange(n), trajectory=True)
    u.add_TopologyAttr("names", ["W"] * n)
    u.add_TopologyAttr("resnames", ["W"] * n)
    u.atoms.positions = x
    u.dimensions = [L, L, L, 90, 90, 90]
    u.atoms.write(str(tmp_path / "top.pdb"))
    return tmp_path / "top.pdb"


@pytest.mark.parametrize("value,match", [(float("nan"), "non-finite force on bead 0 at step 51"), (5e3, "exceeds max_force")])
def test_explosion_stops_and_keeps_frames(tmp_path, value, match):
    import MDAnalysis as mda

    x, cell = _lattice()
    n = len(x)
    top = _topology(tmp_path, x, cell[0, 0])
    model = _Boom(_scaled(random_painn(F=8, L=2, cutoff=3.0, seed=1), 0.01), after=51, value=value)
    s = SimSettings(n_steps=400, save_interval=5, max_force=1000.0, checkpoint_every=2)
    with pytest.raises(SimulationError, match=match):
        run_simulation(model, {"hparams": {"cutoff": 3.0}}, top, x, np.ones(n, int), np.full(n, 18.0), cell, s, tmp_path / "sim", progress=False)
    assert not (tmp_path / "sim" / "simulation.json").exists()
    u = mda.Universe(str(top), str(tmp_path / "sim" / "trajectory.dcd"))
    assert u.trajectory.n_frames == 10  # steps 5..50 were written before the failure at step 51
    assert np.isfinite(u.trajectory.timeseries()).all()


def test_run_simulation_writes_readable_dcd_and_resumes(tmp_path):
    import MDAnalysis as mda
    import mdtraj

    model = _scaled(random_painn(F=8, L=2, cutoff=3.0, seed=2), 0.01)
    x, cell = _lattice()
    n = len(x)
    _topology(tmp_path, x, cell[0, 0])
    args = (model, {"hparams": {"cutoff": 3.0}}, tmp_path / "top.pdb", x, np.ones(n, int), np.full(n, 18.0), cell)
    full = run_simulation(*args, SimSettings(n_steps=100, save_interval=5, checkpoint_every=2, seed=7), tmp_path / "a", progress=False)
    assert full["n_frames"] == 20
    assert mdtraj.load(str(tmp_path / "a" / "trajectory.dcd"), top=str(tmp_path / "top.pdb")).n_frames == 20
    ua = mda.Universe(str(tmp_path / "top.pdb"), str(tmp_path / "a" / "trajectory.dcd"))
    assert ua.trajectory.n_frames == 20
    # a run killed after its checkpoint at frame 10 resumes to the same trajectory
    part = run_simulation(*args, SimSettings(n_steps=50, save_interval=5, checkpoint_every=2, seed=7), tmp_path / "b", progress=False)
    assert part["n_frames"] == 10
    (tmp_path / "b" / "simulation.json").unlink()
    run_simulation(*args, SimSettings(n_steps=100, save_interval=5, checkpoint_every=2, seed=7), tmp_path / "b", progress=False)
    ub = mda.Universe(str(tmp_path / "top.pdb"), str(tmp_path / "b" / "trajectory.dcd"))
    xa, xb = ua.trajectory.timeseries(order="fac"), ub.trajectory.timeseries(order="fac")
    assert xb.shape == xa.shape
    np.testing.assert_allclose(xb, xa, atol=2e-3)
