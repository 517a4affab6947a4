"""Relevance over many frames: per-frame n-body sums and binned 2-body/3-body statistics.

Frames come from a :class:`~cgexplain.lrp.sources.FrameSource`: arrays in memory or any
trajectory MDAnalysis reads, read one frame at a time by the shared
:class:`~cgexplain.lrp.frames.FrameExplainer`, so the memory is bounded whatever the trajectory's
length. Each frame's results are written to
``frame_XXXX.npz`` (binned (count, mean, M2) accumulators, n-body sums, the relevance budget), so
a run over many frames resumes after a kill. The aggregate is built by merging those
accumulators one file at a time (:func:`~cgexplain.lrp.nbody.merge_bins`), never by keeping every
walk's points: ``nbody_statistics.npz`` (binned mean, std, count and SEM, raw in kcal/mol and
per-frame normalised) and ``lrp.json``.

Enumeration (``lc['enumeration']``): ``'pruned'`` (default) enumerates only the walks with at
most L distinct beads, which are all the curves, sums and maps use, and takes the (L+1)-body
total from the sum rule (:mod:`cgexplain.lrp.engine`); the statistics equal the full
enumeration's. ``'all'`` enumerates every walk; it is used whatever the setting for a frame whose
walk file is written (``save_walks``) and for normalisations that need every |R| (``mean_abs``,
``sum_abs``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cgexplain.fileio import read_json, save_npz, write_json
from cgexplain.lrp.bodyorder import pair_distances, vertex_points
from cgexplain.lrp.branching import set_relevance
from cgexplain.lrp.engine import statistics_max_order, walk_relevance
from cgexplain.lrp.frames import FrameExplainer
from cgexplain.lrp.nbody import (
    accumulate_bins,
    body_order_abs_sums,
    body_order_shares,
    body_order_totals,
    finish_bins,
    merge_bins,
    normalisation_factor,
    three_body_points,
    two_body_points,
)
from cgexplain.lrp.settings import LrpSection
from cgexplain.lrp.sources import as_source
from cgexplain.mapping.maps import to_atoms
from cgexplain.plots.core import plot_nbody_relevance, pyplot
from cgexplain.settings import validate_section

__all__ = ["explain_frames", "explain_one_frame", "FluidFrameTask", "aggregate_frames", "FRAME_FORMAT"]


FRAME_FORMAT = 2
"""Version of the ``frame_XXXX.npz`` layout; files of another version are recomputed."""

_BINNED = ("two_raw", "two_norm", "three_raw", "three_norm")


def _params(lc: dict) -> dict:
    """The ``lrp`` settings ``lc`` validated against :class:`LrpSection` (the one schema of the
    section; raises :class:`cgexplain.settings.ConfigError` naming the key) and completed with its
    defaults, as the frame loop uses them."""
    lc = validate_section("lrp settings", "lrp", LrpSection, dict(lc))
    lo, hi, nb = lc["r_edges"]
    norm = lc["normalise"]
    enum = lc["enumeration"]
    save_walks = lc["save_walks"]
    return {
        "rule": lc["rule"],
        "gamma": float(lc["gamma"]),
        "bias_rule": bool(lc["bias_rule"]),
        "norm": norm,
        "r_edges": np.linspace(float(lo), float(hi), int(nb) + 1),
        "a_edges": np.linspace(0.0, 180.0, int(lc["angle_bins"]) + 1),
        "n_out": lc["output_beads"],
        "save_walks": save_walks,
        # every walk is needed for |R|-based normalisations and for walk files of every frame
        "prune": enum == "pruned" and norm in ("abs_mean_total", "none") and save_walks != "all",
        "walk_files": lc["rule"] == "publication",
    }


def _warn_short_r_range(model_dir, model, r_edges) -> None:
    """Warn when the 2-body distance bins end below the model's cutoff (the curve would stop short)."""
    if model_dir is not None:
        cutoff = read_json(model_dir / "model.json")["hparams"].get("cutoff")
    else:
        cutoff = getattr(getattr(model, "representation", None), "cutoff", None)
    if cutoff is not None and float(r_edges[-1]) < float(cutoff):
        import warnings

        warnings.warn(
            f"lrp r_edges end at {float(r_edges[-1]):g} Å, below the model cutoff {float(cutoff):g} Å: "
            "the 2-body relevance curve stops short of the cutoff",
            stacklevel=3,
        )


