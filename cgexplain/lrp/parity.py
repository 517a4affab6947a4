"""The publication's methane SO3net model and frame (Bonneau et al., arXiv 2407.04526), used by the
parity test and ``benchmarks/lrp_methane.py``.

Files (``tests/data/parity`` in the repository): ``so3net_methane_state_dict.pt``,
``methane_frame0.npz``, ``reference_walk_relevance.json``; and a random-weight PaiNN on the same
frame with the reference implementation's walk relevances: ``painn_random_state_dict.pt``,
``painn_reference_walk_relevance.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["build_parity_model", "load_parity", "build_parity_painn", "load_parity_painn"]


def _potential(rep, n_in: int):
    """A schnetpack NeuralNetworkPotential around ``rep``: pairwise distances in, an Atomwise sum
    energy head (``n_in`` features) and forces out, as both parity fixtures are built."""
    import schnetpack as spk

    return spk.model.NeuralNetworkPotential(
        rep,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=n_in, output_key="energy", aggregation_mode="sum"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    )


def build_parity_model():
    """The architecture of the publication's methane model: SO3net(F=128, L=3, lmax=2,
    GaussianRBF(20, 5 Å), CosineCutoff(5 Å)) with an Atomwise sum energy head and forces."""
    import schnetpack as spk

    rep = spk.representation.SO3net(
        n_atom_basis=128,
        n_interactions=3,
        lmax=2,
        shared_interactions=False,
        radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=5.0),
        cutoff_fn=spk.nn.CosineCutoff(5.0),
    )
    return _potential(rep, 128)


def load_parity(directory):
    """Load the parity model, frame and reference.

    Returns (model in eval mode, ase.Atoms frame (Å), neighbors (idx_i, idx_j, offsets Å),
    reference dict from the JSON). Raises FileNotFoundError naming the missing file.
    """
    import torch
    from ase import Atoms

    d = Path(directory)
    for name in ("so3net_methane_state_dict.pt", "methane_frame0.npz", "reference_walk_relevance.json"):
        if not (d / name).exists():
            raise FileNotFoundError(f"parity data: {d / name} is missing")
    model = build_parity_model()
    model.load_state_dict(torch.load(d / "so3net_methane_state_dict.pt", weights_only=True))
    model.eval()
    f = np.load(d / "methane_frame0.npz")
    atoms = Atoms(numbers=f["Z"], positions=f["positions"], cell=f["cell"].reshape(3, 3), pbc=f["pbc"])
    with open(d / "reference_walk_relevance.json") as fh:
        ref = json.load(fh)
    return model, atoms, (f["idx_i"], f["idx_j"], f["offsets"]), ref


def build_parity_painn():
    """The architecture of the random-weight PaiNN parity fixture: PaiNN(F=32, L=3,
    GaussianRBF(20, 5 Å), CosineCutoff(5 Å)) with an Atomwise sum energy head and forces
    (schnetpack's own modules)."""
    import schnetpack as spk

    rep = spk.representation.PaiNN(
        n_atom_basis=32, n_interactions=3, radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=5.0), cutoff_fn=spk.nn.CosineCutoff(5.0)
    )
    return _potential(rep, 32)


def load_parity_painn(directory):
    """Load the random-weight PaiNN fixture on the parity frame.

    Returns (model in eval mode, ase.Atoms frame (Å), neighbors (idx_i, idx_j, offsets Å),
    reference dict: ``energy``, ``n_walks``, ``walk_counts_by_body_order`` and per rule setting
    32 walks with their relevance, ``E_modified`` and ``sum_h0_grad``, kcal/mol).
    Raises FileNotFoundError naming the missing file."""
    import torch

    d = Path(directory)
    for name in ("painn_random_state_dict.pt", "painn_reference_walk_relevance.json"):
        if not (d / name).exists():
            raise FileNotFoundError(f"parity data: {d / name} is missing")
    _, atoms, nb, _ = load_parity(d)
    model = build_parity_painn()
    model.load_state_dict(torch.load(d / "painn_random_state_dict.pt", weights_only=True))
    model.eval()
    with open(d / "painn_reference_walk_relevance.json") as fh:
        ref = json.load(fh)
    return model, atoms, nb, ref
