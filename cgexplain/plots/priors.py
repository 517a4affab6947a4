"""The figure of a fitted CG prior against the mapped reference it was fitted to
(:func:`plot_priors`); the numbers come from :func:`cgexplain.model.priors.prior_coordinates`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cgexplain.model.priors import prior_coordinates
from cgexplain.plots.core import pyplot, save_figure

__all__ = ["plot_priors"]


def _pmf(samples, edges, kT):
    h, _ = np.histogram(samples, bins=edges, density=True)
    with np.errstate(divide="ignore"):
        u = -kT * np.log(h)
    u[~np.isfinite(u)] = np.nan
    return u - np.nanmin(u) if np.isfinite(u).any() else u


def _plot_pmf(ax, x, u, kT, **kw):
    """Plot the data PMF u against x and cap the y axis a little above its largest finite value."""
    ax.plot(x, u, **kw)
    top = np.nanmax(u) if np.isfinite(u).any() else 0.0
    ax.set_ylim(-0.05 * max(top, 3 * kT), 1.25 * max(top, 3 * kT))


def _mixture_pmf(dens, grid, kT):
    """-kT ln of the instance-averaged density; dens (m, G) unnormalised densities on ``grid``."""
    dens = dens / np.trapezoid(dens, grid, axis=1)[:, None]
    p = dens.mean(0)
    with np.errstate(divide="ignore"):
        u = -kT * np.log(p)
    u[~np.isfinite(u)] = np.nan
    return u - np.nanmin(u)


def plot_priors(params: dict, positions, temperature: float, path: str | Path) -> Path:
    """One figure (2×2 panels) comparing the prior with the mapped reference ``positions``
    (F, n, 3) Å at ``temperature`` K; saved atomically to ``path``, which is returned.

    Bonds, angles, dihedrals: the pooled histogram of all instances as -kT ln p (points) against
    the prior's pooled Boltzmann distribution, the mean over instances of
    p_i(x) ∝ J(x) exp(-U_i(x)/kT) (J = sin θ for angles, 1 otherwise), as -kT ln (line); both
    shifted to minimum 0. Repulsion: the pooled histogram of r_ij/σ_ij over the repulsion pairs
    as -kT ln p against ε(σ/r)^p / kT·kT (the prior is an excluded-volume wall, not a fit of this
    distribution). Raises ValueError as :func:`cgexplain.model.priors.fit_priors` for bad positions or temperature.
    """
    c = prior_coordinates(params, positions, temperature)
    mod, x, kT, p, idx, q = c["module"], c["positions"], c["kT"], c["params"], c["index"], c["coords"]
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.2))
    data_kw = dict(ls="none", marker="o", ms=3, color="C0", label="mapped reference (pooled)")
    fit_kw = dict(lw=1.8, color="C3", label="prior (pooled Boltzmann)")

    ax = axes[0, 0]
    if len(idx["bonds"]):
        k, r0 = np.asarray(p["bonds"]["k"]), np.asarray(p["bonds"]["r0"])
        s = np.sqrt(kT / k)
        lo, hi = min(q["bonds"].min(), (r0 - 4 * s).min()), max(q["bonds"].max(), (r0 + 4 * s).max())
        edges = np.linspace(lo, hi, 61)
        ctr = 0.5 * (edges[1:] + edges[:-1])
        _plot_pmf(ax, ctr, _pmf(q["bonds"].ravel(), edges, kT), kT, **data_kw)
        grid = np.linspace(lo, hi, 600)
        ax.plot(grid, _mixture_pmf(np.exp(-0.5 * k[:, None] * (grid - r0[:, None]) ** 2 / kT), grid, kT), **fit_kw)
    ax.set(xlabel="bond length r (Å)", ylabel="-kT ln p (kcal/mol)", title=f"bonds ({len(idx['bonds'])})")

    ax = axes[0, 1]
    if len(idx["angles"]):
        k, t0 = np.asarray(p["angles"]["k"]), np.asarray(p["angles"]["theta0"])
        edges = np.linspace(0, np.pi, 91)
        ctr = 0.5 * (edges[1:] + edges[:-1])
        _plot_pmf(ax, np.degrees(ctr), _pmf(q["angles"].ravel(), edges, kT), kT, **data_kw)
        grid = np.linspace(1e-3, np.pi - 1e-3, 900)
        dens = np.sin(grid) * np.exp(-0.5 * k[:, None] * (grid - t0[:, None]) ** 2 / kT)
        ax.plot(np.degrees(grid), _mixture_pmf(dens, grid, kT), **fit_kw)
        ax.set_xlim(np.degrees(max(0.0, q["angles"].min() - 0.3)), np.degrees(min(np.pi, q["angles"].max() + 0.3)))
    ax.set(xlabel="angle θ (degrees)", ylabel="-kT ln p (kcal/mol)", title=f"angles ({len(idx['angles'])}; p includes sin θ)")

    ax = axes[1, 0]
    if len(idx["dihedrals"]):
        edges = np.linspace(-np.pi, np.pi, 73)
        ctr = 0.5 * (edges[1:] + edges[:-1])
        _plot_pmf(ax, np.degrees(ctr), _pmf(q["dihedrals"].ravel(), edges, kT), kT, **data_kw)
        grid = np.linspace(-np.pi, np.pi, 721)
        nn = np.arange(1, mod.n_fourier + 1)
        A, B = np.asarray(p["dihedrals"]["a"]).reshape(-1, mod.n_fourier), np.asarray(p["dihedrals"]["b"]).reshape(-1, mod.n_fourier)
        U = A @ np.cos(nn[:, None] * grid) + B @ np.sin(nn[:, None] * grid)
        ax.plot(np.degrees(grid), _mixture_pmf(np.exp(-(U - U.min(1, keepdims=True)) / kT), grid, kT), **fit_kw)
        ax.set_xlim(-180, 180)
    ax.set(xlabel="dihedral φ (degrees)", ylabel="-kT ln p (kcal/mol)", title=f"dihedrals ({len(idx['dihedrals'])}, {mod.n_fourier} Fourier terms)")

    ax = axes[1, 1]
    if len(idx["repulsion"]):
        sig = np.asarray(p["repulsion"]["sigma"])
        eps = np.asarray(p["repulsion"]["epsilon"])
        expo = float(p["repulsion"]["exponent"])
        sub = idx["repulsion"]
        if len(x) * len(sub) > 5_000_000:  # a random subset of frames keeps this light
            x_r = x[np.random.default_rng(0).choice(len(x), max(1, 5_000_000 // len(sub)), replace=False)]
        else:
            x_r = x
        ratio = (np.linalg.norm(x_r[:, sub[:, 1]] - x_r[:, sub[:, 0]], axis=-1) / sig).ravel()
        edges = np.linspace(0.5, min(float(np.quantile(ratio, 0.99)), 6.0), 81)
        ctr = 0.5 * (edges[1:] + edges[:-1])
        _plot_pmf(ax, ctr, _pmf(ratio, edges, kT), kT, **{**data_kw, "label": "mapped reference (pooled r/σ)"})
        grid = np.linspace(edges[0], edges[-1], 400)
        ax.plot(grid, float(np.median(eps)) * grid**-expo, **{**fit_kw, "label": f"prior ε(σ/r)^{expo:g}, median ε"})
    ax.set(xlabel="r / σ", ylabel="energy (kcal/mol)", title=f"repulsion ({len(idx['repulsion'])} pairs)")
    axes[0, 0].legend(frameon=False, fontsize=8)
    axes[1, 1].legend(frameon=False, fontsize=8)
    fig.suptitle(f"CG prior vs mapped reference, T = {float(temperature):g} K")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)
