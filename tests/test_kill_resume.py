"""A killed run resumes every long stage: a real child process (`python -m cgexplain <stage>`)
is killed with SIGKILL mid-stage, the same command is run again, and the result must equal that
of an uninterrupted run (the stages are seeded to be deterministic on the CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import harmonic_frames, random_painn

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "cgexplain", *map(str, args), "--no-progress"]


def _run(cmd, timeout=600):
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]


def _kill_when(cmd, ready, done: Path, timeout=300) -> None:
    """Start ``cmd`` in its own process group, SIGKILL the group once ``ready()`` is true, and check
    that the stage had not finished (``done`` absent), so the rerun really resumes."""
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.monotonic()
    try:
        while not ready():
            if p.poll() is not None:
                pytest.fail(f"the stage ended before it could be killed:\n{p.stdout.read().decode()[-3000:]}")
            if time.monotonic() - t0 > timeout:
                pytest.fail("the stage never reached the kill point")
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == -signal.SIGKILL
    assert not done.exists(), "the kill came after the stage had finished"


def test_reference_md_resumes_after_sigkill(tmp_path):
    """Lennard-Jones reference (80 atoms, fixed density, 60 chunks): killed after its second
    chunk, resumed; every chunk's positions and forces equal an uninterrupted run's exactly."""
    raw = yaml.safe_load((ROOT / "systems/lj/system.yaml").read_text())
    raw["reference"].update(n_molecules=80, equilibration_nvt=0.2, production=12.0, save_interval=0.04, chunk=0.2)
    raw["reference"].pop("check")
    raw["profiles"] = {"quick": {}}
    sysdir = tmp_path / "lj"
    sysdir.mkdir()
    (sysdir / "system.yaml").write_text(yaml.safe_dump(raw))
    a, b = tmp_path / "killed", tmp_path / "whole"
    chunks = a / "reference" / "chunks"
    _kill_when(_cli("reference", sysdir, "--out", a), lambda: (chunks / "chunk_0001.npz").exists(), a / "reference" / "reference.json")
    assert not (chunks / "chunk_0059.npz").exists()
    _run(_cli("reference", sysdir, "--out", a))
    _run(_cli("reference", sysdir, "--out", b))
    names = sorted(p.name for p in chunks.glob("chunk_*.npz"))
    assert len(names) == 60
    for name in names:
        za, zb = np.load(chunks / name), np.load(b / "reference" / "chunks" / name)
        for key in ("positions", "forces", "cell"):
            np.testing.assert_array_equal(za[key], zb[key], err_msg=f"{name}/{key}")


def _tiny_train_system(tmp_path, name, epochs):
    sysdir = tmp_path / f"sys_{name}"
    sysdir.mkdir()
    (sysdir / "system.yaml").write_text(
        "name: tiny\nmodel: {representation: painn, n_atom_basis: 8, n_interactions: 2, cutoff: 3.0, n_rbf: 8}\n"
        "analysis: {shell_cutoff: 3.0}\n"
        f"training: {{epochs: {epochs}, batch_size: 4, lr: 0.002, val_fraction: 0.25, seed: 3}}\nprofiles: {{quick: {{}}}}\n"
    )
    cg = tmp_path / f"run_{name}" / "cg"
    cg.mkdir(parents=True)
    harmonic_frames(16, 16, 7.0, seed=0, mass=18.0).save(cg / "mapped.npz")
    (cg / "mapping.json").write_text(json.dumps({"type_table": {"W": 1}}))
    return sysdir, cg.parent


def test_training_resumes_after_sigkill(tmp_path):
    """Force matching for 12 epochs, killed once the checkpoint of epoch 2 is written; the resumed
    run's weights and validation history equal an uninterrupted run's (CPU, seeded)."""
    epochs = 12
    sa, ra = _tiny_train_system(tmp_path, "killed", epochs)
    sb, rb = _tiny_train_system(tmp_path, "whole", epochs)
    last = ra / "model" / "checkpoints" / "last.ckpt"

    def ready():
        try:
            return last.exists() and torch.load(last, map_location="cpu", weights_only=False)["epoch"] >= 2
        except Exception:  # being written
            return False

    _kill_when(_cli("train", sa, "--out", ra, "--accelerator", "cpu"), ready, ra / "model" / "training.json")
    _run(_cli("train", sa, "--out", ra, "--accelerator", "cpu"))
    _run(_cli("train", sb, "--out", rb, "--accelerator", "cpu"))
    ha = json.loads((ra / "model" / "training.json").read_text())["validation_history"]
    hb = json.loads((rb / "model" / "training.json").read_text())["validation_history"]
    assert ha["epoch"] == hb["epoch"] == list(range(epochs))
    np.testing.assert_allclose(ha["val_loss"], hb["val_loss"], rtol=1e-6)
    wa = torch.load(ra / "model" / "model.pt", weights_only=True)
    wb = torch.load(rb / "model" / "model.pt", weights_only=True)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-6, atol=1e-7, msg=k)


def _sim_run(tmp_path, name, n_steps):
    from test_simulation import _topology

    from cgexplain.model.potential import save_model

    sysdir = tmp_path / f"sys_{name}"
    sysdir.mkdir()
    (sysdir / "system.yaml").write_text(
        "name: tiny\nanalysis: {shell_cutoff: 3.0}\n"
        f"simulation: {{temperature: 300.0, timestep: 0.002, n_steps: {n_steps}, save_interval: 5, checkpoint_every: 2, skin: 0.0, "
        "start_frame: 0}\nprofiles: {quick: {}}\n"
    )
    run = tmp_path / f"run_{name}"
    (run / "cg").mkdir(parents=True)
    traj = harmonic_frames(4, 16, 7.0, seed=0, mass=18.0)
    traj.save(run / "cg" / "mapped.npz")
    top = _topology(tmp_path / "cg_top", traj.positions[0], 7.0) if (tmp_path / "cg_top").mkdir() is None else None
    (run / "cg" / "topology.pdb").write_bytes(top.read_bytes())
    m = random_painn(F=8, L=2, cutoff=3.0, seed=1, dtype=torch.float32, scale=0.01)
    save_model(m, {"representation": "painn", "n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0}, run / "model")
    return sysdir, run


def test_simulation_resumes_after_sigkill(tmp_path):
    """CG Langevin, 3,000 steps with a checkpoint every 10 steps, killed after its first
    checkpoint; the resumed trajectory equals an uninterrupted run's (float32 round-off)."""
    import MDAnalysis as mda

    sa, ra = _sim_run(tmp_path, "killed", 3000)
    ckpt = ra / "simulation" / "checkpoint.npz"
    _kill_when(_cli("simulate", sa, "--out", ra), ckpt.exists, ra / "simulation" / "simulation.json")
    _run(_cli("simulate", sa, "--out", ra))
    sb, rb = _sim_run(tmp_path / "b", "whole", 3000) if (tmp_path / "b").mkdir() is None else None
    _run(_cli("simulate", sb, "--out", rb))
    xa = mda.Universe(str(ra / "cg" / "topology.pdb"), str(ra / "simulation" / "trajectory.dcd")).trajectory.timeseries(order="fac")
    xb = mda.Universe(str(rb / "cg" / "topology.pdb"), str(rb / "simulation" / "trajectory.dcd")).trajectory.timeseries(order="fac")
    assert xa.shape == xb.shape == (600, 16, 3)
    np.testing.assert_allclose(xa, xb, atol=1e-3)


