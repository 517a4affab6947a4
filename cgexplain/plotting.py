"""Figures: structure (RDF, ADF) of CG against reference, and relevance curves over them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .fileio import atomic_path

__all__ = ["plot_rdf", "plot_adf", "plot_distribution", "plot_relevance_over"]


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight")


def plot_rdf(r, curves: dict, path: str | Path | None = None, title: str = "Radial distribution function"):
    """Plot g(r) curves ({label: g}) against r (Å); save to ``path`` if given. Returns the figure."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, g in curves.items():
        ax.plot(r, g, label=label, lw=1.6)
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set(xlabel="r (Å)", ylabel="g(r)", title=title)
    ax.legend()
    if path:
        _save(fig, path)
    return fig


def plot_adf(theta, curves: dict, path: str | Path | None = None, title: str = "Bead–bead–bead angle distribution"):
    """Plot ADF curves ({label: p(θ)}) against θ (degrees); save to ``path`` if given."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, p in curves.items():
        ax.plot(theta, p, label=label, lw=1.6)
    ax.set(xlabel="θ (degrees)", ylabel="p(θ) (1/degree)", title=title, xlim=(0, 180))
    ax.legend()
    if path:
        _save(fig, path)
    return fig


def plot_distribution(x, curves: dict, xlabel: str, ylabel: str, path: str | Path | None = None, title: str = ""):
    """Plot distributions ({label: p(x)}) against x; save to ``path`` if given."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, p in curves.items():
        ax.plot(x, p, label=label, lw=1.6)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    if path:
        _save(fig, path)
    return fig


def plot_relevance_over(x, mean, sem, bg_x, bg_y, xlabel: str, bg_label: str, rel_label: str, path: str | Path | None = None, title: str = ""):
    """Binned mean relevance (with ±SEM band) on the left axis, over a structural curve (RDF or
    ADF, shaded) on the right axis. Empty bins (NaN) are left out."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.8, 3.9))
    ax2 = ax.twinx()
    ax2.fill_between(bg_x, 0, bg_y, color="0.85", label=bg_label)
    ax2.set_ylabel(bg_label, color="0.4")
    ax2.set_ylim(bottom=0)
    ok = np.isfinite(mean)
    ax.plot(np.asarray(x)[ok], np.asarray(mean)[ok], "o-", ms=3, color="C3", label=rel_label)
    if sem is not None:
        s = np.nan_to_num(np.asarray(sem)[ok])
        ax.fill_between(np.asarray(x)[ok], np.asarray(mean)[ok] - s, np.asarray(mean)[ok] + s, color="C3", alpha=0.25)
    ax.axhline(0.0, color="k", lw=0.7)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set(xlabel=xlabel, ylabel=rel_label, title=title)
    if path:
        _save(fig, path)
    return fig
