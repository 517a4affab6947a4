"""Proteins (``kind: protein`` in system.yaml): one bead per residue, no box.

- reference: an implicit-solvent OpenMM run (:mod:`cgexplain.reference.protein`), checked by the
  CA-RMSD to the minimised native structure;
- train: priors fitted by Boltzmann inversion (:mod:`cgexplain.model.priors`); the network learns
  the residual;
- simulate: replicas start in the native runs of the reference; the mutant of ``lrp.mutations``
  is simulated beside the wild type when ``lrp.mutant_simulation_steps`` > 0;
- analyse: protein observables and TICA (:mod:`cgexplain.analysis.protein`);
- explain: residue maps and the mutation what-if (:mod:`cgexplain.lrp.residues`,
  :mod:`cgexplain.lrp.mutations`).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

from cgexplain.aminoacids import AMINO_ACID_TYPES
from cgexplain.analysis.protein import (
    ProteinAnalysis,
    ca_rmsd,
    compare_protein,
    free_energy_surface,
    native_contacts,
    protein_observables,
    secondary_structure,
    ss_segments,
    tica_features,
    tica_fit,
    tica_project,
)
from cgexplain.analysis.verdicts import verdict_rows
from cgexplain.fileio import read_json, save_npz, write_json
from cgexplain.lrp.bodyorder import residue_maps
from cgexplain.lrp.mutations import mutate_types, mutation_whatif
from cgexplain.lrp.residues import (
    explain_protein_frames,
    format_pair_table,
    pair_projection,
    pair_table,
    relevance_pdb_scale,
    write_relevance_pdb,
)
from cgexplain.lrp.settings import ProteinLrpSection
from cgexplain.mapping.maps import MappedTrajectory, MappingError, mapping_from_section
from cgexplain.md.langevin import SimSettings, run_simulation
from cgexplain.model.potential import load_model
from cgexplain.model.priors import fit_priors, prior_forces
from cgexplain.plots.priors import plot_priors
from cgexplain.plots.protein_run import (
    plot_mutant_distributions,
    plot_mutation_difference,
    plot_protein_analysis,
    plot_reference_rmsd,
    plot_residue_relevance,
)
from cgexplain.reference.protein import ProteinReferenceSettings, run_boundaries, run_halves, run_protein_reference
from cgexplain.workflow.kinds.base import STAGE_SECTIONS, Kind, held_in
from cgexplain.workflow.run import RunFolder

__all__ = ["ProteinKind", "native_ca_positions", "reference_ca_positions", "system_path", "lrp_residue_maps", "control_status", "protein_priors"]

# the npz arrays of the free-energy surfaces when TICA gave fewer than two components
_NO_FES = (np.zeros(1), np.zeros(1), np.zeros((0, 0)))


class ProteinKind(Kind):
    name = "protein"
    sections = {**STAGE_SECTIONS, "priors": fit_priors, "analysis": ProteinAnalysis, "lrp": ProteinLrpSection}
    reference_schema = ProteinReferenceSettings
    residue_chains = True
    named_beads = True

    def premapped_names(self, bead_types: np.ndarray, names: list[str] | None = None) -> tuple[list[str], dict[str, int]]:
        """The data's own ``names`` when given; else amino-acid names when every type is one of
        :data:`cgexplain.aminoacids.AMINO_ACID_TYPES` (one bead per residue), else ``B<type>``.
        (A chain whose beads are not residues is ``kind: chain``.)"""
        inv = {v: k for k, v in AMINO_ACID_TYPES.items()}
        if names is None and set(np.unique(bead_types).tolist()) <= set(inv):
            return [inv[int(t)] for t in bead_types], dict(AMINO_ACID_TYPES)
        return super().premapped_names(bead_types, names)

    def premapped_bonds(self, n_beads: int) -> np.ndarray:
        """One chain, bead k bonded to bead k + 1."""
        return np.array([[k, k + 1] for k in range(n_beads - 1)], dtype=np.int64).reshape(-1, 2)

    def check_mapping(self, run: RunFolder, n_beads: int) -> None:
        """One CA of the native structure per bead."""
        if run.native_pdb.exists():
            n_ca = len(native_ca_positions(run.reference))
            if n_ca != n_beads:
                raise MappingError(f"{run.native_pdb}: {n_ca} CA atoms, but the mapping has {n_beads} beads (one CA per bead is needed)")

    def reference(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        return protein_reference(cfg, run, progress)

    def priors(self, cfg: dict, run: RunFolder) -> dict | None:
        return protein_priors(cfg, run)

    def start_frames(self, cfg: dict, run: RunFolder, n_replicas: int, start_frame: int, n_frames: int) -> list[int]:
        return protein_start_frames(run, n_replicas)

    def extra_simulations(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        spec, n_steps = cfg["lrp"].get("mutations"), int(cfg["lrp"]["mutant_simulation_steps"])
        if not spec or n_steps <= 0:
            return {}
        return {f"mutant_{spec}": mutant_simulation(cfg, run, spec, n_steps, progress)}

    def analyse(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        return protein_analyse(cfg, run)

    def explain(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        return protein_explain(cfg, run, progress)


def system_path(cfg: dict, rel: str) -> Path:
    """``rel`` (a path from system.yaml) as it stands: absolute, or relative to the system folder."""
    p = Path(rel)
    return p if p.is_absolute() else Path(cfg["system_dir"]) / p


def native_ca_positions(ref_dir) -> np.ndarray:
    """CA positions (n, 3) Å of the minimised native structure, ``native.pdb`` of a reference."""
    import MDAnalysis as mda

    return mda.Universe(str(Path(ref_dir) / "native.pdb")).select_atoms("name CA").positions.astype(np.float64)


def reference_ca_positions(ref_dir) -> tuple[np.ndarray, np.ndarray]:
    """CA positions of the reference: (native (n, 3) Å from ``native.pdb``, frames (F, n, 3) Å)."""
    import MDAnalysis as mda

    d = Path(ref_dir)
    nat = native_ca_positions(d)
    u = mda.Universe(str(d / "topology.pdb"), str(d / "trajectory.trr"))
    ca = u.select_atoms("name CA")
    return nat, np.array([ca.positions for _ in u.trajectory], dtype=np.float64)


def _type_names(table: dict, types) -> list[str]:
    """The residue name of each bead type in ``types``, from the type table {name: type}."""
    inv = {int(v): k for k, v in table.items()}
    return [inv[int(t)] for t in types]


def _native_run_frames(ref: dict) -> list[np.ndarray]:
    """Frame indices (into ``cg/mapped.npz``) of each native run of the reference summary ``ref``."""
    return [np.arange(a, b) for (a, b), kind in zip(run_boundaries(ref["run_lengths"]), ref["run_kinds"]) if kind == "native"]


def _spread(n_items: int, n: int) -> np.ndarray:
    """Indices of ``n`` items spread evenly over ``n_items`` (rounded, duplicates kept)."""
    return np.linspace(0, n_items - 1, int(n)).round().astype(int)


def protein_reference(cfg: dict, run: RunFolder, progress: bool = True) -> dict:
    """Run the protein reference into ``run.reference`` and check what it sampled: CA-RMSD to the minimised
    native structure per run (mean, max, fraction <= ``analysis.rmsd_threshold``), in
    ``check.json`` and the figure ``reference_rmsd.png``."""
    d = run.reference
    rc = dict(cfg["reference"])
    rc["pdb"] = str(system_path(cfg, rc["pdb"]))
    if run.is_done("reference"):
        summary = read_json(run.done_file("reference"))
    else:
        summary = run_protein_reference(ProteinReferenceSettings.from_dict(rc), d, progress=progress)
    if not (d / "check.json").exists():
        thr = float(cfg["analysis"]["rmsd_threshold"])
        nat, ca = reference_ca_positions(d)
        rmsd = ca_rmsd(ca, nat)
        bounds = run_boundaries(summary["run_lengths"])
        t = np.arange(len(rmsd)) * float(rc["save_interval"])
        plot_reference_rmsd(t, rmsd, bounds, summary["run_kinds"], thr, run.figures / "reference_rmsd.png", f"{cfg['name']}: reference runs")
        write_json(d / "check.json", _reference_check(rmsd, bounds, summary["run_kinds"], thr))
    c = read_json(d / "check.json")
    print(
        f"reference ({cfg['name']}): {summary['n_frames']} frames in {len(summary['run_lengths'])} runs; "
        f"CA-RMSD to native mean {c['rmsd_mean_A']:.2f} Å, " + ", ".join(f"run {r['run']} ({r['kind']}) {r['rmsd_mean_A']:.2f}" for r in c["runs"])
    )
    return {**summary, "check": c}


def _reference_check(rmsd: np.ndarray, bounds: list[tuple[int, int]], kinds: list[str], thr: float) -> dict:
    """The content of the reference's ``check.json``: CA-RMSD (Å) statistics per run and over all runs."""
    runs = [
        {
            "run": k,
            "kind": kind,
            "rmsd_mean_A": float(rmsd[a:b].mean()),
            "rmsd_max_A": float(rmsd[a:b].max()),
            f"fraction_rmsd_le_{thr:g}A": float((rmsd[a:b] <= thr).mean()),
        }
        for k, ((a, b), kind) in enumerate(zip(bounds, kinds))
    ]
    return {
        "runs": runs,
        "rmsd_mean_A": float(rmsd.mean()),
        f"fraction_rmsd_le_{thr:g}A": float((rmsd <= thr).mean()),
        "rmsd_threshold_A": thr,
        "passed": True,
    }