def test_explanation_resumes_after_sigkill(tmp_path):
    """`cgexplain explain MODEL TRAJ` over 40 frames, killed after its third frame file; the
    rerun computes only the missing frames and its statistics equal an uninterrupted run's."""
    from cgexplain.model.potential import save_model

    m = random_painn(F=8, L=3, cutoff=3.0, seed=3, dtype=torch.float32)
    save_model(m, {"representation": "painn", "n_atom_basis": 8, "n_interactions": 3, "cutoff": 3.0}, tmp_path / "model")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "traj.npz",
        positions=rng.uniform(0, 7.0, (40, 24, 3)),
        cells=np.repeat(np.eye(3)[None] * 7.0, 40, axis=0),
        bead_types=np.ones(24, int),
    )
    args = ("--shell", "3.0", "--r-range", "2", "6", "8")
    a, b = tmp_path / "killed", tmp_path / "whole"
    _kill_when(_cli("explain", tmp_path / "model", tmp_path / "traj.npz", "--out", a, *args), (a / "frame_0002.npz").exists, a / "lrp.json")
    n_before = len(list(a.glob("frame_*.npz")))
    assert n_before < 40
    _run(_cli("explain", tmp_path / "model", tmp_path / "traj.npz", "--out", a, *args))
    _run(_cli("explain", tmp_path / "model", tmp_path / "traj.npz", "--out", b, *args))
    sa, sb = np.load(a / "nbody_statistics.npz"), np.load(b / "nbody_statistics.npz")
    for k in sa.files:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-10, atol=1e-12, err_msg=k)
