import numpy as np
import pytest
import torch

from cgexplain.md.langevin import SimSettings, SimulationError, kinetic_temperature, langevin, run_simulation
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
    s = SimSettings(timestep=0.002, n_steps=400, save_interval=5, max_force=1000.0, checkpoint_every=2)
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
    full = run_simulation(
        *args, SimSettings(timestep=0.002, n_steps=100, save_interval=5, checkpoint_every=2, seed=7), tmp_path / "a", progress=False
    )
    assert full["n_frames"] == 20
    assert mdtraj.load(str(tmp_path / "a" / "trajectory.dcd"), top=str(tmp_path / "top.pdb")).n_frames == 20
    ua = mda.Universe(str(tmp_path / "top.pdb"), str(tmp_path / "a" / "trajectory.dcd"))
    assert ua.trajectory.n_frames == 20
    # a run killed after its checkpoint at frame 10 resumes to the same trajectory
    part = run_simulation(*args, SimSettings(timestep=0.002, n_steps=50, save_interval=5, checkpoint_every=2, seed=7), tmp_path / "b", progress=False)
    assert part["n_frames"] == 10
    (tmp_path / "b" / "simulation.json").unlink()
    run_simulation(*args, SimSettings(timestep=0.002, n_steps=100, save_interval=5, checkpoint_every=2, seed=7), tmp_path / "b", progress=False)
    ub = mda.Universe(str(tmp_path / "top.pdb"), str(tmp_path / "b" / "trajectory.dcd"))
    xa, xb = ua.trajectory.timeseries(order="fac"), ub.trajectory.timeseries(order="fac")
    assert xb.shape == xa.shape
    np.testing.assert_allclose(xb, xa, atol=2e-3)
    assert not list((tmp_path / "b").glob(".*.resuming.dcd"))  # the rewritten trajectory was swapped in
    # one atomic checkpoint file holds the random streams too
    assert "rng" in np.load(tmp_path / "b" / "checkpoint.npz").files and not (tmp_path / "b" / "checkpoint_rng.json").exists()
    # a trajectory cut short after its checkpoint (frames lost) is refused, naming both files
    part = run_simulation(*args, SimSettings(timestep=0.002, n_steps=50, save_interval=5, checkpoint_every=2, seed=7), tmp_path / "c", progress=False)
    (tmp_path / "c" / "simulation.json").unlink()
    with mda.Writer(str(tmp_path / "c" / "trajectory.dcd"), n_atoms=n) as w:
        for _ts in ua.trajectory[:4]:
            w.write(ua.atoms)
    with pytest.raises(RuntimeError, match=r"trajectory\.dcd holds 4 frames but .*checkpoint\.npz counts 10: the trajectory was cut short"):
        run_simulation(*args, SimSettings(timestep=0.002, n_steps=100, save_interval=5, checkpoint_every=2, seed=7), tmp_path / "c", progress=False)


# ---------------------------------------------------------------- Verlet list, replicas, writer
def _pair_set(i, j, o):
    return {(int(a), int(b), *np.round(np.asarray(c, dtype=np.float64), 4)) for a, b, c in zip(i, j, o)}


def test_verlet_list_equals_fresh_list_along_a_trajectory():
    """Unwrapped beads drifting across the periodic box: every step the skin list filtered to the
    cutoff holds exactly the pairs (and image offsets) of a list built from scratch, and it is
    rebuilt far less often than every step."""
    from cgexplain.geometry.neighbors import neighbor_list
    from cgexplain.md.neighbors import VerletList

    rng = np.random.default_rng(0)
    L, n, cutoff = 9.0, 60, 3.5
    cell = np.eye(3) * L
    x = rng.uniform(0, L, (n, 3))
    drift = rng.normal(size=(n, 3)) * 0.05
    nl = VerletList(cutoff, skin=1.0, cells=cell, n_replicas=1, dtype=torch.float64)
    builds = []
    for step in range(200):
        x = x + drift + 0.02 * rng.normal(size=(n, 3))  # beads leave the box: never wrapped
        builds.append(nl.update(x[None]))
        i, j, o = nl.pairs(torch.as_tensor(x))
        fi, fj, fo = neighbor_list(x, cell, cutoff)
        assert _pair_set(i.numpy(), j.numpy(), o.numpy()) == _pair_set(fi, fj, fo), step
    assert np.abs(x).max() > 1.5 * L  # some beads crossed the box
    assert 2 < sum(builds) < 100, sum(builds)


def test_verlet_forces_equal_rebuild_every_step():
    """Langevin with a 1 Å skin gives the trajectory and forces of rebuilding every step (skin 0)."""
    from cgexplain.md.langevin import CGForceField

    model = _scaled(random_painn(F=8, L=2, cutoff=3.0, seed=0), 0.01).double()
    x, cell = _lattice()
    n = len(x)
    common = dict(temperature=300.0, timestep=0.004, friction=5.0, n_steps=150, save_interval=10, seed=5)
    a = langevin(model, x, np.ones(n, int), np.full(n, 18.0), cell, 3.0, SimSettings(skin=0.0, **common), progress=False)
    b = langevin(model, x, np.ones(n, int), np.full(n, 18.0), cell, 3.0, SimSettings(skin=1.0, **common), progress=False)
    assert a["neighbour_list_builds"] == 151 and b["neighbour_list_builds"] < 30
    np.testing.assert_allclose(b["x"], a["x"], atol=1e-8)
    ffa = CGForceField(model, np.ones(n, int), cell, 3.0, skin=0.0)
    ffb = CGForceField(model, np.ones(n, int), cell, 3.0, skin=1.0)
    xb = torch.as_tensor(x[None])
    ffb(xb)  # build the skin list at x, then move the beads within skin/2
    xm = xb + 0.45 * torch.nn.functional.normalize(torch.randn_like(xb, dtype=torch.float64), dim=-1)
    (ea, fa), (eb, fb) = ffa(xm), ffb(xm)
    assert ffb.nl.n_builds == 1
    np.testing.assert_allclose(fb.numpy(), fa.numpy(), atol=1e-10)
    np.testing.assert_allclose(eb.numpy(), ea.numpy(), atol=1e-10)