def protein_start_frames(run: RunFolder, n_replicas: int) -> list[int]:
    """Start frames of ``n_replicas`` CG replicas: spread evenly over the frames of the native
    runs of the reference (so the replicas start from the native basin at the target
    temperature). Indices into ``cg/mapped.npz``."""
    ref = read_json(run.reference_json)
    frames = np.concatenate(_native_run_frames(ref) or [np.arange(sum(ref["run_lengths"]))])
    return frames[_spread(len(frames), n_replicas)].tolist()


def _timescales(tica, lag) -> list:
    try:
        ts = np.ravel(tica.timescales(lag))[:4]
        return [float(t) for t in ts if np.isfinite(t) and t > 0]  # too little data gives no positive timescale
    except Exception:  # a TICA model without implied timescales
        return []


@dataclasses.dataclass
class _ProteinEnsembles:
    """What the analyse stage computes: observables, TICA projections and free-energy surfaces of both ensembles."""

    obs_ref: dict  # protein_observables of the mapped reference
    obs_cg: dict  # ... of the CG ensemble
    native: np.ndarray  # (n, 3) Å
    pairs: np.ndarray  # (m, 2) native contacts
    r0: np.ndarray  # (m,) Å
    tica_ref: np.ndarray  # (F_ref, dim)
    tica_cg: np.ndarray  # (F_cg, dim)
    fes_ref: tuple | None  # (xedges, yedges, F kcal/mol); None without two TICA components
    fes_cg: tuple | None
    summary: dict  # analysis.json
    obs_prior: dict | None = None  # ... of the prior-only control, when simulated


