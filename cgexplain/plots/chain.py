"""Figures of a bead chain's analyse stage (:mod:`cgexplain.workflow.kinds.chain`): dihedral
free-energy maps of the reference, the model and the prior-only control side by side, and the
1-D distributions of every bond, angle and dihedral. Each function draws what it is given,
saves and closes its figure; none computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cgexplain.plots.core import pyplot, save_figure

__all__ = ["plot_dihedral_maps", "plot_chain_distributions"]


def plot_dihedral_maps(
    maps: dict[str, np.ndarray], edges: np.ndarray, xlabel: str, ylabel: str, path: str | Path, title: str = "", vmax: float = 6.0
) -> None:
    """Free-energy maps F (bins, bins) kcal/mol (x along rows, NaN where empty) of each ensemble
    ({label: F}), side by side on the same colour scale (0 .. ``vmax`` kcal/mol); ``edges`` (bins + 1,) degrees."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(maps), figsize=(3.3 * len(maps) + 0.8, 3.3), squeeze=False)
    im = None
    for ax, (label, f) in zip(axes[0], maps.items()):
        im = ax.pcolormesh(edges, edges, np.asarray(f).T, vmin=0.0, vmax=vmax, cmap="viridis", shading="flat")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(f"{xlabel} (°)")
        ax.set_xticks([-180, -90, 0, 90, 180])
        ax.set_yticks([-180, -90, 0, 90, 180])
        ax.set_aspect("equal")
    axes[0][0].set_ylabel(f"{ylabel} (°)")
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), label="F (kcal/mol)", shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    plt.close(fig)


def plot_chain_distributions(ensembles: dict[str, dict], path: str | Path, title: str = "", bins: int = 60) -> None:
    """Histograms (densities) of every bond (Å), angle and dihedral (°) of each ensemble
    ({label: :func:`cgexplain.analysis.chain.chain_coordinates` result}); the first ensemble sets
    the labels and the bond ranges."""
    plt = pyplot()
    first = next(iter(ensembles.values()))
    panels = [(k, j, lab) for k in ("bonds", "angles", "dihedrals") for j, lab in enumerate(first["labels"][k])]
    ncol = min(4, max(1, len(panels)))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 2.4 * nrow), squeeze=False)
    for ax, (k, j, lab) in zip(axes.ravel(), panels):
        if k == "bonds":
            v = first[k][:, j]
            lo, hi = np.percentile(v, [0.1, 99.9])
            pad = 0.2 * (hi - lo + 1e-3)
            e = np.linspace(lo - pad, hi + pad, bins + 1)
        else:
            e = np.linspace(0, 180, bins + 1) if k == "angles" else np.linspace(-180, 180, bins + 1)
        for label, obs in ensembles.items():
            ax.hist(obs[k][:, j], bins=e, density=True, histtype="step", label=label)
        ax.set_xlabel(f"{lab} ({'Å' if k == 'bonds' else '°'})", fontsize=8)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