def _frame_done(path: Path, frame_id: int, rule: str = "publication") -> bool:
    if not path.exists():
        return False
    try:
        with np.load(path) as z:
            got = str(z["rule"]) if "rule" in z.files else "publication"
            return int(z["format"]) == FRAME_FORMAT and int(z["frame"]) == int(frame_id) and got == rule
    except (OSError, KeyError, ValueError):
        return False  # unreadable, truncated or from an older layout: recompute


def _binned(d2, r2, a3, r3, c: float, p: dict) -> dict:
    """The per-frame (count, mean, M2) accumulators of the 2-body points (distance Å, relevance)
    and the 3-body points (angle degrees, relevance), raw and divided by the normalisation ``c``,
    on the bins of the validated settings ``p``."""
    r_edges, a_edges = p["r_edges"], p["a_edges"]
    return {
        "two_raw": accumulate_bins(d2, r2, r_edges),
        "two_norm": accumulate_bins(d2, r2 / c, r_edges),
        "three_raw": accumulate_bins(a3, r3, a_edges),
        "three_norm": accumulate_bins(a3, r3 / c, a_edges),
    }


def explain_one_frame(model, position, cell, types, lc: dict, shell: float, *, all_walks: bool = False) -> tuple[dict, dict]:
    """Walk relevances of one frame reduced to what the statistics keep.

    position (n, 3) Å; cell (3, 3) Å (zeros: not periodic); types (n,); ``lc`` and ``shell`` as
    :func:`explain_frames`; all_walks: enumerate every walk whatever ``lc['enumeration']``.
    Returns (arrays, result): the per-frame arrays written to ``frame_XXXX.npz`` (binned
    (count, mean, M2) accumulators of the 2-body relevance against distance and the 3-body
    relevance against vertex angle, raw kcal/mol and normalised; ``body_sum`` and ``body_count``
    per body order 1..L+1; ``conservation`` = [Σ all walks, Σ h0·∂E/∂h0, E_modified, E_model]
    kcal/mol; walk counts; ``time_s``, the wall time of this call) and the
    :class:`~cgexplain.lrp.engine.WalkResult`.
    """

    t0 = time.perf_counter()
    p = _params(lc)
    atoms = to_atoms(position, types, cell)
    if p["rule"] != "publication":
        return _branching_frame(model, atoms, position, cell, p, shell, t0)
    outs = None if p["n_out"] is None else np.linspace(0, len(types) - 1, int(p["n_out"])).round().astype(int)
    pruned = p["prune"] and not all_walks and statistics_max_order(model) is not None
    res = walk_relevance(
        model, atoms, gamma=p["gamma"], bias_rule=p["bias_rule"], output_beads=outs, max_order=statistics_max_order(model) if pruned else None
    )
    w, rel = res["walks"], res["relevance"]
    c = normalisation_factor(rel, p["norm"], total=res["total_relevance"], n_walks=res["n_walks_total"])
    sums = body_order_totals(res)
    abs_sums = body_order_abs_sums(w, rel, len(sums))
    if pruned:
        abs_sums[len(sums) - 1] = np.nan  # the (L+1)-body walks were not enumerated
    d2, r2 = two_body_points(w, rel, position, cell)
    a3, r3 = three_body_points(w, rel, position, cell, shell)
    arrays = dict(
        format=FRAME_FORMAT,
        **_binned(d2, r2, a3, r3, c, p),
        body_sum=np.array([sums[o][0] for o in sorted(sums)]),
        body_count=np.array([sums[o][1] for o in sorted(sums)]),
        body_abs_sum=abs_sums,
        # Σ of the enumerated walks plus the sum-rule remainder of the pruned ones (0 without pruning)
        conservation=np.array([float(rel.sum()) + res["remainder"], res["sum_h0_grad"], res["E_modified"], res["E_model"]]),
        n_walks=res["n_walks_total"],
        n_walks_enumerated=len(rel),
        pruned=bool(pruned),
        rule="publication",
        time_s=time.perf_counter() - t0,
    )
    return arrays, res