def protein_analyse(cfg: dict, run: RunFolder) -> dict:
    """CG ensemble against the mapped reference: CA-RMSD, Q, Rg, bonds, angles, dihedrals, and a
    TICA free-energy surface (deeptime TICA fitted on the reference runs, both ensembles
    projected on it). Writes ``analysis.json``, ``protein.npz`` and the figures
    ``protein_distributions.png``, ``internal_distributions.png``, ``tica_fes.png``.

    The folded-state criterion (issue: CA-RMSD <= 3 Å in >= 90 % of CG frames) is reported as
    ``folded_fraction_cg`` and ``folded_criterion_met``."""
    e = _analyse_ensembles(cfg, run)
    plot_protein_analysis(e.obs_ref, e.obs_cg, e.fes_ref, e.fes_cg, run.figures, cfg["name"])
    return _write_analysis(run, e)


def _analyse_ensembles(cfg: dict, run: RunFolder) -> _ProteinEnsembles:
    """The analyse stage's computation, nothing written."""
    ac = cfg["analysis"]
    thr = float(ac["rmsd_threshold"])
    T = float(cfg["simulation"]["temperature"])
    ref = MappedTrajectory.load(run.mapped)
    native = native_ca_positions(run.reference)
    cg_pos, _, cg_lengths = run.cg_frames()
    pairs, r0 = native_contacts(native, cutoff=float(ac["contact_cutoff"]))
    masses = ref.bead_masses
    obs_ref = protein_observables(ref.positions.astype(np.float64), native, pairs, r0, masses)
    obs_cg = protein_observables(cg_pos, native, pairs, r0, masses)
    # TICA on the reference runs (no lagged pair spans two runs), both ensembles projected
    runs = read_json(run.reference_json)["run_lengths"]
    feats = [tica_features(ref.positions[a:b]) for a, b in run_boundaries(runs)]
    lag = int(ac["tica_lag"])
    tica = tica_fit(feats, lagtime=lag, dim=int(ac["tica_dim"]))
    p_ref = np.concatenate(tica_project(tica, feats))
    p_cg = tica_project(tica, tica_features(cg_pos))
    fes_ref = fes_cg = tica_note = None
    if p_ref.ndim == 2 and p_ref.shape[1] >= 2:
        lo, hi = np.percentile(np.concatenate([p_ref[:, :2], p_cg[:, :2]]), [0.5, 99.5], axis=0)
        rng = [[lo[0], hi[0]], [lo[1], hi[1]]]
        fes_ref = free_energy_surface(p_ref, T, bins=40, range=rng)
        fes_cg = free_energy_surface(p_cg, T, bins=40, range=rng)
    else:  # too few reference frames for two TICA components (a tiny data set): no free-energy surface
        tica_note = (
            f"TICA gave {p_ref.shape[1] if p_ref.ndim == 2 else 0} component(s) from {len(ref.positions)} reference frames: no free-energy surface"
        )
    folded = float(np.mean(obs_cg["rmsd"] <= thr))
    starts = np.concatenate([[0], np.cumsum(cg_lengths)])
    obs_prior, prior_lengths = None, None
    if run.prior_simulation_json.exists():
        p_pos, _, prior_lengths = run.cg_frames(run.prior_simulation)
        obs_prior = protein_observables(p_pos, native, pairs, r0, masses)
    held_out = cfg["training"].get("hold_out") == "second_half"
    table = protein_verdicts(obs_ref, run_halves(runs), obs_cg, list(cg_lengths), obs_prior, prior_lengths, thr, held_out, control_status(cfg, run))
    summary = {
        **compare_protein(obs_ref, obs_cg, rmsd_threshold=thr),
        **table,
        "folded_fraction_cg": folded,
        "folded_fraction_per_replica": [float(np.mean(obs_cg["rmsd"][a:b] <= thr)) for a, b in zip(starts[:-1], starts[1:])],
        "folded_criterion": f"CA-RMSD <= {thr:g} Å in >= 90 % of CG frames",
        "folded_criterion_met": bool(folded >= 0.9),
        "n_native_contacts": int(len(pairs)),
        "tica_lag_frames": lag,
        "tica_timescales_frames": _timescales(tica, lag),
        **({"tica_note": tica_note} if tica_note else {}),
        "n_frames_reference": int(len(ref.positions)),
        "n_frames_cg": int(len(cg_pos)),
        "temperature_K": T,
    }
    return _ProteinEnsembles(obs_ref, obs_cg, native, pairs, r0, p_ref, p_cg, fes_ref, fes_cg, summary, obs_prior)


