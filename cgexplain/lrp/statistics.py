"""Relevance over many frames: per-frame n-body sums and binned 2-body/3-body statistics.

Each frame's results are written to ``frame_XXXX.npz`` (bin accumulators, n-body sums,
conservation figures), so a run over many frames resumes after a kill. The aggregate is
``nbody_statistics.npz`` (binned mean, std, count and SEM, raw in kcal/mol and per-frame
normalised) and ``lrp.json``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..fileio import read_json, save_npz, write_json
from .engine import walk_relevance
from .nbody import accumulate_bins, finish_bins, nbody_sums, normalisation_factor, three_body_points, two_body_points

__all__ = ["explain_frames", "compute_frames"]


def _params(lc: dict) -> dict:
    lo, hi, nb = lc.get("r_edges", [2.0, 6.0, 40])
    return {
        "gamma": float(lc.get("gamma", 0.1)), "bias_rule": bool(lc.get("bias_rule", True)), "norm": lc.get("normalise", "mean_abs"),
        "r_edges": np.linspace(float(lo), float(hi), int(nb) + 1), "a_edges": np.linspace(0.0, 180.0, int(lc.get("angle_bins", 36)) + 1),
        "n_out": lc.get("output_beads"), "save_walks": lc.get("save_walks", "first"),
    }


def _warn_short_r_range(model_dir, model, r_edges) -> None:
    """Warn when the 2-body distance bins end below the model's cutoff (the curve would stop short)."""
    if model_dir is not None:
        cutoff = read_json(model_dir / "model.json")["hparams"].get("cutoff")
    else:
        cutoff = getattr(getattr(model, "representation", None), "cutoff", None)
    if cutoff is not None and float(r_edges[-1]) < float(cutoff):
        import warnings

        warnings.warn(f"lrp r_edges end at {float(r_edges[-1]):g} Å, below the model cutoff {float(cutoff):g} Å: "
                      "the 2-body relevance curve stops short of the cutoff", stacklevel=3)


def _frame_done(path: Path, frame_id: int) -> bool:
    if not path.exists():
        return False
    with np.load(path) as z:
        return int(z["frame"]) == int(frame_id)


def compute_frames(model, positions, cells, types, out_dir, lc: dict, shell: float, frame_ids=None, *, ks=None, progress: bool = True) -> None:
    """Walk relevances of the frames at positions ``ks`` (default all) of ``positions``; writes
    ``frame_XXXX.npz`` (XXXX: position in ``positions``) for each frame not written yet, and the
    walk files that ``lc['save_walks']`` asks for. Arguments as :func:`explain_frames`."""
    from tqdm.auto import tqdm

    from ..mapping import to_atoms

    out = Path(out_dir)
    p = _params(lc)
    frame_ids = np.arange(len(positions)) if frame_ids is None else np.asarray(frame_ids)
    ks = range(len(positions)) if ks is None else ks
    n_out = p["n_out"]
    for k in tqdm(ks, desc="relevance over frames", disable=not progress):
        path = out / f"frame_{k:04d}.npz"
        if _frame_done(path, frame_ids[k]):
            continue  # finished in an earlier run
        atoms = to_atoms(positions[k], types, cells[k])
        outs = None if n_out is None else np.linspace(0, len(types) - 1, int(n_out)).round().astype(int)
        res = walk_relevance(model, atoms, gamma=p["gamma"], bias_rule=p["bias_rule"], output_beads=outs)
        w, rel = res["walks"], res["relevance"]
        c = normalisation_factor(rel, p["norm"])
        sums = nbody_sums(w, rel)
        d2, r2 = two_body_points(w, rel, positions[k], cells[k])
        a3, r3 = three_body_points(w, rel, positions[k], cells[k], shell)
        r_edges, a_edges = p["r_edges"], p["a_edges"]
        save_npz(path, frame=frame_ids[k], two_raw=accumulate_bins(d2, r2, r_edges), two_norm=accumulate_bins(d2, r2 / c, r_edges),
                 three_raw=accumulate_bins(a3, r3, a_edges), three_norm=accumulate_bins(a3, r3 / c, a_edges),
                 body_sum=np.array([sums[o][0] for o in sorted(sums)]), body_count=np.array([sums[o][1] for o in sorted(sums)]),
                 conservation=np.array([rel.sum(), res["sum_h0_grad"], res["E_modified"], res["E_model"]]),
                 n_walks=len(rel), time_s=res["wall_time_s"])
        save_walks = p["save_walks"]
        if save_walks == "all" or (save_walks == "first" and k == 0):
            name = "walks_frame0.npz" if save_walks == "first" else f"walks_frame_{k:04d}.npz"
            save_npz(out / name, frame=frame_ids[k], walks=w.astype(np.int32), relevance=rel.astype(np.float32),
                     positions=positions[k], cell=cells[k], types=types)


