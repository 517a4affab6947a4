"""The rule-modified forward pass of a schnetpack PaiNN potential, split into the pieces GNN-LRP
needs.

It reproduces ``schnetpack.representation.PaiNN`` (schnetpack 2.2.0) plus its ``Atomwise`` sum
head with the parity README's conventions (shared/parity/README.md):
- layer boundaries are after the embedding and after each (interaction, mixing) pair;
- the vector features are stop-gradient before and after each interaction and mixing block;
- the first dense layer of the inter- and intra-atomic context networks and the hidden layer of
  the energy head use :func:`cgexplain.lrp.rules.silu_rule`;
- geometry (radial basis, cutoff, filters, directions) is constant.

One layer t maps the scalars q^(t-1) (n, F) to q^t. Its Jacobian blocks factor as
    J^t[i, j] = ∂q^t_i/∂q^(t-1)_j = M_i (δ_ij 1 + diag(w_ij) Φ_j),
where Φ_j = ∂ctx_q(q_j)/∂q_j is node-wise (the scalar third of the inter-atomic context net),
w_ij is the scalar filter summed over the edges j→i, and M_i = ∂mix(q_mid_i)/∂q_mid_i is the
node-wise Jacobian of the mixing block.
"""

from __future__ import annotations

from typing import Any

import schnetpack.properties as P
import torch

from cgexplain.lrp.base import RuleModifiedPass
from cgexplain.lrp.factors import PaiNNFactors, nodewise_jacobian

__all__ = ["PaiNNLRP"]


