"""The pruned walk engine (max_order), the online binned statistics and whole-trajectory streaming.

What is proven here:
- pruning at k distinct beads keeps exactly the walks of at most k distinct beads, with the
  same relevances, and its remainder equals the full enumeration's sum over the other walks
  (PaiNN and SO3net, L = 2, 3, 4; all output beads and a subset);
- the dense sum-rule pass equals Σ h0·∂E/∂h0 of autograd and the walk count of enumeration;
- the explain statistics of a pruned run equal those of full enumeration to float32 round-off;
- (count, mean, M2) accumulators merged frame by frame equal the statistics of all points at once;
- a DCD streamed in chunks gives the statistics of every walk's points kept in memory, and the
  reader never holds more than one chunk of frames.
"""

import json

import numpy as np
import pytest
import torch
from ase import Atoms

from cgexplain.lrp import nbody_sums, walk_relevance
from cgexplain.lrp.nbody import (
    accumulate_bins,
    binned_statistics,
    body_order,
    body_order_totals,
    finish_bins,
    merge_bins,
    normalisation_factor,
    three_body_points,
    two_body_points,
)
from conftest import random_painn


def _frame(n=9, box=5.5, seed=0):
    rng = np.random.default_rng(seed)
    return Atoms(numbers=rng.integers(1, 3, n), positions=rng.uniform(0, box, (n, 3)), cell=np.eye(3) * box, pbc=True)


def _index(walks):
    return {tuple(w): k for k, w in enumerate(walks.tolist())}


@pytest.mark.parametrize("arch", ["painn", "so3net"])
@pytest.mark.parametrize("L", [2, 3, 4])
def test_pruned_walks_equal_full_enumeration(arch, L):
    m = random_painn(F=6, L=L, cutoff=3.0, seed=L, arch=arch)
    at = _frame(seed=L)
    full = walk_relevance(m, at)
    order = body_order(full["walks"])
    assert (order == L + 1).sum() > 0  # the pruned part is not empty
    for k in range(1, L + 1):
        pr = walk_relevance(m, at, max_order=k)
        keep = order <= k
        assert len(pr["walks"]) == keep.sum()
        idx = _index(full["walks"])
        pos = np.array([idx[tuple(w)] for w in pr["walks"].tolist()])
        assert keep[pos].all()
        np.testing.assert_allclose(pr["relevance"], full["relevance"][pos], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(pr["remainder"], full["relevance"][~keep].sum(), rtol=1e-9, atol=1e-12)
        assert pr["n_walks_remainder"] == (~keep).sum()
        assert pr["n_walks_total"] == len(full["walks"])
    # the dense sum-rule pass is an independent computation of Σ h0·∂E/∂h0 (autograd)
    assert abs(full["total_relevance"] - full["sum_h0_grad"]) < 1e-10 * max(1.0, abs(full["sum_h0_grad"]))
    assert abs(full["total_relevance"] - full["relevance"].sum()) < 1e-10 * max(1.0, abs(full["sum_h0_grad"]))
    # body-order totals of the pruned result equal the full enumeration's
    tot_p = body_order_totals(walk_relevance(m, at, max_order=L))
    tot_f = nbody_sums(full["walks"], full["relevance"])
    assert sorted(tot_p) == sorted(tot_f) == list(range(1, L + 2))
    for o in tot_f:
        assert tot_p[o][1] == tot_f[o][1]
        np.testing.assert_allclose(tot_p[o][0], tot_f[o][0], rtol=1e-9, atol=1e-12)


def test_pruned_with_output_subset():
    m = random_painn(F=6, L=3, cutoff=3.0, seed=5)
    at = _frame(n=10, seed=5)
    outs = [1, 4, 7]
    full = walk_relevance(m, at, output_beads=outs)
    assert set(full["walks"][:, -1].tolist()) == set(outs)
    pr = walk_relevance(m, at, output_beads=outs, max_order=3)
    np.testing.assert_allclose(full["total_relevance"], full["relevance"].sum(), rtol=1e-10, atol=1e-12)
    assert full["n_walks_total"] == len(full["walks"])
    four = body_order(full["walks"]) == 4
    np.testing.assert_allclose(pr["remainder"], full["relevance"][four].sum(), rtol=1e-9, atol=1e-12)
    assert pr["n_walks_remainder"] == four.sum()


def test_pruning_bad_arguments():
    m = random_painn(F=4, L=2, cutoff=3.0, seed=0)
    at = _frame(n=5)
    with pytest.raises(ValueError, match="max_order must be in 1..2"):
        walk_relevance(m, at, max_order=3)
    with pytest.raises(ValueError, match="max_order must be in 1..2"):
        walk_relevance(m, at, max_order=0)
    with pytest.raises(ValueError, match="cannot be combined"):
        walk_relevance(m, at, max_order=2, walks=np.zeros((1, 3), int))
    with pytest.raises(ValueError, match="not separable"):
        body_order_totals(walk_relevance(random_painn(F=4, L=3, cutoff=3.0), at, max_order=2))


def test_merged_accumulators_equal_all_points_at_once():
    rng = np.random.default_rng(0)
    edges = np.linspace(0, 1, 9)
    parts = [(rng.uniform(-0.1, 1.1, m), rng.normal(3.0, 2.0, m)) for m in (0, 1, 5, 40, 300)]
    acc = accumulate_bins(*parts[0], edges)
    for x, y in parts[1:]:
        acc = merge_bins(acc, accumulate_bins(x, y, edges))
    # another grouping: merge the later parts first
    acc2 = accumulate_bins(*parts[4], edges)
    for x, y in parts[:4][::-1]:
        acc2 = merge_bins(accumulate_bins(x, y, edges), acc2)
    ref = binned_statistics(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), edges)
    for a in (acc, acc2):
        got = finish_bins(a, edges)
        assert np.array_equal(got["count"], ref["count"])
        for q in ("mean", "std", "sem"):
            np.testing.assert_allclose(got[q], ref[q], rtol=1e-12, atol=1e-13)
    # hand computation for one bin
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    inb = (x >= edges[2]) & (x < edges[3])
    np.testing.assert_allclose(ref["mean"][2], y[inb].mean(), rtol=1e-12)
    np.testing.assert_allclose(ref["std"][2], y[inb].std(ddof=1), rtol=1e-12)


