"""Factored layer Jacobians shared by the PaiNN and SO3net LRP passes.

A walk engine step through layer t takes suffix vectors V (m, F) at head beads i and produces
v·J^t[i, j] for the self step (j = i) and for every neighbour j of i. Both architectures factor
J^t[i, j] into a node-wise part at the receiver i and an edge part linear in the sender's
scalars (see painn.py and so3net.py); the classes here hold those factors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["nodewise_jacobian", "pair_sums", "grouped_vecmat", "PaiNNFactors", "SO3netFactors"]


def nodewise_jacobian(fn, x):
    """Jacobian of a node-wise function: x (n, A) -> fn(x) (n, B); returns (n, B, A)."""
    x = x.detach().requires_grad_(True)
    y = fn(x)
    B = y.shape[-1]
    eye = torch.eye(B, dtype=y.dtype, device=y.device).unsqueeze(1).expand(B, *y.shape)
    (jac,) = torch.autograd.grad(y, x, grad_outputs=eye, is_grads_batched=True)
    return jac.permute(1, 0, 2).contiguous()


def pair_sums(idx_i, idx_j, n: int, edge_values):
    """Sum per-edge values over the edges of each directed bead pair.

    idx_i, idx_j (E,): receiver and sender of each edge (periodic images of one pair are
    several edges). edge_values: list of tensors (E, ...).
    Returns recv, send (P,) for the pairs with recv != send, sorted by (recv, send); the pair
    sums (P, ...) per value; and the self sums (n, ...) per value (edges to a bead's own
    periodic image; zero unless the box is smaller than twice the cutoff).
    """
    key = idx_i * n + idx_j
    ukey, inv = torch.unique(key, return_inverse=True)
    recv, send = ukey // n, ukey % n
    other = recv != send
    pairs, selfs = [], []
    for v in edge_values:
        s = torch.zeros((len(ukey),) + v.shape[1:], dtype=v.dtype, device=v.device).index_add_(0, inv, v)
        pairs.append(s[other])
        ss = torch.zeros((n,) + v.shape[1:], dtype=v.dtype, device=v.device)
        ss.index_add_(0, recv[~other], s[~other])
        selfs.append(ss)
    return recv[other], send[other], pairs, selfs


def grouped_vecmat(mats, idx, vecs):
    """out[k] = vecs[k] @ mats[idx[k]] for mats (n, A, B), idx (m,), vecs (m, A) -> (m, B)."""
    out = torch.empty((vecs.shape[0], mats.shape[2]), dtype=vecs.dtype, device=vecs.device)
    if vecs.shape[0] == 0:
        return out
    order = torch.argsort(idx, stable=True)
    sidx = idx[order]
    uniq, counts = torch.unique_consecutive(sidx, return_counts=True)
    svec = vecs[order]
    res = torch.empty_like(out)
    start = 0
    for u, c in zip(uniq.tolist(), counts.tolist()):
        res[start : start + c] = svec[start : start + c] @ mats[u]
        start += c
    out[order] = res
    return out


@dataclass
class _Factors:
    h0: torch.Tensor  # (n, F)
    g: torch.Tensor  # (n, F) = ∂E/∂q^L
    recv: torch.Tensor  # (P,) pairs recv != send, sorted by (recv, send)
    send: torch.Tensor
    n: int
    L: int
    E_modified: float
    sum_h0_grad: float


@dataclass
class PaiNNFactors(_Factors):
    """J^t[i, j] = M_i (δ_ij 1 + diag(w_ij) Φ_j); M[t], Phi[t] (n, F, F) [out, in]; wpair[t]
    (P, F); wself[t] (n, F)."""

    M: list = field(default_factory=list)
    Phi: list = field(default_factory=list)
    wpair: list = field(default_factory=list)
    wself: list = field(default_factory=list)

    def receive(self, t, heads, V):
        return grouped_vecmat(self.M[t - 1], heads, V)  # v·M_i

    def self_child(self, t, heads, V, U):
        w = self.wself[t - 1]
        if not bool(w.any()):
            return U
        return U + grouped_vecmat(self.Phi[t - 1], heads, w[heads] * U)

    def neighbour_child(self, t, pair, child, parent, U):
        return grouped_vecmat(self.Phi[t - 1], child, self.wpair[t - 1][pair] * U[parent])


@dataclass
class SO3netFactors(_Factors):
    """J^t[i, j] = δ_ij 1 + Σ_s G_i[s] diag(K_ij[s]) with v·G_i applied through B[t] (n, F, F),
    dx[t], ddx[t] (n, S, F), W1[t] (F, F) and the Clebsch–Gordan entries cg0 = (s1, s2, C) of
    l⊗l→0 (see so3net.py); Kpair[t] (P, S, F); Kself[t] (n, S, F)."""

    S: int = 1
    B: list = field(default_factory=list)
    dx: list = field(default_factory=list)
    ddx: list = field(default_factory=list)
    W1: list = field(default_factory=list)
    cg0: tuple = ()
    Kpair: list = field(default_factory=list)
    Kself: list = field(default_factory=list)

    def receive(self, t, heads, V):
        """U[s] = v·G_i[s] for each suffix: (m, S, F)."""
        u = grouped_vecmat(self.B[t - 1], heads, V)
        dx, ddx = self.dx[t - 1][heads], self.ddx[t - 1][heads]
        s1, s2, C = self.cg0
        U = torch.zeros_like(dx)
        T = torch.zeros_like(dx)
        U[:, 0] = u
        for a, b, c in zip(s1.tolist(), s2.tolist(), C.tolist()):
            U[:, a] += c * u * ddx[:, b]
            T[:, b] += c * u * dx[:, a]
        return U + T @ self.W1[t - 1]

    def self_child(self, t, heads, V, U):
        K = self.Kself[t - 1]
        if not bool(K.any()):
            return V
        return V + (U * K[heads]).sum(1)

    def neighbour_child(self, t, pair, child, parent, U):
        K = self.Kpair[t - 1]
        out = U[parent, 0] * K[pair, 0]
        for s in range(1, self.S):  # one (k, F) term at a time keeps the memory at O(k·F)
            out += U[parent, s] * K[pair, s]
        return out