def _branching_frame(model, atoms, position, cell, p: dict, shell: float, t0: float) -> tuple[dict, dict]:
    """:func:`explain_one_frame` for ``rule: branching`` or ``branching-tree``: relevance per bead set
    (:func:`~cgexplain.lrp.branching.set_relevance`). The 2-body curve has one point per bead pair
    (its summed relevance) and the 3-body curve one per vertex of each bead triplet (its summed
    relevance), so its bin means are per set, not per walk; the normalisation ``abs_mean_total`` is
    |Σ R| / N_sets (sets of 1 to 3 beads). ``body_count`` holds the number of sets (-1 for the
    sets of 4 or more beads, which are one sum-rule remainder); ``body_abs_sum`` is NaN (no walk is
    enumerated); ``n_walks`` is the number of sets."""
    if p["n_out"] is not None:
        raise ValueError(f"lrp.output_beads is not supported with rule: {p['rule']} (the sets hold every bead)")
    res = set_relevance(model, atoms, rule=p["rule"], gamma=p["gamma"], bias_rule=p["bias_rule"])
    cell_ = cell if cell is not None and np.abs(cell).sum() > 0 else None
    n_sets = len(res["singles"]) + len(res["pairs"]) + len(res["triplets"])
    total = res["conserved"]
    c = abs(total) / n_sets if p["norm"] == "abs_mean_total" and total != 0 else 1.0
    d2, r2 = pair_distances(position, cell_, res["pairs"]), res["pair_relevance"]
    a3, r3 = vertex_points(position, cell_, res["triplets"], res["triplet_relevance"], shell)
    tot = res["totals"]
    counts = {1: len(res["singles"]), 2: len(res["pairs"]), 3: len(res["triplets"]), 4: -1}
    arrays = dict(
        format=FRAME_FORMAT,
        **_binned(d2, r2, a3, r3, c, p),
        body_sum=np.array([tot[o] for o in sorted(tot)]),
        body_count=np.array([counts[o] for o in sorted(tot)]),
        body_abs_sum=np.full(len(tot), np.nan),
        conservation=np.array([total, res["conserved_autograd"], res["E_modified"], res["E_model"]]),
        n_walks=n_sets,
        n_walks_enumerated=n_sets,
        pruned=False,
        rule=p["rule"],
        time_s=time.perf_counter() - t0,
    )
    return arrays, res


class FluidFrameTask:
    """:class:`~cgexplain.lrp.frames.FrameTask` of the fluid statistics: ``frame_XXXX.npz`` holds
    :func:`explain_one_frame`'s arrays; with ``lc['save_walks']`` also the walk files (a frame
    whose walks are saved is enumerated in full)."""

    def __init__(self, lc: dict, shell: float, types):
        self.lc, self.shell, self.types = lc, float(shell), np.asarray(types, dtype=np.int64)
        p = _params(lc)
        self.save_walks = p["save_walks"] if p["walk_files"] else "none"
        self.rule = p["rule"]

    def is_done(self, out_dir: Path, k: int, frame_id: int, position, cell) -> bool:
        return _frame_done(Path(out_dir) / f"frame_{k:04d}.npz", frame_id, self.rule)

    def compute(self, model, out_dir: Path, k: int, frame_id: int, position, cell) -> None:
        out = Path(out_dir)
        keep_walks = self.save_walks == "all" or (self.save_walks == "first" and k == 0)
        arrays, res = explain_one_frame(model, position, cell, self.types, self.lc, self.shell, all_walks=keep_walks)
        if keep_walks:
            name = "walks_frame0.npz" if self.save_walks == "first" else f"walks_frame_{k:04d}.npz"
            save_npz(
                out / name,
                frame=frame_id,
                walks=res["walks"].astype(np.int32),
                relevance=res["relevance"].astype(np.float32),
                positions=position,
                cell=cell,
                types=self.types,
            )
        save_npz(out / f"frame_{k:04d}.npz", frame=frame_id, **arrays)