def protein_verdicts(
    obs_ref: dict,
    halves: tuple[np.ndarray, np.ndarray],
    obs_cg: dict,
    cg_lengths: list[int],
    obs_prior: dict | None,
    prior_lengths: list[int] | None,
    thr: float,
    held_out: bool = False,
    control: str = "simulated",
) -> dict:
    """The JS distances of :func:`~cgexplain.analysis.protein.compare_protein` (RMSD, Q, Rg, bonds,
    angles, dihedrals) of the model and of the prior-only control from the reference (its second
    halves ``halves[1]`` with ``held_out``, else every frame), each beside the reference's own noise
    (its first against its second halves of every run) and with the verdict
    (:func:`cgexplain.analysis.verdicts.verdict_rows`). ``control``: what became of the prior-only
    control (:func:`control_status`). Returns the analysis.json entries."""
    a, b = halves

    def take(o: dict, rows) -> dict:
        return {k: v[rows] for k, v in o.items()}

    def js(c: dict) -> dict[str, float]:
        return {f"{k.removesuffix('_js_distance')} JS": v for k, v in c.items() if k.endswith("_js_distance")}

    noise = js(compare_protein(take(obs_ref, a), take(obs_ref, b), rmsd_threshold=thr))
    ens = {"model": obs_cg, **({"prior": obs_prior} if obs_prior is not None else {})}
    target = take(obs_ref, b) if held_out else obs_ref
    rows = verdict_rows(
        lambda w, r: js(compare_protein(target, take(ens[w], r), rmsd_threshold=thr)),
        noise,
        cg_lengths,
        list(prior_lengths or []) if obs_prior is not None else None,
    )
    return {
        "observables": rows,
        "verdicts": {r["name"]: r["verdict"] for r in rows},
        "compared_with": "the held-out second half of every reference run" if held_out else "every reference frame",
        "distance": "Jensen–Shannon distance (base 2) of histograms",
        "noise_is": "the same distance between the first and the second half of every reference run",
        "n_frames": {
            "compared_with": int(len(b) if held_out else len(obs_ref["rmsd"])),
            "model": int(sum(cg_lengths)),
            "prior_only": int(sum(prior_lengths or [])) if obs_prior is not None else 0,
        },
        "prior_only_control": control,
    }


def control_status(cfg: dict, run: RunFolder) -> str:
    """What became of the prior-only control of a model with priors: "simulated", "failed: ..."
    (the simulate stage recorded its error), or "not simulated (simulation.prior_replicas is 0)".
    Raises FileNotFoundError when it should exist but has not finished (rerun the simulate stage)."""
    if run.prior_simulation_json.exists():
        return "simulated"
    if not run.priors_json.exists():
        return "skipped: the model has no prior"
    failed = run.prior_simulation / "failed.json"
    if failed.exists():
        return f"failed: {read_json(failed).get('error', '?')}"
    if cfg["simulation"].get("prior_replicas") == 0:
        return "not simulated (simulation.prior_replicas is 0)"
    raise FileNotFoundError(f"{run.prior_simulation}: the prior-only control has not finished; rerun the simulate stage (cgexplain simulate)")


def _write_analysis(run: RunFolder, e: _ProteinEnsembles) -> dict:
    """Write ``protein.npz`` and, last, ``analysis.json``; returns the latter's content."""
    fes_ref, fes_cg = e.fes_ref or _NO_FES, e.fes_cg or _NO_FES
    save_npz(
        run.protein_npz,
        **{f"reference_{k}": v for k, v in e.obs_ref.items()},
        **{f"cg_{k}": v for k, v in e.obs_cg.items()},
        **({f"prior_{k}": v for k, v in e.obs_prior.items()} if e.obs_prior is not None else {}),
        tica_reference=e.tica_ref,
        tica_cg=e.tica_cg,
        fes_reference=fes_ref[2],
        fes_cg=fes_cg[2],
        fes_xedges=fes_ref[0],
        fes_yedges=fes_ref[1],
        native=e.native,
        contact_pairs=e.pairs,
        contact_r0=e.r0,
    )
    write_json(run.analysis / "analysis.json", e.summary)
    return e.summary


def protein_priors(cfg: dict, run: RunFolder) -> dict:
    """Fit the priors (bonds, angles, dihedrals, repulsion) to the mapped reference (the frames
    training may use: without the held-out halves of ``training.hold_out``) by Boltzmann
    inversion at the reference temperature; write ``model_dir/priors.json`` (parameters and the
    mean |force| of the mapped reference before and after subtracting the prior force, kcal/mol/Å)
    and the figure ``priors.png``. Returns the prior parameters (reused when priors.json exists)."""
    path = run.priors_json
    if path.exists():
        return read_json(path)["params"]
    pc = dict(cfg.get("priors") or {})
    T = pc.pop("temperature", None)
    T = float(cfg["reference"]["temperature"] if T is None else T)
    ref = MappedTrajectory.load(run.mapped)
    # the frames training may use (training.hold_out): the held-out ones stay unseen by the priors too
    keep = held_in(cfg, run)
    pos = ref.positions.astype(np.float64) if keep is None else ref.positions[keep].astype(np.float64)
    if pc.get("bonds") is None:  # the CG bond graph of the mapping: several chains, chain breaks
        bonds = read_json(run.mapping_json).get("cg_bonds") if run.mapping_json.exists() else None
        n = pos.shape[1]
        if bonds is not None and [tuple(b) for b in bonds] != [(k, k + 1) for k in range(n - 1)]:
            pc["bonds"] = bonds
    params = fit_priors(pos, T, **pc)
    sub = _spread(len(pos), min(len(pos), 500))
    fp = prior_forces(params, pos[sub])
    f = (ref.forces if keep is None else ref.forces[keep])[sub].astype(np.float64)
    plot_priors(params, pos, T, run.figures / "priors.png")
    write_json(
        path,
        {
            "params": params,
            "temperature_K": T,
            "mean_abs_mapped_force": float(np.abs(f).mean()),
            "mean_abs_residual_force": float(np.abs(f - fp).mean()),
            "note": "the network is trained on the residual: mapped force minus prior force",
        },
    )
    return params


def native_segments(cfg: dict, run: RunFolder | None = None) -> list[dict]:
    """Secondary-structure elements of the native structure (DSSP via mdtraj): the system's PDB
    (OpenMM references) or the run's ``reference/native.pdb`` (the user's data). An empty list
    when the structure has no backbone to assign (DSSP needs N, CA, C, O)."""
    pdb = cfg["reference"].get("pdb")
    path = system_path(cfg, pdb) if pdb else (run.native_pdb if run is not None else None)
    if path is None or not Path(path).exists():
        return []
    try:
        return ss_segments(secondary_structure(path))
    except Exception:  # no full backbone (a CA-only structure), or a PDB mdtraj cannot read
        return []


