"""The pipeline: reference -> map -> train -> simulate -> analyse -> explain.

Each stage is a function ``stage(cfg, run, progress=True) -> dict`` that prepares its folder of
the :class:`~cgexplain.workflow.run.RunFolder` (input hash, reuse, sibling copy), asks the run's
kind of system (:func:`cgexplain.workflow.kinds.kind_for`) for the parts that differ, and
returns its summary. A rerun with the same inputs reuses the finished outputs or resumes a
partial stage; a rerun with changed inputs starts that stage afresh.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from cgexplain.diagnostics import (
    OMEGA_DT_BOUND,
    check_length_scale,
    check_timestep,
    choose_timestep,
    net_force_torque_floor,
    prior_force_error,
    stiffest_prior_frequency,
)
from cgexplain.distributed import is_main_process, wait_for
from cgexplain.fileio import read_json, write_json
from cgexplain.mapping.maps import MappedTrajectory, MappingError
from cgexplain.md.langevin import SimSettings, SimulationError, run_simulation
from cgexplain.model.potential import DEFAULT_HPARAMS, load_model, prior_only_model
from cgexplain.model.priors import prior_forces
from cgexplain.model.training import TrainSettings, train
from cgexplain.workflow.kinds import kind_for
from cgexplain.workflow.kinds.base import held_in
from cgexplain.workflow.run import STAGES as STAGE_NAMES
from cgexplain.workflow.run import RunFolder
from cgexplain.workflow.sources import source_for

__all__ = ["STAGES", "stage_reference", "stage_map", "stage_train", "stage_simulate", "stage_analyse", "stage_explain", "run_all"]


def _run(run: RunFolder | str | Path) -> RunFolder:
    return run if isinstance(run, RunFolder) else RunFolder(run)


def stage_reference(cfg: dict, run: RunFolder | str | Path, progress: bool = True) -> dict:
    """Atomistic reference with forces and its check; writes ``reference/``."""

    run = _run(run)
    run.prepare(cfg, "reference")
    return source_for(cfg).reference(cfg, run, kind_for(cfg), progress)


def stage_map(cfg: dict, run: RunFolder | str | Path, progress: bool = True) -> dict:
    """Map the reference to beads (or take data already mapped); writes ``cg/`` (mapped.npz,
    topology.pdb, dataset.db, mapping.json). The run's source (:mod:`cgexplain.workflow.sources`)
    says where the frames come from."""

    run = _run(run)
    run.prepare(cfg, "map")
    if run.is_done("map"):
        return read_json(run.mapping_json)
    res = source_for(cfg).map(cfg, run, kind_for(cfg), progress)
    t = MappedTrajectory.load(run.mapped)
    try:
        res["length_scale"] = _check_mapped(cfg, run, t, res)
    except MappingError:
        run.mapped.unlink(missing_ok=True)  # no mapped frames of a failed map stage are left
        raise
    res["diagnostics"] = {"unfittable_force_floor": _force_floor(t)}
    write_json(run.mapping_json, res)  # the done file, written last
    return res


def _data_name(cfg: dict, run: RunFolder) -> str:
    """The user's name for the data a run maps (file and declared length unit), for messages."""
    rc = cfg["reference"]
    src = rc.get("source") or "openmm"
    files = {"arrays": rc.get("positions"), "files": ", ".join(rc.get("trajectories") or []), "mdcath": rc.get("file")}.get(src)
    unit = rc.get("length_unit")
    return f"{files or run.reference_trajectory}" + (f" (reference.length_unit: {unit})" if unit else "")


def _check_mapped(cfg: dict, run: RunFolder, t: MappedTrajectory, res: dict) -> dict:
    """The mapped frames ``t`` are enough to train on (>= 2) and their bead distances are those of
    molecules (:func:`cgexplain.diagnostics.check_length_scale`). Raises MappingError naming the data."""
    where = _data_name(cfg, run)
    if len(t.positions) < 2:
        raise MappingError(
            f"{where}: {len(t.positions)} frame after the selection; force matching needs at least 2 (training and validation frames, priors)"
        )
    if not cfg["mapping"].get("check_length_scale", True):
        return {"checked": False}
    try:
        return check_length_scale(t.positions, t.cells, res.get("cg_bonds"), where=where)
    except ValueError as e:
        raise MappingError(str(e)) from None