def aggregate_frames(out_dir, n_frames: int, r_edges, a_edges) -> tuple[dict, np.ndarray, np.ndarray, list]:
    """Merge the per-frame files ``frame_0000.npz`` .. of ``out_dir`` one at a time.

    Returns (stats, body_sum (F, L+1), conservation (F, 4), per-frame info dicts): ``stats`` holds
    ``{two,three}_{raw,norm}_{centers,mean,std,count,sem}`` over all frames (kcal/mol for raw) and
    ``body_abs_sum_per_frame`` (F, L+1) Σ|R| per order (NaN where not enumerated).
    Memory is O(frames + bins), not O(walks)."""
    out = Path(out_dir)
    acc: dict = {}
    body, babs, cons, info = [], [], [], []
    for k in range(n_frames):
        with np.load(out / f"frame_{k:04d}.npz") as z:
            for key in _BINNED:
                acc[key] = z[key] if key not in acc else merge_bins(acc[key], z[key])
            body.append(z["body_sum"])
            babs.append(z["body_abs_sum"])
            cons.append(z["conservation"])
            info.append(
                {
                    "n_walks": int(z["n_walks"]),
                    "n_walks_enumerated": int(z["n_walks_enumerated"]),
                    "pruned": bool(z["pruned"]),
                    "time_s": float(z["time_s"]),
                }
            )
    stats = {}
    for key in _BINNED:
        edges = r_edges if key.startswith("two") else a_edges
        for q, v in finish_bins(acc[key], edges).items():
            stats[f"{key}_{q}"] = v
    stats["body_abs_sum_per_frame"] = np.array(babs)
    return stats, np.array(body), np.array(cons), info


def _shares(body: np.ndarray, body_abs: np.ndarray) -> dict:
    """Mean body-order shares (orders >= 2, :func:`~cgexplain.lrp.nbody.body_order_shares`) over the
    frames whose every walk was enumerated (the frames with walk files, or every frame with
    ``enumeration: all``); None when there is no such frame."""
    full = np.all(np.isfinite(body_abs), axis=1)
    if not full.any():
        return {"abs_share_by_body_order_ge2": None, "signed_share_by_body_order_ge2": None, "shares_from_n_frames": 0}
    sh = [body_order_shares(b, a) for b, a in zip(body[full], body_abs[full])]
    return {
        "abs_share_by_body_order_ge2": {str(k): float(np.mean([x["abs"][k] for x in sh])) for k in sh[0]["abs"]},
        "signed_share_by_body_order_ge2": {str(k): float(np.mean([x["signed"][k] for x in sh])) for k in sh[0]["signed"]},
        "shares_from_n_frames": int(full.sum()),
    }