@dataclasses.dataclass
class _MutationWhatIf:
    """What the explain stage computes for ``lrp.mutations``: energies, relevance maps and the simulated ensembles."""

    spec: str
    n_frames: int  # folded frames of the reference's native runs for ΔE
    energies: dict  # mutation_whatif(explain=False) on those frames: dE (F,) kcal/mol, ...
    maps: dict  # mutation_whatif(explain=True) on the explained CG frames: pair_map_diff (n, n), ...
    simulation: tuple[dict, dict, dict] | None  # (wild type, mutant observables, summary) when simulated


@dataclasses.dataclass
class _ResidueRelevance:
    """What the explain stage computes: the residue maps of the folded CG frames (kcal/mol), their context and the mutation."""

    frames: np.ndarray  # (k,) indices of the explained CG frames
    maps: dict  # explain_protein_frames on those frames
    types: np.ndarray  # (n,) bead types
    resnames: list[str]
    segments: list[dict]
    contact: np.ndarray  # (n, n) native contacts with |i - j| >= 3
    mutation: _MutationWhatIf | None


def protein_explain(cfg: dict, run: RunFolder, progress: bool = True) -> dict:
    """Residue relevance of the CG model and one mutation what-if; writes ``lrp/``.

    - Walk relevances (GNN-LRP, Schnake et al. TPAMI 2022; Bonneau et al. arXiv 2407.04526) on
      ``lrp.n_frames`` folded CG frames (CA-RMSD <= ``analysis.rmsd_threshold``), averaged into a
      39x39 residue-pair map (beside the native contact map), residue triplets and the triplet
      relevance projected per residue; tables of the most stabilising and destabilising pairs with
      the secondary-structure elements they join.
    - The 2-body and 3-body relevance per residue (:func:`~cgexplain.lrp.residues.pair_projection`,
      :func:`~cgexplain.lrp.residues.triplet_projection`; kcal/mol, relevances, not energies) in the
      B-factor column of ``lrp/relevance_2body.pdb`` and ``lrp/relevance_3body.pdb``
      (:func:`~cgexplain.lrp.residues.write_relevance_pdb`, scaled to max |B| = 99.99, the scale in
      a REMARK line and in the returned ``relevance_pdb``), on the minimised native all-atom
      structure (every atom of a bead's residues, a merged cap included, gets the bead's value), or
      on the CG topology when the native structure does not map onto the model's beads.
    - ``lrp.mutations`` (e.g. "F5A"): the change of the total CG energy over
      ``lrp.mutation_frames`` folded frames of the reference's native runs, and the pair-map
      difference over the explained frames. The model never saw the mutant in training.
    """
    r = _explain_residues(cfg, run, progress)
    _plot_explanation(cfg, run, r)
    return _write_explanation(cfg, run, r)


def _explain_residues(cfg: dict, run: RunFolder, progress: bool) -> _ResidueRelevance:
    """The explain stage's computation; only the per-frame relevance files of ``run.residue_frames`` are written."""
    lc = cfg["lrp"]
    thr = float(cfg["analysis"]["rmsd_threshold"])
    model, meta = load_model(run.model)
    ref = MappedTrajectory.load(run.mapped)
    cg_positions = run.cg_frames()[0]
    types = ref.bead_types
    table = meta.get("type_table") or read_json(run.mapping_json)["type_table"]
    resnames = _type_names(table, types)
    native = native_ca_positions(run.reference)
    segments = native_segments(cfg, run)
    folded = np.flatnonzero(ca_rmsd(cg_positions, native) <= thr)
    if len(folded) == 0:
        raise ValueError(f"lrp: no CG frame has CA-RMSD <= {thr} Å to the native structure; nothing folded to explain")
    pick = folded[np.unique(_spread(len(folded), lc["n_frames"]))]
    if cfg["model"]["representation"] == "mace":  # body-ordered: the model's own exact terms (energies), no walks
        if int(cfg["model"]["n_interactions"]) != 1:
            warnings.warn(
                f"model.n_interactions {cfg['model']['n_interactions']}: a MACE model of more than one layer is not of body order 3; "
                "its 1-3-body cluster terms are pure sub-cluster terms and leave a remainder (lrp.json conservation)",
                stacklevel=2,
            )
        maps = residue_maps(model, cg_positions[pick], types, progress=progress)
    else:
        maps = lrp_residue_maps(cfg, run, cg_positions, types, pick, resnames, segments, progress)
    n = len(types)
    # the map shows native contacts with |i - j| >= 3 (native_contacts counts j - i > min_separation)
    pairs, _ = native_contacts(native, cutoff=float(cfg["analysis"]["contact_cutoff"]), min_separation=2)
    contact = np.zeros((n, n))
    contact[pairs[:, 0], pairs[:, 1]] = contact[pairs[:, 1], pairs[:, 0]] = 1.0
    r = _ResidueRelevance(pick, maps, types, resnames, segments, contact, None)
    if lc.get("mutations") and cfg["model"]["representation"] == "mace":
        warnings.warn("lrp.mutations: the mutation what-if explains with GNN-LRP, which a MACE model does not have; skipped", stacklevel=2)
    elif lc.get("mutations"):
        r.mutation = _mutation_whatif(cfg, run, r, model, table, ref, native, cg_positions, progress)
    return r


