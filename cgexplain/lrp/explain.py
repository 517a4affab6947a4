"""``cgexplain explain MODEL_DIR TRAJECTORY``: walk relevances of any CG trajectory.

Reads a saved model (model.pt + model.json) and CG frames, checks the frames against what the
model was trained for (bead count where priors fix it, bead types, periodicity:
:func:`cgexplain.model.potential.check_system`), computes every walk's relevance per frame
(GNN-LRP; Bonneau et al., arXiv 2407.04526), and writes per-frame walk files, the n-body
statistics (``nbody_statistics.npz``, ``lrp.json``) and the two standard figures (2-body
relevance against distance over the RDF, 3-body relevance against angle over the ADF).
Frames without a periodic cell (a protein in vacuum or implicit solvent) have no RDF (g(r)
needs the box volume): the 2-body curve is drawn alone, the 3-body curve over the ADF, and the
summary says so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from cgexplain.analysis.structure import adf, first_minimum, pair_distance_density, rdf
from cgexplain.fileio import read_json, save_npz, write_json
from cgexplain.lrp.bodyorder import explain_body_order
from cgexplain.lrp.branching import check_rule_model
from cgexplain.lrp.settings import LrpSection
from cgexplain.lrp.sources import ArrayFrames, TrajectoryFrames
from cgexplain.lrp.statistics import _params, explain_frames
from cgexplain.model.potential import check_system, load_model, warn_system

__all__ = ["parse_frames", "read_cg_frames", "open_cg_frames", "explain_trajectory"]


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


def _resolve_types(trajectory, types, file_types):
    if types is None:
        types = file_types
    elif isinstance(types, str) and not types.endswith(".npz"):  # a comma list, as --types takes it
        try:
            types = [int(t) for t in types.split(",")]
        except ValueError:
            raise ValueError(f"types {types!r}: expected an .npz with bead_types or a comma list of integers") from None
    elif isinstance(types, (str, Path)):
        with np.load(types) as z:
            if "bead_types" not in z:
                raise KeyError(f"{types}: missing array 'bead_types'")
            types = z["bead_types"]
    if types is None:
        raise ValueError(f"{trajectory}: bead types are needed: pass --types (an npz with bead_types, e.g. cg/mapped.npz, or a comma list)")
    return np.asarray(types, dtype=np.int64)


def open_cg_frames(trajectory, topology=None, types=None, frames=None):
    """A :class:`~cgexplain.lrp.sources.FrameSource` over the chosen frames of a CG trajectory.

    trajectory: an ``.npz`` (keys positions (F, n, 3) Å, cells (F, 3, 3) Å, bead_types (n,), as
    written by the map stage; read into memory) or any trajectory MDAnalysis reads with its
    ``topology`` (read lazily, a chunk of frames at a time, so its length is not bounded by
    memory). types: None (from the npz), an ``.npz`` with ``bead_types``, a sequence of ints
    (n,), or a comma list of ints as a string ('1,1,2'). frames: see :func:`parse_frames`.
    Raises FileNotFoundError, KeyError or ValueError naming the file and the problem.
    """

    trajectory = Path(trajectory)
    if not trajectory.exists():
        raise FileNotFoundError(f"trajectory {trajectory} does not exist")
    if trajectory.suffix == ".npz":
        pos, cells, types = read_cg_frames(trajectory, topology, types)
        idx = parse_frames(frames, len(pos))
        return ArrayFrames(pos[idx], cells[idx], types, idx)
    if topology is None:
        raise ValueError(f"{trajectory}: a --topology (the CG PDB) is needed to read this trajectory")
    src = TrajectoryFrames(topology, trajectory, _resolve_types(trajectory, types, None))
    src.frame_ids = parse_frames(frames, len(src))
    return src


def read_cg_frames(trajectory, topology=None, types=None):
    """All CG frames of a trajectory in memory (for long trajectories use :func:`open_cg_frames`).

    trajectory: an ``.npz`` (keys positions (F, n, 3) Å, cells (F, 3, 3) Å, bead_types (n,), as
    written by the map stage) or any trajectory MDAnalysis reads with its ``topology``.
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
        src = open_cg_frames(trajectory, topology, types)
        pos, cells = src.read(np.arange(len(src)))
        return pos, cells, src.types
    types = _resolve_types(trajectory, types, file_types)
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


_LRP = dataclasses.asdict(LrpSection())


