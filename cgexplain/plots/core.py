"""Figures: structure (RDF, ADF) of CG against reference, and relevance curves over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cgexplain.fileio import atomic_path

__all__ = [
    "pyplot",
    "save_figure",
    "plot_rdf",
    "plot_adf",
    "plot_distribution",
    "plot_relevance_curves",
    "plot_relevance_over",
    "plot_nbody_relevance",
    "relevance_unit",
]


def pyplot():
    """matplotlib.pyplot, switched to the non-interactive Agg backend unless a notebook's inline
    backend is active (so figures render on clusters without a display)."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> None:
    """Write ``fig`` to ``path`` (PNG at 130 dpi, tight box) atomically: the file appears whole or not at all."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight")


def plot_rdf(r, curves: dict, path: str | Path | None = None, title: str = "Radial distribution function"):
    """Plot g(r) curves ({label: g}) against r (Å); save to ``path`` if given. Returns the figure."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, g in curves.items():
        ax.plot(r, g, label=label, lw=1.6)
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set(xlabel="r (Å)", ylabel="g(r)", title=title)
    ax.legend()
    if path:
        save_figure(fig, path)
    return fig


def plot_adf(theta, curves: dict, path: str | Path | None = None, title: str = "Bead–bead–bead angle distribution"):
    """Plot ADF curves ({label: p(θ)}) against θ (degrees); save to ``path`` if given."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, p in curves.items():
        ax.plot(theta, p, label=label, lw=1.6)
    ax.set(xlabel="θ (degrees)", ylabel="p(θ) (1/degree)", title=title, xlim=(0, 180))
    ax.legend()
    if path:
        save_figure(fig, path)
    return fig


def plot_distribution(x, curves: dict, xlabel: str, ylabel: str, path: str | Path | None = None, title: str = ""):
    """Plot distributions ({label: p(x)}) against x; save to ``path`` if given."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, p in curves.items():
        ax.plot(x, p, label=label, lw=1.6)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    if path:
        save_figure(fig, path)
    return fig


def plot_relevance_curves(curves: dict, bg_x, bg_y, xlabel: str, bg_label: str, rel_label: str, path: str | Path | None = None, title: str = ""):
    """Binned mean relevance curves ({label: (x, mean, sem or None)}, each with a ±SEM band) on the
    left axis, over a structural curve (RDF or ADF, shaded) on the right axis. Empty bins (NaN)
    are left out; a legend is drawn for more than one curve. Returns the figure."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 3.9))
    ax2 = ax.twinx()
    ax2.fill_between(bg_x, 0, bg_y, color="0.85", label=bg_label)
    ax2.set_ylabel(bg_label, color="0.4")
    ax2.set_ylim(bottom=0)
    for k, (label, (x, mean, sem)) in enumerate(curves.items()):
        x, mean = np.asarray(x), np.asarray(mean)
        ok = np.isfinite(mean)
        ax.plot(x[ok], mean[ok], "o-", ms=3, color=f"C{3 + k}", label=label)
        if sem is not None:
            e = np.nan_to_num(np.asarray(sem)[ok])
            ax.fill_between(x[ok], mean[ok] - e, mean[ok] + e, color=f"C{3 + k}", alpha=0.25)
    ax.axhline(0.0, color="k", lw=0.7)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set(xlabel=xlabel, ylabel=rel_label, title=title)
    if len(curves) > 1:
        ax.legend(frameon=False, fontsize=8)
    if path:
        save_figure(fig, path)
    return fig


def plot_relevance_over(x, mean, sem, bg_x, bg_y, xlabel: str, bg_label: str, rel_label: str, path: str | Path | None = None, title: str = ""):
    """Binned mean relevance (with ±SEM band) on the left axis, over a structural curve (RDF or
    ADF, shaded) on the right axis. Empty bins (NaN) are left out."""
    return plot_relevance_curves({rel_label: (x, mean, sem)}, bg_x, bg_y, xlabel, bg_label, rel_label, path, title)


def relevance_unit(normalise: str) -> str:
    """Axis label of relevance curves under a per-frame normalisation ('abs_mean_total', 'mean_abs',
    'sum_abs', 'none'; :func:`cgexplain.lrp.nbody.normalisation_factor`)."""
    if normalise == "abs_mean_total":
        return "relevance / (|Σ R| / N walks)"
    if normalise == "mean_abs":
        return "relevance / mean |R|"
    return "relevance (normalised)" if normalise != "none" else "relevance (kcal/mol)"


def plot_nbody_relevance(stats: dict, structure: dict, normalise: str, title: str = "", path_2body=None, path_3body=None):
    """The two standard figures (publication Figure 2): 2-body relevance against distance over the
    CG RDF, and 3-body relevance against angle over the CG ADF.

    stats: ``nbody_statistics.npz`` arrays; structure: ``structure.npz`` arrays; normalise: the
    per-frame normalisation of the run ('none' plots the raw kcal/mol statistics). Frames without
    a periodic cell have no RDF (no ``cg_r`` in ``structure``): the 2-body curve is drawn alone and
    its right axis says why. Returns the two figures, saved to the paths given."""
    suf, unit = ("norm" if normalise != "none" else "raw"), relevance_unit(normalise)
    periodic = "cg_r" in structure
    f2 = plot_relevance_over(
        stats[f"two_{suf}_centers"],
        stats[f"two_{suf}_mean"],
        stats[f"two_{suf}_sem"],
        structure["cg_r"] if periodic else np.zeros(0),
        structure["cg_g"] if periodic else np.zeros(0),
        "r (Å)",
        "g(r), CG model" if periodic else "no RDF: frames not periodic",
        f"2-body {unit}",
        path_2body,
        title=f"{title}: 2-body relevance vs distance" + ("" if periodic else " (no RDF: not periodic)"),
    )
    f3 = plot_relevance_over(
        stats[f"three_{suf}_centers"],
        stats[f"three_{suf}_mean"],
        stats[f"three_{suf}_sem"],
        structure["cg_theta"],
        structure["cg_p"],
        "θ (degrees)",
        "ADF, CG model",
        f"3-body {unit}",
        path_3body,
        title=f"{title}: 3-body relevance vs angle",
    )
    return f2, f3


def plot_structure_comparison(out: dict, folder: str | Path, name: str, shell: float) -> None:
    """``rdf.png``, ``adf.png`` and ``q.png`` in ``folder``: the mapped reference and the CG model
    (``out``: {"reference"|"cg": {r, g, theta, p, q, q_p}} with r Å, θ degrees); figures closed."""
    folder = Path(folder)
    ref, cg = out["reference"], out["cg"]
    figs = [
        plot_rdf(ref["r"], {"mapped reference": ref["g"], "CG model": cg["g"]}, folder / "rdf.png", title=f"{name}: bead RDF, CG vs reference"),
        plot_adf(ref["theta"], {"mapped reference": ref["p"], "CG model": cg["p"]}, folder / "adf.png", title=f"{name}: ADF (legs < {shell:g} Å)"),
        plot_distribution(
            ref["q"],
            {"mapped reference": ref["q_p"], "CG model": cg["q_p"]},
            "tetrahedral order q",
            "p(q)",
            folder / "q.png",
            title=f"{name}: tetrahedral order parameter",
        ),
    ]
    for f in figs:
        if f is not None:
            pyplot().close(f)