def lrp_residue_maps(cfg: dict, run: RunFolder, cg_positions, types, pick, resnames, segments, progress: bool) -> dict:
    """GNN-LRP residue (or bead) maps of the CG frames ``pick`` of ``cg_positions`` (F, n, 3) Å with
    the ``lrp`` settings of ``cfg`` (:func:`~cgexplain.lrp.residues.explain_protein_frames`);
    ``resnames`` and ``segments`` (None: no secondary structure) label its tables."""
    lc = cfg["lrp"]
    return explain_protein_frames(
        run.model,
        cg_positions[pick],
        types,
        run.residue_frames,
        gamma=float(lc["gamma"]),
        bias_rule=bool(lc["bias_rule"]),
        frame_ids=pick,
        progress=progress,
        resnames=resnames,
        segments=segments,
        workers=int(lc["workers"]),
        backend=lc["backend"],
        device=lc["device"],
    )


def _mutation_whatif(
    cfg: dict,
    run: RunFolder,
    r: _ResidueRelevance,
    model,
    table: dict,
    ref: MappedTrajectory,
    native: np.ndarray,
    cg_positions: np.ndarray,
    progress: bool,
) -> _MutationWhatIf:
    """ΔE of ``lrp.mutations`` on folded reference frames, the pair-map change on the explained frames, the simulated mutant."""
    lc = cfg["lrp"]
    spec = lc["mutations"]
    pos_nat = ref.positions[np.concatenate(_native_run_frames(read_json(run.reference_json)))].astype(np.float64)
    pos_nat = pos_nat[ca_rmsd(pos_nat, native) <= float(cfg["analysis"]["rmsd_threshold"])]
    sub = pos_nat[np.unique(_spread(len(pos_nat), lc["mutation_frames"]))]
    mut = mutation_whatif(model, sub, r.types, r.resnames, spec, table, explain=False, progress=progress)
    # the wild type's relevance on these frames is the map above: passed in, not computed again
    mx = mutation_whatif(
        model,
        cg_positions[r.frames],
        r.types,
        r.resnames,
        spec,
        table,
        explain=True,
        gamma=float(lc["gamma"]),
        bias_rule=bool(lc["bias_rule"]),
        progress=progress,
        wild_type=r.maps,
    )
    sim = None
    if int(lc["mutant_simulation_steps"]) > 0:  # simulated by the simulate stage; compared here with the wild type over the same length
        sim = _mutant_ensembles(cfg, run, spec, ref, native, cg_positions)
    return _MutationWhatIf(spec, int(len(sub)), mut, mx, sim)


def _plot_explanation(cfg: dict, run: RunFolder, r: _ResidueRelevance) -> None:
    """The explain stage's figures."""
    name, segments = cfg["name"], r.segments
    contact_cutoff = cfg["analysis"]["contact_cutoff"]
    plot_residue_relevance(
        r.maps["pair_map"], r.contact, r.maps["triplet_projection"], run.figures, name, len(r.frames), contact_cutoff, segments, r.resnames
    )
    m = r.mutation
    if m is not None:
        plot_mutation_difference(m.maps["pair_map_diff"], run.figures / "mutation_pair_difference.png", name, m.spec, segments)
        if m.simulation is not None:
            plot_mutant_distributions(m.simulation[0], m.simulation[1], run.figures / "mutant_distributions.png", name, m.spec)


def _write_explanation(cfg: dict, run: RunFolder, r: _ResidueRelevance) -> dict:
    """Write the relevance PDBs, ``mutation.npz`` and, last, ``lrp.json``; returns the latter's content."""
    lc, res, pick = cfg["lrp"], r.maps, r.frames
    segments, resnames = r.segments, r.resnames
    stab, destab = pair_table(res["pair_map"], segments=segments, resnames=resnames, k=5)
    # tertiary pairs only (|i - j| >= 3): the chain neighbours, which dominate the full table, are left out
    n = len(res["pair_map"])
    far = np.where(np.abs(np.arange(n)[:, None] - np.arange(n)[None]) >= 3, res["pair_map"], 0.0)
    stab_far, destab_far = pair_table(far, segments=segments, resnames=resnames, k=5)
    mace = cfg["model"]["representation"] == "mace"
    out = {
        "method": "exact many-body terms of the body-ordered model (energies, kcal/mol)" if mace else "GNN-LRP walk relevances (kcal/mol)",
        "n_frames": int(len(pick)),
        "frame_ids": pick.tolist(),
        "rmsd_threshold_A": float(cfg["analysis"]["rmsd_threshold"]),
        "gamma": float(lc["gamma"]),
        "bias_rule": bool(lc["bias_rule"]),
        "body_sum_mean_kcal_mol": {str(k): float(v) for k, v in res["body_sum_mean"].items()},
        # sum rule: Σ walk relevance = Σ h0·∂E/∂h0 of the modified pass, relative to Σ|body-order sums|
        "conservation_max_rel_error": float(
            (np.abs(res["conservation"][:, 0] - res["conservation"][:, 1]) / (np.abs(res["body_sum_per_frame"]).sum(axis=1) + 1e-12)).max()
        ),
        "seconds_per_frame": float(np.mean(res["seconds_per_frame"])) if len(res["seconds_per_frame"]) else None,
        "most_stabilising_pairs": stab,
        "most_destabilising_pairs": destab,
        "most_stabilising_tertiary_pairs": stab_far,
        "most_destabilising_tertiary_pairs": destab_far,
        "pair_table_markdown": format_pair_table(res["pair_map"], segments=segments, resnames=resnames, k=5),
        "tertiary_pair_table_markdown": format_pair_table(far, segments=segments, resnames=resnames, k=5),
        "top_stabilising_triplets": [[int(x) + 1 for x in t] for t in res["top_stabilising"]],
        "top_stabilising_triplets_relevance": [float(x) for x in res["top_stabilising_relevance"]],
        "top_destabilising_triplets": [[int(x) + 1 for x in t] for t in res["top_destabilising"]],
        "top_destabilising_triplets_relevance": [float(x) for x in res["top_destabilising_relevance"]],
        "segments": segments,
        **_write_relevance_pdbs(cfg, run, r),
    }
    if r.mutation is not None:
        out["mutation"] = _write_mutation(run, r.mutation, resnames)
    write_json(run.lrp / "lrp.json", out)
    return out