def _force_floor(t: MappedTrajectory) -> dict:
    """The net force and torque per mapped frame that no conservative, translation- and
    rotation-invariant model can fit, as a force RMSE (:func:`cgexplain.diagnostics.net_force_torque_floor`);
    torque only without a box."""
    periodic = bool(np.abs(t.cells).sum() > 0)
    d = net_force_torque_floor(None if periodic else t.positions.astype(np.float64), t.forces.astype(np.float64), t.bead_masses, periodic=periodic)
    keys = (
        "floor_rmse",
        "floor_rmse_net_force",
        "floor_rmse_net_torque",
        "zero_model_rmse",
        "floor_fraction_of_zero_mse",
        "net_force_mean",
        "net_torque_mean",
    )
    out: dict = {k: (None if d.get(k) is None else float(d[k])) for k in keys}
    out["periodic"] = periodic
    out["note"] = "a lower bound on the force RMSE (kcal/mol/Å) of any conservative, translation- and rotation-invariant CG model of these data"
    return out


def stage_train(cfg: dict, run: RunFolder | str | Path, progress: bool = True) -> dict:
    """Force-matching training; writes ``model/`` (model.pt, model.json, training.json, checkpoints).

    Reads ``cg/mapped.npz`` (``training.data_path: cached``, the default) or ``cg/dataset.db``
    (``schnetpack``). A kind with priors (proteins) fits them first; the network learns the
    residual. Under DDP every process calls this; only global rank 0 writes the results."""

    run = _run(run)
    run.prepare(cfg, "train")
    hp = {**DEFAULT_HPARAMS, **cfg["model"]}
    table = read_json(run.mapping_json)["type_table"]
    settings = TrainSettings.from_dict(cfg["training"])
    priors = kind_for(cfg).priors(cfg, run)
    if priors is not None:
        hp["priors"] = priors
    data = run.mapped if settings.data_path == "cached" else run.dataset
    res = train(data, run.model, hp, settings, extra_meta={"type_table": table}, progress=progress, frames=held_in(cfg, run))
    if priors is not None and "prior_only" not in res:
        res["prior_only"] = _prior_only_error(run, priors)
        if (run.model / "training.json").exists():
            write_json(run.model / "training.json", {**read_json(run.model / "training.json"), "prior_only": res["prior_only"]})
    return res


def _prior_only_error(run: RunFolder, priors: dict) -> dict:
    """The force error of the prior alone against the mapped forces of the validation frames,
    beside the model's (:func:`cgexplain.diagnostics.prior_force_error`): what the network adds."""
    t = MappedTrajectory.load(run.mapped)
    split = run.model / "split.npz"
    idx = np.load(split)["val"] if split.exists() and "val" in np.load(split) else np.arange(len(t.positions))
    idx = idx[np.linspace(0, len(idx) - 1, min(len(idx), 500)).round().astype(int)]
    d = prior_force_error(t.forces[idx].astype(np.float64), prior_forces(priors, t.positions[idx].astype(np.float64)))
    return {k: float(d[k]) for k in ("force_rmse", "force_mae", "zero_model_rmse", "mse_fraction_removed")} | {"n_frames": int(len(idx))}


