"""The pipeline: reference -> map -> train -> simulate -> analyse -> explain.

Each stage is a function ``stage(cfg, run_dir, progress=True) -> dict`` that writes one
sub-folder of the run folder and returns its summary. A stage records the hash of its inputs
(its config section and the hashes of the stages before it) in ``inputs.json``; a rerun with the
same inputs reuses the finished outputs or resumes a partial stage, and a rerun with changed
inputs starts that stage afresh.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from cgexplain.config import section_hash
from cgexplain.fileio import read_json, save_npz, write_json

__all__ = ["STAGES", "stage_reference", "stage_map", "stage_train", "stage_simulate", "stage_analyse", "stage_explain", "run_all", "default_run_dir"]

_DEPS = {
    "reference": ("reference",),
    "cg": ("reference", "mapping"),
    "model": ("reference", "mapping", "priors", "model", "training"),
    "simulation": ("reference", "mapping", "priors", "model", "training", "simulation"),
    "analysis": ("reference", "mapping", "priors", "model", "training", "simulation", "analysis"),
    "lrp": ("reference", "mapping", "priors", "model", "training", "simulation", "analysis", "lrp"),
}


def default_run_dir(cfg: dict) -> Path:
    """``runs/<system>-<profile>`` under the current directory, with ``-<arch>`` for an
    architecture other than PaiNN."""
    arch = cfg.get("arch", "painn")
    return Path("runs") / (f"{cfg['name']}-{cfg['profile']}" + ("" if arch == "painn" else f"-{arch}"))


#: folders a run may copy from a sibling run folder with the same inputs (e.g. the PaiNN run of
#: the same system and profile, for an SO3net run): they do not depend on the architecture
_SHAREABLE = {"reference": "reference/reference.json", "cg": "cg/mapping.json"}


def _copy_from_sibling(run_dir: Path, folder: str, h: str) -> bool:
    """Copy a finished ``folder`` with input hash ``h`` from another run folder next to ``run_dir``."""
    run_dir = Path(run_dir).resolve()
    if folder not in _SHAREABLE or not run_dir.parent.exists():
        return False
    for other in sorted(run_dir.parent.iterdir()):
        src = other / folder
        if other == run_dir or not (other / _SHAREABLE[folder]).exists() or not (src / "inputs.json").exists():
            continue
        if read_json(src / "inputs.json").get("hash") == h:
            tmp = run_dir / f".{folder}.copying"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            tmp.rename(run_dir / folder)
            print(f"cgexplain: {folder}/ reused from {other} (same inputs)")
            return True
    return False


#: keys that say how a stage computes, not what: they do not enter the input hashes, so a model
#: trained on 4 GPUs is reused by a rerun on a laptop (training.json records the world size)
_EXECUTION_KEYS = {"training": ("accelerator", "devices", "num_nodes", "strategy", "data_path"), "simulation": ("device",),
                   "lrp": ("workers", "device")}


def _hashed_section(cfg, s):
    drop = _EXECUTION_KEYS.get(s, ())
    return {k: v for k, v in cfg[s].items() if k not in drop}


def _prepare(cfg, run_dir, folder) -> Path:
    from cgexplain.distributed import is_main_process, wait_for

    d = Path(run_dir) / folder
    # an empty priors section (the fluids) is left out, so their hashes did not change when it was added
    h = section_hash(*[_hashed_section(cfg, s) for s in _DEPS[folder] if s != "priors" or cfg.get("priors")])
    marker = d / "inputs.json"
    if not is_main_process():  # rank 0 clears and marks the folder; the other ranks wait for it
        wait_for(lambda: marker.exists() and read_json(marker).get("hash") == h, f"{marker} (written by rank 0)")
        return d
    if d.exists() and marker.exists() and read_json(marker).get("hash") != h:
        shutil.rmtree(d)
    if not d.exists():
        _copy_from_sibling(Path(run_dir), folder, h)
    d.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        write_json(marker, {"hash": h, "sections": {s: cfg[s] for s in _DEPS[folder]}})
    return d


def _figures(run_dir) -> Path:
    d = Path(run_dir) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------- reference
def stage_reference(cfg: dict, run_dir, progress: bool = True) -> dict:
    """Atomistic reference MD (OpenMM) and its RDF sanity check; writes ``reference/``."""
    from cgexplain.analysis.structure import first_peak, rdf
    from cgexplain.plots.core import plot_rdf
    from cgexplain.reference.fluids import ReferenceSettings, read_reference, run_reference

    d = _prepare(cfg, run_dir, "reference")
    if cfg.get("kind") == "protein":
        from cgexplain.workflow.kinds.protein import protein_reference

        return protein_reference(cfg, d, _figures(run_dir), progress)
    rc = dict(cfg["reference"])
    check = rc.pop("check", None)
    summary = run_reference(ReferenceSettings.from_dict(rc), d, progress=progress)
    if check and not (d / "check.json").exists():
        u = read_reference(d)
        sel = u.select_atoms(check["selection"])
        if sel.n_atoms == 0:
            raise ValueError(f"reference.check.selection {check['selection']!r} selects no atoms")
        pos = np.array([sel.positions for _ in u.trajectory])
        from MDAnalysis.lib.mdamath import triclinic_vectors

        cells = np.array([triclinic_vectors(ts.dimensions) for ts in u.trajectory])
        r, g = rdf(pos, cells, r_max=float(check.get("r_max", 9.0)), n_bins=int(check.get("n_bins", 180)))
        pk, h = first_peak(r, g)
        res = {"selection": check["selection"], "first_peak_A": pk, "first_peak_height": h, "passed": True}
        curves = {f"reference ({check['selection']})": g}
        if "peak_A" in check:
            lo, hi = check["peak_A"]
            hlo, hhi = check["height"]
            res.update(expected_peak_A=[lo, hi], expected_height=[hlo, hhi], passed=bool(lo <= pk <= hi and hlo <= h <= hhi))
        if "digitized" in check:
            rms, r_lo, r_hi, g_ref = _rdf_rms_against_digitized(r, g, Path(cfg["system_dir"]) / check["digitized"], check.get("rms_range_A", [3.0, 10.0]))
            curves["publication (digitised)"] = g_ref
            res.update(digitized=check["digitized"], rms_vs_digitized=rms, rms_range_A=[r_lo, r_hi], max_rms=float(check["max_rms"]),
                       passed=bool(res["passed"] and rms <= float(check["max_rms"])))
        if "density_g_cm3" in check:  # the NPT equilibrium density against a literature range
            lo, hi = check["density_g_cm3"]
            rho = summary.get("npt_mean_density_g_cm3")
            if rho is None:
                raise ValueError("reference.check.density_g_cm3 needs an NPT equilibration (reference.equilibration_npt > 0)")
            res.update(npt_mean_density_g_cm3=float(rho), expected_density_g_cm3=[lo, hi], passed=bool(res["passed"] and lo <= rho <= hi))
        save_npz(d / "check_rdf.npz", r=r, g=g)
        write_json(d / "check.json", res)
        plot_rdf(r, curves, _figures(run_dir) / "reference_rdf.png", title="Reference RDF check")
    if (d / "check.json").exists():
        summary = {**summary, "check": read_json(d / "check.json")}
        c = summary["check"]
        extra = f"; RMS vs digitised {c['rms_vs_digitized']:.3f} (max {c['max_rms']})" if "rms_vs_digitized" in c else ""
        if "npt_mean_density_g_cm3" in c:
            extra += f"; NPT density {c['npt_mean_density_g_cm3']:.3f} g/cm³ (expected {c['expected_density_g_cm3']})"
        print(f"reference RDF check ({c['selection']}): first peak {c['first_peak_A']:.3f} Å, height {c['first_peak_height']:.2f}{extra}: "
              f"{'PASS' if c['passed'] else 'FAIL'}")
    return summary


def _rdf_rms_against_digitized(r, g, path, r_range):
    """RMS of g - g_digitised over r_range (Å) where both exist. The file holds r (nm) and g with
    NaN where the figure has no curve. Returns (rms, r_lo, r_hi, g_digitised on r (NaN outside))."""
    if not Path(path).exists():
        raise FileNotFoundError(f"reference.check.digitized: {path} does not exist")
    z = np.load(path)
    rr, gg = 10.0 * z["r"], z["g"]
    ok = np.isfinite(gg)
    g_ref = np.interp(r, rr[ok], gg[ok], left=np.nan, right=np.nan)
    sel = (r >= r_range[0]) & (r <= r_range[1]) & np.isfinite(g_ref)
    if sel.sum() < 5:
        raise ValueError(f"reference.check: fewer than 5 RDF points in {r_range} Å overlap the digitised curve {path}")
    return float(np.sqrt(np.mean((g[sel] - g_ref[sel]) ** 2))), float(r[sel][0]), float(r[sel][-1]), g_ref


# ---------------------------------------------------------------- mapping
def stage_map(cfg: dict, run_dir, progress: bool = True) -> dict:
    """Map the reference to beads; writes ``cg/`` (mapped.npz, topology.pdb, dataset.db, mapping.json)."""
    from cgexplain.mapping.maps import load_universe, make_mapping, map_universe, write_cg_dataset, write_cg_topology

    d = _prepare(cfg, run_dir, "cg")
    if (d / "mapping.json").exists():
        return read_json(d / "mapping.json")
    t0 = time.perf_counter()
    ref = Path(run_dir) / "reference"
    mc = cfg["mapping"]
    u = load_universe(ref / "topology.pdb", ref / "trajectory.trr")
    for name, mass in (mc.get("masses") or {}).items():  # masses by atom name, for particles without an element (mW)
        sel = u.atoms[u.atoms.names == name]
        if len(sel) == 0:
            raise ValueError(f"mapping.masses: no atom named {name!r} in {ref / 'topology.pdb'}")
        sel.masses = float(mass)
    m = make_mapping(u, by=mc.get("by", "residue"), method=mc.get("method", "com"), atom_name=mc.get("atom_name"), bead_names=mc.get("bead_name"),
                     type_table=mc.get("type_table"), merge_caps=bool(mc.get("merge_caps", True)))
    traj = map_universe(u, m, progress=progress)
    traj.save(d / "mapped.npz")
    write_cg_topology(d / "topology.pdb", m, traj.positions[0], traj.cells[0])
    write_cg_dataset(d / "dataset.db", traj, progress=progress)
    res = {"n_beads": m.n_beads, "n_frames": int(len(traj.positions)), "type_table": m.type_table,
           "bead_mass_amu": float(m.bead_masses[0]), "method": mc.get("method", "com"),
           "mean_abs_force_kcal_mol_A": float(np.abs(traj.forces).mean()), "wall_time_s": time.perf_counter() - t0}
    write_json(d / "mapping.json", res)
    return res


# ---------------------------------------------------------------- training
def stage_train(cfg: dict, run_dir, progress: bool = True) -> dict:
    """Force-matching training; writes ``model/`` (model.pt, model.json, training.json, checkpoints).

    Reads ``cg/mapped.npz`` (``training.data_path: cached``, the default) or ``cg/dataset.db``
    (``schnetpack``). Under DDP every process calls this; only global rank 0 writes the results."""
    from cgexplain.model.potential import DEFAULT_HPARAMS
    from cgexplain.model.training import TrainSettings, train

    d = _prepare(cfg, run_dir, "model")
    cg = Path(run_dir) / "cg"
    hp = {**DEFAULT_HPARAMS, **cfg["model"]}
    table = read_json(cg / "mapping.json")["type_table"]
    settings = TrainSettings.from_dict(cfg["training"])
    if cfg.get("kind") == "protein":  # priors fitted to the mapped reference; the network learns the residual
        from cgexplain.workflow.kinds.protein import protein_priors

        hp["priors"] = protein_priors(cfg, Path(run_dir), d, _figures(run_dir))
    data = cg / ("mapped.npz" if settings.data_path == "cached" else "dataset.db")
    return train(data, d, hp, settings, extra_meta={"type_table": table}, progress=progress)


# ---------------------------------------------------------------- simulation
def stage_simulate(cfg: dict, run_dir, progress: bool = True) -> dict:
    """CG Langevin simulation from a mapped reference frame; writes ``simulation/``."""
    from cgexplain.mapping.maps import MappedTrajectory
    from cgexplain.model.potential import load_model
    from cgexplain.md.langevin import SimSettings, run_simulation

    d = _prepare(cfg, run_dir, "simulation")
    run = Path(run_dir)
    model, meta = load_model(run / "model")
    traj = MappedTrajectory.load(run / "cg" / "mapped.npz")
    s = SimSettings.from_dict(cfg["simulation"])
    nf = len(traj.positions)
    if cfg.get("kind") == "protein" and s.start_frames is None:
        from cgexplain.workflow.kinds.protein import protein_start_frames

        ks = protein_start_frames(run, s.n_replicas)
    elif s.n_replicas == 1:
        ks = [s.start_frame]
    elif s.start_frames is not None:
        ks = list(s.start_frames)
    else:  # spread over the reference so that the replicas start decorrelated
        ks = np.linspace(0, nf - 1, s.n_replicas).round().astype(int).tolist()
    if len(ks) != s.n_replicas or any(not -nf <= k < nf for k in ks):
        raise ValueError(f"simulation.start_frames {ks}: need {s.n_replicas} frame indices within the {nf} reference frames")
    return run_simulation(model, meta, run / "cg" / "topology.pdb", traj.positions[ks], traj.bead_types, traj.bead_masses,
                          traj.cells[ks], s, d, progress=progress)


def _cg_frames(run, lengths: bool = False):
    """CG frames of the simulation stage, all replicas concatenated: positions (F, n, 3) Å and
    cells (F, 3, 3) Å; with ``lengths`` also the number of frames of each replica."""
    import MDAnalysis as mda
    from MDAnalysis.lib.mdamath import triclinic_vectors

    from cgexplain.md.langevin import trajectory_paths

    sim = read_json(run / "simulation" / "simulation.json")
    pos, cells = [], []
    for path in trajectory_paths(run / "simulation", int(sim.get("n_replicas", 1))):
        u = mda.Universe(str(run / "cg" / "topology.pdb"), str(path))
        pos.append(u.trajectory.timeseries(order="fac").astype(np.float64))
        cells.append(np.array([triclinic_vectors(ts.dimensions) if ts.dimensions is not None else np.zeros((3, 3))  # no box: not periodic
                               for ts in u.trajectory]))
    if lengths:
        return np.concatenate(pos), np.concatenate(cells), [len(p) for p in pos]
    return np.concatenate(pos), np.concatenate(cells)


# ---------------------------------------------------------------- analysis
def stage_analyse(cfg: dict, run_dir, progress: bool = True) -> dict:
    """RDF and ADF of the CG simulation against the mapped reference; writes ``analysis/`` and figures."""
    from cgexplain.analysis.structure import adf, compare_structure, q_distribution, rdf
    from cgexplain.mapping.maps import MappedTrajectory
    from cgexplain.plots.core import plot_adf, plot_distribution, plot_rdf

    d = _prepare(cfg, run_dir, "analysis")
    if (d / "analysis.json").exists():
        return read_json(d / "analysis.json")
    run = Path(run_dir)
    if cfg.get("kind") == "protein":
        from cgexplain.workflow.kinds.protein import protein_analyse

        pos, _, lens = _cg_frames(run, lengths=True)
        return protein_analyse(cfg, run, d, _figures(run), (pos, lens))
    ac = cfg["analysis"]
    ref = MappedTrajectory.load(run / "cg" / "mapped.npz")
    cg_pos, cg_cells = _cg_frames(run)
    out = {}
    for name, (pos, cells) in {"reference": (ref.positions, ref.cells), "cg": (cg_pos, cg_cells)}.items():
        r, g = rdf(pos, cells, r_max=float(ac.get("rdf_r_max", 9.0)), n_bins=int(ac.get("rdf_bins", 180)))
        th, p, nn = adf(pos, cells, shell=float(ac["shell_cutoff"]), n_bins=int(ac.get("adf_bins", 90)))
        qx, qp, qmean = q_distribution(pos, cells)
        out[name] = {"r": r, "g": g, "theta": th, "p": p, "q": qx, "q_p": qp, "q_mean": qmean, "neighbours_in_shell": nn, "n_frames": len(pos)}
    cmp = compare_structure(out["reference"], out["cg"])
    from scipy.spatial.distance import jensenshannon

    cmp["q_mean_reference"], cmp["q_mean_cg"] = out["reference"]["q_mean"], out["cg"]["q_mean"]
    cmp["q_js_distance"] = float(jensenshannon(out["reference"]["q_p"], out["cg"]["q_p"], base=2))
    save_npz(d / "structure.npz", **{f"{k}_{q}": v for k, dd in out.items() for q, v in dd.items() if isinstance(v, np.ndarray)})
    fig = _figures(run)
    plot_rdf(out["reference"]["r"], {"mapped reference": out["reference"]["g"], "CG model": out["cg"]["g"]}, fig / "rdf.png",
             title=f"{cfg['name']}: bead RDF, CG vs reference")
    plot_adf(out["reference"]["theta"], {"mapped reference": out["reference"]["p"], "CG model": out["cg"]["p"]}, fig / "adf.png",
             title=f"{cfg['name']}: ADF (legs < {ac['shell_cutoff']} Å)")
    plot_distribution(out["reference"]["q"], {"mapped reference": out["reference"]["q_p"], "CG model": out["cg"]["q_p"]},
                      "tetrahedral order q", "p(q)", fig / "q.png", title=f"{cfg['name']}: tetrahedral order parameter")
    res = {**cmp, "shell_cutoff_A": float(ac["shell_cutoff"]),
           "neighbours_in_shell_reference": out["reference"]["neighbours_in_shell"], "neighbours_in_shell_cg": out["cg"]["neighbours_in_shell"],
           "n_frames_reference": out["reference"]["n_frames"], "n_frames_cg": out["cg"]["n_frames"]}
    write_json(d / "analysis.json", res)
    return res


# ---------------------------------------------------------------- explanation
def stage_explain(cfg: dict, run_dir, progress: bool = True) -> dict:
    """GNN-LRP walk relevances on CG frames, n-body sums and statistics; writes ``lrp/`` and figures.

    ``lrp.workers`` (default 1) local processes share the frames; under a launcher (torchrun,
    srun) each rank takes its share and rank 0 aggregates."""
    from cgexplain.distributed import launcher_ranks
    from cgexplain.lrp.statistics import explain_frames

    d = _prepare(cfg, run_dir, "lrp")
    run = Path(run_dir)
    if cfg.get("kind") == "protein":
        from cgexplain.workflow.kinds.protein import protein_explain

        if (d / "lrp.json").exists():
            return read_json(d / "lrp.json")
        return protein_explain(cfg, run, d, _figures(run), _cg_frames(run)[0], progress=progress)
    pos, cells = _cg_frames(run)
    types = np.load(run / "cg" / "mapped.npz")["bead_types"]
    lc = dict(cfg["lrp"])
    workers, device = int(lc.pop("workers", 1)), lc.pop("device", None)
    ranks = launcher_ranks()
    frames = np.unique(np.linspace(0, len(pos) - 1, int(lc.get("n_frames", 5))).round().astype(int))
    return explain_frames(run / "model", pos[frames], cells[frames], types, d, lc, shell=float(cfg["analysis"]["shell_cutoff"]),
                          structure=run / "analysis" / "structure.npz", figures=_figures(run), title=cfg["name"], frame_ids=frames, progress=progress,
                          workers=workers, ranks=ranks if ranks is not None and ranks.world_size > 1 else None, device=device)


#: the file each stage writes last; its presence means the stage is finished
_DONE = {
    "reference": "reference/reference.json",
    "map": "cg/mapping.json",
    "train": "model/training.json",
    "simulate": "simulation/simulation.json",
    "analyse": "analysis/analysis.json",
    "explain": "lrp/lrp.json",
}

STAGES = {
    "reference": stage_reference,
    "map": stage_map,
    "train": stage_train,
    "simulate": stage_simulate,
    "analyse": stage_analyse,
    "explain": stage_explain,
}


def run_all(cfg: dict, run_dir, progress: bool = True, stages=None) -> dict:
    """Run the stages in order (all by default), timing each; writes ``summary.json``.

    ``wall_time_s`` keeps, per stage, the time of the run that computed it; stages reused in this
    run are listed in ``reused_stages``. In a process of rank > 0 (Lightning's DDP launcher,
    torchrun, srun) see :func:`_run_as_other_rank`; only rank 0 writes ``summary.json``."""
    from cgexplain.distributed import is_main_process, launcher_ranks, wait_for

    run = Path(run_dir)
    if not is_main_process():
        return _run_as_other_rank(cfg, run, stages or list(STAGES), launcher_ranks() is not None, wait_for)
    run.mkdir(parents=True, exist_ok=True)
    summ_path = run / "summary.json"
    summary = read_json(summ_path) if summ_path.exists() else {}
    summary.update({"system": cfg["name"], "profile": cfg["profile"]})
    summary.setdefault("wall_time_s", {})
    summary["reused_stages"] = []
    for name in stages or STAGES:
        done = run / _DONE[name]
        before = done.stat().st_mtime_ns if done.exists() else None
        t0 = time.perf_counter()
        res = STAGES[name](cfg, run, progress=progress)
        dt = time.perf_counter() - t0
        summary[name] = res
        if before is not None and done.exists() and done.stat().st_mtime_ns == before:
            summary["reused_stages"].append(name)  # keep the wall time of the run that computed it
        else:
            summary["wall_time_s"][name] = dt
        write_json(summ_path, summary)
    return summary


def _run_as_other_rank(cfg, run: Path, stages, launched: bool, wait_for) -> dict:
    """A process of rank > 0: wait for rank 0 to finish each single-process stage, join the train
    stage (DDP) and, under a launcher (torchrun, srun), the explain stage (its share of frames).
    A process that Lightning's DDP launcher started for training stops after the train stage.
    Writes no summary; returns {stage: result} of the stages it joined."""
    out = {}
    for name in stages:
        if name == "train" or (name == "explain" and launched):
            out[name] = STAGES[name](cfg, run, progress=False)
        elif not launched and list(STAGES).index(name) > list(STAGES).index("train"):
            break
        else:
            done = run / _DONE[name]
            wait_for(done.exists, f"{done} (stage {name}, run by rank 0)", poll_s=5.0)
    return out