def _write_relevance_pdbs(cfg: dict, run: RunFolder, r: _ResidueRelevance) -> dict:
    """Write the 2- and 3-body relevance per residue in the B-factor column (for PyMOL / VMD / ChimeraX); their lrp.json entries."""
    structure, bead_of_residue, on = _relevance_structure(cfg, run, r.types)
    per_residue = {"2body": pair_projection(r.maps["pair_map"]), "3body": r.maps["triplet_projection"]}
    out: dict = {
        "residue_relevance_2body_kcal_mol": [float(x) for x in per_residue["2body"]],
        "residue_relevance_3body_kcal_mol": [float(x) for x in per_residue["3body"]],
        "relevance_pdb": {},
    }
    for key, v in per_residue.items():
        on_residues = v[bead_of_residue]
        path = write_relevance_pdb(
            structure,
            on_residues,
            run.lrp / f"relevance_{key}.pdb",
            label=f"{cfg['name']} {key[0]}-body relevance per residue, mean of {len(r.frames)} folded CG frames",
        )
        out["relevance_pdb"][key] = {
            "path": _in_run(run, path),
            "structure": on,
            "structure_path": _in_run(run, structure),
            "bfactor_scale_per_kcal_mol": relevance_pdb_scale(on_residues),
        }
    return out


def _write_mutation(run: RunFolder, m: _MutationWhatIf, resnames: list[str]) -> dict:
    """Write ``mutation.npz``; the mutation's lrp.json entry."""
    mut, mx = m.energies, m.maps
    out = {
        "spec": m.spec,
        "n_frames": m.n_frames,
        "frames": "folded frames of the reference's native runs",
        "dE_mean_kcal_mol": float(mut["dE_mean"]),
        "dE_sem_kcal_mol": float(mut["dE_sem"]),
        "dE_std_kcal_mol": float(mut["dE_std"]),
        "dE_explained_frames_kcal_mol": float(mx["dE_mean"]),
        # force matching leaves a constant energy per bead type undetermined (the
        # training composition never changes), so ΔE carries an arbitrary offset
        # ε(mutant type) − ε(wild type); the change of the 2..(L+1)-body relevance
        # is free of it
        "dE_by_body_order_kcal_mol": {str(k): float(mx["body_sum_mutant"][k] - mx["body_sum_wt"][k]) for k in mx["body_sum_wt"]},
        "dE_multibody_kcal_mol": float(sum(mx["body_sum_mutant"][k] - mx["body_sum_wt"][k] for k in mx["body_sum_wt"] if int(k) >= 2)),
        "largest_pair_changes": _largest_changes(mx["pair_map_diff"], resnames),
        "limit": "the model never saw the mutant in training: ΔE is its extrapolation on wild-type conformations "
        "(no relaxation), not a folding free energy change; the total ΔE also holds the undetermined per-type "
        "energy offset of force matching, the multi-body part does not",
    }
    save_npz(run.lrp / "mutation.npz", dE=mut["dE"], pair_map_diff=mx["pair_map_diff"], pair_map_mutant=mx["pair_map_mutant"])
    if m.simulation is not None:
        out["simulation"] = m.simulation[2]
    return out


def _in_run(run: RunFolder, path: Path) -> str:
    """``path`` relative to the run folder when it lies inside it (so lrp.json survives a move), else as given."""
    p = Path(path)
    return str(p.relative_to(run.root)) if p.is_relative_to(run.root) else str(p)


def _relevance_structure(cfg: dict, run: RunFolder, types: np.ndarray) -> tuple[Path, np.ndarray, str]:
    """The structure :func:`protein_explain` writes the per-residue relevance on.

    The minimised native all-atom structure (``reference/native.pdb``) when the system's mapping
    (``mapping`` of system.yaml, as the map stage applies it) turns it into exactly the model's
    beads, with the same bead types; else the CG topology (``cg/topology.pdb``, one bead per
    residue). types: (n,) the model's bead types.

    Returns (structure path, the 0-based bead index of each residue of the structure
    (n_residues,) (a cap residue merged into its neighbour gets that neighbour's bead), and a
    description, "native all-atom structure" or "CG topology"). Raises ValueError if the CG
    topology's residue count is not the number of beads.
    """
    import MDAnalysis as mda

    n = len(types)
    if run.native_pdb.exists():
        u = mda.Universe(str(run.native_pdb))
        mc = cfg["mapping"]
        try:
            # the run's mapping (its selection, for a structure with solvent); the structure only places the values, the run's mapping was checked
            m = mapping_from_section(u, mc, constraints="none")
        except MappingError:
            m = None
        if m is not None and m.n_beads == n and np.array_equal(np.asarray(m.bead_types), np.asarray(types)):
            bead_of_atom = np.full(u.atoms.n_atoms, -1)
            for b, g in enumerate(m.bead_atoms):
                bead_of_atom[g] = b
            bead_of_residue = np.array([bead_of_atom[r.atoms.indices[0]] for r in u.residues])
            # one bead per residue: every atom of a residue sits in the bead of its first atom
            if np.all(bead_of_residue >= 0) and np.array_equal(bead_of_atom, bead_of_residue[u.atoms.resindices]):
                return run.native_pdb, bead_of_residue, "native all-atom structure"
    n_res = mda.Universe(str(run.cg_topology)).residues.n_residues
    if n_res != n:
        raise ValueError(f"{run.cg_topology}: {n_res} residues for the model's {n} beads; cannot write the per-residue relevance")
    return run.cg_topology, np.arange(n), "CG topology"


