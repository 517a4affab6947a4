"""Pretrained models shipped in ``systems/<name>/pretrained/``: export from a run, load, compare.

A pretrained folder holds only plain files (no pickled objects):

- ``model.pt`` (state_dict) and ``model.json`` (architecture, cutoff, bead types, units);
- ``training.json`` (settings, validation force MAE/RMSE in kcal/mol/Å) and ``training_log.csv``
  (Lightning's per-epoch metrics);
- ``structure.npz`` and ``analysis.json`` (RDF, ADF and q of the model's CG simulation against the
  mapped reference, and the comparison numbers);
- ``nbody_statistics.npz`` and ``lrp.json`` (walk relevances binned over distance and angle and
  summed per body order, over the run's explained frames);
- ``provenance.json``: how the model was made (profile, settings, machine, date, wall times);
- bead chains: ``priors.json``, ``analysis.json`` (the model-against-prior table) and
  ``chain_maps.npz`` (the dihedral free-energy maps of the reference, the model and the prior-only control);
- fluids: ``frame.npz``, the last mapped reference frame (``positions`` (n, 3) Å, ``cell`` (3, 3) Å,
  ``bead_types`` (n,), ``source``): a real frame for benchmarks (``benchmarks/lrp_statistics.py``,
  ``benchmarks/gpu_check.py``).

The whole folder is kept under 5 MB.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
from pathlib import Path

import numpy as np

from cgexplain.fileio import read_json, save_npz, write_json
from cgexplain.model.potential import load_model
from cgexplain.model.training import merge_training_logs
from cgexplain.workflow.run import RunFolder

__all__ = ["MAX_BYTES", "export_pretrained", "load_pretrained"]

MAX_BYTES = 5 * 1024 * 1024


def _files(run: RunFolder) -> dict[str, Path]:
    """name in the pretrained folder -> its path in the run folder. A protein run ships its priors,
    protein observables and residue maps instead of the fluid structure curves."""
    common = {
        "model.pt": run.model / "model.pt",
        "model.json": run.model / "model.json",
        "training.json": run.done_file("train"),
        # older runs: merged from model/log/version_*
        "training_log.csv": run.model / "training_log.csv",
    }
    if (run.analysis / "chain.npz").exists():  # a bead chain: its priors, analysis table and maps
        return {
            **common,
            "priors.json": run.priors_json,
            "analysis.json": run.done_file("analyse"),
            "lrp.json": run.done_file("explain"),
            "dihedral_maps.png": run.figures / "dihedral_maps.png",
            "chain_distributions.png": run.figures / "chain_distributions.png",
        }
    if run.protein_npz.exists():
        return {
            **common,
            "priors.json": run.priors_json,
            "analysis.json": run.done_file("analyse"),
            "protein.npz": run.protein_npz,
            "lrp.json": run.done_file("explain"),
            "residue_relevance.npz": run.residue_frames / "residue_relevance.npz",
        }
    if (run.lrp / "bodyorder_statistics.npz").exists():  # a body-ordered model: its exact terms instead of walks
        return {
            **common,
            "structure.npz": run.structure_npz,
            "analysis.json": run.done_file("analyse"),
            "bodyorder_statistics.npz": run.lrp / "bodyorder_statistics.npz",
            "bodyorder.json": run.lrp / "bodyorder.json",
            "lrp.json": run.done_file("explain"),
        }
    return {
        **common,
        "structure.npz": run.structure_npz,
        "analysis.json": run.done_file("analyse"),
        "nbody_statistics.npz": run.lrp / "nbody_statistics.npz",
        "lrp.json": run.done_file("explain"),
    }


def export_pretrained(run_dir, dest, note: str = "") -> dict:
    """Copy a finished run's model and its results into a pretrained folder ``dest``.

    run_dir: a run folder in which every stage has finished (``summary.json`` present).
    Writes the files listed in the module docstring into ``dest`` (replaced as a whole, via a
    temporary folder, so an interrupted export leaves the old folder intact) and returns the
    provenance dict. Raises FileNotFoundError naming the first missing run file, and ValueError
    if the folder would exceed :data:`MAX_BYTES`.
    """

    run, dest = RunFolder(run_dir), Path(dest)
    files = _files(run)
    merged_log = not files["training_log.csv"].exists()
    # figures are shipped when drawn (a chain with fewer than two dihedrals has no map)
    files = {k: p for k, p in files.items() if not (k.endswith(".png") and not p.exists())}
    missing = [p for p in [run.summary_json, *files.values()] if not p.exists() and not (merged_log and p == files["training_log.csv"])]
    if missing:
        raise FileNotFoundError(f"{missing[0]} missing; finish the run first (cgexplain run ...)")
    summary = read_json(run.summary_json)
    tmp = dest.parent / f".{dest.name}.exporting"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, path in files.items():
        if merged_log and name == "training_log.csv":
            merge_training_logs(run.model / "log", tmp / name)
        else:
            shutil.copyfile(path, tmp / name)
    prov = {
        "system": summary.get("system"),
        "profile": summary.get("profile"),
        "run_folder": str(run.root),
        "exported": datetime.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "wall_time_s": summary.get("wall_time_s"),
        "reference": {k: summary.get("reference", {}).get(k) for k in ("settings", "n_frames", "check")},
        "training": summary.get("train"),
        "simulation": summary.get("simulate"),
        "note": note,
    }
    write_json(tmp / "provenance.json", prov)
    chain = run.analysis / "chain.npz"
    if chain.exists():  # the dihedral free-energy maps only (the per-frame coordinates stay in the run)
        with np.load(chain) as z:
            save_npz(tmp / "chain_maps.npz", **{k: z[k] for k in z.files if k.startswith("map")})
    mapped = run.mapped
    if "structure.npz" in files and mapped.exists():
        with np.load(mapped) as z:
            k = len(z["positions"]) - 1
            save_npz(
                tmp / "frame.npz",
                positions=z["positions"][k].astype(np.float32),
                cell=z["cells"][k].astype(np.float32),
                bead_types=z["bead_types"].astype(np.int32),
                source=np.array(f"mapped reference frame {k} of {len(z['positions'])}, {mapped}"),
            )
    size = sum(p.stat().st_size for p in tmp.iterdir())
    if size > MAX_BYTES:
        shutil.rmtree(tmp)
        raise ValueError(f"pretrained folder would be {size / 1e6:.1f} MB > {MAX_BYTES / 1e6:.1f} MB")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return prov


def load_pretrained(path, map_location: str = "cpu") -> tuple:
    """Load a pretrained folder. Returns (model, meta, results): the schnetpack model in eval
    mode, its JSON, and a dict with ``training``, ``analysis``, ``lrp``, ``provenance`` (JSON) and
    ``structure``, ``nbody`` (dicts of arrays from the npz files); a protein folder has
    ``priors`` (JSON), ``protein`` and ``residues`` (arrays) instead of ``structure`` and ``nbody``;
    a body-ordered (MACE) fluid folder has ``bodyorder`` (its exact terms, binned) instead of
    ``nbody``; a bead chain has ``priors`` and ``chain`` (its dihedral free-energy maps). Raises FileNotFoundError naming a missing file."""

    d = Path(path)
    model, meta = load_model(d, map_location=map_location)
    res = {k: read_json(d / f"{k}.json") for k in ("training", "analysis", "lrp", "provenance")}
    protein = (d / "protein.npz").exists()
    chain = (d / "chain_maps.npz").exists()
    if protein or chain:
        res["priors"] = read_json(d / "priors.json")
    if chain:
        arrays: tuple = (("chain", "chain_maps.npz"),)
    elif protein:
        arrays = (("protein", "protein.npz"), ("residues", "residue_relevance.npz"))
    elif (d / "bodyorder_statistics.npz").exists():  # a body-ordered model's exact terms
        arrays = (("structure", "structure.npz"), ("bodyorder", "bodyorder_statistics.npz"))
    else:
        arrays = (("structure", "structure.npz"), ("nbody", "nbody_statistics.npz"))
    for key, name in arrays:
        with np.load(d / name) as z:
            res[key] = {k: z[k] for k in z.files}
    return model, meta, res