def stage_simulate(cfg: dict, run: RunFolder | str | Path, progress: bool = True) -> dict:
    """CG Langevin simulation from mapped reference frames; writes ``simulation/``.

    The start frames are ``simulation.start_frames`` if given, else the kind's choice
    (:meth:`~cgexplain.workflow.kinds.base.Kind.start_frames`). Without ``simulation.timestep``
    the step is chosen from the prior's stiffest mode (:func:`cgexplain.diagnostics.choose_timestep`);
    a step set above the bound is kept, with a warning recorded in ``timestep_check``. A model with
    a prior is also simulated without its network (the prior-only control, same settings and start
    frames, ``simulation.prior_replicas`` replicas) into ``simulation/prior_only``, so the analyse
    stage can tell whether the network improves on its prior. Simulations the kind adds (a
    mutant's) run after these, into sub-folders."""

    run = _run(run)
    run.prepare(cfg, "simulate")
    kind = kind_for(cfg)
    model, meta = load_model(run.model)
    traj = MappedTrajectory.load(run.mapped)
    s = SimSettings.from_dict(cfg["simulation"])
    step_check = _timestep_check(meta, traj, s.timestep)
    if s.timestep is None:
        s = dataclasses.replace(s, timestep=step_check["timestep_ps"] if step_check else choose_timestep(None))
    nf = len(traj.positions)
    ks = list(s.start_frames) if s.start_frames is not None else kind.start_frames(cfg, run, s.n_replicas, s.start_frame, nf)
    if len(ks) != s.n_replicas or any(not -nf <= k < nf for k in ks):
        raise ValueError(f"simulation.start_frames {ks}: need {s.n_replicas} frame indices within the {nf} reference frames")
    if run.is_done("simulate"):  # the main simulation finished: only the control and the kind's extra ones may be left
        res = read_json(run.done_file("simulate"))
    else:
        res = run_simulation(
            model, meta, run.cg_topology, traj.positions[ks], traj.bead_types, traj.bead_masses, traj.cells[ks], s, run.simulation, progress=progress
        )
    res["timestep_ps"] = float(s.timestep or 0.0)  # set above
    res["timestep_chosen"] = cfg["simulation"].get("timestep") is None
    if step_check is not None:
        res["timestep_check"] = step_check
    res["prior_only"] = _prior_only_simulation(model, meta, run, traj, ks, s, progress)
    # the kind's extra simulations (a mutant's) run with the chosen step
    cfg_s = {**cfg, "simulation": {**cfg["simulation"], "timestep": s.timestep}}
    extra = kind.extra_simulations(cfg_s, run, progress)
    return {**res, **({"extra_simulations": extra} if extra else {})}


def _prior_only_simulation(model, meta: dict, run: RunFolder, traj, ks: list[int], s: SimSettings, progress: bool) -> dict:
    """The prior-only control (:func:`cgexplain.model.potential.prior_only_model`): the first
    ``s.prior_replicas`` (default all) of the main simulation's start frames, same settings, into
    ``run.prior_simulation``; reused when finished. Returns its summary, or {"skipped": reason}."""
    if (meta.get("hparams") or {}).get("priors") is None:
        return {"skipped": "the model has no prior: there is no prior-only control to simulate"}
    n = s.n_replicas if s.prior_replicas is None else min(int(s.prior_replicas), s.n_replicas)
    if n == 0:
        return {"skipped": "simulation.prior_replicas is 0"}
    if run.prior_simulation_json.exists():
        return read_json(run.prior_simulation_json)
    sp = dataclasses.replace(s, n_replicas=n, start_frames=None)
    k = list(ks)[:n]
    failed = run.prior_simulation / "failed.json"
    failed.unlink(missing_ok=True)
    try:
        return run_simulation(
            prior_only_model(model),
            meta,
            run.cg_topology,
            traj.positions[k],
            traj.bead_types,
            traj.bead_masses,
            traj.cells[k],
            sp,
            run.prior_simulation,
            progress=progress,
        )
    except SimulationError as e:  # the prior alone may be unstable where the model is not: recorded, reported by the analysis
        print(f"cgexplain: warning: the prior-only control stopped: {e}")
        run.prior_simulation.mkdir(parents=True, exist_ok=True)
        write_json(failed, {"error": str(e)})
        return {"failed": str(e)}


def _timestep_check(meta: dict, traj, timestep: float | None) -> dict | None:
    """Warn (and report) when the time step is long for the stiffest prior term: ω from the
    fitted force constants and bead masses (:func:`cgexplain.diagnostics.stiffest_prior_frequency`),
    bound ω·Δt <= :data:`cgexplain.diagnostics.OMEGA_DT_BOUND`. ``timestep`` None: the step is
    chosen within the bound (:func:`cgexplain.diagnostics.choose_timestep`) and reported as
    ``timestep_ps``. None for a model without priors."""

    priors = (meta.get("hparams") or {}).get("priors")
    if not priors:
        return None
    w = stiffest_prior_frequency(priors, traj.bead_masses)
    chosen = timestep is None
    dt = choose_timestep(w["omega_max"]) if timestep is None else float(timestep)
    ok, msg = check_timestep(w["omega_max"], dt)
    if not ok:
        print(f"cgexplain: warning: simulation.timestep: {msg}")
    return {
        "omega_max_per_ps": float(w["omega_max"]),
        "stiffest_term": {"kind": w["term"]["kind"], "index": [int(i) for i in w["term"]["index"]]} if w.get("term") else None,
        "timestep_ps": dt,
        "chosen": chosen,
        "omega_dt": float(w["omega_max"] * dt),
        "bound": OMEGA_DT_BOUND,
        "ok": bool(ok),
        "message": msg,
    }