def _largest_changes(diff: np.ndarray, resnames, k: int = 5) -> list[dict]:
    iu = np.triu_indices(len(diff), 1)
    order = np.argsort(-np.abs(diff[iu]))[:k]
    return [
        {
            "i": int(iu[0][o]) + 1,
            "j": int(iu[1][o]) + 1,
            "resname_i": resnames[iu[0][o]],
            "resname_j": resnames[iu[1][o]],
            "change_kcal_mol": float(diff[iu][o]),
        }
        for o in order
    ]


def mutant_simulation(cfg: dict, run: RunFolder, spec: str, n_steps: int, progress: bool = True) -> dict:
    """CG Langevin of the mutant ``spec`` (same model, mutated bead types of the mapped reference,
    the wild type's start frames and settings, ``n_steps`` steps) into ``run.mutant_simulation(spec)``.
    Resumes like the wild type's simulation; a finished one is reused (the simulate stage's input
    hash covers ``lrp.mutations`` and ``lrp.mutant_simulation_steps``). Returns its simulation summary."""
    done = run.mutant_simulation_json(spec)
    if done.exists():
        return read_json(done)
    model, meta = load_model(run.model)
    ref = MappedTrajectory.load(run.mapped)
    table = meta.get("type_table") or read_json(run.mapping_json)["type_table"]
    mtypes, _ = mutate_types(ref.bead_types, _type_names(table, ref.bead_types), spec, table)
    s = dataclasses.replace(SimSettings.from_dict(cfg["simulation"]), n_steps=int(n_steps))
    ks = s.start_frames if s.start_frames is not None else protein_start_frames(run, s.n_replicas)
    return run_simulation(
        model,
        meta,
        run.cg_topology,
        ref.positions[ks],
        mtypes,
        ref.bead_masses,
        np.zeros((len(ks), 3, 3)),
        s,
        run.mutant_simulation(spec),
        progress=progress,
    )


def compare_mutant_simulation(cfg: dict, run: RunFolder, spec: str, ref, native: np.ndarray, cg_wt: np.ndarray) -> dict:
    """The mutant's CG ensemble (simulated by the simulate stage) against the wild type's ``cg_wt``
    (F, n, 3) Å over the same length of simulation: CA-RMSD, Q and Rg (means, folded fractions, JS
    distances); figure ``mutant_distributions.png``. Raises FileNotFoundError if the mutant was not simulated."""
    o_wt, o_mut, out = _mutant_ensembles(cfg, run, spec, ref, native, cg_wt)
    plot_mutant_distributions(o_wt, o_mut, run.figures / "mutant_distributions.png", cfg["name"], spec)
    return out


def _mutant_ensembles(cfg: dict, run: RunFolder, spec: str, ref, native: np.ndarray, cg_wt: np.ndarray) -> tuple[dict, dict, dict]:
    """What :func:`compare_mutant_simulation` computes: (wild-type observables, mutant observables, its result), no figure."""
    sim_dir = run.mutant_simulation(spec)
    sim = read_json(run.mutant_simulation_json(spec)) if run.mutant_simulation_json(spec).exists() else None
    if sim is None:
        raise FileNotFoundError(f"{sim_dir}: the mutant {spec} has not been simulated (rerun the simulate stage)")
    pos, _, _ = run.cg_frames(sim_dir)
    n_rep = int(sim.get("n_replicas", 1))
    pairs, r0 = native_contacts(native, cutoff=float(cfg["analysis"]["contact_cutoff"]))
    thr = float(cfg["analysis"]["rmsd_threshold"])
    # the wild type over the same length of simulation as the mutant
    per = len(cg_wt) // max(1, n_rep)
    keep = min(per, len(pos) // max(1, n_rep))
    wt = np.concatenate([cg_wt[r * per : r * per + keep] for r in range(n_rep)])
    o_wt, o_mut = (protein_observables(x, native, pairs, r0, ref.bead_masses) for x in (wt, pos))
    cmp = compare_protein(o_wt, o_mut, rmsd_threshold=thr)
    return (
        o_wt,
        o_mut,
        {
            "n_steps": int(sim["settings"]["n_steps"]),  # what was simulated
            "n_replicas": n_rep,
            "n_frames": int(len(pos)),
            "mean_kinetic_temperature_K": sim["mean_kinetic_temperature_K"],
            "rmsd_mean_wild_type_A": cmp["rmsd_mean_reference_A"],
            "rmsd_mean_mutant_A": cmp["rmsd_mean_cg_A"],
            "q_mean_wild_type": cmp["q_mean_reference"],
            "q_mean_mutant": cmp["q_mean_cg"],
            "rg_mean_wild_type_A": cmp["rg_mean_reference_A"],
            "rg_mean_mutant_A": cmp["rg_mean_cg_A"],
            "folded_fraction_wild_type": cmp[f"fraction_rmsd_le_{thr:g}A_reference"],
            "folded_fraction_mutant": cmp[f"fraction_rmsd_le_{thr:g}A_cg"],
            "rmsd_js_distance": cmp["rmsd_js_distance"],
            "q_js_distance": cmp["q_js_distance"],
        },
    )
