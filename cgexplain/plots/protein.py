"""Protein ensembles compared (:mod:`cgexplain.analysis.protein`): CA-RMSD, Q and Rg distributions, bonds,
angles and dihedrals, and free-energy surfaces on TICA coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cgexplain.analysis.protein import FIXED_RANGES
from cgexplain.plots.core import pyplot, save_figure

__all__ = ["plot_protein_distributions", "plot_internal_distributions", "plot_tica_fes"]


def _plot_edges(key: str, ref, cg, n_bins: int) -> np.ndarray:
    if key in FIXED_RANGES:
        return np.linspace(*FIXED_RANGES[key], n_bins + 1)
    both = np.concatenate([np.ravel(ref), np.ravel(cg)])
    lo, hi = np.percentile(both, [0.1, 99.9])
    return np.linspace(lo, hi if hi > lo else lo + 1.0, n_bins + 1)


def _overlay_figure(specs, ref_obs, cg_obs, path, labels, n_bins, title):
    """One row of histogram panels ((key, x label) per panel), both ensembles overlaid."""

    fig, axes = pyplot().subplots(1, len(specs), figsize=(12.0, 3.6))
    _overlay(axes, specs, ref_obs, cg_obs, labels, n_bins)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig


def _overlay(axes, specs, ref_obs, cg_obs, labels, n_bins):
    for ax, (key, xlabel) in zip(axes, specs):
        edges = _plot_edges(key, ref_obs[key], cg_obs[key], n_bins)
        for obs, label, colour in ((ref_obs, labels[0], "k"), (cg_obs, labels[1], "C3")):
            ax.hist(np.ravel(obs[key]), bins=edges, density=True, histtype="step", lw=1.6, color=colour, label=label)
        ax.set(xlabel=xlabel, ylabel="density")
    axes[0].legend(frameon=False, fontsize=8)


def plot_protein_distributions(
    ref_obs: dict, cg_obs: dict, path: str | Path | None = None, n_bins: int = 60, labels=("reference (mapped)", "CG model"), title: str = ""
):
    """Cα RMSD (Å), Q and Rg (Å) distributions of the two ensembles (dicts from
    :func:`protein_observables`), overlaid in three panels; save to ``path`` if given. Returns the
    figure."""
    return _overlay_figure(
        (("rmsd", "Cα RMSD (Å)"), ("q", "Q (fraction of native contacts)"), ("rg", "Rg (Å)")), ref_obs, cg_obs, path, labels, n_bins, title
    )


def plot_internal_distributions(
    ref_obs: dict, cg_obs: dict, path: str | Path | None = None, n_bins: int = 90, labels=("reference (mapped)", "CG model"), title: str = ""
):
    """Bond length (Å), bond angle and dihedral (degrees) distributions, pooled over the chain,
    of the two ensembles (dicts from :func:`protein_observables`) in three panels; save to
    ``path`` if given. Returns the figure."""
    return _overlay_figure(
        (("bonds", "Cα–Cα bond length (Å)"), ("angles", "Cα bond angle (degrees)"), ("dihedrals", "Cα dihedral (degrees)")),
        ref_obs,
        cg_obs,
        path,
        labels,
        n_bins,
        title,
    )


def plot_tica_fes(
    ref_fes, cg_fes, path: str | Path | None = None, fmax: float | None = None, labels=("reference (mapped)", "CG model"), title: str = ""
):
    """Two free energy surfaces (each (xedges, yedges, F) from :func:`free_energy_surface`, F in
    kcal/mol) side by side on one colour scale, 0 to ``fmax`` (default: the largest finite F of
    either); empty bins are left blank. Save to ``path`` if given. Returns the figure."""

    plt = pyplot()
    finite = [f[np.isfinite(f)] for _, _, f in (ref_fes, cg_fes)]
    vmax = fmax if fmax is not None else max(float(v.max()) if v.size else 0.0 for v in finite) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), sharex=True, sharey=True)
    for ax, (xe, ye, f), label in zip(axes, (ref_fes, cg_fes), labels):
        m = ax.pcolormesh(xe, ye, np.ma.masked_invalid(f).T, vmin=0.0, vmax=vmax, cmap="viridis", shading="flat")
        ax.set(xlabel="IC1", title=label)
    axes[0].set_ylabel("IC2")
    fig.colorbar(m, ax=list(axes), label="F (kcal/mol)")
    if title:
        fig.suptitle(title)
    if path:
        save_figure(fig, path)
    return fig
