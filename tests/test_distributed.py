"""Several processes: DDP training (2 CPU processes, gloo) against one process, and explain over
local workers or launcher ranks against one process."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from cgexplain.distributed import Ranks, is_main_process, launcher_ranks
from conftest import harmonic_frames


def _run(cmd, env=None, timeout=240, cwd=None):
    """Run ``cmd`` in its own process group; kill the whole group (DDP children too) on timeout."""
    p = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        pytest.fail(f"timed out after {timeout} s: {' '.join(map(str, cmd))}\n{out[-3000:]}")
    return p.returncode, out


def _tiny_system(tmp_path, name, batch_size, n_frames=16, n=16, L=7.0):
    """A system folder (system.yaml) and a run folder holding cg/mapped.npz + cg/mapping.json of
    toy frames with harmonic pair forces."""
    sysdir = tmp_path / f"sys_{name}"
    sysdir.mkdir()
    (sysdir / "system.yaml").write_text(
        "name: tiny\nmodel: {representation: painn, n_atom_basis: 8, n_interactions: 2, cutoff: 3.0, n_rbf: 8}\nanalysis: {shell_cutoff: 3.0}\n"
        f"training: {{epochs: 3, batch_size: {batch_size}, lr: 0.005, val_fraction: 0.25, seed: 3}}\nprofiles: {{quick: {{}}}}\n"
    )
    cg = tmp_path / f"run_{name}" / "cg"
    cg.mkdir(parents=True)
    harmonic_frames(n_frames, n, L, seed=0, mass=18.0).save(cg / "mapped.npz")
    (cg / "mapping.json").write_text(json.dumps({"type_table": {"W": 1}}))
    return sysdir, cg.parent


def test_ddp_two_processes_match_one_process(tmp_path):
    """12 training frames, 4 validation frames, 3 epochs: one process with batch 4 against two DDP
    processes (gloo) with batch 2 each. Each optimizer step sees the same 4 frames, the gradient
    mean equals the one-process gradient, and the validation sums are all-reduced, so the
    per-epoch validation loss agrees to float32 round-off (tolerance rel 1e-4; measured ~1e-8)."""
    env = {"OMP_NUM_THREADS": "1"}  # warnings shown: the noise check below sees what a user sees
    runs = {}
    for name, batch, extra in (("one", 4, []), ("two", 2, ["--devices", "2", "--strategy", "ddp"])):
        sysdir, run = _tiny_system(tmp_path, name, batch)
        rc, out = _run(
            [sys.executable, "-m", "cgexplain", "train", str(sysdir), "--out", str(run), "--no-progress", "--accelerator", "cpu", *extra],
            env=env,
            timeout=180,
        )
        assert rc == 0, out[-3000:]
        # Lightning's noise is silenced at the call (advertisement, info lines, its pytree deprecation)
        assert "litlogger" not in out and "LeafSpec" not in out and "GPU available" not in out, out[-3000:]
        runs[name] = json.loads((run / "model" / "training.json").read_text())
    one, two = runs["one"], runs["two"]
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["n_train_frames"] == two["n_train_frames"] == 12 and one["n_val_frames"] == 4
    h1, h2 = one["validation_history"], two["validation_history"]
    assert h1["epoch"] == h2["epoch"] == [0, 1, 2]
    np.testing.assert_allclose(h2["val_loss"], h1["val_loss"], rtol=1e-4)
    np.testing.assert_allclose(h2["val_force_mae"], h1["val_force_mae"], rtol=1e-4)
    assert abs(h1["val_loss"][2] - h1["val_loss"][0]) > 1e-2 * h1["val_loss"][0]  # it really trained
    # the reported validation (best weights, every validation frame) is the last epoch's mean
    np.testing.assert_allclose(two["validation"]["force_rmse"] ** 2, min(h2["val_loss"]), rtol=1e-5)
    np.testing.assert_allclose(two["validation"]["force_mae"], one["validation"]["force_mae"], rtol=1e-4)
    assert not (tmp_path / "run_two" / "summary.json").read_text().count("global_rank")  # rank 1 wrote no summary


def test_launcher_ranks_from_environment():
    assert launcher_ranks({}) is None and is_main_process({})
    assert launcher_ranks({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Ranks(3, 4, 1)
    assert launcher_ranks({"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1"}) == Ranks(5, 8, 1)
    assert launcher_ranks({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}) is None  # a batch script outside srun
    assert launcher_ranks({"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}) == Ranks(1, 2, 1)
    # Lightning's DDP launcher (LOCAL_RANK, NODE_RANK, WORLD_SIZE; no RANK): not a launcher rank,
    # but its extra processes are not the main process
    lightning_child = {"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}
    assert launcher_ranks(lightning_child) is None and not is_main_process(lightning_child)
    assert is_main_process({"LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "2"})
    assert not is_main_process({"RANK": "1", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="RANK=2 outside 0..1"):
        launcher_ranks({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="must be integers"):
        launcher_ranks({"RANK": "a", "WORLD_SIZE": "2"})


@pytest.fixture
def model_and_traj(tmp_path):
    from cgexplain.model.potential import save_model
    from conftest import random_painn

    m = random_painn(F=8, L=2, cutoff=3.0, seed=3, dtype=torch.float32)
    save_model(m, {"representation": "painn", "n_atom_basis": 8, "n_interactions": 2, "cutoff": 3.0}, tmp_path / "model")
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 7.0, (5, 24, 3))
    cells = np.repeat(np.eye(3)[None] * 7.0, 5, axis=0)
    np.savez(tmp_path / "traj.npz", positions=pos, cells=cells, bead_types=np.ones(24, int))
    return tmp_path / "model", tmp_path / "traj.npz"


def _same_results(a, b):
    sa, sb = np.load(a / "nbody_statistics.npz"), np.load(b / "nbody_statistics.npz")
    assert set(sa.files) == set(sb.files)
    for k in sa.files:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-10, atol=1e-12, err_msg=k)
    ja, jb = json.loads((a / "lrp.json").read_text()), json.loads((b / "lrp.json").read_text())
    for k in (
        "relevance_by_body_order_kcal_mol_mean",
        "abs_share_by_body_order_ge2",
        "signed_share_by_body_order_ge2",
        "conservation_mean_kcal_mol",
        "relevance_budget_kcal_mol_mean",
    ):
        for q in ja[k]:
            np.testing.assert_allclose(jb[k][q], ja[k][q], rtol=1e-10, atol=1e-12, err_msg=f"{k}/{q}")
    assert ja["n_frames"] == jb["n_frames"] and ja["walks_per_frame_mean"] == jb["walks_per_frame_mean"]
    wa, wb = np.load(a / "walks_frame0.npz"), np.load(b / "walks_frame0.npz")
    assert np.array_equal(wa["walks"], wb["walks"]) and np.array_equal(wa["relevance"], wb["relevance"])


@pytest.mark.parametrize("backend", ["multiprocessing", "dask"])
def test_explain_two_workers_equal_one_worker(model_and_traj, tmp_path, backend):
    """The same frames explained by 1 process and by 2 workers of MDAnalysis's parallel backends
    (a spawned multiprocessing pool; dask with processes): statistics and lrp.json agree to 1e-10,
    and every frame file is written once."""
    from cgexplain.lrp.explain import explain_trajectory

    if backend == "dask":
        pytest.importorskip("dask")
    model_dir, traj = model_and_traj
    kw = dict(frames="0:5", shell=3.0, r_edges=(2.0, 6.0, 8), progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker below (2 cores / 2 workers)
    try:
        explain_trajectory(model_dir, traj, tmp_path / "one", **kw)
    finally:
        torch.set_num_threads(threads)
    explain_trajectory(model_dir, traj, tmp_path / "workers", workers=2, backend=backend, **kw)
    assert sorted(p.name for p in (tmp_path / "workers").glob("frame_*.npz")) == [f"frame_{k:04d}.npz" for k in range(5)]
    _same_results(tmp_path / "one", tmp_path / "workers")


def test_explain_spread_errors(model_and_traj, tmp_path):
    from cgexplain.lrp.frames import FrameExplainer
    from cgexplain.lrp.sources import ArrayFrames
    from cgexplain.lrp.statistics import FluidFrameTask, explain_frames
    from cgexplain.model.potential import load_model

    model, _ = load_model(model_and_traj[0])
    pos = np.zeros((2, 3, 3))
    cells = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="needs the model folder"):
        explain_frames(model, pos, cells, np.ones(3, int), tmp_path / "x", {}, 3.0, workers=2)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        explain_frames(model, pos, cells, np.ones(3, int), tmp_path / "x", {}, 3.0, workers=0)
    ex = FrameExplainer(
        ArrayFrames(pos, cells, np.ones(3, int)), FluidFrameTask({}, 3.0, np.ones(3, int)), tmp_path / "y", model_dir=model_and_traj[0]
    )
    with pytest.raises(ValueError, match="backend 'threads'"):
        ex.run(backend="threads", n_workers=2)
    with pytest.raises(ValueError, match="exactly one of model_dir and model"):
        FrameExplainer(ArrayFrames(pos, cells, np.ones(3, int)), FluidFrameTask({}, 3.0, np.ones(3, int)), tmp_path / "y")


def test_explain_warns_when_r_edges_stop_short_of_the_cutoff(model_and_traj, tmp_path):
    """The 2-body bins must reach the model cutoff (3 Å here), whether given a model or its folder."""
    import warnings

    from cgexplain.lrp.statistics import explain_frames
    from cgexplain.model.potential import load_model

    with np.load(model_and_traj[1]) as z:
        pos, cells, types = z["positions"][:1], z["cells"][:1], z["bead_types"]
    model, _ = load_model(model_and_traj[0])
    short, full = {"r_edges": [1.0, 2.5, 5], "save_walks": "none"}, {"r_edges": [1.0, 3.0, 5], "save_walks": "none"}
    with pytest.warns(UserWarning, match="end at 2.5 Å, below the model cutoff 3 Å"):
        explain_frames(model, pos, cells, types, tmp_path / "a", short, 3.0, progress=False)
    with pytest.warns(UserWarning, match="end at 2.5 Å, below the model cutoff 3 Å"):
        explain_frames(model_and_traj[0], pos, cells, types, tmp_path / "b", short, 3.0, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explain_frames(model, pos, cells, types, tmp_path / "c", full, 3.0, progress=False)
    assert not [w for w in caught if "model cutoff" in str(w.message)]


@pytest.mark.parametrize(
    "env,joined",
    [
        ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, ["train"]),  # started by Lightning's DDP launcher
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, ["train"]),  # torchrun / srun rank: Lightning takes its ranks for DDP
    ],
)
def test_run_all_in_a_rank_above_zero(tmp_path, monkeypatch, env, joined):
    """A rank > 0 of `cgexplain run` waits for rank 0's single-process stages (their done files),
    joins training, stops after it, and writes no summary.json."""
    from cgexplain.workflow import stages as pipeline
    from cgexplain.workflow.run import RunFolder

    calls = []
    monkeypatch.setattr(pipeline, "STAGES", {k: (lambda cfg, run, progress=True, k=k: calls.append(k) or {k: 1}) for k in pipeline.STAGES})
    for name in pipeline.STAGES:
        f = RunFolder(tmp_path).done_file(name)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = pipeline.run_all({"name": "x", "profile": "quick"}, tmp_path, progress=False)
    assert calls == joined and sorted(out) == sorted(joined)
    assert not (tmp_path / "summary.json").exists()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "0")
    calls.clear()
    pipeline.run_all({"name": "x", "profile": "quick"}, tmp_path, progress=False)
    assert calls == list(pipeline.STAGES) and (tmp_path / "summary.json").exists()
