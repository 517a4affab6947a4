"""The rule-modified forward pass of a schnetpack SO3net potential, split into the pieces
GNN-LRP needs.

It reproduces ``schnetpack.representation.SO3net`` (schnetpack 2.2.0) plus its ``Atomwise`` sum
head with the parity README's conventions (shared/parity/README.md):
- layer boundaries are after the embedding and after each interaction block; there the scalar
  features x[:, 0] are masked and the l > 0 components are stop-gradient;
- inside a block, relevance flows through the convolution, tensor product and gating;
- only the hidden layer of the energy head uses :func:`cgexplain.lrp.rules.silu_rule`;
- geometry (radial basis, cutoff, filters, spherical harmonics) is constant.

One block t maps the scalars q^(t-1) (n, F) to q^t = q^(t-1) + A_i(dx_i)[0], where
dx_i = Σ_j conv(x_j) is linear in the neighbour's scalars and diagonal in the feature index,
dx_i[s, f] ∋ K_ij[s, f] q_j[f], and A_i (mixing, tensor product, gating, mixing) is node-wise.
So the Jacobian blocks factor as
    J^t[i, j] = ∂q^t_i/∂q^(t-1)_j = δ_ij 1 + Σ_s G_i[s] diag(K_ij[s]),
with G_i[s] = ∂A_i[0]/∂dx_i[s] (F × F) and K_ij the scalar-input part of the filter summed over
the edges j→i. G_i is never formed: the scalar output depends on dx only through
a0 = dx[0] + TP(dx, W1 dx)[0] (the gate of l = 0 reads only l = 0), so
    v·G_i[s] = δ_s0 u + Σ_k C_k [s1_k = s] u ⊙ (W1 dx)[s2_k] + (Σ_k C_k [s2_k = s] u ⊙ dx[s1_k]) W1,
with u = v·B_i, B_i = ∂A_i[0]/∂a0 (F × F) and k over the Clebsch–Gordan entries (s1, s2 → 0).
"""

from __future__ import annotations

from typing import Any

import schnetpack.properties as P
import torch

from cgexplain.lrp.base import RuleModifiedPass
from cgexplain.lrp.factors import SO3netFactors, nodewise_jacobian

__all__ = ["SO3netLRP"]


