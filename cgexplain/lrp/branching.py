"""Relevance per bead set, exact, for the publication's GNN-LRP rules and for branching walks.

**Why branching walks.** A GNN-LRP walk holds one bead per layer (Schnake et al., IEEE TPAMI 44,
7581 (2022)). PaiNN builds its angular information inside one layer: the mixing block adds
dqmu_i ⊙ Σ_x (V μ_i)_x (W μ_i)_x to the scalars, and μ_i = μ_i^(t-1) + Σ_j δμ_ij sums messages
from the neighbours j. The publication's rules hold the vectors constant (parity README), so the
(j, i, k) angle term reaches the walks through the gate dqmu_i alone, as a 1-body or 2-body term.

**The branching rule** (``rule="branching"``). The product is bilinear in the messages, so its
relevance can be split over *pairs* of incoming walks exactly, as second-order LRP does for a
dot product (BiLRP: Eberle et al., IEEE TPAMI 44, 1149 (2022)):

- the gate dqmu_i and the norm |V μ_i| that feeds the context net are held constant (the
  "signal-take-all" convention for multiplicative gates, Arras et al. 2019, in *Explainable AI*,
  LNCS 11700, 211);
- the vector messages δμ_ij = c^R_j ⊙ w^R_ij r̂_ij + c^μ_j ⊙ w^μ_ij μ_j^(t-1) are live functions of
  the sender's scalars through its context net c_j = ctx(q_j^(t-1)) (rule-modified like the scalar
  path); μ_j^(t-1) stays constant, as in the publication's pass;
- in the modified pass the product is written ½(A·sg(B) + sg(A)·B), A = V μ_i, B = W μ_i, so that
  gradient×input over it counts it once. The conserved quantity is C_b = Σ h0·∂E_b/∂h0 of this
  modified pass E_b (its forward value is the publication's modified pass's: the model's with
  γ = 0, the rule-modified energy with γ > 0).

Write Â for the part of A that gradient×input explains by the embeddings (the forward
linearisation: the sum of the contributions ĉ_w of the walks w ending in a neighbour of i) and
Ã = A − Â (the constant μ^(t-1) and bias parts); likewise B. Expanding every walk of E_b by the
topmost layer where it passes through a product gives the decomposition
    C_b = Σ_{ordinary walks} R + Σ_{t,i} Σ_f V^t_i,f dqmu_i,f Σ_x (Â B̂ + ½ Â B̃ + ½ Ã B̂)_x,f,
where the ordinary walks and the top chains (from the energy down to bead i at layer t, covector
V^t_i) use the layer Jacobians without the product, and Â B̂ = Σ_{w,w'} ĉ_w ĉ'_w' is a sum over
**branching walks**: a top chain, a branch point at bead i in layer t and two sub-walks w, w'
ending in neighbours j and k. The other two terms are ordinary walks through one factor with the
other's unexplained part held constant. Only the topmost product of a walk branches: inside a
sub-walk, a lower layer's product is a one-leg step weighted by the other factor's full value (so a
lower layer's angle term still reaches that sub-walk one neighbour at a time). Every term of C_b
lies on walks or branching walks, so the relevances sum to C_b exactly (checked against autograd of
the modified pass).

**Branching trees** (``rule="branching-tree"``). Every product branches: in a sub-walk, a lower
product's one-leg step ½(Â B + A B̂) is replaced by Â B̂ + ½ Â B̃ + ½ Ã B̂ over *its* incoming walks,
which is the same quantity over all beads, so C_b is unchanged; the relevance objects are binary
trees of walks, and a lower layer's angle term goes to the beads of both its legs.

**Relevance per bead set, exact, without enumeration.** For a bead set T, S(T) is the relevance
of all (branching) walks whose beads lie in T: the same passes with every layer restricted to T
(a forward pass for Â, B̂ and a backward pass for V, on |T| beads). The relevance of the walks
whose distinct beads are exactly T follows by Möbius inversion over the subsets of T (the
n-body grouping of Bonneau et al., arXiv 2407.04526):
    R(T) = Σ_{U ⊆ T} (−1)^{|T|−|U|} S(U).
Singles, pairs within the cutoff graph and connected triplets are computed this way; the total
of all sets of 4 or more beads follows from the sum rule (C − Σ R of the smaller sets). The same
machinery with the publication's Jacobians (``rule="publication"``) gives the per-set sums of its
ordinary walks without enumerating a walk, equal to grouping the engine's walks
(:mod:`cgexplain.lrp.engine`).

Only PaiNN is supported. SO3net's l⊗l→0 tensor products are bilinear too and the same
construction applies; it is not built (README, "Explanations").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import schnetpack.properties as P
import torch

from cgexplain.lrp.engine import _inputs, network_energies
from cgexplain.lrp.factors import grouped_vecmat, nodewise_jacobian, pair_sums
from cgexplain.lrp.painn import PaiNNLRP
from cgexplain.model.potential import check_system

__all__ = [
    "SET_RULES",
    "check_rule_model",
    "BranchingPaiNN",
    "SetFactors",
    "SetResult",
    "set_relevance",
    "sets_from_factors",
    "connected_triplets",
    "mobius_sets",
]

SET_RULES = ("publication", "branching", "branching-tree")
"""``publication``: the parity README's rules (vectors constant); ``branching``: one branch point
per walk, at its topmost product; ``branching-tree``: every product branches (module docstring)."""

_PRODUCT_MODES = ("publication", "constant", "split")


def check_rule_model(rule: str, model, name: str = "the model") -> None:
    """Raise ValueError unless ``rule`` is one of :data:`SET_RULES` (or the walk engine's
    ``publication``) and, for a branching rule, ``model`` (a schnetpack potential) has a PaiNN
    representation; ``name`` goes into the message."""
    from schnetpack.representation import PaiNN

    if rule not in SET_RULES:
        raise ValueError(f"lrp rule must be one of {SET_RULES}, got {rule!r}")
    if rule != "publication" and not isinstance(getattr(model, "representation", None), PaiNN):
        kind = type(getattr(model, "representation", model)).__name__
        raise ValueError(f"{name}: rule {rule!r} supports PaiNN models only, this one is {kind}")


class BranchingPaiNN(PaiNNLRP):
    """Rule-modified PaiNN pass with live vector messages (module docstring).

    ``product`` of a layer: ``"publication"`` (vectors constant, gate live: the publication's pass),
    ``"constant"`` (the whole product constant: the ordinary-walk Jacobians of the branching rule)
    or ``"split"`` (gate constant, ½(A·sg(B) + sg(A)·B): the branching rule's modified pass E_b).
    """

    def messages(self, t: int, q, mu, geo):
        """Σ_j δμ_ij at every receiver (n, 3, F), live in the senders' scalars q (n, F) through
        the context net (rule-modified); μ^(t-1) constant."""
        idx_i, idx_j = geo["idx_i"], geo["idx_j"]
        F = self.F
        net = self.rep.interactions[t].interatomic_context_net
        ctx = net[1](self.rule(net[0], q))
        x = ctx[idx_j] * geo["filters"][t]
        dmuR, dmumu = x[:, F : 2 * F], x[:, 2 * F :]
        dmu = dmuR.unsqueeze(1) * geo["dir_ij"].unsqueeze(-1) + dmumu.unsqueeze(1) * mu.detach()[idx_j]
        return torch.zeros_like(mu).index_add_(0, idx_i, dmu)

    def factors_of_layer(self, t: int, q, mu, geo):
        """Layer t's vector factors from its input scalars q^(t-1) (n, F) and vectors μ^(t-1)
        (n, 3, F): returns (q_mid (n, F), μ_mid (n, 3, F) live, A = V μ_mid, B = W μ_mid (n, 3, F)
        live)."""
        idx_i, idx_j = geo["idx_i"], geo["idx_j"]
        F = self.F
        ctx = self.context(t, q)
        dq = ctx[idx_j][:, :F] * geo["filters"][t][:, :F]
        q_mid = q + torch.zeros_like(q).index_add_(0, idx_i, dq)
        mu_mid = mu.detach() + self.messages(t, q, mu, geo)
        mix = self.rep.mixing[t].mu_channel_mix(mu_mid)
        A, B = torch.split(mix, F, dim=-1)
        return q_mid, mu_mid, A, B

    def mix_layer(self, t: int, q_mid, mu_mid, A, B, product: str):
        """Mixing block of layer t with the chosen treatment of the product (class docstring).
        Returns (q^t (n, F), μ^t (n, 3, F) detached, dqmu (n, F) detached)."""
        m = self.rep.mixing[t]
        Ad, Bd = A.detach(), B.detach()
        Vn = torch.sqrt(torch.sum(Ad**2, dim=-2) + m.epsilon)
        net = m.intraatomic_context_net
        x = net[1](self.rule(net[0], torch.cat([q_mid, Vn], dim=-1)))
        dq, dmu, dqmu = torch.split(x, self.F, dim=-1)
        if product == "publication":
            term = dqmu * torch.sum(Ad * Bd, dim=-2)
        elif product == "constant":
            term = (dqmu * torch.sum(Ad * Bd, dim=-2)).detach()
        elif product == "split":
            term = dqmu.detach() * torch.sum(0.5 * (A * Bd + Ad * B), dim=-2)
        else:
            raise ValueError(f"product must be one of {_PRODUCT_MODES}, got {product!r}")
        q_out = q_mid + dq + term
        return q_out, (mu_mid.detach() + dmu.unsqueeze(-2) * Bd).detach(), dqmu.detach()

    def layers(self, q, mu, geo, t_from: int, t_to: int, product: str, masks=None):
        """Run layers t_from..t_to-1 (0-based) from scalars q (n, F) and vectors μ (n, 3, F);
        masks as :meth:`forward` (boundary t+1 after layer t). Returns (q, μ)."""
        for t in range(t_from, t_to):
            q_mid, mu_mid, A, B = self.factors_of_layer(t, q, mu, geo)
            q, mu, _ = self.mix_layer(t, q_mid, mu_mid, A, B, product)
            q = self.boundary(q, masks, t + 1)
        return q, mu

    def forward_modified(self, inputs: dict, product: str, masks=None):
        """The whole modified pass: returns (E (0-dim, kcal/mol), h0 (n, F) leaf)."""
        geo = self.geometry(inputs)
        h0 = self.embedding(inputs[P.Z]).detach().requires_grad_(True)
        q = self.boundary(h0, masks, 0)
        mu = torch.zeros((geo["n"], 3, self.F), dtype=q.dtype, device=q.device)
        q, _ = self.layers(q, mu, geo, 0, self.L, product, masks)
        return self.head(q).sum(), h0

    def conserved(self, inputs: dict, rule: str) -> tuple[float, float]:
        """(Σ h0·∂E/∂h0, E) of the rule's modified pass, by autograd (kcal/mol)."""
        E, h0 = self.forward_modified(inputs, "publication" if rule == "publication" else "split")
        (g,) = torch.autograd.grad(E, h0)
        return float((h0 * g).sum().detach()), float(E.detach())

    def set_factors(self, inputs: dict, rule: str) -> SetFactors:
        """Everything the per-set passes need, from one pass (see :class:`SetFactors`)."""
        if rule not in SET_RULES:
            raise ValueError(f"rule must be one of {SET_RULES}, got {rule!r}")
        geo = self.geometry(inputs)
        F, n = self.F, geo["n"]
        with torch.no_grad():
            h0 = self.embedding(inputs[P.Z]).detach()
        q, mu = h0, torch.zeros((n, 3, F), dtype=h0.dtype, device=h0.device)
        Phi, Psi, Mo, A_, B_, dqmu_, mu_in, Wv, Ww = [], [], [], [], [], [], [], [], []
        for t in range(self.L):
            with torch.no_grad():
                q_mid, mu_mid, A, B = self.factors_of_layer(t, q, mu, geo)
            Phi.append(nodewise_jacobian(lambda x: self.context(t, x)[..., :F], q))  # noqa: B023 (called at once)
            Psi.append(nodewise_jacobian(lambda x: self.context(t, x)[..., F:], q))  # noqa: B023
            prod = "publication" if rule == "publication" else "constant"
            Mo.append(nodewise_jacobian(lambda x: self.mix_layer(t, x, mu_mid, A, B, prod)[0], q_mid))  # noqa: B023
            with torch.no_grad():
                q_next, mu_next, dqmu = self.mix_layer(t, q_mid, mu_mid, A, B, "split")
            w = self.rep.mixing[t].mu_channel_mix.weight.detach()  # (2F, F): [V; W]
            A_.append(A.detach())
            B_.append(B.detach())
            dqmu_.append(dqmu)
            mu_in.append(mu.detach())
            Wv.append(w[:F])
            Ww.append(w[F:])
            q, mu = q_next.detach(), mu_next
        values = []
        for t in range(self.L):
            filt = geo["filters"][t]
            fq, fR, fM = filt[:, :F], filt[:, F : 2 * F], filt[:, 2 * F :]
            values += [fq, fR.unsqueeze(1) * geo["dir_ij"].unsqueeze(-1), fM]
        recv, send, pairs, selfs = pair_sums(geo["idx_i"], geo["idx_j"], n, values)
        qL = q.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(self.head(qL).sum(), qL)
        return SetFactors(
            rule=rule,
            n=n,
            L=self.L,
            F=F,
            h0=h0,
            g=g.detach(),
            recv=recv,
            send=send,
            Phi=Phi,
            Psi=Psi,
            Mo=Mo,
            A=A_,
            B=B_,
            dqmu=dqmu_,
            mu_in=mu_in,
            Wv=Wv,
            Ww=Ww,
            wq=[pairs[3 * t] for t in range(self.L)],
            DR=[pairs[3 * t + 1] for t in range(self.L)],
            wM=[pairs[3 * t + 2] for t in range(self.L)],
            sq=[selfs[3 * t] for t in range(self.L)],
            sR=[selfs[3 * t + 1] for t in range(self.L)],
            sM=[selfs[3 * t + 2] for t in range(self.L)],
        )


@dataclass
class SetFactors:
    """The factored layer Jacobians of one frame for :func:`set_relevance` (shapes per layer t):
    h0, g (n, F); Phi[t] (n, F, F) = ∂ctx_q/∂q; Psi[t] (n, 2F, F) = ∂ctx_(R,μ)/∂q; Mo[t] (n, F, F) =
    ∂q^t/∂q_mid without the product (branching) or with its gate (publication); A, B (n, 3, F),
    dqmu (n, F), mu_in (n, 3, F) the values; Wv, Ww (F, F) the vector channel mixes; per directed
    pair (recv, send) the summed filters wq, wM (P, F) and DR = Σ w^R r̂ (P, 3, F); sq, sR, sM the
    same for a bead's own periodic images (n, ...). ``Ahat``/``Bhat`` (the explained parts over all
    beads) are filled by :func:`set_relevance`."""

    rule: str
    n: int
    L: int
    F: int
    h0: torch.Tensor
    g: torch.Tensor
    recv: torch.Tensor
    send: torch.Tensor
    Phi: list
    Psi: list
    Mo: list
    A: list
    B: list
    dqmu: list
    mu_in: list
    Wv: list
    Ww: list
    wq: list
    DR: list
    wM: list
    sq: list
    sR: list
    sM: list
    Ahat: list = field(default_factory=list)
    Bhat: list = field(default_factory=list)


def _restricted(fac: SetFactors, node, owner, n_sets: int, e_recv, e_send, e_pair, forward_only: bool = False):
    """S(T) for a batch of bead sets, every layer restricted to the set (module docstring).

    node (s,): the bead of each slot; owner (s,): its set (0..n_sets-1); local edges e_recv,
    e_send (slot indices, same set) with their pair index e_pair into the pair tables. Returns
    S (n_sets,); with ``forward_only`` the per-layer Â, B̂ (s, 3, F) of the slots instead."""
    L, F = fac.L, fac.F
    branching, tree = fac.rule != "publication", fac.rule == "branching-tree" and not forward_only
    x = fac.h0[node]
    Ahats, Bhats = [], []
    for t in range(L):
        px = grouped_vecmat(fac.Phi[t].transpose(1, 2), node, x)
        q_mid = x + fac.sq[t][node] * px
        q_mid = q_mid.index_add(0, e_recv, fac.wq[t][e_pair] * px[e_send])
        if branching:
            c = grouped_vecmat(fac.Psi[t].transpose(1, 2), node, x)
            cR, cM = c[:, :F], c[:, F:]
            mu = fac.mu_in[t]
            dmu = cR.unsqueeze(1) * fac.sR[t][node] + (cM * fac.sM[t][node]).unsqueeze(1) * mu[node]
            e_dmu = cR[e_send].unsqueeze(1) * fac.DR[t][e_pair] + (cM[e_send] * fac.wM[t][e_pair]).unsqueeze(1) * mu[node[e_send]]
            dmu = dmu.index_add(0, e_recv, e_dmu)
            Ah, Bh = dmu @ fac.Wv[t].T, dmu @ fac.Ww[t].T
            Ahats.append(Ah)
            Bhats.append(Bh)
            if tree:  # the lower products branch too: both legs inside the set
                At, Bt = fac.A[t][node] - fac.Ahat[t][node], fac.B[t][node] - fac.Bhat[t][node]
                prod = fac.dqmu[t][node] * (Ah * Bh + 0.5 * Ah * Bt + 0.5 * At * Bh).sum(1)
            else:  # one leg through a lower product, the other factor's full value constant
                prod = 0.5 * fac.dqmu[t][node] * (Ah * fac.B[t][node] + fac.A[t][node] * Bh).sum(1)
            x = grouped_vecmat(fac.Mo[t].transpose(1, 2), node, q_mid) + prod
        else:
            x = grouped_vecmat(fac.Mo[t].transpose(1, 2), node, q_mid)
    if forward_only:
        return Ahats, Bhats
    V = fac.g[node]
    S = torch.zeros(n_sets, dtype=x.dtype, device=x.device)
    for t in range(L - 1, -1, -1):
        if branching:
            Ah, Bh = Ahats[t], Bhats[t]
            At, Bt = fac.A[t][node] - fac.Ahat[t][node], fac.B[t][node] - fac.Bhat[t][node]
            tree = (Ah * Bh + 0.5 * Ah * Bt + 0.5 * At * Bh).sum(1)
            S.index_add_(0, owner, (V * fac.dqmu[t][node] * tree).sum(-1))
        U = grouped_vecmat(fac.Mo[t], node, V)
        Y = fac.sq[t][node] * U
        Y = Y.index_add(0, e_send, fac.wq[t][e_pair] * U[e_recv])
        V = U + grouped_vecmat(fac.Phi[t], node, Y)
    S.index_add_(0, owner, (fac.h0[node] * V).sum(-1))
    return S


@torch.no_grad()
def _dense(fac: SetFactors) -> float:
    """S of the set of all beads, the conserved total; for the branching rules it first fills
    ``fac.Ahat``/``fac.Bhat`` (the explained parts over all beads) when they are empty."""
    dev = fac.h0.device
    args = (
        torch.arange(fac.n, device=dev),
        torch.zeros(fac.n, dtype=torch.long, device=dev),
        1,
        fac.recv,
        fac.send,
        torch.arange(len(fac.recv), device=dev),
    )
    if fac.rule != "publication" and not fac.Ahat:
        fac.Ahat, fac.Bhat = _restricted(fac, *args, forward_only=True)
    return float(_restricted(fac, *args)[0])


def _set_sums(fac: SetFactors, sets: np.ndarray, chunk: int) -> np.ndarray:
    """S(T) for every row of ``sets`` (m, k) of distinct beads, in chunks of ``chunk`` sets."""
    m, k = sets.shape
    out = np.zeros(m)
    if m == 0:
        return out
    dev = fac.h0.device
    key = fac.recv * fac.n + fac.send
    for s0 in range(0, m, chunk):
        T = torch.as_tensor(sets[s0 : s0 + chunk], dtype=torch.long, device=dev)
        mc = T.shape[0]
        node = T.reshape(-1)
        owner = torch.arange(mc, device=dev).repeat_interleave(k)
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        er, es, ep = [empty], [empty], [empty]
        for a in range(k):
            for b in range(k):
                if a == b:
                    continue
                kk = T[:, a] * fac.n + T[:, b]
                pos = torch.searchsorted(key, kk).clamp(max=max(len(key) - 1, 0))
                ok = key[pos] == kk if len(key) else torch.zeros_like(kk, dtype=torch.bool)
                rows = torch.nonzero(ok).squeeze(1)
                er.append(rows * k + a)
                es.append(rows * k + b)
                ep.append(pos[ok])
        S = _restricted(fac, node, owner, mc, torch.cat(er), torch.cat(es), torch.cat(ep))
        out[s0 : s0 + mc] = S.double().cpu().numpy()
    return out


def connected_triplets(pairs: np.ndarray, n: int) -> np.ndarray:
    """Every bead triplet whose pairs (P, 2) connect it (a path through the three): (T, 3) sorted
    rows, sorted. A (branching) walk's beads are always connected, so no other triplet has
    relevance."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    nbr: list[list[int]] = [[] for _ in range(n)]
    for a, b in pairs.tolist():
        nbr[a].append(b)
        nbr[b].append(a)
    rows = []
    for c in range(n):
        nb = np.unique(nbr[c])
        if len(nb) < 2:
            continue
        iu = np.triu_indices(len(nb), 1)
        rows.append(np.stack([np.full(len(iu[0]), c), nb[iu[0]], nb[iu[1]]], 1))
    if not rows:
        return np.zeros((0, 3), np.int64)
    return np.unique(np.sort(np.concatenate(rows), axis=1), axis=0)


def mobius_sets(single: np.ndarray, pair_keys: dict, triplets: np.ndarray, s_pairs: np.ndarray, s_triplets: np.ndarray):
    """Möbius inversion of the restricted sums S to exact-set relevances (module docstring).

    single (n,) = S({a}); pair_keys: (a, b) a<b -> index into s_pairs = S({a, b}) (a pair that is
    not in the graph has S = S(a) + S(b)); triplets (T, 3) sorted with s_triplets = S(T). Returns
    (R of the pairs in ``pair_keys`` order, R of the triplets)."""
    keys = np.array(list(pair_keys), np.int64).reshape(-1, 2)
    r_pairs = s_pairs - single[keys[:, 0]] - single[keys[:, 1]] if len(keys) else np.zeros(0)

    def s2(a, b):
        idx = np.array([pair_keys.get((x, y), -1) for x, y in zip(a.tolist(), b.tolist())], np.int64)
        out = single[a] + single[b]
        ok = idx >= 0
        out[ok] = s_pairs[idx[ok]]
        return out

    t = np.asarray(triplets, np.int64).reshape(-1, 3)
    a, b, c = t[:, 0], t[:, 1], t[:, 2]
    r_tri = s_triplets - s2(a, b) - s2(a, c) - s2(b, c) + single[a] + single[b] + single[c]
    return r_pairs, r_tri


@torch.no_grad()
def sets_from_factors(fac: SetFactors, triplets: np.ndarray | None = None, chunk: int = 4000) -> dict:
    """Exact relevance of the bead sets of one frame's factors (:meth:`BranchingPaiNN.set_factors`;
    for a branching rule ``fac.Ahat``/``fac.Bhat`` are filled here when empty): restricted sums
    S of every bead, every pair of the cutoff graph and the triplets, Möbius-inverted
    (:func:`mobius_sets`). triplets: (T, 3) sorted rows (default: every connected triplet).
    Returns ``singles`` (n,), ``pairs`` (P, 2), ``pair_relevance`` (P,), ``triplets`` (T, 3) and
    ``triplet_relevance`` (T,), kcal/mol of relevance."""
    if fac.rule != "publication" and not fac.Ahat:
        _dense(fac)
    n = fac.n
    singles = _set_sums(fac, np.arange(n).reshape(-1, 1), chunk)
    r, s = fac.recv.cpu().numpy(), fac.send.cpu().numpy()
    pairs = np.unique(np.sort(np.stack([r, s], 1), axis=1), axis=0) if len(r) else np.zeros((0, 2), np.int64)
    s_pairs = _set_sums(fac, pairs, chunk)
    keys = {(int(a), int(b)): k for k, (a, b) in enumerate(pairs.tolist())}
    tri = connected_triplets(pairs, n) if triplets is None else np.asarray(triplets, np.int64).reshape(-1, 3)
    r_pairs, r_tri = mobius_sets(singles, keys, tri, s_pairs, _set_sums(fac, tri, chunk))
    return {"singles": singles, "pairs": pairs, "pair_relevance": r_pairs, "triplets": tri, "triplet_relevance": r_tri}


class SetResult(dict):
    """Result of :func:`set_relevance` (kcal/mol): ``rule``; ``singles`` (n,) R({i});
    ``pairs`` (P, 2) i<j of the cutoff graph with ``pair_relevance`` (P,); ``triplets`` (T, 3) the
    connected triplets with ``triplet_relevance`` (T,); ``totals`` {1, 2, 3, 4} (4: every set of 4
    or more beads, by the sum rule); ``conserved`` (Σ of everything: Σ h0·∂E/∂h0 of the rule's
    modified pass), ``conserved_autograd`` (the same by autograd, a check), ``E_model``,
    ``E_modified``, ``wall_time_s``."""


def set_relevance(
    model,
    atoms,
    *,
    rule: str = "branching",
    gamma: float = 0.1,
    bias_rule: bool = True,
    cutoff: float | None = None,
    triplets: bool = True,
    chunk: int = 4000,
) -> SetResult:
    """Exact relevance per bead set (1, 2 and 3 beads) of one frame, for the publication's rules
    or branching walks (module docstring), without enumerating walks.

    Args:
        model: schnetpack ``NeuralNetworkPotential`` with a PaiNN representation and one Atomwise
            sum head (priors are left out, as in :func:`~cgexplain.lrp.engine.walk_relevance`).
        atoms: ``ase.Atoms`` frame (Å; periodic or not); atomic numbers are the bead types.
        rule: ``"branching"`` (default), ``"branching-tree"`` or ``"publication"``.
        gamma, bias_rule: the dense-layer rule (γ 0.1 with the bias rule, or γ 0 without).
        cutoff: neighbour cutoff Å (default the model's).
        triplets: compute the connected triplets (False: singles and pairs only; the 3-body and
            ≥4-body totals are then one remainder, under key 3).
        chunk: bead sets per batch (memory).

    Returns: :class:`SetResult`. The relevances sum to ``conserved`` = Σ h0·∂E/∂h0 of the rule's
    modified pass (publication: the parity README's pass; branching, branching-tree: E_b), not to
    the energy.
    Raises: TypeError for a representation other than PaiNN; ValueError for an unknown rule or an
    unsupported (gamma, bias_rule); :class:`~cgexplain.model.potential.SystemMismatchError` for a
    frame whose bead count the model's priors do not fit.
    """
    from schnetpack.representation import PaiNN

    t0 = time.perf_counter()
    if rule not in SET_RULES:
        raise ValueError(f"rule must be one of {SET_RULES}, got {rule!r}")
    if not isinstance(model.representation, PaiNN):
        raise TypeError(f"set relevance: the {rule!r} rule supports PaiNN only, got {type(model.representation).__name__}")
    check_system(None, atoms.get_atomic_numbers(), "the frame", model=model, bead_types=False)
    lrp = BranchingPaiNN(model, gamma=gamma, bias_rule=bias_rule)
    inp = _inputs(model, atoms, None, float(lrp.rep.cutoff) if cutoff is None else cutoff)
    E_model = float(network_energies(model, inp).sum())
    c_auto, E_mod = lrp.conserved(inp, rule)
    fac = lrp.set_factors(inp, rule)
    total = _dense(fac)
    sets = sets_from_factors(fac, None if triplets else np.zeros((0, 3), np.int64), chunk)
    t1, t2, t3 = float(sets["singles"].sum()), float(sets["pair_relevance"].sum()), float(sets["triplet_relevance"].sum())
    totals = {1: t1, 2: t2, 3: t3, 4: total - t1 - t2 - t3} if triplets else {1: t1, 2: t2, 3: total - t1 - t2}
    return SetResult(
        rule=rule,
        gamma=float(gamma),
        bias_rule=bool(bias_rule),
        **sets,
        totals=totals,
        conserved=total,
        conserved_autograd=c_auto,
        E_model=E_model,
        E_modified=E_mod,
        wall_time_s=time.perf_counter() - t0,
    )
