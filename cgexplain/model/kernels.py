"""Faster evaluation of schnetpack's PaiNN message passing, with the same parameters and function.

On CPU a PaiNN energy-and-force evaluation is dominated by elementwise products and gathers on
(pairs, 3, F) tensors (``benchmarks/profile_steps.py``). :class:`FastPaiNNInteraction` computes
exactly the function of :class:`schnetpack.representation.painn.PaiNNInteraction`
(Schütt, Unke & Gastegger, ICML 2021, eqs. 7–8) with three changes that only affect speed:

- neighbour features are gathered with ``torch.index_select``, whose backward is an
  ``index_add`` (schnetpack's ``x[idx_j]`` backward is an accumulating ``index_put``, which sorts
  the indices on CPU);
- the three message channels are made contiguous before their (pairs, 3, F) products, and the two
  vector terms are fused with ``torch.addcmul``;
- while the vector features are still all zero (the first layer), the term
  ``dmumu_ij * mu_j`` is skipped, since it is exactly zero.

The class only overrides ``forward``, so the module keeps its parameters, ``state_dict`` keys and
saved files; models built by :func:`cgexplain.model.potential.build_model` use it unless ``fast=False``,
and the LRP engine (``cgexplain.lrp.painn``) has its own forward and is not affected. Energies and
forces agree with schnetpack's to float round-off, and the training gradients too (tested in
``tests/test_kernels.py``); the speed-up is measured in ``benchmarks/md_throughput.py`` and
``benchmarks/train_throughput.py``.
"""

from __future__ import annotations

import torch
from schnetpack.representation.painn import PaiNNInteraction

__all__ = ["FastPaiNNInteraction", "accelerate", "is_accelerated"]


def _scatter_sum(x: torch.Tensor, idx_i: torch.Tensor, n_atoms: int) -> torch.Tensor:
    out = torch.zeros((n_atoms,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
    return out.index_add_(0, idx_i, x)


class FastPaiNNInteraction(PaiNNInteraction):
    """schnetpack's PaiNN interaction block (same parameters and outputs), evaluated faster.

    Shapes: q (n_atoms, 1, F), mu (n_atoms, 3, F), Wij (n_pairs, 1, 3F), dir_ij (n_pairs, 3),
    idx_i and idx_j (n_pairs,). Returns the updated (q, mu) of the same shapes.
    """

    def forward(self, q, mu, Wij, dir_ij, idx_i, idx_j, n_atoms: int):
        x = self.interatomic_context_net(q)
        x = Wij * torch.index_select(x, 0, idx_j)
        dq, dmuR, dmumu = (t.contiguous() for t in torch.split(x, self.n_atom_basis, dim=-1))
        dq = _scatter_sum(dq, idx_i, n_atoms)
        dmu = dmuR * dir_ij[..., None]
        if mu.requires_grad or bool(mu.any()):  # mu == 0 exactly before the first interaction
            dmu = torch.addcmul(dmu, dmumu, torch.index_select(mu, 0, idx_j))
        dmu = _scatter_sum(dmu, idx_i, n_atoms)
        return q + dq, mu + dmu


def accelerate(model: torch.nn.Module) -> torch.nn.Module:
    """Switch every schnetpack ``PaiNNInteraction`` in ``model`` to :class:`FastPaiNNInteraction`.

    In place (the modules keep their parameters); returns ``model``. Other modules, and SO3net
    models, are left as they are.
    """
    for m in model.modules():
        if type(m) is PaiNNInteraction:
            m.__class__ = FastPaiNNInteraction
    return model


def is_accelerated(model: torch.nn.Module) -> bool:
    """True if ``model`` holds at least one :class:`FastPaiNNInteraction`."""
    return any(isinstance(m, FastPaiNNInteraction) for m in model.modules())
