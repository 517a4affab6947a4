"""Bonded bead chains whose beads need not be residues (``kind: chain`` in system.yaml), e.g. a
peptide mapped to its backbone atoms (alanine dipeptide: C N CA C N).

- reference: an implicit-solvent OpenMM run of a PDB (:mod:`cgexplain.reference.protein`; no
  native structure is assumed), or the user's data (an .npz with ``bead_names``, files);
- map: ``mapping.beads`` lists the beads (the atoms each carries, the atom that places it);
  consecutive beads are bonded; beads keep their names everywhere (no amino-acid labels);
- train: priors fitted by Boltzmann inversion (:mod:`cgexplain.model.priors`), the network learns
  the residual; ``training.hold_out: second_half`` keeps the second half of every reference run
  out of training for the comparison;
- simulate: the model and the prior-only control (:func:`cgexplain.workflow.stages.stage_simulate`);
- analyse: every bond, angle and dihedral, 2-D dihedral maps and basin populations for the
  reference, the model and the prior-only control, each beside the reference's own noise, with a
  verdict per observable: does the network improve on its prior? (:mod:`cgexplain.analysis.chain`);
- explain: the bead-pair and bead-triplet maps (GNN-LRP relevances, or a body-ordered model's
  exact terms).
"""

from __future__ import annotations

import numpy as np

from cgexplain.analysis.chain import ChainAnalysis, chain_coordinates, compare_chain, dihedral_pairs, free_energy_map, take_frames
from cgexplain.fileio import read_json, save_npz, write_json
from cgexplain.lrp.bodyorder import residue_maps
from cgexplain.lrp.residues import format_pair_table, pair_table
from cgexplain.lrp.settings import ChainLrpSection
from cgexplain.mapping.maps import MappedTrajectory
from cgexplain.model.potential import load_model
from cgexplain.model.priors import fit_priors
from cgexplain.plots.chain import plot_chain_distributions, plot_dihedral_maps
from cgexplain.plots.core import pyplot
from cgexplain.plots.residues import plot_pair_map
from cgexplain.reference.protein import ProteinReferenceSettings, run_halves, run_protein_reference
from cgexplain.workflow.kinds.base import STAGE_SECTIONS, Kind, held_in
from cgexplain.workflow.kinds.protein import control_status, lrp_residue_maps, protein_priors, system_path
from cgexplain.workflow.run import RunFolder

__all__ = ["ChainKind", "chain_analyse", "chain_explain"]