class SO3netLRP(RuleModifiedPass):
    """Rule-modified SO3net forward for one model; ``gamma``/``bias_rule`` pick the LRP rule."""

    representation_type = "SO3net"

    def __init__(self, model, gamma: float = 0.1, bias_rule: bool = True):
        super().__init__(model, gamma=gamma, bias_rule=bias_rule)
        self.S = (self.rep.lmax + 1) ** 2

    # ---- geometry (constant) ----------------------------------------------------------
    def geometry(self, inputs: dict) -> dict:
        """Constant graph quantities: idx_i, idx_j, radial basis, cutoff, spherical harmonics and
        the per-edge scalar filters K[t] (E, S, F)."""
        with torch.no_grad():
            R = inputs[P.R]
            idx_i, idx_j = inputs[P.idx_i], inputs[P.idx_j]
            r_ij = R[idx_j] - R[idx_i] + inputs[P.offsets]
            d = torch.norm(r_ij, dim=1, keepdim=True)
            Y = self.rep.sphharm(r_ij / d)
            radial = self.rep.radial_basis(d)
            fcut = self.rep.cutoff_fn(d)[..., None]
        geo = {"idx_i": idx_i, "idx_j": idx_j, "Y": Y, "radial": radial, "fcut": fcut, "n": inputs[P.Z].shape[0]}
        geo["K"] = [self.scalar_filter(t, geo) for t in range(self.L)]
        return geo

    # ---- pieces -----------------------------------------------------------------------
    def conv(self, t: int, q, xl, geo):
        """Convolution of block t: scalars q (n, F) with grad, l > 0 part xl (n, S-1, F) constant.

        The convolution is linear in x, so it is split into the constant l > 0 part (schnetpack's
        module, without a graph) and the scalar part Σ_j K_ij ⊙ q_j (:meth:`scalar_filter`), which
        is all that carries gradient. This keeps the autograd graph at O(edges·S·F) instead of
        O(edges·n_cg·F) per block."""
        with torch.no_grad():
            x = torch.cat([torch.zeros_like(q).unsqueeze(1), xl], dim=1)
            const = self.rep.so3convs[t](x, geo["radial"], geo["Y"], geo["fcut"], geo["idx_i"], geo["idx_j"])
        K = geo["K"][t] if "K" in geo else self.scalar_filter(t, geo)
        dq = torch.zeros_like(const).index_add_(0, geo["idx_i"], K * q[geo["idx_j"]].unsqueeze(1))
        return const + dq

    def nodewise(self, t: int, dx):
        """Node-wise part of block t: dx (..., S, F) -> block output (..., S, F)."""
        r = self.rep
        shape = dx.shape
        dx = dx.reshape(-1, self.S, self.F)
        ddx = r.mixings1[t](dx)
        dx = dx + r.so3product(dx, ddx)
        dx = r.mixings2[t](dx)
        dx = r.gatings[t](dx)
        dx = r.mixings3[t](dx)
        return dx.reshape(shape)

    def scalar_out(self, t: int, a0):
        """The block's scalar output as a function of a0 = (dx + TP(dx, W1 dx))[0]: (n, F) -> (n, F).
        Follows SO3net's mixing2, the l = 0 gate of SO3ParametricGatedNonlinearity, and mixing3."""
        r = self.rep
        b0 = r.mixings2[t](a0)
        h0 = r.gatings[t].scaling(b0)[..., : self.F]
        return r.mixings3[t](b0 * torch.sigmoid(h0))

    def scalar_filter(self, t: int, geo):
        """K_e[s, f] of every edge e: the part of block t's convolution that multiplies the
        sender's scalars (l2 = 0), (E, S, F)."""
        c = self.rep.so3convs[t]
        with torch.no_grad():
            W = c._compute_radial_filter(geo["radial"], geo["fcut"])  # (E, n_cg, F)
            sel = c.idx_in_2 == 0
            v = W[:, sel] * (geo["Y"][:, c.idx_in_1[sel]] * c.clebsch_gordan[sel])[..., None]
            K = torch.zeros((W.shape[0], self.S, self.F), dtype=W.dtype, device=W.device)
            K.index_add_(1, c.idx_out[sel], v)
        return K

    # ---- whole pass -------------------------------------------------------------------
    def forward(self, inputs: dict, masks=None, record: bool = False):
        """Rule-modified forward pass.

        masks: None, or a list of L+1 tensors (n,) of 0/1: at boundary t the scalars become
        m·q + (1-m)·stopgrad(q) (the walk masks of the parity README).
        Returns (E, h0, trace): E the modified energy (0-dim tensor, kcal/mol), h0 the embedding
        (n, F) leaf with requires_grad, and with ``record`` the per-layer dx.
        """
        geo = self.geometry(inputs)
        h0 = self.rep.embedding(inputs[P.Z]).detach().requires_grad_(True)

        q = self.boundary(h0, masks, 0)
        xl = torch.zeros((geo["n"], self.S - 1, self.F), dtype=q.dtype, device=q.device)
        trace: dict[str, Any] = {"dx": [], "geo": geo}
        for t in range(self.L):
            dx = self.conv(t, q, xl, geo)
            if record:
                trace["dx"].append(dx.detach())
            out = self.nodewise(t, dx)
            q = self.boundary(q + out[:, 0], masks, t + 1)
            xl = (xl + out[:, 1:]).detach()
        trace["q_out"] = q.detach()
        return self.head(q).sum(), h0, trace

    # ---- factors of the layer Jacobians -----------------------------------------------
    def factors(self, inputs: dict) -> SO3netFactors:
        """Everything the walk engine needs, from one unmasked modified pass.

        Returns :class:`~cgexplain.lrp.factors.SO3netFactors`: h0 (n, F); g = ∂E/∂q^L (n, F);
        per layer t: B[t] (n, F, F) = ∂out0/∂a0 [out, in], dx[t] and W1·dx[t] (n, S, F), W1[t]
        (F, F), the l⊗l→0 Clebsch–Gordan entries, and the scalar filters summed per directed pair Kpair[t] (P, S, F) and
        per self image Kself[t] (n, S, F); the modified energy and the no-mask Σ h0·∂E/∂h0.
        """
        E, h0, tr = self.forward(inputs, record=True)
        (grad_h0,) = torch.autograd.grad(E, h0)
        geo = tr["geo"]
        r = self.rep
        B, dxs, ddxs = [], [], []
        with torch.no_grad():
            for t in range(self.L):
                dx = tr["dx"][t]
                ddx = r.mixings1[t](dx)
                a0 = (dx + r.so3product(dx, ddx))[:, 0]
                dxs.append(dx)
                ddxs.append(ddx)
                with torch.enable_grad():
                    B.append(nodewise_jacobian(lambda z: self.scalar_out(t, z), a0))  # noqa: B023 (called at once)
        p = r.so3product
        sel = p.idx_out == 0
        cg0 = (p.idx_in_1[sel], p.idx_in_2[sel], p.clebsch_gordan[sel])
        W1 = [r.mixings1[t].weight.detach() for t in range(self.L)]
        common, Kpair, Kself = self.shared_factors(h0, grad_h0, E, tr["q_out"], geo, geo["K"])
        return SO3netFactors(
            **common,
            S=self.S,
            B=B,
            dx=dxs,
            ddx=ddxs,
            W1=W1,
            cg0=cg0,
            Kpair=Kpair,
            Kself=Kself,
        )