def test_batched_replicas_match_single_evaluations_and_are_reproducible():
    from cgexplain.md.langevin import CGForceField

    model = _scaled(random_painn(F=8, L=2, cutoff=3.0, seed=0), 0.01).double()
    x, cell = _lattice()
    n = len(x)
    rng = np.random.default_rng(1)
    xs = np.stack([x + 0.2 * rng.normal(size=x.shape) for _ in range(3)])
    cells = np.stack([cell, cell * 1.05, cell])
    e3, f3 = CGForceField(model, np.ones(n, int), cells, 3.0, n_replicas=3)(torch.as_tensor(xs))
    for r in range(3):
        e1, f1 = CGForceField(model, np.ones(n, int), cells[r], 3.0)(torch.as_tensor(xs[r][None]))
        np.testing.assert_allclose(f3[r].numpy(), f1[0].numpy(), atol=1e-10)
        np.testing.assert_allclose(float(e3[r]), float(e1[0]), atol=1e-10)

    s = SimSettings(temperature=300.0, timestep=0.004, friction=5.0, n_steps=60, save_interval=10, seed=11, n_replicas=3)
    start = np.stack([x, x, x])
    a = langevin(model, start, np.ones(n, int), np.full(n, 18.0), cell, 3.0, s, progress=False)
    b = langevin(model, start, np.ones(n, int), np.full(n, 18.0), cell, 3.0, s, progress=False)
    assert a["x"].shape == (3, n, 3) and np.asarray(a["log"]["temperature_K"]).shape == (6, 3)
    np.testing.assert_array_equal(a["x"], b["x"])  # reproducible from the seed
    assert np.abs(a["x"][0] - a["x"][1]).max() > 1e-3  # own random stream per replica
    single = langevin(model, x, np.ones(n, int), np.full(n, 18.0), cell, 3.0, dataclasses_replace(s, n_replicas=1), progress=False)
    np.testing.assert_allclose(single["x"], a["x"][0], atol=1e-8)  # replica 0's stream does not depend on R


def dataclasses_replace(s, **kw):
    import dataclasses

    return dataclasses.replace(s, **kw)


def test_async_writer_keeps_order_and_reports_errors():
    import time as _time

    from cgexplain.md.langevin import AsyncFrameWriter

    got = []

    def slow(x, k):
        _time.sleep(0.002)
        got.append((k, float(x[0, 0])))

    w = AsyncFrameWriter(slow, max_queue=4)
    buf = np.zeros((2, 3))
    for k in range(20):
        buf[0, 0] = k
        w(buf, k)  # the buffer is reused: the writer must have copied it
    w.close()
    assert got == [(k, float(k)) for k in range(20)]

    def bad(x, k):
        if k == 3:
            raise OSError("disk full")

    w = AsyncFrameWriter(bad)
    for k in range(6):
        w(buf, k)
    with pytest.raises(RuntimeError, match="disk full"):
        w.flush()
    w.close()


def test_run_simulation_replicas_write_one_dcd_each_and_resume(tmp_path):
    import MDAnalysis as mda

    model = _scaled(random_painn(F=8, L=2, cutoff=3.0, seed=2), 0.01)
    x, cell = _lattice()
    n = len(x)
    _topology(tmp_path, x, cell[0, 0])
    start = np.stack([x, x + 0.1])
    args = (model, {"hparams": {"cutoff": 3.0}}, tmp_path / "top.pdb", start, np.ones(n, int), np.full(n, 18.0), cell)
    kw = dict(timestep=0.002, save_interval=5, checkpoint_every=2, seed=7, n_replicas=2)
    full = run_simulation(*args, SimSettings(n_steps=60, **kw), tmp_path / "a", progress=False)
    assert full["trajectories"] == ["trajectory_r00.dcd", "trajectory_r01.dcd"] and full["n_frames"] == 12
    part = run_simulation(*args, SimSettings(n_steps=30, **kw), tmp_path / "b", progress=False)
    (tmp_path / "b" / "simulation.json").unlink()
    run_simulation(*args, SimSettings(n_steps=60, **kw), tmp_path / "b", progress=False)
    assert part["n_frames"] == 6
    for r in range(2):
        xa, xb = (
            mda.Universe(str(tmp_path / "top.pdb"), str(tmp_path / d / f"trajectory_r{r:02d}.dcd")).trajectory.timeseries(order="fac") for d in "ab"
        )
        assert xa.shape == (12, n, 3)
        np.testing.assert_allclose(xb, xa, atol=2e-3)
    with pytest.raises(ValueError, match="start configurations"):
        run_simulation(*args[:3], x, *args[4:], SimSettings(n_steps=10, **kw), tmp_path / "c", progress=False)