def stage_analyse(cfg: dict, run: RunFolder | str | Path, progress: bool = True) -> dict:
    """The CG ensemble against the mapped reference (the kind's observables); writes ``analysis/`` and figures."""
    run = _run(run)
    run.prepare(cfg, "analyse")
    if run.is_done("analyse"):
        done = read_json(run.done_file("analyse"))
        # an analysis written before the prior-only control existed is redone once the control has run
        if not (run.prior_simulation_json.exists() and "observables" not in done):
            return done
    return kind_for(cfg).analyse(cfg, run, progress)


def stage_explain(cfg: dict, run: RunFolder | str | Path, progress: bool = True) -> dict:
    """GNN-LRP walk relevances on CG frames and their decompositions; writes ``lrp/`` and figures.

    ``lrp.workers`` (default 1) processes share the frames (``lrp.backend``: 'multiprocessing'
    or 'dask'), each frame's results written to its own file so that a killed run resumes."""
    run = _run(run)
    run.prepare(cfg, "explain")
    if run.is_done("explain"):
        return read_json(run.done_file("explain"))
    return kind_for(cfg).explain(cfg, run, progress)


STAGES = {
    "reference": stage_reference,
    "map": stage_map,
    "train": stage_train,
    "simulate": stage_simulate,
    "analyse": stage_analyse,
    "explain": stage_explain,
}
assert tuple(STAGES) == STAGE_NAMES


def run_all(cfg: dict, run: RunFolder | str | Path, progress: bool = True, stages=None) -> dict:
    """Run the stages in order (all by default), timing each; writes ``summary.json``.

    ``wall_time_s`` keeps, per stage, the time of the run that computed it; stages reused in this
    run are listed in ``reused_stages``. In a process of rank > 0 started by Lightning's DDP
    launcher only the train stage runs there; only rank 0 writes ``summary.json``."""

    run = _run(run)
    if not is_main_process():
        return _run_as_other_rank(cfg, run, stages or list(STAGES), wait_for)
    run.ensure_writable()
    summary = read_json(run.summary_json) if run.summary_json.exists() else {}
    summary.update({"system": cfg["name"], "profile": cfg["profile"]})
    summary.setdefault("wall_time_s", {})
    summary["reused_stages"] = []
    for name in stages or STAGES:
        done = run.done_file(name)
        before = done.stat().st_mtime_ns if done.exists() else None
        t0 = time.perf_counter()
        res = STAGES[name](cfg, run, progress=progress)
        dt = time.perf_counter() - t0
        summary[name] = res
        if name == "simulate" and not (res.get("timestep_check") or {}).get("ok", True):
            summary.setdefault("warnings", {})["simulation.timestep"] = res["timestep_check"]["message"]
        if before is not None and done.exists() and done.stat().st_mtime_ns == before:
            summary["reused_stages"].append(name)  # keep the wall time of the run that computed it
        else:
            summary["wall_time_s"][name] = dt
        write_json(run.summary_json, summary)
    return summary


def _run_as_other_rank(cfg: dict, run: RunFolder, stages, wait_for) -> dict:
    """A process that Lightning's DDP launcher started (rank > 0): wait for rank 0 to finish each
    stage before training, join the train stage, and stop. Writes no summary; returns
    {stage: result} of the stages it joined."""
    out = {}
    for name in stages:
        if name == "train":
            out[name] = STAGES[name](cfg, run, progress=False)
        elif list(STAGES).index(name) > list(STAGES).index("train"):
            break
        else:
            done = run.done_file(name)
            wait_for(done.exists, f"{done} (stage {name}, run by rank 0)", poll_s=5.0)
    return out
