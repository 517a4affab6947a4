"""What the PaiNN and SO3net rule-modified passes share: model checks, the rule-modified dense
layer, the energy head and the walk mask at a layer boundary (parity README)."""

from __future__ import annotations

import torch

from cgexplain.lrp.factors import pair_sums
from cgexplain.lrp.rules import check_rule, silu_rule

__all__ = ["RuleModifiedPass"]


class RuleModifiedPass:
    """Base of :class:`~cgexplain.lrp.painn.PaiNNLRP` and :class:`~cgexplain.lrp.so3net.SO3netLRP`.

    Subclasses set ``representation_type`` (the schnetpack class name they reproduce).
    Raises TypeError for another representation; ValueError for electronic embeddings, an
    energy head that is not one Atomwise sum of 2 dense layers, postprocessors, or an
    unsupported rule (:func:`~cgexplain.lrp.rules.check_rule`).
    """

    representation_type = ""

    def __init__(self, model, gamma: float = 0.1, bias_rule: bool = True):
        import schnetpack.representation as reps

        name = self.representation_type
        rep = model.representation
        if not isinstance(rep, getattr(reps, name)):
            raise TypeError(f"{type(self).__name__} needs a representation of type {name}, got {type(rep).__name__}")
        if len(rep.electronic_embeddings):
            raise ValueError(f"{name} with electronic embeddings is not supported by the LRP engine")
        check_rule(gamma, bias_rule)
        heads = [m for m in model.output_modules if hasattr(m, "outnet")]
        if len(heads) != 1 or getattr(heads[0], "aggregation_mode", None) != "sum" or len(heads[0].outnet) != 2:
            raise ValueError("the LRP engine needs exactly one Atomwise energy head (sum aggregation, 2 dense layers)")
        if getattr(model, "postprocessors", None) and len(model.postprocessors):
            raise ValueError("models with postprocessors are not supported by the LRP engine")
        self.model, self.rep, self.head_net = model, rep, heads[0].outnet
        self.gamma, self.bias_rule = float(gamma), bool(bias_rule)
        self.F = rep.n_atom_basis
        self.L = rep.n_interactions

    def rule(self, dense, a):
        """Rule-modified ``SiLU(dense(a))`` (:func:`~cgexplain.lrp.rules.silu_rule`)."""
        return silu_rule(a, dense.weight, dense.bias, self.gamma, self.bias_rule)

    def head(self, q):
        """Atomwise energy terms: q (..., F) -> (...,) kcal/mol; the hidden layer uses the rule."""
        net = self.head_net
        return net[1](self.rule(net[0], q)).squeeze(-1)

    @staticmethod
    def boundary(q, masks, t: int):
        """Walk mask at layer boundary t: m·q + (1-m)·stopgrad(q) with m = masks[t] (n,) (the
        forward value is unchanged); no masks: q itself."""
        if masks is None:
            return q
        m = masks[t].to(q.dtype).unsqueeze(-1)
        return m * q + (1 - m) * q.detach()

    def shared_factors(self, h0, grad_h0, E, q_out, geo: dict, filters: list) -> tuple[dict, list, list]:
        """The factor fields both architectures have (:class:`~cgexplain.lrp.factors.PaiNNFactors`,
        :class:`~cgexplain.lrp.factors.SO3netFactors`): h0 (n, F), g = ∂E/∂q^L (n, F) of the
        rule-modified head, the receiver/sender pairs, n, L, the modified energy E and Σ h0·∂E/∂h0
        (the conserved total of the walk relevances). Also returns the per-layer pair and self
        sums of ``filters`` (:func:`~cgexplain.lrp.factors.pair_sums`)."""
        recv, send, pair, self_ = pair_sums(geo["idx_i"], geo["idx_j"], geo["n"], filters)
        qL = q_out.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(self.head(qL).sum(), qL)
        common = {
            "h0": h0.detach(),
            "g": g,
            "recv": recv,
            "send": send,
            "n": geo["n"],
            "L": self.L,
            "E_modified": float(E.detach()),
            "sum_h0_grad": float((h0 * grad_h0).sum().detach()),
        }
        return common, pair, self_