def explain_frames(
    model,
    positions,
    cells,
    types,
    out_dir,
    lc: dict,
    shell: float,
    structure=None,
    figures=None,
    title: str = "",
    frame_ids=None,
    progress: bool = True,
    *,
    workers: int = 1,
    backend: str = "multiprocessing",
    device: str | None = None,
    extra: dict | None = None,
) -> dict:
    """Walk relevances for each frame and their statistics.

    model: a loaded potential, or its model folder (model.pt + model.json; needed for
    ``workers`` > 1, where each process loads it). positions: (n_frames, n, 3) Å with cells
    (n_frames, 3, 3) Å and types (n,), or a :class:`~cgexplain.lrp.sources.FrameSource` (then
    ``cells``, ``types`` and ``frame_ids`` are None), read one frame at a time. ``lc``: the
    ``lrp`` section (:class:`LrpSection`; missing keys take its defaults):
    gamma, bias_rule, normalise ('abs_mean_total' (the publication's |Σ R| / N_walks),
    'mean_abs', 'sum_abs' or 'none'), enumeration ('pruned' or 'all'; module docstring),
    output_beads (None: all), r_edges [lo, hi, n_bins] Å, angle_bins, save_walks ('first':
    every walk of the first frame and its relevance in walks_frame0.npz; 'all':
    walks_frame_XXXX.npz per frame; 'none'). ``shell`` Å: leg cutoff for 3-body angles.
    workers: processes sharing the frames through MDAnalysis's ``backend`` ('multiprocessing'
    or 'dask'; :class:`~cgexplain.lrp.frames.FrameExplainer`). device: 'cpu' (default), 'cuda'
    or 'cuda:N'. The per-frame files do not depend on how frames are spread, so a run may
    resume with other workers.
    Writes ``out_dir`` files and, with ``figures``/``structure``, the two standard figures (a
    ``structure.npz`` without ``cg_r``, from frames without a periodic cell, has no RDF: the
    2-body curve is drawn alone, marked so). ``extra``: entries added to the summary (lrp.json).
    Returns the lrp summary (per-body-order totals, shares, budget, conservation, wall time).
    Raises ValueError for workers < 1, workers > 1 with a model object instead of a folder,
    or an unknown ``lc`` value; :class:`~cgexplain.model.potential.SystemMismatchError` (a
    ValueError) for frames whose bead count is not the one the model's priors were fitted for.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = as_source(positions, cells, types, frame_ids)
    p = _params(lc)
    model_dir = Path(model) if isinstance(model, (str, Path)) else None
    _warn_short_r_range(model_dir, model, p["r_edges"])
    n_frames = len(frames)
    t0 = time.perf_counter()
    task = FluidFrameTask(lc, shell, frames.types)
    explainer = FrameExplainer(
        frames, task, out, model_dir=model_dir, model=None if model_dir is not None else model, device=device, progress=progress and int(workers) == 1
    )
    explainer.run(backend=backend, n_workers=workers)
    gamma, bias_rule, norm, n_out = p["gamma"], p["bias_rule"], p["norm"], p["n_out"]
    r_edges, a_edges = p["r_edges"], p["a_edges"]
    stats, body, cons, info = aggregate_frames(out, n_frames, r_edges, a_edges)
    sets = None
    if p["rule"] != "publication":  # per-set counts, and order 4 is every set of 4 or more beads
        sets = {
            "bead_sets_per_frame_mean": float(np.mean([i["n_walks"] for i in info])),
            "body_order_4_means": "every bead set of 4 or more beads (sum rule)",
        }
        for stale in out.glob("walks_frame*.npz"):  # walk files of an earlier run under the publication's rule
            stale.unlink()
    save_npz(out / "nbody_statistics.npz", body_sum_per_frame=body, conservation_per_frame=cons, r_edges=r_edges, angle_edges=a_edges, **stats)
    orders = list(range(1, body.shape[1] + 1))
    summary = {
        "rule": p["rule"],
        "gamma": gamma,
        "bias_rule": bias_rule,
        "normalise": norm,
        "n_frames": n_frames,
        "enumeration": ("pruned" if p["prune"] else "all") if sets is None else "none: relevance per bead set",
        "frames_enumerated_in_full": int(sum(not i["pruned"] for i in info)) if sets is None else 0,
        "walks_per_frame_mean": float(np.mean([i["n_walks"] for i in info])) if sets is None else None,
        **({} if sets is None else sets),
        "walks_enumerated_per_frame_mean": float(np.mean([i["n_walks_enumerated"] for i in info])),
        "output_beads": "all" if n_out is None else int(n_out),
        "relevance_by_body_order_kcal_mol_mean": {str(o): float(body[:, i].mean()) for i, o in enumerate(orders)},
        # offset-free: the per-type energy offset that force matching leaves free is the same in every frame
        "relevance_by_body_order_std_over_frames_kcal_mol": {
            str(o): float(body[:, i].std(ddof=1)) if n_frames > 1 else None for i, o in enumerate(orders)
        },
        **_shares(body, stats["body_abs_sum_per_frame"]),
        "conservation_mean_kcal_mol": {
            "sum_walk_relevance": float(cons[:, 0].mean()),
            "sum_h0_dE_dh0_no_masks": float(cons[:, 1].mean()),
            "E_modified_forward": float(cons[:, 2].mean()),
            "E_model": float(cons[:, 3].mean()),
        },
        "relevance_budget_kcal_mol_mean": {
            "E_model": float(cons[:, 3].mean()),
            "E_modified": float(cons[:, 2].mean()),
            "sum_walks": float(cons[:, 0].mean()),
            "taken_by_rule_E_model_minus_E_modified": float((cons[:, 3] - cons[:, 2]).mean()),
            "taken_by_biases_E_modified_minus_sum_walks": float((cons[:, 2] - cons[:, 0]).mean()),
        },
        "seconds_per_frame_mean": float(np.mean([i["time_s"] for i in info])),
        "wall_time_s": time.perf_counter() - t0,
        **(extra or {}),
    }
    write_json(out / "lrp.json", summary)
    if figures is not None and structure is not None and Path(structure).exists():
        with np.load(structure) as st:
            struct = dict(st)
        paths = Path(figures) / "relevance_2body.png", Path(figures) / "relevance_3body.png"
        for f in plot_nbody_relevance(stats, struct, norm, title, *paths):
            pyplot().close(f)
    return summary
