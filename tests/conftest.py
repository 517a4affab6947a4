import warnings

import numpy as np
import pytest
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning)
torch.set_num_threads(2)


def random_liquid(n, box, min_dist, rng):
    """n beads in a cubic box of ``box`` Å with no pair (minimum image) closer than ``min_dist`` Å,
    by random sequential addition with the numpy generator ``rng``: (n, 3)."""
    x = []
    while len(x) < n:
        p = rng.uniform(0, box, 3)
        if all(np.linalg.norm((p - q) - box * np.round((p - q) / box)) > min_dist for q in x):
            x.append(p)
    return np.array(x)


def water_universe(n_mol=4, box=8.0, seed=0):
    """A small all-atom water universe (O, H, H per residue) with positions, box and masses."""
    import MDAnalysis as mda

    rng = np.random.default_rng(seed)
    n = 3 * n_mol
    u = mda.Universe.empty(n, n_residues=n_mol, atom_resindex=np.repeat(np.arange(n_mol), 3), trajectory=True)
    u.add_TopologyAttr("names", ["O", "H1", "H2"] * n_mol)
    u.add_TopologyAttr("types", ["O", "H", "H"] * n_mol)
    u.add_TopologyAttr("elements", ["O", "H", "H"] * n_mol)
    u.add_TopologyAttr("resnames", ["HOH"] * n_mol)
    u.add_TopologyAttr("resids", np.arange(1, n_mol + 1))
    u.add_TopologyAttr("masses", [15.999, 1.008, 1.008] * n_mol)
    o = rng.uniform(0, box, (n_mol, 3))
    geom = np.array([[0, 0, 0], [0.9572, 0, 0], [-0.24, 0.927, 0]])
    u.atoms.positions = (o[:, None, :] + geom[None]).reshape(-1, 3)
    u.dimensions = [box, box, box, 90, 90, 90]
    return u


def harmonic_frames(n_frames=12, n=16, L=7.0, seed=0, mass=16.0):
    """Toy CG frames (a MappedTrajectory) in a periodic cube of side L Å: uniform random beads with
    harmonic pair forces (rest length 2 Å, cutoff 3 Å), so a model has something real to fit."""
    from cgexplain.mapping.maps import MappedTrajectory

    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, L, (n_frames, n, 3)).astype(np.float32)
    frc = np.zeros_like(pos)
    for f in range(n_frames):
        d = pos[f][None] - pos[f][:, None]
        d -= L * np.round(d / L)
        r = np.linalg.norm(d, axis=-1) + np.eye(n)
        w = np.where((r < 3.0) & (r > 0), (r - 2.0) / r, 0.0)
        frc[f] = (w[..., None] * d).sum(1)
    cells = np.repeat(np.eye(3)[None] * L, n_frames, 0).astype(np.float32)
    return MappedTrajectory(pos, frc, cells, np.ones(n, int), np.full(n, mass))


@pytest.fixture
def small_water(tmp_path):
    """Write a 4-molecule water PDB + TRR (3 frames, random forces); returns paths and arrays."""
    from cgexplain.reference.fluids import write_trajectory_with_forces

    u = water_universe()
    pdb = tmp_path / "w.pdb"
    u.atoms.write(str(pdb))
    rng = np.random.default_rng(1)
    pos = np.stack([u.atoms.positions + rng.normal(0, 0.05, u.atoms.positions.shape) for _ in range(3)]).astype(np.float32)
    frc = rng.normal(0, 5, pos.shape).astype(np.float32)
    cells = np.repeat(np.eye(3)[None] * 8.0, 3, axis=0)
    trr = tmp_path / "w.trr"
    write_trajectory_with_forces(pdb, trr, pos, frc, cells, 0.1)
    return {"pdb": pdb, "trr": trr, "positions": pos, "forces": frc, "cells": cells}


def random_painn(F=8, L=2, cutoff=3.0, seed=0, scale=0.3, dtype=torch.float64, arch="painn", lmax=2):
    """A PaiNN (or, with arch="so3net", SO3net) potential with perturbed random weights."""
    from cgexplain.model.potential import build_model

    torch.manual_seed(seed)
    hp = {"representation": arch, "n_atom_basis": F, "n_interactions": L, "cutoff": cutoff}
    if arch == "so3net":
        hp["lmax"] = lmax
    m = build_model(hp).to(dtype)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn_like(p))
    return m.eval()
