"""Residue maps of a protein's relevance (:mod:`cgexplain.lrp.residues`): the residue-pair map beside the
native contact map, its mutant-minus-wild-type difference, and the 3-body relevance projected on residues,
with secondary-structure bars."""

from __future__ import annotations

import numpy as np

from cgexplain.plots.core import pyplot, save_figure

__all__ = ["plot_pair_map", "plot_pair_map_difference", "plot_triplet_projection"]


_SS_COLOURS = {"E": "#d4a017", "H": "#8e44ad", "G": "#b07cc6", "I": "#b07cc6", "B": "#d4a017"}


def _residue_axes(ax, n, names=None, what: str = "residue"):
    if names is not None:  # every bead, by name
        ticks = list(range(1, n + 1))
        ax.set_xticks(ticks, [f"{b}{k}" for k, b in zip(ticks, names)], rotation=90, fontsize=7)
        ax.set_yticks(ticks, [f"{b}{k}" for k, b in zip(ticks, names)], fontsize=7)
    else:
        step = 5 if n <= 60 else 10
        ticks = [1] + list(range(step, n + 1, step))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
    ax.set_xlabel(what)
    ax.set_ylabel(what)


def _ss_bars(ax, segments, axis="both", y0=1.01, h=0.035):
    """Secondary-structure bars outside the axes: along the top (x) and the right side (y)."""
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    if not segments:
        return
    for s in segments:
        c = _SS_COLOURS.get(str(s.get("kind", "")).upper()[:1], "0.5")
        a, b = float(s["start"]) - 0.5, float(s["end"]) + 0.5
        if axis in ("both", "x"):
            tr = blended_transform_factory(ax.transData, ax.transAxes)
            ax.add_patch(Rectangle((a, y0), b - a, h, transform=tr, color=c, clip_on=False))
            ax.text((a + b) / 2, y0 + h + 0.005, str(s.get("name", "")), transform=tr, ha="center", va="bottom", fontsize=7)
        if axis == "both":
            tr = blended_transform_factory(ax.transAxes, ax.transData)
            ax.add_patch(Rectangle((y0, a), h, b - a, transform=tr, color=c, clip_on=False))


def _diverging(ax, M, title, label, fig, names=None, what: str = "residue"):
    n = M.shape[0]
    vmax = float(np.nanmax(np.abs(M))) if np.isfinite(M).any() and np.nanmax(np.abs(M)) > 0 else 1.0
    im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="upper", extent=(0.5, n + 0.5, n + 0.5, 0.5), interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.08)
    cb.set_label(label)
    ax.set_title(title, pad=22)
    _residue_axes(ax, n, names, what)
    return im


def plot_pair_map(
    pair_map,
    contact_map,
    path=None,
    title: str = "Residue-pair relevance",
    segments=None,
    contact_label: str | None = None,
    contact_cmap: str = "Greys",
    names: list[str] | None = None,
    contact_title: str = "Native contact map",
    value_label: str = "relevance (kcal/mol)",
):
    """Residue-pair relevance map (diverging, centred at 0, kcal/mol; blue = stabilising, red =
    destabilising) beside the native contact map (an (n, n) array: binary contacts or a
    distance/probability map, drawn with ``contact_cmap``). Residues are numbered 1..n; with
    ``segments`` secondary-structure bars are drawn along the edges. ``names`` (n,): a chain whose
    beads are not residues, every bead labelled by name and number, axes called "bead";
    ``contact_title`` titles the right panel (e.g. "CG bonds"); ``value_label`` the colour bar.
    Saves to ``path`` if given; returns the figure."""

    plt = pyplot()
    P = np.asarray(pair_map, float)
    C = np.asarray(contact_map, float)
    n = P.shape[0]
    if C.shape != P.shape:
        raise ValueError(f"contact_map shape {C.shape} differs from pair_map shape {P.shape}")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11.0, 4.8))
    what = "residue" if names is None else "bead"
    _diverging(a1, P, title, value_label, fig, names, what)
    _ss_bars(a1, segments)
    binary = np.isin(C[np.isfinite(C)], (0.0, 1.0)).all()
    im = a2.imshow(
        C,
        cmap=contact_cmap,
        origin="upper",
        extent=(0.5, n + 0.5, n + 0.5, 0.5),
        interpolation="nearest",
        vmin=0 if binary else None,
        vmax=1 if binary else None,
    )
    cb = fig.colorbar(im, ax=a2, fraction=0.046, pad=0.08)
    cb.set_label(contact_label or ("native contact" if binary else "contact map"))
    if binary:
        cb.set_ticks([0, 1])
    a2.set_title(contact_title, pad=22)
    _residue_axes(a2, n, names, what)
    _ss_bars(a2, segments)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig


def plot_pair_map_difference(diff, path=None, title: str = "Pair relevance: mutant − wild type", segments=None):
    """Difference of two residue-pair maps (mutant − wild type), diverging colormap centred at 0,
    kcal/mol. Saves to ``path`` if given; returns the figure."""

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 4.9))
    _diverging(ax, np.asarray(diff, float), title, "Δ relevance (kcal/mol)", fig)
    _ss_bars(ax, segments)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig


def plot_triplet_projection(projection, path=None, segments=None, title: str = "3-body relevance per residue", resnames=None, sem=None):
    """Bar plot of the triplet projection per residue (1..n; kcal/mol; blue < 0 stabilising, red
    > 0), optional ``sem`` error bars, residue names as tick labels and secondary-structure bars.
    Saves to ``path`` if given; returns the figure."""

    plt = pyplot()
    p = np.asarray(projection, float)
    n = len(p)
    x = np.arange(1, n + 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * n + 2), 3.6))
    ax.bar(x, p, color=np.where(p < 0, "#2166ac", "#b2182b"), width=0.8, yerr=sem, error_kw={"lw": 0.8})
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set(xlabel="residue", ylabel="relevance (kcal/mol)", xlim=(0.5, n + 0.5))
    ax.set_title(title, pad=22 if segments else 6)
    if resnames is not None:
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r}{k}" for k, r in zip(x, resnames)], rotation=90, fontsize=6)
    else:
        step = 5 if n <= 60 else 10
        ax.set_xticks([1] + list(range(step, n + 1, step)))
    _ss_bars(ax, segments, axis="x")
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig
