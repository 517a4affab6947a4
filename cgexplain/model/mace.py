"""A body-ordered CG potential: MACE (Batatia et al., NeurIPS 2022; ``mace-torch``) behind the
schnetpack interface the rest of cgexplain uses.

:class:`MaceRepresentation` holds a ``mace.modules.MACE`` and reads the schnetpack input dict
(``_atomic_numbers`` as bead types, ``_positions`` Å, ``_idx_i``/``_idx_j``/``_offsets`` of the
neighbour list); it writes the per-bead energies ε_i (kcal/mol) under ``site_energy``.
:class:`SiteEnergySum` sums them per frame into ``energy``, so the model is an ordinary schnetpack
``NeuralNetworkPotential`` [MaceRepresentation | SiteEnergySum, PriorEnergy?, Forces] that the
training, simulation and mutation code drive like PaiNN and SO3net.

Body order (Batatia et al. 2022, eqs. 8–11; Dusson et al., J. Comput. Phys. 454, 110946 (2022)):
with one interaction layer the atomic basis A_i = Σ_j R(r_ij) Y(r̂_ij) W h_j is linear in the
neighbours j, the product basis B_i of correlation order ν is a polynomial of degree ν in A_i, and
the readout is linear, so ε_i is a sum of terms with at most ν neighbours: the model is exactly a
(ν+1)-body potential. With ``n_interactions: 1`` and ``correlation: 2`` every Möbius term d(S)
with |S| >= 4 is zero, and the 1-, 2- and 3-body terms that :mod:`cgexplain.lrp.bodyorder`
computes from isolated clusters are the model's own exact decomposition. Deeper models are
allowed, but mace-torch gives their last layer a non-linear readout (an MLP), so their body order
is unbounded (:func:`body_order`) and their cluster terms are not closed.

Bead types are one-hot over ``n_types`` (type t in 0..n_types-1); the train stage sets
``n_types`` (largest type + 1) and ``avg_num_neighbors`` (MACE's message normalisation) from the
training data (:func:`complete_hparams`). MACE's atomic reference energies E0 are zero and not
trained (force matching leaves a per-type offset free), and the readout has no bias, so an
isolated bead has energy 0.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from cgexplain.geometry.neighbors import neighbor_list

__all__ = ["MaceRepresentation", "SiteEnergySum", "complete_hparams", "body_order"]

#: the representation name in model.hparams
NAME = "mace"


def _mace_modules():
    """``mace.modules`` and ``e3nn.o3``, imported quietly: mace-torch prints a line about its
    optional CUDA kernels (cuequivariance) at import, and TorchScript warns about its annotations."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import mace.modules
        from e3nn import o3
    return mace.modules, o3


def body_order(n_interactions: int, correlation: int) -> int | None:
    """The largest body order (beads per term, the centre included) of a cgexplain MACE model:
    1 + ν for one layer of correlation order ν (ν 2: 3, pairs + triplets); None (unbounded) for
    two or more layers, whose last readout in mace-torch is a non-linear MLP (with linear readouts
    it would be 1 + ν + ν² for two layers, 13 for ν 3; Batatia et al. 2022)."""
    return 1 + int(correlation) if int(n_interactions) == 1 else None


class MaceRepresentation(torch.nn.Module):
    """A ``mace.modules.MACE`` (RealAgnosticInteractionBlock in every layer, linear readouts but for
    the last of several layers) that reads schnetpack inputs and writes ``site_energy`` (n_total,)
    kcal/mol.

    n_types: bead types 0..n_types-1 (one-hot); n_atom_basis: scalar channels (hidden irreps
    ``{n}x0e``); n_interactions: layers; cutoff: r_max Å (polynomial envelope of order
    ``n_polynomial_cutoff``); n_rbf: Bessel functions; max_ell: spherical harmonics up to l;
    correlation: product-basis order ν; avg_num_neighbors: divides the message sums.
    Raises ValueError for a bead type outside 0..n_types-1 (in forward) or bad sizes.
    """

    def __init__(
        self,
        n_types: int,
        n_atom_basis: int = 32,
        n_interactions: int = 1,
        cutoff: float = 4.5,
        n_rbf: int = 8,
        max_ell: int = 2,
        correlation: int = 2,
        avg_num_neighbors: float = 10.0,
        radial_mlp: tuple[int, ...] = (64, 64, 64),
        n_polynomial_cutoff: int = 5,
    ):
        super().__init__()
        modules, o3 = _mace_modules()
        if int(n_types) < 1:
            raise ValueError(f"MACE: n_types must be >= 1, got {n_types}")
        self.n_types = int(n_types)
        self.cutoff = float(cutoff)
        self.n_interactions = int(n_interactions)
        self.correlation = int(correlation)
        dtype = torch.get_default_dtype()
        with warnings.catch_warnings():  # TorchScript's notes on mace-torch's annotations, at construction
            warnings.filterwarnings("ignore", message="The TorchScript type system", category=UserWarning)
            self.mace = self._build(
                modules, o3, n_atom_basis, n_interactions, cutoff, n_rbf, max_ell, correlation, avg_num_neighbors, radial_mlp, n_polynomial_cutoff
            )
        self.mace.to(dtype)

    def _build(
        self, modules, o3, n_atom_basis, n_interactions, cutoff, n_rbf, max_ell, correlation, avg_num_neighbors, radial_mlp, n_polynomial_cutoff
    ):
        return modules.MACE(
            r_max=float(cutoff),
            num_bessel=int(n_rbf),
            num_polynomial_cutoff=int(n_polynomial_cutoff),
            max_ell=int(max_ell),
            interaction_cls=modules.RealAgnosticInteractionBlock,
            interaction_cls_first=modules.RealAgnosticInteractionBlock,
            num_interactions=int(n_interactions),
            num_elements=self.n_types,
            hidden_irreps=o3.Irreps(f"{int(n_atom_basis)}x0e"),
            MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.zeros(self.n_types),
            avg_num_neighbors=float(avg_num_neighbors),
            atomic_numbers=list(range(self.n_types)),
            correlation=int(correlation),
            gate=torch.nn.functional.silu,
            radial_MLP=[int(h) for h in radial_mlp],
        )

    def forward(self, inputs: dict) -> dict:
        import schnetpack.properties as P

        Z, R = inputs[P.Z], inputs[P.R]
        if Z.numel() and (int(Z.min()) < 0 or int(Z.max()) >= self.n_types):
            raise ValueError(f"MACE: bead types must lie in 0..{self.n_types - 1} (the trained types), got {int(Z.min())}..{int(Z.max())}")
        n_atoms = inputs[P.n_atoms]
        ptr = torch.cat([n_atoms.new_zeros(1), torch.cumsum(n_atoms, 0)])
        data = {
            "positions": R,
            "node_attrs": torch.nn.functional.one_hot(Z, self.n_types).to(R.dtype),
            # MACE: vectors = x[receiver] - x[sender] + shifts, messages go sender -> receiver;
            # schnetpack: R_ij = x[j] - x[i] + offset, i the receiving bead
            "edge_index": torch.stack([inputs[P.idx_j], inputs[P.idx_i]]),
            "shifts": -inputs[P.offsets],
            "batch": inputs[P.idx_m],
            "ptr": ptr,
            "cell": inputs[P.cell].reshape(-1, 3),
        }
        out = self.mace(data, training=self.training, compute_force=False)
        inputs["site_energy"] = out["node_energy"]
        return inputs


class SiteEnergySum(torch.nn.Module):
    """schnetpack output module: ``energy`` (n_frames,) kcal/mol = Σ_i ``site_energy`` per frame."""

    def __init__(self):
        super().__init__()
        self.model_outputs = ["energy"]

    def forward(self, inputs: dict) -> dict:
        import schnetpack.properties as P

        e = inputs["site_energy"]
        n = int(inputs[P.n_atoms].shape[0])
        inputs["energy"] = torch.zeros(n, dtype=e.dtype, device=e.device).index_add(0, inputs[P.idx_m], e)
        return inputs


def complete_hparams(hparams: dict, positions: np.ndarray, cells: np.ndarray, types: np.ndarray, n_sample: int = 10) -> dict:
    """A MACE model's data-dependent hyper-parameters, filled from the training frames where they
    are not set: ``n_types`` (largest bead type + 1) and ``avg_num_neighbors`` (the mean number of
    neighbours within the cutoff over up to ``n_sample`` frames spread over the data).

    positions (F, n, 3) Å; cells (F, 3, 3) Å (zeros: not periodic); types (n,) ints >= 0.
    Returns a new dict. Raises ValueError for a negative bead type or no frames.
    """
    hp = dict(hparams)
    types = np.asarray(types, dtype=np.int64)
    if types.size and types.min() < 0:
        raise ValueError(f"MACE: bead types must be >= 0, got {int(types.min())}")
    if hp.get("n_types") is None:
        hp["n_types"] = int(types.max()) + 1
    if hp.get("avg_num_neighbors") is None:
        if len(positions) == 0:
            raise ValueError("MACE: no frames to count neighbours in")
        pick = np.unique(np.linspace(0, len(positions) - 1, min(n_sample, len(positions))).round().astype(int))
        counts = [len(neighbor_list(positions[f], cells[f], float(hp["cutoff"]))[0]) / positions.shape[1] for f in pick]
        hp["avg_num_neighbors"] = float(np.mean(counts))
    return hp