def test_normalisation_modes_by_hand():
    r = np.array([-3.0, 1.0, 0.5, -0.5])
    assert normalisation_factor(r, "abs_mean_total") == pytest.approx(abs(-2.0) / 4)
    assert normalisation_factor(r, "mean_abs") == pytest.approx(5.0 / 4)
    assert normalisation_factor(r, "sum_abs") == pytest.approx(5.0)
    assert normalisation_factor(r, "none") == 1.0
    # a pruned subset with the totals of every walk
    assert normalisation_factor(r[:2], "abs_mean_total", total=-2.0, n_walks=4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown normalisation 'publication'"):
        normalisation_factor(r, "publication")


def _stats(out):
    with np.load(out / "nbody_statistics.npz") as z:
        return {k: z[k] for k in z.files}


def test_explain_statistics_pruned_equal_full(tmp_path):
    """A float32 model (as trained models are): every statistic of the pruned run equals the
    full enumeration's to float32 round-off, and the pruned run enumerated far fewer walks."""
    from cgexplain.lrp.statistics import explain_frames

    m = random_painn(F=8, L=3, cutoff=3.0, seed=11, dtype=torch.float32)
    rng = np.random.default_rng(2)
    pos = rng.uniform(0, 7.0, (3, 24, 3))
    cells = np.repeat(np.eye(3)[None] * 7.0, 3, axis=0)
    types = np.ones(24, int)
    lc = {"r_edges": [1.0, 3.0, 8], "angle_bins": 12, "save_walks": "none"}
    a = explain_frames(m, pos, cells, types, tmp_path / "pruned", lc, 2.5, progress=False)
    b = explain_frames(m, pos, cells, types, tmp_path / "all", {**lc, "enumeration": "all"}, 2.5, progress=False)
    assert a["enumeration"] == "pruned" and b["enumeration"] == "all"
    assert a["walks_enumerated_per_frame_mean"] < 0.6 * b["walks_enumerated_per_frame_mean"]
    assert a["walks_per_frame_mean"] == b["walks_per_frame_mean"]
    sa, sb = _stats(tmp_path / "pruned"), _stats(tmp_path / "all")
    scale = np.abs(sb["body_sum_per_frame"]).max()
    # Σ|R| of the 4-body walks needs them enumerated: NaN in the pruned run, the rest equal
    assert np.isnan(sa["body_abs_sum_per_frame"][:, 3]).all() and np.isfinite(sb["body_abs_sum_per_frame"]).all()
    sa["body_abs_sum_per_frame"], sb["body_abs_sum_per_frame"] = sa["body_abs_sum_per_frame"][:, :3], sb["body_abs_sum_per_frame"][:, :3]
    for k in sb:
        if k.endswith("count"):
            assert np.array_equal(sa[k], sb[k]), k
        else:
            tol = 1e-5 * scale if k.startswith(("body", "conservation")) else 1e-5 * max(1.0, np.nanmax(np.abs(sb[k])))
            np.testing.assert_allclose(sa[k], sb[k], rtol=1e-5, atol=tol, err_msg=k)
    # the 4-body total from the sum rule is a real number, not zero
    assert np.abs(sa["body_sum_per_frame"][:, 3]).max() > 1e-4


def test_mean_abs_normalisation_enumerates_every_walk(tmp_path):
    from cgexplain.lrp.statistics import explain_frames

    m = random_painn(F=4, L=3, cutoff=3.0, seed=1)
    pos = np.random.default_rng(0).uniform(0, 6.0, (1, 12, 3))
    s = explain_frames(
        m, pos, np.eye(3)[None] * 6.0, np.ones(12, int), tmp_path, {"normalise": "mean_abs", "save_walks": "none"}, 2.5, progress=False
    )
    assert s["enumeration"] == "all" and s["walks_enumerated_per_frame_mean"] == s["walks_per_frame_mean"]
    with pytest.raises(ValueError, match="lrp.enumeration"):
        explain_frames(m, pos, np.eye(3)[None] * 6.0, np.ones(12, int), tmp_path / "x", {"enumeration": "some"}, 2.5)


def _write_dcd(path, pdb, pos, box):
    import MDAnalysis as mda

    n = pos.shape[1]
    u = mda.Universe.empty(n, trajectory=True, atom_resindex=np.arange(n), residue_segindex=np.zeros(n, int), n_residues=n)
    u.add_TopologyAttr("name", ["CG"] * n)
    u.add_TopologyAttr("resname", ["CG"] * n)
    u.add_TopologyAttr("resid", np.arange(1, n + 1))
    u.dimensions = [box, box, box, 90, 90, 90]
    u.atoms.positions = pos[0]
    u.atoms.write(str(pdb))
    with mda.Writer(str(path), n) as w:
        for x in pos:
            u.atoms.positions = x
            u.dimensions = [box, box, box, 90, 90, 90]
            w.write(u.atoms)


def test_streamed_trajectory_equals_all_points_in_memory(tmp_path, monkeypatch):
    """A 400-frame DCD of a small box, explained one frame at a time: the streamed, pruned
    statistics equal binned statistics over every walk's points of every frame kept in memory
    (full enumeration), and the reader never holds more than the structure sample (20 frames)."""
    from cgexplain.lrp.explain import explain_trajectory
    from cgexplain.lrp.sources import TrajectoryFrames
    from cgexplain.model.potential import save_model

    box, n, n_frames = 6.0, 10, 400
    m = random_painn(F=4, L=3, cutoff=2.6, seed=4, dtype=torch.float32)
    save_model(m, {"representation": "painn", "n_atom_basis": 4, "n_interactions": 3, "cutoff": 2.6}, tmp_path / "model")
    rng = np.random.default_rng(9)
    pos = rng.uniform(0, box, (n_frames, n, 3)).astype(np.float32)
    _write_dcd(tmp_path / "t.dcd", tmp_path / "t.pdb", pos, box)

    held = []
    orig = TrajectoryFrames.read

    def spy(self, ks):
        held.append(len(ks))
        return orig(self, ks)

    monkeypatch.setattr(TrajectoryFrames, "read", spy)
    r_edges, a_bins, shell = (0.5, 3.0, 10), 12, 2.4
    out = tmp_path / "lrp"
    s = explain_trajectory(
        tmp_path / "model",
        tmp_path / "t.dcd",
        out,
        topology=tmp_path / "t.pdb",
        types=[1] * n,
        shell=shell,
        r_edges=r_edges,
        angle_bins=a_bins,
        save_walks="none",
        structure_frames=20,
        progress=False,
    )
    assert s["n_frames"] == n_frames and s["enumeration"] == "pruned"
    assert held.count(20) == 1 and held.count(1) == n_frames and sum(held) == n_frames + 20  # structure sample, then each frame once

    # reference: every walk of every frame, points concatenated in memory, binned once
    import MDAnalysis as mda

    from cgexplain.mapping.maps import to_atoms

    u = mda.Universe(str(tmp_path / "t.pdb"), str(tmp_path / "t.dcd"))
    re = np.linspace(r_edges[0], r_edges[1], r_edges[2] + 1)
    ae = np.linspace(0, 180, a_bins + 1)
    d2s, r2s, a3s, r3s, body = [], [], [], [], []
    cell = np.eye(3) * box
    for _ts in u.trajectory:
        x = u.atoms.positions.astype(np.float64)
        res = walk_relevance(m, to_atoms(x, np.ones(n, int), cell))
        d2, r2 = two_body_points(res["walks"], res["relevance"], x, cell)
        a3, r3 = three_body_points(res["walks"], res["relevance"], x, cell, shell)
        d2s.append(d2), r2s.append(r2), a3s.append(a3), r3s.append(r3)
        body.append([v[0] for _, v in sorted(nbody_sums(res["walks"], res["relevance"]).items())])
    st = _stats(out)
    two = binned_statistics(np.concatenate(d2s), np.concatenate(r2s), re)
    three = binned_statistics(np.concatenate(a3s), np.concatenate(r3s), ae)
    assert two["count"].sum() > 1000 and three["count"].sum() > 1000
    for name, ref in (("two_raw", two), ("three_raw", three)):
        assert np.array_equal(st[f"{name}_count"], ref["count"]), name
        for q in ("mean", "std"):
            np.testing.assert_allclose(st[f"{name}_{q}"], ref[q], rtol=1e-5, atol=1e-6, err_msg=f"{name}_{q}")
    body = np.array(body)
    np.testing.assert_allclose(st["body_sum_per_frame"], body, rtol=1e-5, atol=1e-5 * np.abs(body).max())
    assert json.loads((out / "lrp.json").read_text())["frames_enumerated_in_full"] == 0


def test_streamed_run_resumes_after_lost_frames(tmp_path):
    """Frame files removed after a finished run (as a kill would leave them missing) are
    recomputed on the next call, and the result is the same."""
    from cgexplain.lrp.explain import explain_trajectory
    from cgexplain.model.potential import save_model

    m = random_painn(F=4, L=3, cutoff=2.6, seed=2, dtype=torch.float32)
    save_model(m, {"representation": "painn", "n_atom_basis": 4, "n_interactions": 3, "cutoff": 2.6}, tmp_path / "model")
    pos = np.random.default_rng(1).uniform(0, 6.0, (30, 10, 3)).astype(np.float32)
    _write_dcd(tmp_path / "t.dcd", tmp_path / "t.pdb", pos, 6.0)
    kw = dict(topology=tmp_path / "t.pdb", types=[1] * 10, shell=2.4, r_edges=(0.5, 3.0, 10), save_walks="none", progress=False)
    out = tmp_path / "lrp"
    explain_trajectory(tmp_path / "model", tmp_path / "t.dcd", out, **kw)
    before = _stats(out)
    (out / "lrp.json").unlink()
    for k in (3, 17, 29):
        (out / f"frame_{k:04d}.npz").unlink()
    (out / "frame_0005.npz").write_bytes(b"truncated")
    explain_trajectory(tmp_path / "model", tmp_path / "t.dcd", out, **kw)
    after = _stats(out)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_shares_budget_and_fluctuations(tmp_path):
    """lrp.json's body-order shares (1-body walks out of every denominator), relevance budget and
    frame-to-frame fluctuations against a hand computation from every walk."""
    from cgexplain.lrp.statistics import explain_frames

    m = random_painn(F=6, L=3, cutoff=3.0, seed=13)
    rng = np.random.default_rng(4)
    pos = rng.uniform(0, 6.5, (3, 14, 3))
    cells = np.repeat(np.eye(3)[None] * 6.5, 3, axis=0)
    types = np.ones(14, int)
    s = explain_frames(m, pos, cells, types, tmp_path / "all", {"enumeration": "all", "save_walks": "none"}, 2.5, progress=False)
    ab, sg, body, budget = [], [], [], []
    from cgexplain.mapping.maps import to_atoms

    for x, c in zip(pos, cells):
        res = walk_relevance(m, to_atoms(x, types, c))
        o = body_order(res["walks"])
        r = res["relevance"]
        den = np.abs(r[o >= 2]).sum()
        ab.append([np.abs(r[o == k]).sum() / den for k in (2, 3, 4)])
        sg.append([r[o == k].sum() / den for k in (2, 3, 4)])
        body.append([r[o == k].sum() for k in (1, 2, 3, 4)])
        budget.append([res["E_model"] - res["E_modified"], res["E_modified"] - r.sum()])
    np.testing.assert_allclose([s["abs_share_by_body_order_ge2"][str(k)] for k in (2, 3, 4)], np.mean(ab, 0), rtol=1e-9)
    np.testing.assert_allclose([s["signed_share_by_body_order_ge2"][str(k)] for k in (2, 3, 4)], np.mean(sg, 0), rtol=1e-9, atol=1e-12)
    assert sum(s["abs_share_by_body_order_ge2"].values()) == pytest.approx(1.0)
    assert s["shares_from_n_frames"] == 3
    np.testing.assert_allclose(
        [s["relevance_by_body_order_std_over_frames_kcal_mol"][str(k)] for k in (1, 2, 3, 4)], np.std(body, 0, ddof=1), rtol=1e-9
    )
    b = s["relevance_budget_kcal_mol_mean"]
    np.testing.assert_allclose(
        [b["taken_by_rule_E_model_minus_E_modified"], b["taken_by_biases_E_modified_minus_sum_walks"]], np.mean(budget, 0), rtol=1e-9, atol=1e-12
    )
    assert b["E_model"] - b["sum_walks"] == pytest.approx(
        b["taken_by_rule_E_model_minus_E_modified"] + b["taken_by_biases_E_modified_minus_sum_walks"]
    )
    # pruned: shares only from the fully enumerated first frame (its walk file), or none at all
    s1 = explain_frames(m, pos, cells, types, tmp_path / "first", {}, 2.5, progress=False)
    assert s1["shares_from_n_frames"] == 1
    np.testing.assert_allclose([s1["abs_share_by_body_order_ge2"][str(k)] for k in (2, 3, 4)], ab[0], rtol=1e-9)
    s0 = explain_frames(m, pos, cells, types, tmp_path / "none", {"save_walks": "none"}, 2.5, progress=False)
    assert s0["shares_from_n_frames"] == 0 and s0["abs_share_by_body_order_ge2"] is None


def test_pair_triplet_sums_and_residue_maps_pruned_equal_full():
    """Per-pair and per-triplet sums and the residue maps (proteins) from the pruned walks equal
    those of every walk, float32 model."""
    from cgexplain.lrp.nbody import pair_relevance, triplet_relevance
    from cgexplain.lrp.residues import residue_pair_map, residue_triplets

    m = random_painn(F=8, L=3, cutoff=3.0, seed=21, dtype=torch.float32)
    at = _frame(n=12, box=6.0, seed=8)
    full = walk_relevance(m, at)
    pr = walk_relevance(m, at, max_order=3)
    for fn in (pair_relevance, triplet_relevance):
        a, b = fn(full["walks"], full["relevance"]), fn(pr["walks"], pr["relevance"])
        assert np.array_equal(a[0], b[0]) and len(a[0]) > 5
        np.testing.assert_allclose(b[1], a[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        residue_pair_map(pr["walks"], pr["relevance"], 12), residue_pair_map(full["walks"], full["relevance"], 12), rtol=1e-6, atol=1e-7
    )
    ta, tb = residue_triplets(full["walks"], full["relevance"], 12), residue_triplets(pr["walks"], pr["relevance"], 12)
    np.testing.assert_allclose(tb["triplet_projection"], ta["triplet_projection"], rtol=1e-6, atol=1e-7)
