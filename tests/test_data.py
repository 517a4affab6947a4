"""The cached training data path (cgexplain.model.data): batches equal batch_inputs, the neighbour list
follows its frame under shuffling, periodic images are complete, DDP sharding."""

import itertools

import numpy as np
import pytest
import torch

from cgexplain.model.data import CachedFrames, ShardSampler, cached_loader, read_frames
from cgexplain.model.potential import batch_inputs


def _frames(n_frames=6, n=20, L=7.0, seed=0):
    """Frames of different densities (so frames have different pair counts), one not periodic."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.7, 1.0, n_frames)
    pos = np.stack([rng.uniform(0, L * s, (n, 3)) for s in scale]).astype(np.float32)
    frc = rng.normal(0, 3, pos.shape).astype(np.float32)
    cells = np.stack([np.eye(3) * L * s for s in scale]).astype(np.float32)
    cells[2, 1, 0] = 0.8  # one triclinic frame
    cells[4] = 0.0  # one frame without periodicity
    types = rng.integers(1, 3, n)
    return pos, frc, cells, types


def _pair_keys(i, j, off, n):
    """Rows (frame-local i, j, offset in 1e-4 Å) sorted lexicographically: compares pair sets."""
    k = np.column_stack([np.asarray(i) % n, np.asarray(j) % n, np.round(np.asarray(off, dtype=np.float64) * 1e4).astype(np.int64)])
    return k[np.lexsort(k.T[::-1])]


def _split(batch, n):
    """Per frame of a batch: (positions (n, 3), sorted pair keys)."""
    out = []
    m = batch["_idx_m"].numpy()
    i, j, off = batch["_idx_i"].numpy(), batch["_idx_j"].numpy(), batch["_offsets"].numpy()
    for f in range(int(batch["_n_atoms"].shape[0])):
        sel = (i >= f * n) & (i < (f + 1) * n)
        assert np.all((j[sel] >= f * n) & (j[sel] < (f + 1) * n)), "pair crosses frames"
        out.append((batch["_positions"].numpy()[m == f], _pair_keys(i[sel], j[sel], off[sel], n)))
    return out


def test_cached_batch_equals_batch_inputs():
    from conftest import random_painn

    pos, frc, cells, types = _frames()
    cutoff = 3.0
    ds = CachedFrames(pos, frc, cells, types, cutoff, progress=False)
    assert ds.shifts.dtype == np.int8 and ds.idx_i.dtype == np.int16
    order = [3, 0, 5, 4, 2]
    got = ds.collate(order)
    ref = batch_inputs(pos[order], types, cells[order], cutoff)
    assert set(got) == set(ref) | {"forces"}
    for k, v in ref.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
    for k in ("_atomic_numbers", "_positions", "_cell", "_pbc", "_n_atoms", "_idx_m"):
        assert torch.equal(got[k], ref[k]), k
    assert torch.equal(got["forces"], torch.as_tensor(frc[order]).reshape(-1, 3))
    # same pairs with the same offsets (as sets), frame by frame
    n = len(types)
    for (p1, k1), (p2, k2) in zip(_split(got, n), _split(ref, n)):
        assert np.array_equal(p1, p2) and np.array_equal(k1, k2)
    assert len(np.unique(np.diff(ds.ptr))) > 2  # frames really differ in pair count
    # same model energies and forces
    model = random_painn(F=8, L=2, cutoff=cutoff, seed=1, dtype=torch.float32)
    e1 = model(dict(got))
    e2 = model(dict(ref))
    torch.testing.assert_close(e1["energy"], e2["energy"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(e1["forces"], e2["forces"], rtol=1e-5, atol=1e-5)


def test_neighbour_list_follows_its_frame_under_shuffling():
    pos, frc, cells, types = _frames(n_frames=9, n=12, seed=2)
    cutoff = 3.0
    n = len(types)
    ds = CachedFrames(pos, frc, cells, types, cutoff, progress=False)
    truth = []
    for f in range(len(pos)):
        b = batch_inputs(pos[f], types, cells[f], cutoff)
        truth.append(_pair_keys(b["_idx_i"], b["_idx_j"], b["_offsets"], n))
    torch.manual_seed(0)
    loader = cached_loader(ds, batch_size=4, sampler=torch.utils.data.RandomSampler(range(len(ds))))
    seen = set()
    orders = set()
    for _ in range(12):
        order = []
        for batch in loader:
            for p, keys in _split(batch, n):
                f = int(np.flatnonzero([np.array_equal(p, q) for q in pos])[0])
                assert np.array_equal(keys, truth[f]), f"frame {f}: wrong neighbour list"
                order.append(f)
                seen.add(f)
        assert sorted(order) == list(range(len(pos)))
        orders.add(tuple(order))
    assert seen == set(range(len(pos))) and len(orders) > 5  # really shuffled


def _brute_force_pairs(pos, cell, cutoff):
    """Every (i, j, shift) with |R_j - R_i + shift·cell| < cutoff, except i == j at zero shift."""
    inv_h = np.linalg.norm(np.linalg.inv(cell), axis=0)  # 1 / plane spacings
    K = [int(np.ceil(cutoff * h)) + 1 for h in inv_h]
    rows = []
    for s in itertools.product(*[range(-k, k + 1) for k in K]):
        off = np.asarray(s, dtype=np.float64) @ cell
        d = np.linalg.norm(pos[None, :, :] - pos[:, None, :] + off, axis=-1)
        for i, j in zip(*np.nonzero(d < cutoff)):
            if i != j or any(s):
                rows.append((i, j, *off))
    r = np.array(rows)
    return _pair_keys(r[:, 0].astype(int), r[:, 1].astype(int), r[:, 2:], len(pos))


def test_periodic_images_of_self_and_others():
    from conftest import random_painn

    rng = np.random.default_rng(4)
    cell = np.array([[2.6, 0.0, 0.0], [0.5, 2.8, 0.0], [0.3, -0.4, 3.1]])
    pos = (rng.uniform(0, 1, (2, 3, 3)) @ cell).astype(np.float32)  # 2 frames, 3 beads
    cells = np.repeat(cell[None], 2, 0).astype(np.float32)
    cutoff = 3.4  # > every box length: each bead sees images of itself and several of each other bead
    ds = CachedFrames(pos, np.zeros_like(pos), cells, np.ones(3, int), cutoff, progress=False)
    for f in range(2):
        b = ds[f]
        keys = _pair_keys(b["_idx_i"], b["_idx_j"], b["_offsets"], 3)
        brute = _brute_force_pairs(pos[f].astype(np.float64), cells[f].astype(np.float64), cutoff)
        assert np.array_equal(keys, brute)
        assert np.sum(brute[:, 0] == brute[:, 1]) >= 2  # self images present
        counts = np.bincount(brute[:, 0] * 3 + brute[:, 1], minlength=9)
        assert counts.min() >= 2  # each ordered pair seen through several images
    # the model sees the same energy as from the brute-force list
    model = random_painn(F=8, L=2, cutoff=cutoff, seed=2, dtype=torch.float32)
    b = ds[1]
    bf = _brute_force_pairs(pos[1].astype(np.float64), cells[1].astype(np.float64), cutoff)
    ref = dict(b)
    ref["_idx_i"], ref["_idx_j"] = torch.as_tensor(bf[:, 0]), torch.as_tensor(bf[:, 1])
    ref["_offsets"] = torch.as_tensor(bf[:, 2:] * 1e-4, dtype=torch.float32)
    torch.testing.assert_close(model(dict(b))["energy"], model(ref)["energy"], rtol=1e-4, atol=1e-4)


def test_ddp_shards_give_the_single_process_batches():
    """DistributedSampler with one seed: P ranks with batch B/P see, step by step, the frames of one
    process with batch B (the premise of cgexplain's DDP training); ShardSampler covers each frame once."""
    from torch.utils.data.distributed import DistributedSampler

    N, B, P = 24, 6, 2
    for epoch in range(3):
        one = DistributedSampler(range(N), num_replicas=1, rank=0, shuffle=True, seed=5)
        one.set_epoch(epoch)
        steps1 = [sorted(b) for b in torch.utils.data.BatchSampler(list(one), B, False)]
        shards = []
        for r in range(P):
            s = DistributedSampler(range(N), num_replicas=P, rank=r, shuffle=True, seed=5)
            s.set_epoch(epoch)
            shards.append(list(torch.utils.data.BatchSampler(list(s), B // P, False)))
        stepsP = [sorted(sum((shards[r][k] for r in range(P)), [])) for k in range(len(shards[0]))]
        assert steps1 == stepsP
    for n in (0, 1, 5, 8):
        got = sorted(sum((list(ShardSampler(n, r, 3)) for r in range(3)), []))
        assert got == list(range(n)) and sum(len(ShardSampler(n, r, 3)) for r in range(3)) == n
    with pytest.raises(ValueError, match="rank 3 outside"):
        ShardSampler(4, 3, 3)


def test_read_frames_and_bad_input(tmp_path):
    from cgexplain.mapping.maps import MappedTrajectory, write_cg_dataset

    pos, frc, cells, types = _frames(n_frames=5, n=5)
    t = MappedTrajectory(pos, frc, cells, types, np.full(5, 18.0))
    t.save(tmp_path / "m.npz")
    write_cg_dataset(tmp_path / "m.db", t, progress=False)
    a, b = read_frames(tmp_path / "m.npz"), read_frames(tmp_path / "m.db")
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_frames(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="forces must have the shape"):
        CachedFrames(pos, frc[:, :3], cells, types, 3.0, progress=False)
    with pytest.raises(ValueError, match="types must have shape"):
        CachedFrames(pos, frc, cells, types[:3], 3.0, progress=False)
    bad = pos.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite position in frame 1"):
        CachedFrames(bad, frc, cells, types, 3.0, progress=False)
    with pytest.raises(IndexError, match="out of range"):
        CachedFrames(pos, frc, cells, types, 3.0, progress=False).collate([0, 5])