class ChainKind(Kind):
    name = "chain"
    sections = {**STAGE_SECTIONS, "priors": fit_priors, "analysis": ChainAnalysis, "lrp": ChainLrpSection}
    reference_schema = ProteinReferenceSettings
    named_beads = True

    def premapped_bonds(self, n_beads: int) -> np.ndarray:
        """One chain, bead k bonded to bead k + 1."""
        return np.array([[k, k + 1] for k in range(n_beads - 1)], dtype=np.int64).reshape(-1, 2)

    def reference(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        rc = {**cfg["reference"], "pdb": str(system_path(cfg, cfg["reference"]["pdb"]))}
        if run.is_done("reference"):
            summary = read_json(run.done_file("reference"))
        else:
            summary = run_protein_reference(ProteinReferenceSettings.from_dict(rc), run.reference, progress=progress)
        print(
            f"reference ({cfg['name']}): {summary['n_frames']} frames in {len(summary['run_lengths'])} runs "
            f"({summary['simulated_ps'] / 1000:.1f} ns simulated)"
        )
        return summary

    def priors(self, cfg: dict, run: RunFolder) -> dict | None:
        return protein_priors(cfg, run)

    def start_frames(self, cfg: dict, run: RunFolder, n_replicas: int, start_frame: int, n_frames: int) -> list[int]:
        """Spread evenly over the frames training may use (``training.hold_out`` keeps the CG
        replicas from starting in the frames they are compared with)."""
        keep = held_in(cfg, run)
        if keep is None or len(keep) == 0:
            return super().start_frames(cfg, run, n_replicas, start_frame, n_frames)
        return keep[np.linspace(0, len(keep) - 1, n_replicas).round().astype(int)].tolist()

    def analyse(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        return chain_analyse(cfg, run)

    def explain(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        return chain_explain(cfg, run, progress)


def _chain_record(run: RunFolder, n: int) -> tuple[list[str], np.ndarray]:
    """The beads' names and CG bonds (m, 2) from ``cg/mapping.json`` (the map stage's record), else
    ``B<k>`` and one chain k - (k + 1)."""
    m = read_json(run.mapping_json) if run.mapping_json.exists() else {}
    names, bonds = m.get("bead_names"), m.get("cg_bonds")
    names = list(names) if names and len(names) == n else [f"B{k + 1}" for k in range(n)]
    return names, np.asarray(bonds if bonds else [[k, k + 1] for k in range(n - 1)], dtype=np.int64).reshape(-1, 2)


def chain_analyse(cfg: dict, run: RunFolder) -> dict:
    """The model's and the prior-only control's ensembles against the mapped reference
    (:func:`cgexplain.analysis.chain.compare_chain`): with ``training.hold_out: second_half`` the
    comparison is with the held-out second halves of the reference runs, else with all frames;
    the reference's noise is always its first against its second halves. Writes
    ``analysis.json`` (the table, the verdicts, the populations), ``chain.npz`` (every coordinate
    of the three ensembles, the maps) and the figures ``dihedral_maps*.png`` and
    ``chain_distributions.png``."""
    spec = ChainAnalysis(**{k: v for k, v in cfg["analysis"].items()})
    T = float(cfg["simulation"]["temperature"])
    ref_t = MappedTrajectory.load(run.mapped)
    n = ref_t.positions.shape[1]
    names, bonds = _chain_record(run, n)

    def coords(x):
        return chain_coordinates(x, bonds, names, spec.dihedral_names)

    ref = coords(ref_t.positions)
    run_lengths = read_json(run.reference_json).get("run_lengths") or [len(ref_t.positions)]
    halves = run_halves(run_lengths)
    held_out = cfg["training"].get("hold_out") == "second_half"
    target = halves[1] if held_out else np.arange(len(ref_t.positions))
    cg_pos, _, cg_lengths = run.cg_frames()
    model = coords(cg_pos)
    prior = prior_lengths = None
    control = control_status(cfg, run)
    if control == "simulated":
        p_pos, _, prior_lengths = run.cg_frames(run.prior_simulation)
        prior = coords(p_pos)
    table = compare_chain(ref, halves, target, model, list(cg_lengths), prior, list(prior_lengths) if prior_lengths else None, spec)
    ens = {"reference": take_frames(ref, target), "model": model, **({"prior only": prior} if prior is not None else {})}
    maps = _dihedral_maps(cfg, run, spec, ens, T)
    plot_chain_distributions(ens, run.figures / "chain_distributions.png", title=f"{cfg['name']}: bonds, angles, dihedrals")
    save_npz(
        run.analysis / "chain.npz",
        **{f"reference_{k}": ref[k] for k in ("bonds", "angles", "dihedrals")},
        **{f"cg_{k}": model[k] for k in ("bonds", "angles", "dihedrals")},
        **({f"prior_{k}": prior[k] for k in ("bonds", "angles", "dihedrals")} if prior is not None else {}),
        **maps,
    )
    summary = {
        **table,
        "compared_with": "the held-out second half of every reference run" if held_out else "every reference frame",
        "noise_is": "the same distance between the first and the second half of every reference run",
        "distance": "Jensen–Shannon distance (base 2) of histograms; |Δp| for basin populations",
        "prior_only_control": control,
        "bead_names": names,
        "labels": ref["labels"],
        "temperature_K": T,
        "verdicts": {r["name"]: r["verdict"] for r in table["observables"]},
    }
    write_json(run.analysis / "analysis.json", summary)
    return summary


def _dihedral_maps(cfg: dict, run: RunFolder, spec: ChainAnalysis, ens: dict[str, dict], T: float) -> dict:
    """Free-energy maps of every dihedral pair of each ensemble ({label: coordinates}, the
    reference first); figures; arrays for chain.npz."""
    out: dict = {}
    lab = ens["reference"]["labels"]["dihedrals"]
    for k, (a, b) in enumerate(dihedral_pairs(spec, len(lab))):
        maps = {}
        for name, o in ens.items():
            edges, f = free_energy_map(o["dihedrals"][:, a], o["dihedrals"][:, b], T, spec.map_bins)
            maps[name] = f
            out[f"map{k}_{name.replace(' ', '_')}"] = f
        out[f"map{k}_edges"] = edges
        suffix = "" if k == 0 else f"_{k}"
        plot_dihedral_maps(
            maps, edges, lab[a], lab[b], run.figures / f"dihedral_maps{suffix}.png", title=f"{cfg['name']}: {lab[a]}/{lab[b]} free energy"
        )
    return out


def chain_explain(cfg: dict, run: RunFolder, progress: bool = True) -> dict:
    """Bead-pair map (mean over ``lrp.n_frames`` CG frames spread over the simulation) of the
    model: GNN-LRP walk relevances (Schnake et al. TPAMI 2022; relevances, not energies) for PaiNN
    and SO3net, the exact many-body terms (energies) for a body-ordered MACE model. Bead names
    label every table. Writes ``lrp/lrp.json`` and ``figures/bead_pair_relevance.png``."""
    lc = cfg["lrp"]
    model, meta = load_model(run.model)
    ref = MappedTrajectory.load(run.mapped)
    pos = run.cg_frames()[0]
    types = ref.bead_types
    n = len(types)
    names, b = _chain_record(run, n)
    pick = np.unique(np.linspace(0, len(pos) - 1, int(lc["n_frames"])).round().astype(int))
    mace = cfg["model"]["representation"] == "mace"
    if mace:
        maps = residue_maps(model, pos[pick], types, progress=progress)
    else:
        maps = lrp_residue_maps(cfg, run, pos, types, pick, names, None, progress)
    bonded = np.zeros((n, n))
    bonded[b[:, 0], b[:, 1]] = bonded[b[:, 1], b[:, 0]] = 1.0
    what = "exact many-body terms (kcal/mol, energies)" if mace else "GNN-LRP relevances (kcal/mol, not energies)"
    fig = plot_pair_map(
        maps["pair_map"],
        bonded,
        run.figures / "bead_pair_relevance.png",
        title=f"{cfg['name']}: bead pairs, {what}",
        contact_label="bonded",
        names=names,
        contact_title="CG bonds",
        value_label="energy (kcal/mol)" if mace else "relevance (kcal/mol)",
    )
    pyplot().close(fig)
    stab, destab = pair_table(maps["pair_map"], segments=None, resnames=names, k=5)
    out = {
        "method": what,
        "n_frames": int(len(pick)),
        "frame_ids": pick.tolist(),
        "bead_names": names,
        "pair_map_kcal_mol": np.asarray(maps["pair_map"]).tolist(),
        "body_sum_mean_kcal_mol": {str(k): float(v) for k, v in maps["body_sum_mean"].items()},
        "most_stabilising_pairs": stab,
        "most_destabilising_pairs": destab,
        "pair_table_markdown": format_pair_table(maps["pair_map"], segments=None, resnames=names, k=5, unit="bead"),
        "top_stabilising_triplets": [[names[int(x)] + str(int(x) + 1) for x in t] for t in maps["top_stabilising"]],
        "top_stabilising_triplets_kcal_mol": [float(x) for x in maps["top_stabilising_relevance"]],
        "top_destabilising_triplets": [[names[int(x)] + str(int(x) + 1) for x in t] for t in maps["top_destabilising"]],
        "top_destabilising_triplets_kcal_mol": [float(x) for x in maps["top_destabilising_relevance"]],
    }
    if not mace:
        c = np.asarray(maps["conservation"])
        out["conservation_max_abs_kcal_mol"] = float(np.abs(c[:, 0] - c[:, 1]).max())
        out["note"] = "walk relevances sum to Σ h0·∂E/∂h0 of the modified pass, not to the energy; the prior is not explained"
    write_json(run.lrp / "lrp.json", out)
    return out
