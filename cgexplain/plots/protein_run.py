"""Figures of the protein stages (:mod:`cgexplain.workflow.kinds.protein`): the reference's CA-RMSD per run,
the CG ensemble against the reference, the residue relevance maps and the mutant's ensemble.

Each function takes what its stage computed and where to write, draws, saves and closes its
figures; none computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cgexplain.plots.core import pyplot, save_figure
from cgexplain.plots.protein import plot_internal_distributions, plot_protein_distributions, plot_tica_fes
from cgexplain.plots.residues import plot_pair_map, plot_pair_map_difference, plot_triplet_projection

__all__ = ["plot_reference_rmsd", "plot_protein_analysis", "plot_residue_relevance", "plot_mutation_difference", "plot_mutant_distributions"]


def plot_reference_rmsd(
    t: np.ndarray, rmsd: np.ndarray, boundaries: list[tuple[int, int]], kinds: list[str], threshold: float, path: str | Path, title: str
) -> None:
    """CA-RMSD to the native structure (Å) against the time in each reference run (ps), one line
    per run. t, rmsd: (F,) over the concatenated runs; boundaries: (start, stop) frame indices of
    each run, ``kinds`` its kind ("native", "seeded", ...); ``threshold`` (Å) as a dotted line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for k, ((a, b), kind) in enumerate(zip(boundaries, kinds)):
        ax.plot(t[a:b] - t[a], rmsd[a:b], lw=0.8, label=f"run {k} ({kind})")
    ax.axhline(threshold, color="k", ls=":", lw=0.8)
    ax.set_xlabel("time in run (ps)")
    ax.set_ylabel("CA-RMSD to native (Å)")
    ax.legend(fontsize=7)
    ax.set_title(title)
    save_figure(fig, path)
    plt.close(fig)


def plot_protein_analysis(obs_ref: dict, obs_cg: dict, fes_ref: tuple | None, fes_cg: tuple | None, figures: str | Path, name: str) -> None:
    """The analyse stage's figures in the folder ``figures``: ``protein_distributions.png`` and
    ``internal_distributions.png`` (observables from
    :func:`~cgexplain.analysis.protein.protein_observables` of the mapped reference and the CG
    ensemble), and ``tica_fes.png`` when the free-energy surfaces ((xedges, yedges, F) in kcal/mol
    from :func:`~cgexplain.analysis.protein.free_energy_surface`) are given. ``name``: the system."""
    figures = Path(figures)
    plt = pyplot()
    figs = [
        plot_protein_distributions(obs_ref, obs_cg, figures / "protein_distributions.png", title=f"{name}: CG vs reference"),
        plot_internal_distributions(obs_ref, obs_cg, figures / "internal_distributions.png", title=f"{name}: CA bonds, angles, dihedrals"),
    ]
    if fes_ref is not None and fes_cg is not None:
        figs.append(plot_tica_fes(fes_ref, fes_cg, figures / "tica_fes.png", title=f"{name}: free energy on the reference's TICA (kcal/mol)"))
    for fig in figs:
        plt.close(fig)


def plot_residue_relevance(
    pair_map: np.ndarray,
    contact: np.ndarray,
    projection: np.ndarray,
    figures: str | Path,
    name: str,
    n_frames: int,
    contact_cutoff,
    segments=None,
    resnames=None,
) -> None:
    """The explain stage's residue maps in the folder ``figures``: ``residue_pair_relevance.png``
    (the (n, n) residue-pair relevance, kcal/mol, beside the (n, n) native contact map, contacts
    closer than ``contact_cutoff`` Å with |i - j| >= 3) and ``triplet_projection.png`` (the (n,)
    3-body relevance per residue, kcal/mol). ``n_frames``: how many folded frames were explained."""
    figures = Path(figures)
    plt = pyplot()
    for fig in (
        plot_pair_map(
            pair_map,
            contact,
            figures / "residue_pair_relevance.png",
            segments=segments,
            title=f"{name}: residue-pair (2-body) relevance, {n_frames} folded frames",
            contact_label=f"native CA contacts (< {contact_cutoff} Å, |i-j| >= 3)",
        ),
        plot_triplet_projection(
            projection,
            figures / "triplet_projection.png",
            segments=segments,
            resnames=resnames,
            title=f"{name}: 3-body relevance projected on residues",
        ),
    ):
        plt.close(fig)


def plot_mutation_difference(diff: np.ndarray, path: str | Path, name: str, spec: str, segments=None) -> None:
    """The (n, n) pair relevance of the mutant ``spec`` minus the wild type's (kcal/mol) to ``path``."""
    fig = plot_pair_map_difference(diff, path, segments=segments, title=f"{name} {spec}: pair relevance, mutant − wild type")
    pyplot().close(fig)


def plot_mutant_distributions(o_wt: dict, o_mut: dict, path: str | Path, name: str, spec: str) -> None:
    """CA-RMSD, Q and Rg distributions of the CG wild type and the CG mutant ``spec`` (dicts from
    :func:`~cgexplain.analysis.protein.protein_observables`) to ``path``."""
    fig = plot_protein_distributions(o_wt, o_mut, path, labels=("wild type (CG)", f"{spec} (CG)"), title=f"{name}: CG wild type vs {spec}")
    pyplot().close(fig)