def explain_frames(model, positions, cells, types, out_dir, lc: dict, shell: float, structure=None, figures=None,
                   title: str = "", frame_ids=None, progress: bool = True, *, workers: int = 1, ranks=None, device: str | None = None) -> dict:
    """Walk relevances for each frame and their statistics.

    model: a loaded potential, or its model folder (model.pt + model.json; needed for
    ``workers`` > 1, where each worker loads it). positions (n_frames, n, 3) Å; cells
    (n_frames, 3, 3) Å; types (n,). ``lc`` keys: gamma, bias_rule, normalise ('mean_abs'
    (publication), 'sum_abs' or 'none'), output_beads (None: all), r_edges [lo, hi, n_bins] Å,
    angle_bins, save_walks ('first' (default): walks and relevances of the first frame in
    walks_frame0.npz; 'all': walks_frame_XXXX.npz per frame; 'none'). ``shell`` Å: leg cutoff
    for 3-body angles.
    workers: local processes to spread the frames over (frame k to worker k mod N, each with
    cores // N torch threads); ranks: a :class:`cgexplain.distributed.Ranks` from a launcher
    (torchrun, srun): this process computes frames k ≡ rank (mod world_size), and rank 0 waits
    for the others' frame files and aggregates, while ranks > 0 return
    ``{"rank", "world_size", "n_frames_computed"}``. device: 'cpu' (default), 'cuda' (GPU
    local rank / worker index) or 'cuda:N'. The per-frame files do not depend on how frames are
    spread, so a run may resume with other workers.
    Writes ``out_dir`` files and, with ``figures``/``structure``, the two standard figures.
    Returns the lrp summary (per-body-order totals, conservation per frame, wall time).
    Raises ValueError for workers < 1, workers > 1 together with launcher ranks, or workers > 1
    with a model object instead of a folder; RuntimeError if another rank failed.
    """
    from .spread import failure_marker, rank_device, record_failure, run_workers, share, wait_for_frames

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "lrp.json").exists():
        return read_json(out / "lrp.json")
    workers = int(workers)
    world = 1 if ranks is None else int(ranks.world_size)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers > 1 and world > 1:
        raise ValueError(f"workers={workers} and launcher ranks (world size {world}) together: use one or the other")
    model_dir = Path(model) if isinstance(model, (str, Path)) else None
    if workers > 1 and model_dir is None:
        raise ValueError("workers > 1: pass the model folder (each worker loads model.pt + model.json), not a model object")
    _warn_short_r_range(model_dir, model, _params(lc)["r_edges"])
    frame_ids = np.arange(len(positions)) if frame_ids is None else np.asarray(frame_ids)
    t0, since = time.perf_counter(), time.time()
    args = (positions, cells, types, out, lc, shell, frame_ids)
    if workers > 1:
        run_workers(workers, model_dir, device, args, {"progress": False})
    else:
        if model_dir is not None:
            from ..models import load_model

            model, _ = load_model(model_dir)
        if device is not None:
            model = model.to(rank_device(device, 0 if ranks is None else ranks.local_rank))
        if world > 1 and ranks.rank != 0:
            ks = share(len(positions), ranks.rank, world)
            failure_marker(out, ranks.rank).unlink(missing_ok=True)
            try:
                compute_frames(model, *args, ks=ks, progress=False)
            except BaseException:
                record_failure(out, ranks.rank)
                raise
            return {"rank": int(ranks.rank), "world_size": world, "n_frames_computed": len(ks)}
        compute_frames(model, *args, ks=None if world == 1 else share(len(positions), 0, world), progress=progress)
        if world > 1:
            wait_for_frames(lambda: all(_frame_done(out / f"frame_{k:04d}.npz", frame_ids[k]) for k in range(len(positions))),
                            out, world, since)
    p = _params(lc)
    gamma, bias_rule, norm, n_out = p["gamma"], p["bias_rule"], p["norm"], p["n_out"]
    r_edges, a_edges = p["r_edges"], p["a_edges"]
    files = [np.load(out / f"frame_{k:04d}.npz") for k in range(len(positions))]
    acc = {key: sum(f[key] for f in files) for key in ("two_raw", "two_norm", "three_raw", "three_norm")}
    stats = {}
    for key, edges in (("two_raw", r_edges), ("two_norm", r_edges), ("three_raw", a_edges), ("three_norm", a_edges)):
        for q, v in finish_bins(acc[key], edges).items():
            stats[f"{key}_{q}"] = v
    body = np.array([f["body_sum"] for f in files])
    cons = np.array([f["conservation"] for f in files])
    save_npz(out / "nbody_statistics.npz", body_sum_per_frame=body, conservation_per_frame=cons, r_edges=r_edges, angle_edges=a_edges, **stats)
    orders = list(range(1, body.shape[1] + 1))
    summary = {
        "gamma": gamma, "bias_rule": bias_rule, "normalise": norm, "n_frames": len(files),
        "walks_per_frame_mean": float(np.mean([int(f["n_walks"]) for f in files])),
        "output_beads": "all" if n_out is None else int(n_out),
        "relevance_by_body_order_kcal_mol_mean": {str(o): float(body[:, i].mean()) for i, o in enumerate(orders)},
        "relevance_by_body_order_fraction_of_abs": {str(o): float(np.abs(body[:, i]).mean() / np.abs(body).sum(1).mean()) for i, o in enumerate(orders)},
        "conservation_mean_kcal_mol": {"sum_walk_relevance": float(cons[:, 0].mean()), "sum_h0_dE_dh0_no_masks": float(cons[:, 1].mean()),
                                       "E_modified_forward": float(cons[:, 2].mean()), "E_model": float(cons[:, 3].mean())},
        "seconds_per_frame_mean": float(np.mean([float(f["time_s"]) for f in files])),
        "wall_time_s": time.perf_counter() - t0,
    }
    write_json(out / "lrp.json", summary)
    if figures is not None and structure is not None and Path(structure).exists():
        from ..plotting import plot_nbody_relevance

        plot_nbody_relevance(stats, np.load(structure), norm, title, Path(figures) / "relevance_2body.png", Path(figures) / "relevance_3body.png")
    return summary
