"""GNN-LRP walk relevances, exact, from the factored layer Jacobians.

Definition (parity README; Schnake et al., IEEE TPAMI 44, 7581 (2022), eq. 9 ff.; Bonneau et
al., arXiv 2407.04526): the relevance of a walk (j0, ..., jL) is h0[j0]·∂E/∂h0[j0] computed in a
modified forward pass whose scalar features at each layer boundary t are masked to bead j_t.
With one bead per layer the masked gradient is a chain of Jacobian blocks of the unmasked
modified pass:
    R(j0..jL) = h0[j0] · J¹[j1,j0]ᵀ J²[j2,j1]ᵀ ⋯ Jᴸ[jL,jL-1]ᵀ g[jL],    g = ∂E/∂x^L,
and the blocks factor into a node-wise part at the receiver and an edge part linear in the sender's
scalars: PaiNN J^t[i,j] = M_i (δ_ij 1 + diag(w_ij) Φ_j) (painn.py), SO3net
J^t[i,j] = δ_ij 1 + Σ_s G_i[s] diag(K_ij[s]) (so3net.py).
Walks sharing a suffix (j_t..jL) share its vector, so the cost is one F×F product per walk and
layer. Output beads are processed in chunks, which bounds the memory.

Pruning (``max_order``): the curves, the pair and triplet sums and the residue maps use only walks
with at most L distinct beads; with L = 3 about nine in ten walks of a liquid frame are 4-body
walks. A suffix that already holds ``max_order`` distinct beads is extended only to beads inside
it, so the walks with more distinct beads are never built. Their total follows exactly from the
sum rule: every walk's relevance is a term of one chain of Jacobian products, so the sum over all
walks ending in the output beads is one dense backward pass through the same factors,
    Σ_walks R = Σ_j0 h0[j0] · V_0[j0],   V_(t-1)[j] = Σ_i v·J^t[i,j] over V_t[i],   V_L = g on the outputs,
(= Σ h0·∂E/∂h0 of the unmasked pass when every bead is an output), and the pruned walks' total is
that sum minus the enumerated walks'. The walk count follows from the same recursion on counts.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from cgexplain.lrp.painn import PaiNNLRP
from cgexplain.lrp.so3net import SO3netLRP
from cgexplain.model.potential import batch_inputs, check_system
from cgexplain.model.priors import PriorEnergy

__all__ = ["make_lrp", "walk_relevance", "enumerate_walks", "brute_force_relevance", "WalkResult", "statistics_max_order", "network_energies"]


def make_lrp(model, gamma: float = 0.1, bias_rule: bool = True):
    """The rule-modified forward pass for ``model``'s representation.

    Raises TypeError for a representation the engine does not support (PaiNN and SO3net are).
    """
    from schnetpack.representation import PaiNN, SO3net

    rep = model.representation
    if isinstance(rep, PaiNN):
        return PaiNNLRP(model, gamma=gamma, bias_rule=bias_rule)
    if isinstance(rep, SO3net):
        return SO3netLRP(model, gamma=gamma, bias_rule=bias_rule)
    raise TypeError(f"walk relevance: unsupported representation {type(rep).__name__}; supported: PaiNN, SO3net")


class WalkResult(dict):
    """Result of :func:`walk_relevance`: ``walks`` (n_walks, L+1) int64 in order (j0..jL),
    ``relevance`` (n_walks,) kcal/mol, ``E_model``, ``E_modified``, ``sum_h0_grad`` (kcal/mol),
    ``max_order`` (None: every walk enumerated), ``total_relevance`` and ``n_walks_total`` (Σ R and
    count over every walk of the output beads, from the dense pass), ``remainder`` and
    ``n_walks_remainder`` (Σ R and count of the walks with more than ``max_order`` distinct beads,
    which were not enumerated; 0 without pruning), ``wall_time_s``."""


def _adjacency(fac):
    """CSR form of the directed pairs (already sorted by receiver): ptr (n+1,), send (P,)."""
    ptr = torch.zeros(fac.n + 1, dtype=torch.long, device=fac.recv.device)
    ptr[1:] = torch.cumsum(torch.bincount(fac.recv, minlength=fac.n), 0)
    return ptr, fac.send


def _expand(fac, t, heads, V, adj, path=None, n_distinct=None, max_order=None):
    """One backward step through layer t (1-based): suffixes with head beads ``heads`` (m,) and
    vectors V (m, F) -> children (parent index, child bead, child vector, child distinct-bead
    count), self children first.

    With ``max_order``, a suffix whose ``n_distinct`` (m,) already equals ``max_order`` gets only
    children among its own beads (``path`` (m, k), columns j_t..j_L); the others are not built."""
    ptr, send = adj
    dev = heads.device
    U = fac.receive(t, heads, V)
    deg = ptr[heads + 1] - ptr[heads]
    parent_nb = torch.repeat_interleave(torch.arange(len(heads), device=dev), deg)
    starts = torch.repeat_interleave(ptr[heads], deg)
    within = torch.arange(len(parent_nb), device=dev) - torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
    pair = starts + within
    child_nb = send[pair]
    nd = None
    if max_order is not None:
        new = (path[parent_nb] != child_nb.unsqueeze(1)).all(1)
        keep = ~new | (n_distinct[parent_nb] < max_order)
        pair, child_nb, parent_nb, new = pair[keep], child_nb[keep], parent_nb[keep], new[keep]
        nd = torch.cat([n_distinct, n_distinct[parent_nb] + new.long()])
    V_self = fac.self_child(t, heads, V, U)
    V_nb = fac.neighbour_child(t, pair, child_nb, parent_nb, U)
    parents = torch.cat([torch.arange(len(heads), device=dev), parent_nb])
    beads = torch.cat([heads, child_nb])
    return parents, beads, torch.cat([V_self, V_nb]), nd


def _chunks(ptr, L, outputs, chunk_walks):
    """Split the output beads so that each chunk holds about ``chunk_walks`` walks ((deg+1)^L,
    deg from the CSR pointer ``ptr``)."""
    deg = (ptr[1:] - ptr[:-1]).double().cpu() + 1
    est = deg[outputs.cpu()] ** L
    chunks, cur, acc = [], [], 0.0
    for b, e in zip(outputs.tolist(), est.tolist()):
        if cur and acc + e > chunk_walks:
            chunks.append(cur)
            cur, acc = [], 0.0
        cur.append(b)
        acc += e
    if cur:
        chunks.append(cur)
    return chunks


@torch.no_grad()
def _relevance_from_factors(fac, outputs, chunk_walks: int, progress: bool, max_order: int | None = None):
    from tqdm.auto import tqdm

    adj = _adjacency(fac)  # the same graph at every layer
    dev = fac.h0.device
    walks_all, rel_all = [], []
    chunks = _chunks(adj[0], fac.L, outputs, chunk_walks)
    for ch in tqdm(chunks, desc="walk relevance (output-bead chunks)", disable=not progress or len(chunks) < 2):
        heads = torch.tensor(ch, dtype=torch.long, device=dev)
        V = fac.g[heads]
        path = heads.unsqueeze(1)  # columns j_t..j_L
        nd = torch.ones(len(heads), dtype=torch.long, device=dev)
        for t in range(fac.L, 0, -1):
            parents, beads, V, nd = _expand(fac, t, heads, V, adj, path, nd, max_order)
            path = torch.cat([beads.unsqueeze(1), path[parents]], dim=1)
            heads = beads
        rel = (fac.h0[heads] * V).sum(-1)
        walks_all.append(path.cpu())
        rel_all.append(rel.cpu())
    return torch.cat(walks_all), torch.cat(rel_all)


@torch.no_grad()
def _dense_total(fac, outputs) -> tuple[float, int]:
    """Σ R and the number of walks over every walk whose last bead is in ``outputs``, by one
    dense backward pass through the factors (module docstring): O(L·(n + P)) vector-matrix
    products instead of one per walk."""
    n, dev = fac.n, fac.h0.device
    outputs = torch.as_tensor(outputs, dtype=torch.long, device=dev)
    V = torch.zeros_like(fac.g)
    V[outputs] = fac.g[outputs]
    count = torch.zeros(n, dtype=torch.float64, device=dev)
    count[outputs] = 1.0
    heads = torch.arange(n, device=dev)
    pairs = torch.arange(len(fac.recv), device=dev)
    for t in range(fac.L, 0, -1):
        U = fac.receive(t, heads, V)
        V = fac.self_child(t, heads, V, U).index_add(0, fac.send, fac.neighbour_child(t, pairs, fac.send, fac.recv, U))
        count = count.index_add(0, fac.send, count[fac.recv])
    return float((fac.h0.double() * V.double()).sum()), int(round(float(count.sum())))


@torch.no_grad()
def _relevance_of_walks(fac, walks: torch.Tensor):
    L, n = fac.L, fac.n
    walks = walks.to(fac.h0.device)
    if walks.numel() and (int(walks.min()) < 0 or int(walks.max()) >= n):
        raise ValueError(f"walks hold bead indices outside 0..{n - 1}")
    skey = fac.recv * n + fac.send  # sorted
    V = fac.g[walks[:, L]]
    for t in range(L, 0, -1):
        i, j = walks[:, t], walks[:, t - 1]
        U = fac.receive(t, i, V)
        Vn = torch.empty_like(V)
        same = i == j
        if same.any():
            Vn[same] = fac.self_child(t, i[same], V[same], U[same])
        nb = ~same
        if nb.any():
            k = i[nb] * n + j[nb]
            pos = torch.searchsorted(skey, k).clamp(max=max(len(skey) - 1, 0))
            ok = (skey[pos] == k) if len(skey) else torch.zeros_like(k, dtype=torch.bool)
            if not bool(ok.all()):
                bad = int(torch.nonzero(~ok)[0])
                w = walks[nb][bad].tolist()
                raise ValueError(f"walk {w} is not a walk of the graph: beads {int(j[nb][bad])} and {int(i[nb][bad])} are not neighbours")
            Vn[nb] = fac.neighbour_child(t, pos, j[nb], torch.nonzero(nb).squeeze(1), U)
        V = Vn
    return (fac.h0[walks[:, 0]] * V).sum(-1)


def _inputs(model, atoms, neighbors, cutoff):
    import schnetpack.properties as P

    cell = np.asarray(atoms.cell.array) if atoms.pbc.any() else None
    types = atoms.get_atomic_numbers()
    inp = batch_inputs(atoms.positions, types, cell, cutoff, dtype=next(model.parameters()).dtype, device=next(model.parameters()).device)
    if neighbors is not None:
        idx_i, idx_j, off = neighbors
        dev = inp[P.R].device
        inp[P.idx_i] = torch.as_tensor(np.asarray(idx_i), dtype=torch.long, device=dev)
        inp[P.idx_j] = torch.as_tensor(np.asarray(idx_j), dtype=torch.long, device=dev)
        inp[P.offsets] = torch.as_tensor(np.asarray(off), dtype=inp[P.R].dtype, device=dev)
    return inp


@torch.no_grad()
def network_energies(model, inp) -> torch.Tensor:
    """The network's energy per system of a schnetpack input batch, (n_systems,) kcal/mol, without
    building a graph for forces: the output modules except ``Forces`` and prior terms
    (:class:`~cgexplain.model.priors.PriorEnergy`), which the walks do not explain."""
    from schnetpack.atomistic import Forces

    x = dict(inp)
    for m in model.input_modules:
        x = m(x)
    x = model.representation(x)
    for m in model.output_modules:
        if not isinstance(m, (Forces, PriorEnergy)):
            x = m(x)
    return x["energy"]


def statistics_max_order(model) -> int | None:
    """The pruning order the statistics can use for ``model``: L (its number of interaction
    layers) when L >= 3, so every walk of 1..L distinct beads is enumerated and only the
    (L+1)-body total comes from the sum rule; None (every walk) for L <= 2, whose 3-body angle
    curve needs the (L+1)-body walks themselves."""
    L = int(model.representation.n_interactions)
    return L if L >= 3 else None


def walk_relevance(
    model,
    atoms,
    *,
    gamma: float = 0.1,
    bias_rule: bool = True,
    neighbors=None,
    cutoff: float | None = None,
    output_beads=None,
    walks=None,
    chunk_walks: int = 2_000_000,
    progress: bool = False,
    max_order: int | None = None,
) -> WalkResult:
    """Relevance of every walk (or of the given walks) of one frame.

    Args:
        model: schnetpack ``NeuralNetworkPotential`` with a PaiNN or SO3net representation, one Atomwise
            sum energy head (and optionally a PriorEnergy module, which is left out).
        atoms: ``ase.Atoms`` frame (Å; periodic or not); atomic numbers are the bead types.
        gamma, bias_rule: LRP rule (parity README): γ with the bias rule (default γ = 0.1), or
            γ = 0 without it.
        neighbors: optional (idx_i, idx_j, offsets Å) to use instead of building a neighbour
            list (r_ij = R[j] - R[i] + offset; both directions).
        cutoff: neighbour cutoff Å (default: the model's).
        output_beads: optional subset of beads jL; default all beads.
        walks: optional (m, L+1) array of walks (j0..jL) to evaluate instead of all walks.
        chunk_walks: about how many walks are held in memory at once.
        max_order: None (default) enumerates every walk. An int k in 1..L enumerates only the walks
            with at most k distinct beads (a suffix holding k distinct beads is extended only
            within them); the relevance and count of all other walks are returned as
            ``remainder`` and ``n_walks_remainder``, exact by the sum rule (module docstring).
            With k = L the remainder is the (L+1)-body total. Not with ``walks``.

    Returns: :class:`WalkResult` with ``walks`` (n_walks, L+1) and ``relevance`` (n_walks,)
    kcal/mol, the model energy, the modified-pass energy, Σ h0·∂E/∂h0 without masks, and the
    totals over every walk of the output beads (``total_relevance``, ``n_walks_total``).
    Walk relevances sum to Σ h0·∂E/∂h0 of the rule-modified pass, not to the model energy.
    A model with priors (:class:`~cgexplain.model.priors.PriorEnergy` output module, proteins): the walks
    explain the network energy only, since the prior terms are explicit and known; ``E_model`` is
    then the network energy (Atomwise head), not the total energy the model outputs.
    Raises: :class:`~cgexplain.model.potential.SystemMismatchError` (a ValueError) for a frame
    whose bead count is not the one the model's priors were fitted for (its priors belong to a
    fixed chain; :func:`~cgexplain.model.potential.check_system`), before any computation;
    TypeError for an unsupported representation; ValueError for an unsupported rule, a
    walk that is not in the graph, or a ``max_order`` outside 1..L or together with ``walks``.
    """
    t0 = time.perf_counter()
    # the walks explain the network only: a chain other than the priors' would leave them out silently
    check_system(None, atoms.get_atomic_numbers(), "the frame", model=model, bead_types=False)
    if max_order is not None and walks is not None:
        raise ValueError("max_order prunes the enumeration of all walks; it cannot be combined with walks=")
    lrp = make_lrp(model, gamma=gamma, bias_rule=bias_rule)
    if cutoff is None:
        cutoff = float(lrp.rep.cutoff)
    inp = _inputs(model, atoms, neighbors, cutoff)
    E_model = float(network_energies(model, inp).sum())
    fac = lrp.factors(inp)
    if max_order is not None and not 1 <= int(max_order) <= fac.L:
        raise ValueError(f"max_order must be in 1..{fac.L} (the model has {fac.L} layers), got {max_order}")
    outs = torch.arange(fac.n) if output_beads is None else torch.as_tensor(np.asarray(output_beads), dtype=torch.long)
    total, n_total = _dense_total(fac, outs)
    if walks is not None:
        w = torch.as_tensor(np.asarray(walks), dtype=torch.long)
        if w.ndim != 2 or w.shape[1] != fac.L + 1:
            raise ValueError(f"walks must have shape (m, {fac.L + 1}), got {tuple(w.shape)}")
        rel = _relevance_of_walks(fac, w)
    else:
        w, rel = _relevance_from_factors(fac, outs, chunk_walks, progress, None if max_order is None else int(max_order))
    rel = rel.double().cpu().numpy()
    pruned = max_order is not None
    return WalkResult(
        walks=w.cpu().numpy(),
        relevance=rel,
        E_model=E_model,
        E_modified=fac.E_modified,
        sum_h0_grad=fac.sum_h0_grad,
        gamma=gamma,
        bias_rule=bias_rule,
        n_layers=fac.L,
        max_order=None if max_order is None else int(max_order),
        total_relevance=total,
        n_walks_total=n_total,
        remainder=total - float(rel.sum()) if pruned else 0.0,
        n_walks_remainder=n_total - len(rel) if pruned else 0,
        wall_time_s=time.perf_counter() - t0,
    )


def enumerate_walks(n: int, idx_i, idx_j, L: int) -> np.ndarray:
    """All walks (j0..jL) on the graph of directed pairs (idx_j -> idx_i) plus self-loops, by
    plain enumeration (the reference for tests). Returns (n_walks, L+1) sorted lexicographically."""
    nbrs: list[set[int]] = [set() for _ in range(n)]
    for i, j in zip(np.asarray(idx_i).tolist(), np.asarray(idx_j).tolist()):
        nbrs[j].add(i)
    for k in range(n):
        nbrs[k].add(k)
    walks = [[k] for k in range(n)]
    for _ in range(L):
        walks = [w + [b] for w in walks for b in sorted(nbrs[w[-1]])]
    return np.array(sorted(walks), dtype=np.int64)


def brute_force_relevance(
    model, atoms, walks, *, gamma: float = 0.1, bias_rule: bool = True, neighbors=None, cutoff: float | None = None
) -> np.ndarray:
    """Relevance of each walk by per-walk masking: one masked forward and backward pass per
    walk (the publication's reference method; slow, for tests and benchmarks).

    walks (m, L+1); returns (m,) kcal/mol.
    """
    lrp = make_lrp(model, gamma=gamma, bias_rule=bias_rule)
    if cutoff is None:
        cutoff = float(lrp.rep.cutoff)
    inp = _inputs(model, atoms, neighbors, cutoff)
    n = len(atoms)
    out = []
    for w in np.asarray(walks):
        masks = [torch.zeros(n).index_fill_(0, torch.tensor([int(b)]), 1.0) for b in w]
        E, h0, _ = lrp.forward(inp, masks=masks)
        (g,) = torch.autograd.grad(E, h0)
        out.append(float((h0[int(w[0])] * g[int(w[0])]).sum().detach()))
    return np.array(out)
