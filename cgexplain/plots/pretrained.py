"""Relevance figures of pretrained folders (:func:`cgexplain.workflow.pretrained.load_pretrained`) and of
several models side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cgexplain.plots.core import plot_nbody_relevance, plot_relevance_curves

__all__ = ["plot_pretrained_relevance", "plot_relevance_comparison"]


def plot_pretrained_relevance(results: dict, title: str = "", path_prefix=None):
    """Redraw the two standard relevance figures of a pretrained folder: 2-body relevance against
    distance over the CG RDF, and 3-body relevance against angle over the CG ADF (publication
    Figure 2), per-frame normalised curves with their standard errors. Returns the two figures
    (written to ``<path_prefix>_2body.png`` / ``_3body.png`` if given)."""

    paths = (None, None) if path_prefix is None else (Path(f"{path_prefix}_2body.png"), Path(f"{path_prefix}_3body.png"))
    return plot_nbody_relevance(results["nbody"], results["structure"], results["lrp"].get("normalise", "mean_abs"), title, *paths)


def plot_relevance_comparison(stats: dict, structure: dict, kind: str = "two", path=None, title: str = ""):
    """Overlay the shapes of the binned relevance curves of several models.

    stats: {label: nbody statistics dict (from ``nbody_statistics.npz``)}; structure: a
    ``structure.npz`` dict whose CG RDF (kind "two") or ADF (kind "three") is shaded behind;
    kind: "two" (2-body relevance against distance, Å) or "three" (3-body against angle,
    degrees). Each curve is the raw binned mean (kcal/mol per walk) divided by its own largest
    |mean|, so the curves compare by shape whatever the models' energy scales and whatever
    per-frame normalisation each run used (runs with different normalisations are not
    comparable in their 'norm' curves). Returns the figure (saved to ``path`` if given).
    Raises ValueError for another kind.
    """

    if kind not in ("two", "three"):
        raise ValueError(f"kind must be 'two' or 'three', got {kind!r}")
    curves = {}
    for label, st in stats.items():
        c, m, e = (np.asarray(st[f"{kind}_raw_{q}"], float) for q in ("centers", "mean", "sem"))
        scale = np.nanmax(np.abs(m)) if np.isfinite(m).any() else 1.0
        curves[label] = (c, m / scale, e / scale)
    ylabel = f"{'2' if kind == 'two' else '3'}-body relevance / its largest |mean|"
    if kind == "two":
        return plot_relevance_curves(curves, structure["cg_r"], structure["cg_g"], "r (Å)", "g(r)", ylabel, path, title)
    return plot_relevance_curves(curves, structure["cg_theta"], structure["cg_p"], "θ (degrees)", "ADF", ylabel, path, title)