def explain_trajectory(
    model_dir,
    trajectory,
    out_dir,
    *,
    topology=None,
    types=None,
    frames=None,
    rule: str = _LRP["rule"],
    gamma: float = _LRP["gamma"],
    bias_rule: bool = _LRP["bias_rule"],
    normalise: str = _LRP["normalise"],
    shell: float | None = None,
    r_edges=_LRP["r_edges"],
    angle_bins: int = _LRP["angle_bins"],
    save_walks: str = _LRP["save_walks"],
    enumeration: str = _LRP["enumeration"],
    structure_frames: int = 200,
    progress: bool = True,
    workers: int = _LRP["workers"],
    backend: str = _LRP["backend"],
    device: str | None = None,
) -> dict:
    """Walk relevances of the chosen frames of a CG trajectory, their statistics and figures.

    model_dir: folder with model.pt and model.json. trajectory/topology/types: see
    :func:`open_cg_frames`; a trajectory file is read one frame at a time, so the memory stays
    bounded whatever its length. frames: see :func:`parse_frames`. shell (Å): leg cutoff of the
    3-body angles; default the first minimum of the RDF (frames without a periodic cell: of the
    pair-distance density, :func:`cgexplain.analysis.structure.pair_distance_density`). The RDF and ADF drawn under the curves
    (``structure.npz``) come from at most ``structure_frames`` evenly spaced frames of the
    selection; frames without a periodic cell have no RDF (the 2-body curve is drawn alone and
    ``lrp.json`` says so under ``structure``). rule: 'publication' (walks), 'branching' or
    'branching-tree' (branching walks or trees, relevance per bead set; PaiNN only:
    :mod:`cgexplain.lrp.branching`). The LRP settings and their defaults are those of the ``lrp`` section
    (:class:`cgexplain.lrp.statistics.LrpSection`): r_edges (lo Å, hi Å, n_bins) for the 2-body curve
    (the publication's 2-10 Å, 75 bins); normalise 'abs_mean_total' (the publication's
    |Σ R| / N_walks), 'mean_abs', 'sum_abs' or 'none'; enumeration 'pruned' (walks with at most L
    distinct beads; the (L+1)-body total from the sum rule) or 'all'; save_walks 'first', 'all'
    or 'none' frames' walk files (a saved frame is enumerated in full). Writes into ``out_dir``:
    frame_XXXX.npz (and walks), nbody_statistics.npz, structure.npz, lrp.json,
    figures/relevance_2body.png and relevance_3body.png. Resumes from the frames already written.
    Returns the lrp summary dict.

    workers: processes sharing the frames through MDAnalysis's parallel ``backend``
    ('multiprocessing' or 'dask'; :class:`cgexplain.lrp.frames.FrameExplainer`), each loading
    the model with cores // workers torch threads. device: 'cpu' (default), 'cuda' or 'cuda:N'.
    The numbers do not depend on how the frames are spread.
    Before anything is computed or written, the frames are checked against what the model was
    trained for (model.json ``trained_for``, or what older model folders let infer;
    :func:`~cgexplain.model.potential.check_system`): a periodicity other than the training data's,
    or a sequence other than the trained chain's, is warned about and listed under ``warnings`` in
    the summary.
    Raises FileNotFoundError, KeyError or ValueError (naming the file, key or frame) for bad input,
    :class:`~cgexplain.model.potential.SystemMismatchError` (a ValueError naming the model folder,
    the trajectory and both bead counts) for a bead count other than the one the model's priors
    were fitted for, :class:`~cgexplain.model.potential.BeadTypeError` (a ValueError) for bead
    types the model was not trained on, ValueError for a selection mixing periodic and
    non-periodic frames, ValueError for a branching rule with a model that is not a PaiNN, and ValueError when ``out_dir`` holds relevances for other inputs.

    A body-ordered model (``--arch mace``) has no walks: its exact 1-, 2- and 3-body terms are
    written instead (:func:`cgexplain.lrp.bodyorder.explain_body_order`: ``bodyorder.json``,
    ``bodyorder_statistics.npz``, ``figures/bodyorder_2body.png`` and ``bodyorder_3body.png``);
    the LRP settings are then unused but r_edges and angle_bins.
    """

    model, meta = load_model(model_dir)  # fail early, with a clear message, on a bad model folder
    lc = {
        "rule": rule,
        "gamma": gamma,
        "bias_rule": bias_rule,
        "normalise": normalise,
        "r_edges": list(r_edges),
        "angle_bins": angle_bins,
        "save_walks": save_walks,
        "enumeration": enumeration,
    }
    _params(lc)  # unknown values fail here, before any frame is read
    check_rule_model(rule, model, f"model {model_dir}")
    src = open_cg_frames(trajectory, topology, types, frames)
    # another chain than the priors', or a type the model never saw (an untrained embedding): refused before any work
    given = f" with --types {str(types)[:40]}{'...' if len(str(types)) > 40 else ''}" if isinstance(types, (str, Path)) else ""
    idx = src.frame_ids
    ks = np.unique(np.linspace(0, len(src) - 1, min(len(src), int(structure_frames))).round().astype(int))
    pos_s, cells_s = src.read(ks)  # the structure sample (its first frame is the trajectory's first) also gives the periodicity checked
    notes = check_system(meta, src.types, f"{trajectory}{given}", model=model, cells=cells_s[:1], model_name=f"model {model_dir}")
    del model
    warn_system(notes)
    boxed = np.abs(cells_s).sum(axis=(1, 2)) > 0
    if boxed.any() and not boxed.all():
        raise ValueError(
            f"{trajectory}: frame {int(idx[ks[int(np.argmin(boxed))]])} has no periodic cell but frame "
            f"{int(idx[ks[int(np.argmax(boxed))]])} has one; explain periodic and non-periodic frames separately (--frames)"
        )
    periodic = bool(boxed.all())
    shell_from = "given"
    if periodic:
        r_max = min(float(r_edges[1]), 0.5 * float(np.min(np.linalg.norm(cells_s[0], axis=1))))
        r, g = rdf(pos_s, cells_s, r_max=r_max, n_bins=max(50, int(r_max / 0.05)))
        rdf_part = {"cg_r": r, "cg_g": g}
        if shell is None:
            shell, shell_from = first_minimum(r, g), "the first minimum of the RDF"
    else:
        rdf_part = {}
        if shell is None:
            rd, dens = pair_distance_density(pos_s, float(r_edges[1]))
            shell, shell_from = first_minimum(rd, dens), "the first minimum of the pair-distance density"
    th, p, _ = adf(pos_s, cells_s, shell=float(shell), n_bins=90)
    del pos_s, cells_s
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_npz(out / "structure.npz", **rdf_part, cg_theta=th, cg_p=p, shell=float(shell), frames=idx[ks], periodic=periodic)
    inputs = {
        "model": str(Path(model_dir).resolve()),
        "model_sha256": _sha256(Path(model_dir) / "model.pt"),
        "trajectory": str(Path(trajectory).resolve()),
        "frames": idx.tolist(),
        "shell": float(shell),
        **lc,
    }
    if (out / "explain_inputs.json").exists():
        old = {"rule": "publication", **read_json(out / "explain_inputs.json")}  # folders from before the rule existed
        if old != inputs:
            diff = sorted(k for k in set(old) | set(inputs) if old.get(k) != inputs.get(k))
            raise ValueError(f"{out} holds relevances for other inputs (differing: {', '.join(diff)}); use another --out or remove it")
    else:
        write_json(out / "explain_inputs.json", inputs)
    if meta["hparams"].get("representation") == "mace":  # body-ordered: its own exact terms, no walks
        model = load_model(model_dir)[0]
        lo, hi, nb = r_edges
        return explain_body_order(
            model,
            src,
            out,
            r_edges=np.linspace(float(lo), float(hi), int(nb) + 1),
            a_edges=np.linspace(0.0, 180.0, int(angle_bins) + 1),
            shell=float(shell),
            structure=dict(np.load(out / "structure.npz")),
            figures=out / "figures",
            title=Path(trajectory).stem,
            progress=progress,
        )
    summary = explain_frames(
        Path(model_dir),
        src,
        None,
        None,
        out,
        lc,
        shell=float(shell),
        structure=out / "structure.npz",
        figures=out / "figures",
        title=Path(trajectory).stem,
        progress=progress,
        workers=workers,
        backend=backend,
        device=device,
        extra={
            "structure": {
                "periodic": periodic,
                "rdf": "computed"
                if periodic
                else "no RDF: the frames are not periodic (g(r) needs a box volume); the 2-body curve is drawn without it",
                "shell_A": float(shell),
                "shell_from": shell_from,
            },
            "warnings": notes,
        },
    )
    return summary