class PaiNNLRP(RuleModifiedPass):
    """Rule-modified PaiNN forward for one model; ``gamma``/``bias_rule`` pick the LRP rule."""

    representation_type = "PaiNN"

    # ---- geometry (constant) ----------------------------------------------------------
    def geometry(self, inputs: dict) -> dict:
        """Constant graph quantities: idx_i, idx_j, directions, per-layer filters (E, 3F)."""
        with torch.no_grad():
            R = inputs[P.R]
            idx_i, idx_j = inputs[P.idx_i], inputs[P.idx_j]
            r_ij = R[idx_j] - R[idx_i] + inputs[P.offsets]
            d = torch.norm(r_ij, dim=1, keepdim=True)
            dir_ij = r_ij / d
            filt = self.rep.filter_net(self.rep.radial_basis(d)) * self.rep.cutoff_fn(d)[..., None]
            filt = filt.squeeze(1) if filt.dim() == 3 else filt
            if self.rep.share_filters:
                fl = [filt] * self.L
            else:
                fl = list(torch.split(filt, 3 * self.F, dim=-1))
        return {"idx_i": idx_i, "idx_j": idx_j, "dir_ij": dir_ij, "filters": fl, "n": inputs[P.Z].shape[0]}

    # ---- node-wise pieces -------------------------------------------------------------
    def embedding(self, Z):
        return self.rep.embedding(Z)

    def context(self, t: int, q):
        """Inter-atomic context net of layer t (node-wise): q (..., F) -> (..., 3F)."""
        net = self.rep.interactions[t].interatomic_context_net
        return net[1](self.rule(net[0], q))

    def mix(self, t: int, q, mu):
        """Mixing block of layer t (node-wise): q (..., F), mu (..., 3, F) constant.
        Returns q_out (..., F) and mu_out (detached)."""
        m = self.rep.mixing[t]
        mu = mu.detach()
        mu_mix = m.mu_channel_mix(mu)
        mu_V, mu_W = torch.split(mu_mix, self.F, dim=-1)
        mu_Vn = torch.sqrt(torch.sum(mu_V**2, dim=-2) + m.epsilon)
        net = m.intraatomic_context_net
        x = net[1](self.rule(net[0], torch.cat([q, mu_Vn], dim=-1)))
        dq, dmu, dqmu = torch.split(x, self.F, dim=-1)
        q_out = q + dq + dqmu * torch.sum(mu_V * mu_W, dim=-2)
        return q_out, (mu + dmu.unsqueeze(-2) * mu_W).detach()

    def interaction(self, t: int, q, mu, geo):
        """Interaction block of layer t: returns q_mid = q + Σ_j w_ij ⊙ ctx_q(q_j) and mu (detached)."""
        idx_i, idx_j = geo["idx_i"], geo["idx_j"]
        x = self.context(t, q)[idx_j] * geo["filters"][t]
        dq, dmuR, dmumu = torch.split(x, self.F, dim=-1)
        q_mid = q + torch.zeros_like(q).index_add_(0, idx_i, dq)
        dmu = dmuR.unsqueeze(1) * geo["dir_ij"].unsqueeze(-1) + dmumu.unsqueeze(1) * mu.detach()[idx_j]
        mu = (mu + torch.zeros_like(mu).index_add_(0, idx_i, dmu)).detach()
        return q_mid, mu

    # ---- whole pass -------------------------------------------------------------------
    def forward(self, inputs: dict, masks=None, record: bool = False):
        """Rule-modified forward pass.

        masks: None, or a list of L+1 tensors (n,) of 0/1: at boundary t the scalars become
        m·q + (1-m)·stopgrad(q) (the walk masks of the parity README).
        Returns (E, h0, trace): E the modified energy (0-dim tensor, kcal/mol), h0 the embedding
        (n, F) leaf with requires_grad, and with ``record`` the per-layer q_in, q_mid, mu.
        """
        geo = self.geometry(inputs)
        h0 = self.embedding(inputs[P.Z]).detach().requires_grad_(True)

        q = self.boundary(h0, masks, 0)
        mu = torch.zeros((geo["n"], 3, self.F), dtype=q.dtype, device=q.device)
        trace: dict[str, Any] = {"q_in": [], "q_mid": [], "mu_mid": [], "geo": geo}
        for t in range(self.L):
            q_mid, mu = self.interaction(t, q, mu, geo)
            if record:
                trace["q_in"].append(q.detach())
                trace["q_mid"].append(q_mid.detach())
                trace["mu_mid"].append(mu)
            q, mu = self.mix(t, q_mid, mu)
            q = self.boundary(q, masks, t + 1)
        trace["q_out"] = q.detach()
        return self.head(q).sum(), h0, trace

    # ---- factors of the layer Jacobians -----------------------------------------------
    def factors(self, inputs: dict) -> PaiNNFactors:
        """Everything the walk engine needs, from one unmasked modified pass.

        Returns :class:`~cgexplain.lrp.factors.PaiNNFactors`: h0 (n, F); g = ∂E/∂q^L (n, F); per
        layer t: Phi[t] (n, F, F) with Phi[t][j] = ∂ctx_q(q_j)/∂q_j [out, in], M[t] (n, F, F) =
        ∂q^t_i/∂q_mid_i [out, in]; the directed pairs (recv, send) with summed scalar filters
        wpair[t] (P, F) and self-image filters wself[t] (n, F); the modified energy and the
        no-mask sum of h0·∂E/∂h0.
        """
        E, h0, tr = self.forward(inputs, record=True)
        (grad_h0,) = torch.autograd.grad(E, h0)
        geo = tr["geo"]
        Phi, M = [], []
        for t in range(self.L):
            Phi.append(nodewise_jacobian(lambda q: self.context(t, q)[..., : self.F], tr["q_in"][t]))  # noqa: B023 (called at once)
            mu = tr["mu_mid"][t]
            M.append(nodewise_jacobian(lambda q: self.mix(t, q, mu)[0], tr["q_mid"][t]))  # noqa: B023 (called at once)
        common, wpair, wself = self.shared_factors(h0, grad_h0, E, tr["q_out"], geo, [f[:, : self.F] for f in geo["filters"]])
        return PaiNNFactors(
            **common,
            M=M,
            Phi=Phi,
            wpair=wpair,
            wself=wself,
        )
