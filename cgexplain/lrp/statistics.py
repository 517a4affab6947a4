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

__all__ = ["explain_frames"]


def explain_frames(model, positions, cells, types, out_dir, lc: dict, shell: float, structure=None, figures=None,
                   title: str = "", frame_ids=None, progress: bool = True) -> dict:
    """Walk relevances for each frame and their statistics.

    positions (n_frames, n, 3) Å; cells (n_frames, 3, 3) Å; types (n,). ``lc`` keys: gamma,
    bias_rule, normalise ('mean_abs' (publication), 'sum_abs' or 'none'), output_beads (None:
    all), r_edges [lo, hi, n_bins] Å, angle_bins, save_walks ('first' (default): walks and
    relevances of the first frame in walks_frame0.npz; 'all': walks_frame_XXXX.npz per frame;
    'none'). ``shell`` Å: leg cutoff for 3-body angles.
    Writes ``out_dir`` files and, with ``figures``/``structure``, the two standard figures.
    Returns the lrp summary (per-body-order totals, conservation per frame, wall time).
    """
    from tqdm.auto import tqdm

    from ..mapping import to_atoms

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "lrp.json").exists():
        return read_json(out / "lrp.json")
    gamma, bias_rule = float(lc.get("gamma", 0.1)), bool(lc.get("bias_rule", True))
    norm = lc.get("normalise", "mean_abs")
    lo, hi, nb = lc.get("r_edges", [2.0, 6.0, 40])
    r_edges = np.linspace(float(lo), float(hi), int(nb) + 1)
    a_edges = np.linspace(0.0, 180.0, int(lc.get("angle_bins", 36)) + 1)
    n_out = lc.get("output_beads")
    frame_ids = np.arange(len(positions)) if frame_ids is None else np.asarray(frame_ids)
    save_walks = lc.get("save_walks", "first")
    t0 = time.perf_counter()
    for k in tqdm(range(len(positions)), desc="relevance over frames", disable=not progress):
        path = out / f"frame_{k:04d}.npz"
        if path.exists():
            with np.load(path) as z:
                if int(z["frame"]) == int(frame_ids[k]):
                    continue  # finished in an earlier run
        atoms = to_atoms(positions[k], types, cells[k])
        outs = None if n_out is None else np.linspace(0, len(types) - 1, int(n_out)).round().astype(int)
        res = walk_relevance(model, atoms, gamma=gamma, bias_rule=bias_rule, output_beads=outs)
        w, rel = res["walks"], res["relevance"]
        c = normalisation_factor(rel, norm)
        sums = nbody_sums(w, rel)
        d2, r2 = two_body_points(w, rel, positions[k], cells[k])
        a3, r3 = three_body_points(w, rel, positions[k], cells[k], shell)
        save_npz(path, frame=frame_ids[k], two_raw=accumulate_bins(d2, r2, r_edges), two_norm=accumulate_bins(d2, r2 / c, r_edges),
                 three_raw=accumulate_bins(a3, r3, a_edges), three_norm=accumulate_bins(a3, r3 / c, a_edges),
                 body_sum=np.array([sums[o][0] for o in sorted(sums)]), body_count=np.array([sums[o][1] for o in sorted(sums)]),
                 conservation=np.array([rel.sum(), res["sum_h0_grad"], res["E_modified"], res["E_model"]]),
                 n_walks=len(rel), time_s=res["wall_time_s"])
        if save_walks == "all" or (save_walks == "first" and k == 0):
            name = "walks_frame0.npz" if save_walks == "first" else f"walks_frame_{k:04d}.npz"
            save_npz(out / name, frame=frame_ids[k], walks=w.astype(np.int32), relevance=rel.astype(np.float32),
                     positions=positions[k], cell=cells[k], types=types)
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
        from ..plotting import plot_relevance_over

        s = np.load(structure)
        suf = "norm" if norm != "none" else "raw"
        unit = "relevance / mean |R|" if norm == "mean_abs" else ("relevance (normalised)" if norm != "none" else "relevance (kcal/mol)")
        plot_relevance_over(stats[f"two_{suf}_centers"], stats[f"two_{suf}_mean"], stats[f"two_{suf}_sem"], s["cg_r"], s["cg_g"],
                            "r (Å)", "g(r), CG model", f"2-body {unit}", Path(figures) / "relevance_2body.png", title=f"{title}: 2-body relevance vs distance")
        plot_relevance_over(stats[f"three_{suf}_centers"], stats[f"three_{suf}_mean"], stats[f"three_{suf}_sem"], s["cg_theta"], s["cg_p"],
                            "θ (degrees)", "ADF, CG model", f"3-body {unit}", Path(figures) / "relevance_3body.png", title=f"{title}: 3-body relevance vs angle")
    return summary
