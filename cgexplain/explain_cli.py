"""``cgexplain explain MODEL_DIR TRAJECTORY``: walk relevances of any CG trajectory.

Reads a saved model (model.pt + model.json) and CG frames, computes every walk's relevance per
frame (GNN-LRP; Bonneau et al., arXiv 2407.04526), and writes per-frame walk files, the n-body
statistics (``nbody_statistics.npz``, ``lrp.json``) and the two standard figures (2-body
relevance against distance over the RDF, 3-body relevance against angle over the ADF).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["parse_frames", "read_cg_frames", "explain_trajectory"]


def parse_frames(spec: str | None, n_frames: int) -> np.ndarray:
    """Frame indices from ``spec``: None or 'all' (every frame), 'start:stop[:step]' (Python
    slice), or a comma list '0,5,9'. Raises ValueError naming the bad index or spec."""
    if spec is None or spec == "all":
        return np.arange(n_frames)
    try:
        if ":" in spec:
            parts = [int(p) if p.strip() else None for p in spec.split(":")]
            idx = np.arange(n_frames)[slice(*parts)]
        else:
            idx = np.array([int(p) for p in spec.split(",")])
    except ValueError as e:
        raise ValueError(f"--frames {spec!r}: expected 'all', 'start:stop[:step]' or '0,5,9'") from e
    bad = idx[(idx < -n_frames) | (idx >= n_frames)]
    if len(bad):
        raise ValueError(f"--frames {spec!r}: frame {int(bad[0])} is out of range (the trajectory has {n_frames} frames)")
    if len(idx) == 0:
        raise ValueError(f"--frames {spec!r} selects no frame (the trajectory has {n_frames} frames)")
    return idx % n_frames


def read_cg_frames(trajectory, topology=None, types=None):
    """CG frames from an ``.npz`` (keys positions (F, n, 3) Å, cells (F, 3, 3) Å, bead_types (n,),
    as written by the map stage) or any trajectory MDAnalysis reads with its ``topology``.

    types: None (from the npz), an ``.npz`` with ``bead_types``, or a sequence of ints (n,).
    Returns positions (F, n, 3) Å, cells (F, 3, 3) Å (zeros: not periodic), types (n,).
    Raises FileNotFoundError, KeyError or ValueError naming the file and the problem.
    """
    trajectory = Path(trajectory)
    if not trajectory.exists():
        raise FileNotFoundError(f"trajectory {trajectory} does not exist")
    file_types = None
    if trajectory.suffix == ".npz":
        with np.load(trajectory) as z:
            for key in ("positions", "cells"):
                if key not in z:
                    raise KeyError(f"{trajectory}: missing array {key!r} (need positions, cells, bead_types)")
            pos, cells = z["positions"].astype(np.float64), z["cells"].astype(np.float64)
            file_types = z["bead_types"] if "bead_types" in z else None
    else:
        import MDAnalysis as mda
        from MDAnalysis.lib.mdamath import triclinic_vectors

        if topology is None:
            raise ValueError(f"{trajectory}: a --topology (the CG PDB) is needed to read this trajectory")
        u = mda.Universe(str(topology), str(trajectory))
        pos = np.empty((len(u.trajectory), len(u.atoms), 3))
        cells = np.zeros((len(u.trajectory), 3, 3))
        for k, ts in enumerate(u.trajectory):
            pos[k] = u.atoms.positions
            if ts.dimensions is not None and np.all(ts.dimensions[:3] > 0):
                cells[k] = triclinic_vectors(ts.dimensions)
    if types is None:
        types = file_types
    elif isinstance(types, (str, Path)):
        with np.load(types) as z:
            if "bead_types" not in z:
                raise KeyError(f"{types}: missing array 'bead_types'")
            types = z["bead_types"]
    if types is None:
        raise ValueError(f"{trajectory}: bead types are needed: pass --types (an npz with bead_types, e.g. cg/mapped.npz, or a comma list)")
    types = np.asarray(types, dtype=np.int64)
    if pos.ndim != 3 or pos.shape[2] != 3:
        raise ValueError(f"{trajectory}: positions must have shape (frames, beads, 3), got {pos.shape}")
    if len(types) != pos.shape[1]:
        raise ValueError(f"{trajectory}: {pos.shape[1]} beads per frame but {len(types)} bead types")
    bad = np.argwhere(~np.isfinite(pos))
    if len(bad):
        raise ValueError(f"{trajectory}: non-finite position in frame {bad[0][0]}, bead {bad[0][1]}")
    return pos, cells, types


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def explain_trajectory(model_dir, trajectory, out_dir, *, topology=None, types=None, frames=None, gamma=0.1, bias_rule=True,
                       normalise="mean_abs", shell=None, r_edges=(2.0, 10.0, 75), angle_bins=36, save_walks="first",
                       progress=True, workers: int = 1, device: str | None = None, ranks="env") -> dict:
    """Walk relevances of the chosen frames of a CG trajectory, their statistics and figures.

    model_dir: folder with model.pt and model.json. trajectory/topology/types: see
    :func:`read_cg_frames`. frames: see :func:`parse_frames`. shell (Å): leg cutoff of the 3-body
    angles; default the first minimum of the frames' RDF. r_edges (lo Å, hi Å, n_bins) for the
    2-body curve (publication: 2-10 Å, 75 bins). save_walks: 'first', 'all' or 'none' frames'
    walk files. Writes into ``out_dir``: frame_XXXX.npz (and walks), nbody_statistics.npz,
    structure.npz, lrp.json, figures/relevance_2body.png and relevance_3body.png. Resumes from
    the frames already written. Returns the lrp summary dict.

    workers: local processes sharing the frames (each loads the model; cores // workers torch
    threads each). ranks: 'env' (default) takes the ranks of a launcher (torchrun: RANK,
    WORLD_SIZE; srun: SLURM_PROCID, SLURM_STEP_NUM_TASKS) if there is one, None runs as one
    process, or a :class:`cgexplain.distributed.Ranks`. With several ranks each computes frames
    k ≡ rank (mod world size); rank 0 waits for the others' frame files and aggregates, the
    others return ``{"rank", "world_size", "n_frames_computed"}``. device: 'cpu' (default),
    'cuda' (the GPU of the local rank / worker) or 'cuda:N'. The numbers do not depend on how
    the frames are spread.
    """
    from .analysis import adf, first_minimum, rdf
    from .distributed import launcher_ranks
    from .fileio import read_json, save_npz, write_json
    from .lrp.statistics import explain_frames
    from .models import load_model

    if ranks == "env":
        ranks = launcher_ranks()
    if ranks is not None and ranks.world_size == 1:
        ranks = None
    main = ranks is None or ranks.rank == 0
    load_model(model_dir)  # fail early, with a clear message, on a bad model folder
    pos, cells, types = read_cg_frames(trajectory, topology, types)
    idx = parse_frames(frames, len(pos))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    periodic = bool(np.abs(cells).sum() > 0)
    r_max = min(float(r_edges[1]), 0.5 * float(np.min(np.linalg.norm(cells[idx[0]], axis=1)))) if periodic else float(r_edges[1])
    r, g = rdf(pos[idx], cells[idx], r_max=r_max, n_bins=max(50, int(r_max / 0.05)))
    if shell is None:
        shell = first_minimum(r, g)
    th, p, _ = adf(pos[idx], cells[idx], shell=float(shell), n_bins=90)
    if main:
        save_npz(out / "structure.npz", cg_r=r, cg_g=g, cg_theta=th, cg_p=p, shell=float(shell))
    lc = {"gamma": gamma, "bias_rule": bias_rule, "normalise": normalise, "r_edges": list(r_edges), "angle_bins": angle_bins,
          "save_walks": save_walks}
    inputs = {"model": str(Path(model_dir).resolve()), "model_sha256": _sha256(Path(model_dir) / "model.pt"),
              "trajectory": str(Path(trajectory).resolve()), "frames": idx.tolist(), "shell": float(shell), **lc}
    if (out / "explain_inputs.json").exists():
        old = read_json(out / "explain_inputs.json")
        if old != inputs:
            diff = sorted(k for k in set(old) | set(inputs) if old.get(k) != inputs.get(k))
            raise ValueError(f"{out} holds relevances for other inputs (differing: {', '.join(diff)}); use another --out or remove it")
    elif main:
        write_json(out / "explain_inputs.json", inputs)
    summary = explain_frames(Path(model_dir), pos[idx], cells[idx], types, out, lc, shell=float(shell), structure=out / "structure.npz",
                             figures=out / "figures", title=Path(trajectory).stem, frame_ids=idx, progress=progress and main,
                             workers=workers, ranks=ranks, device=device)
    return summary
