"""Residue relevance maps (cgexplain.lrp.residues): sum rules, brute-force masking, symmetry,
per-frame checkpoints, tables and figures, on a tiny PaiNN and a 39-bead chain."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cgexplain.aminoacids import AMINO_ACID_TYPES, THREE_LETTER
from cgexplain.lrp import brute_force_relevance, nbody_sums, walk_relevance
from cgexplain.lrp.residues import (
    RELEVANCE_PDB_MAX,
    explain_protein_frames,
    format_pair_table,
    pair_projection,
    pair_table,
    relevance_pdb_scale,
    residue_one_body,
    residue_pair_map,
    residue_triplets,
    triplet_projection,
    write_relevance_pdb,
)
from cgexplain.mapping.maps import to_atoms
from cgexplain.plots.residues import plot_pair_map, plot_pair_map_difference, plot_triplet_projection

# NTL9 (residues 1-39)
NTL9 = "MKVIFLKDVKGKGKKGEIKNVADGYANNFLFKQGLAIEA"
NTL9_RESNAMES = [THREE_LETTER[c] for c in NTL9]
NTL9_TYPES = np.array([AMINO_ACID_TYPES[r] for r in NTL9_RESNAMES])
CUTOFF = 8.0


def tiny_model(seed=0):
    """A tiny PaiNN without priors in float64, random weights (fixed seed, perturbed so that
    biases are not zero)."""
    from cgexplain.model.potential import build_model

    torch.manual_seed(seed)
    m = build_model({"representation": "painn", "n_atom_basis": 8, "n_interactions": 2, "cutoff": CUTOFF, "n_rbf": 8}).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


def chain(n_frames=2, n=39, seed=0):
    """A helix-like random walk of ``n`` beads with 3.8 Å bonds; frames (n_frames, n, 3) Å are
    small perturbations of it (bonds stay 3.8 Å)."""
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    helix = np.stack([2.3 * np.cos(np.radians(100) * k), 2.3 * np.sin(np.radians(100) * k), 1.5 * k], 1)
    frames = []
    for _ in range(n_frames):
        d = np.diff(helix, axis=0) + rng.normal(0, 0.6, (n - 1, 3))
        d *= 3.8 / np.linalg.norm(d, axis=1, keepdims=True)
        frames.append(np.vstack([np.zeros(3), np.cumsum(d, axis=0)]))
    return np.array(frames)


@pytest.fixture(scope="module")
def frame_result():
    m = tiny_model()
    pos = chain(1)[0]
    return m, pos, walk_relevance(m, to_atoms(pos, NTL9_TYPES))


def test_chain_geometry():
    x = chain(3)
    assert x.shape == (3, 39, 3)
    np.testing.assert_allclose(np.linalg.norm(np.diff(x, axis=1), axis=-1), 3.8, atol=1e-12)


def test_maps_on_synthetic_walks():
    walks = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [0, 1, 2], [2, 2, 0], [3, 2, 1], [1, 1, 1]])
    rel = np.array([1.0, 2.0, 3.0, 4.0, 5.0, -6.0, 0.5])
    P = residue_pair_map(walks, rel, 4)
    assert P[0, 1] == P[1, 0] == 5.0 and P[0, 2] == P[2, 0] == 5.0 and np.count_nonzero(P) == 4
    np.testing.assert_array_equal(residue_one_body(walks, rel, 4), [1.0, 0.5, 0.0, 0.0])
    t = residue_triplets(walks, rel, 4, top=1)
    assert t["triplets"].tolist() == [[0, 1, 2], [1, 2, 3]] and t["relevance"].tolist() == [4.0, -6.0]
    assert t["top_stabilising"].tolist() == [[1, 2, 3]] and t["top_stabilising_relevance"].tolist() == [-6.0]
    assert t["top_destabilising"].tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(t["triplet_projection"], [4 / 3, -2 / 3, -2 / 3, -2.0])
    with pytest.raises(ValueError, match="outside"):
        residue_pair_map(walks, rel, 2)


def test_pair_map_symmetric_and_sum_rules(frame_result):
    m, pos, res = frame_result
    w, r = res["walks"], res["relevance"]
    n = 39
    sums = nbody_sums(w, r)
    assert sums[2][1] > 0 and sums[3][1] > 0
    P = residue_pair_map(w, r, n)
    np.testing.assert_array_equal(P, P.T)
    assert np.all(np.diag(P) == 0)
    assert abs(P[np.triu_indices(n, 1)].sum() - sums[2][0]) < 1e-10  # upper triangle = 2-body total
    assert abs(P.sum() - 2 * sums[2][0]) < 1e-10
    t = residue_triplets(w, r, n, top=10)
    assert abs(t["triplet_projection"].sum() - sums[3][0]) < 1e-10
    assert abs(t["relevance"].sum() - sums[3][0]) < 1e-10
    assert np.all(np.diff(t["triplets"], axis=1) > 0)  # i < j < k
    assert np.all(np.diff(t["top_stabilising_relevance"]) >= 0) and np.all(t["top_stabilising_relevance"] < 0)
    assert np.all(np.diff(t["top_destabilising_relevance"]) <= 0) and np.all(t["top_destabilising_relevance"] > 0)
    assert t["top_stabilising_relevance"][0] == t["relevance"].min() and t["top_destabilising_relevance"][0] == t["relevance"].max()
    # sum rule across body orders (L = 2: orders 1..3): residue maps hold all the relevance
    one = residue_one_body(w, r, n)
    total = one.sum() + P[np.triu_indices(n, 1)].sum() + t["triplet_projection"].sum()
    assert abs(total - r.sum()) < 1e-10
    assert abs(r.sum() - res["sum_h0_grad"]) < 1e-10


def test_pair_and_triplet_equal_brute_force(frame_result):
    """Pair-map entries and a triplet's relevance equal the sum of brute-force masked passes
    over all walks on exactly those beads."""
    m, pos, res = frame_result
    w, r = res["walks"], res["relevance"]
    P = residue_pair_map(w, r, 39)
    tri = residue_triplets(w, r, 39)
    sets = [frozenset(x) for x in w.tolist()]
    for beads, value in (((10, 11), P[10, 11]), ((20, 23), P[23, 20]), ((4, 5, 7), None)):
        sel = np.array([s == frozenset(beads) for s in sets])
        assert sel.sum() == 6  # every walk on 2 (or 3) neighbouring beads: 2^3 - 2 (or 3!)
        bf = brute_force_relevance(m, to_atoms(pos, NTL9_TYPES), w[sel]).sum()
        if value is None:
            k = np.flatnonzero((tri["triplets"] == np.array(beads)).all(1))[0]
            value = tri["relevance"][k]
        assert abs(bf) > 1e-6
        assert abs(value - bf) < 1e-10


def test_invariance_rotation_translation_and_relabelling(frame_result):
    m, pos, res = frame_result
    P0 = residue_pair_map(res["walks"], res["relevance"], 39)
    p0 = residue_triplets(res["walks"], res["relevance"], 39)["triplet_projection"]
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    pos2 = pos @ q.T + np.array([5.0, -3.0, 12.0])
    r2 = walk_relevance(m, to_atoms(pos2, NTL9_TYPES))
    np.testing.assert_allclose(residue_pair_map(r2["walks"], r2["relevance"], 39), P0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(residue_triplets(r2["walks"], r2["relevance"], 39)["triplet_projection"], p0, rtol=0, atol=1e-10)
    # relabel beads of identical type: new bead k sits where old bead perm[k] was; types unchanged
    perm = np.arange(39)
    for t in np.unique(NTL9_TYPES):
        idx = np.flatnonzero(NTL9_TYPES == t)
        perm[idx] = np.roll(idx, 1)
    assert not np.array_equal(perm, np.arange(39)) and np.array_equal(NTL9_TYPES[perm], NTL9_TYPES)
    r3 = walk_relevance(m, to_atoms(pos[perm], NTL9_TYPES))
    P3 = residue_pair_map(r3["walks"], r3["relevance"], 39)
    np.testing.assert_allclose(P3, P0[np.ix_(perm, perm)], rtol=0, atol=1e-10)
    np.testing.assert_allclose(residue_triplets(r3["walks"], r3["relevance"], 39)["triplet_projection"], p0[perm], rtol=0, atol=1e-10)


def test_explain_protein_frames_average_and_checkpoints(tmp_path):
    m = tiny_model(seed=1)
    pos = chain(2, seed=4)
    out = tmp_path / "res"
    a = explain_protein_frames(m, pos, NTL9_TYPES, out, progress=False, resnames=NTL9_RESNAMES)
    assert a["n_frames_computed"] == 2 and a["n_frames_reused"] == 0
    # averages equal the per-frame maps computed directly
    per = [walk_relevance(m, to_atoms(p, NTL9_TYPES)) for p in pos]
    maps = [residue_pair_map(r["walks"], r["relevance"], 39) for r in per]
    tris = [residue_triplets(r["walks"], r["relevance"], 39) for r in per]
    np.testing.assert_allclose(a["pair_map"], np.mean(maps, 0), atol=1e-12)
    np.testing.assert_allclose(a["pair_map_sem"], np.std(maps, 0, ddof=1) / np.sqrt(2), atol=1e-12)
    np.testing.assert_allclose(a["triplet_projection"], np.mean([t["triplet_projection"] for t in tris], 0), atol=1e-12)
    # triplet union with absent = 0
    d = {}
    for t in tris:
        for row, v in zip(map(tuple, t["triplets"]), t["relevance"]):
            d[row] = d.get(row, 0.0) + v / 2
    assert len(d) == len(a["triplets"])
    for row, v in zip(map(tuple, a["triplets"]), a["triplet_relevance"]):
        assert abs(d[row] - v) < 1e-12
    assert abs(a["triplet_projection"].sum() - a["triplet_relevance"].sum()) < 1e-10
    assert abs(a["triplet_projection"].sum() - a["body_sum_mean"][3]) < 1e-10
    assert abs(np.triu(a["pair_map"], 1).sum() - a["body_sum_mean"][2]) < 1e-10
    # conservation columns: Σ relevance, modified energy, Σ h0 dE/dh0, model energy
    cons = a["conservation"]
    for k, r in enumerate(per):
        np.testing.assert_allclose(cons[k], [r["relevance"].sum(), r["sum_h0_grad"], r["E_modified"], r["E_model"]], atol=1e-10)
    assert (out / "residue_relevance.npz").exists()
    js = json.loads((out / "residue_relevance.json").read_text())
    assert js["n_frames"] == 2 and len(js["conservation_per_frame"]) == 2 and "top_stabilising_pairs" in js
    with np.load(out / "residue_relevance.npz") as z:
        np.testing.assert_array_equal(z["pair_map"], a["pair_map"])
    # a second call reuses the frame files
    mt = [(out / f"frame_{k:04d}.npz").stat().st_mtime_ns for k in range(2)]
    b = explain_protein_frames(m, pos, NTL9_TYPES, out, progress=False)
    assert b["n_frames_computed"] == 0 and b["n_frames_reused"] == 2
    assert mt == [(out / f"frame_{k:04d}.npz").stat().st_mtime_ns for k in range(2)]
    np.testing.assert_array_equal(b["pair_map"], a["pair_map"])
    # other settings or other positions are not mistaken for the stored frames
    c = explain_protein_frames(m, pos, NTL9_TYPES, out, gamma=0.0, bias_rule=False, progress=False)
    assert c["n_frames_computed"] == 2
    pos2 = pos.copy()
    pos2[1] += 0.01
    e = explain_protein_frames(m, pos2, NTL9_TYPES, out, gamma=0.0, bias_rule=False, progress=False)
    assert e["n_frames_computed"] == 1


def test_pair_table_and_markdown():
    n = 6
    P = np.zeros((n, n))
    for (i, j), v in {(0, 1): -2.0, (2, 5): -3.0, (1, 4): 1.5, (3, 4): 0.5, (0, 5): -0.1}.items():
        P[i, j] = P[j, i] = v
    segs = [{"name": "β1", "kind": "E", "start": 1, "end": 2}, {"name": "α1", "kind": "H", "start": 4, "end": 5}]
    names = ["MET", "LYS", "VAL", "ILE", "PHE", "LEU"]
    stab, destab = pair_table(P, segments=segs, resnames=names, k=2)
    assert [(r["i"], r["j"]) for r in stab] == [(3, 6), (1, 2)]
    assert [(r["i"], r["j"]) for r in destab] == [(2, 5), (4, 5)]
    assert stab[0] == {
        "i": 3,
        "j": 6,
        "separation": 3,
        "resname_i": "VAL",
        "resname_j": "LEU",
        "relevance": -3.0,
        "element_i": "coil",
        "element_j": "coil",
    }
    assert destab[0]["element_i"] == "β1" and destab[0]["element_j"] == "α1"
    s3, d3 = pair_table(P, k=10)  # only negative / positive entries, no names or elements
    assert len(s3) == 3 and len(d3) == 2 and "element_i" not in s3[0] and "resname_i" not in s3[0]
    md = format_pair_table(P, segments=segs, resnames=names, k=2)
    assert "| 1 | VAL3 | LEU6 | 3 | coil–coil | -3.000 |" in md and "Most destabilising" in md
    assert format_pair_table((stab, destab)) == md


def test_plots(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(39, 39))
    A = A + A.T
    contact = (rng.uniform(size=(39, 39)) < 0.1).astype(float)
    segs = [{"name": "β1", "kind": "E", "start": 1, "end": 6}, {"name": "α1", "kind": "H", "start": 23, "end": 33}]
    plot_pair_map(A, contact, tmp_path / "pm.png", "pairs", segments=segs)
    plot_pair_map(A, rng.uniform(3, 20, (39, 39)), tmp_path / "pm_d.png", "pairs", contact_label="distance (Å)", contact_cmap="viridis_r")
    plot_triplet_projection(A[0], tmp_path / "tp.png", segments=segs, resnames=NTL9_RESNAMES)
    plot_pair_map_difference(A, tmp_path / "diff.png", "L6A − wt")
    for f in ("pm.png", "pm_d.png", "tp.png", "diff.png"):
        assert (tmp_path / f).stat().st_size > 1000
    with pytest.raises(ValueError, match="shape"):
        plot_pair_map(A, contact[:5], None, "x")


def test_triplet_projection_sums():
    t = np.array([[0, 1, 2], [1, 2, 4]])
    p = triplet_projection(t, np.array([3.0, -1.5]), 5)
    np.testing.assert_allclose(p, [1.0, 0.5, 0.5, 0.0, -0.5])
    assert abs(p.sum() - 1.5) < 1e-15


# --------------------------------------------------------------------------------------------
# per-residue projections and the relevance PDB

NTL9_PDB = Path(__file__).resolve().parents[1] / "systems" / "ntl9" / "ntl9_k12m.pdb"  # 39 residues + the NHE cap


def test_pair_projection_synthetic_and_errors():
    P = np.zeros((4, 4))
    for (i, j), v in {(0, 1): 2.0, (1, 3): -1.0, (2, 3): 0.5}.items():
        P[i, j] = P[j, i] = v
    q = pair_projection(P)
    np.testing.assert_allclose(q, [1.0, 0.5, 0.25, -0.25])
    assert abs(q.sum() - np.triu(P, 1).sum()) < 1e-15
    for bad in (np.zeros((3, 4)), np.zeros(5)):
        with pytest.raises(ValueError, match="square"):
            pair_projection(bad)


def test_per_residue_projections_sum_to_body_totals(frame_result):
    """Σ_i (2-body per residue) = 2-body total and Σ_i (3-body per residue) = 3-body total, also
    for the frame mean of explain_protein_frames."""
    m, pos, res = frame_result
    w, r = res["walks"], res["relevance"]
    sums = nbody_sums(w, r)
    q = pair_projection(residue_pair_map(w, r, 39))
    p = residue_triplets(w, r, 39)["triplet_projection"]
    assert q.shape == p.shape == (39,)
    assert abs(q.sum() - sums[2][0]) < 1e-10 and abs(p.sum() - sums[3][0]) < 1e-10
    assert np.count_nonzero(q) > 30 and np.count_nonzero(p) > 30
    # the per-residue 1-, 2- and 3-body values together hold all the walk relevance (L = 2)
    assert abs((residue_one_body(w, r, 39) + q + p).sum() - r.sum()) < 1e-10


def _remark_scale(u) -> float:
    line = next(x for x in u.trajectory.remarks if x.startswith("SCALE ="))
    return float(re.search(r"SCALE = (\S+) PER KCAL/MOL", line).group(1))


def _cg_universe(n=5):
    import MDAnalysis as mda

    u = mda.Universe.empty(n, n_residues=n, atom_resindex=np.arange(n), trajectory=True)
    u.add_TopologyAttr("names", ["CA"] * n)
    u.add_TopologyAttr("resnames", NTL9_RESNAMES[:n])
    u.add_TopologyAttr("resids", np.arange(1, n + 1))
    u.atoms.positions = chain(1, n=n)[0]
    return u


def test_write_relevance_pdb_round_trip_atomistic(tmp_path):
    """Every atom of residue k carries values[k] × scale (to the 2 decimals of the column); the
    scale is the one in the REMARK line, max |B| = 99.99, and the rest of the structure is kept."""
    import MDAnalysis as mda

    ref = mda.Universe(str(NTL9_PDB))
    n_res = ref.residues.n_residues
    values = np.random.default_rng(0).normal(0, 0.7, n_res)
    values[7] = -4.2  # the largest |value|: written as -99.99
    out = write_relevance_pdb(NTL9_PDB, values, tmp_path / "sub" / "rel.pdb", label="test 2-body")
    assert out == tmp_path / "sub" / "rel.pdb" and out.exists()
    assert [p.name for p in out.parent.iterdir()] == ["rel.pdb"]  # no temporary file left behind
    u = mda.Universe(str(out))
    scale = _remark_scale(u)
    assert abs(scale - relevance_pdb_scale(values)) < 1e-6 * scale
    assert abs(scale - RELEVANCE_PDB_MAX / 4.2) < 1e-6 * scale
    assert any("test 2-body" in x for x in u.trajectory.remarks) and any("NOT AN ENERGY" in x for x in u.trajectory.remarks)
    assert u.atoms.n_atoms == ref.atoms.n_atoms and u.residues.n_residues == n_res
    assert list(u.atoms.names) == list(ref.atoms.names) and list(u.residues.resnames) == list(ref.residues.resnames)
    np.testing.assert_allclose(u.atoms.positions, ref.atoms.positions, atol=1e-3)
    for k, res in enumerate(u.residues):
        np.testing.assert_allclose(res.atoms.tempfactors, values[k] * scale, rtol=0, atol=0.005 + 1e-9)
        np.testing.assert_allclose(res.atoms.tempfactors / scale, values[k], rtol=0, atol=0.0051 / scale)
    # (MDAnalysis reads the column as float32)
    assert abs(u.atoms.tempfactors.min() + RELEVANCE_PDB_MAX) < 1e-5 and abs(np.abs(u.atoms.tempfactors).max() - RELEVANCE_PDB_MAX) < 1e-5
    # the input file is untouched
    np.testing.assert_array_equal(mda.Universe(str(NTL9_PDB)).atoms.tempfactors, ref.atoms.tempfactors)


def test_write_relevance_pdb_cg_universe_frame_positions_and_zero(tmp_path):
    import MDAnalysis as mda

    src = _cg_universe(5)
    before = src.atoms.positions.copy()
    frame = before + 1.5
    values = np.array([0.02, -0.01, 0.0, 0.005, -0.03])  # small values are scaled up, not lost
    out = write_relevance_pdb(src, values, tmp_path / "cg.pdb", frame_positions=frame)
    u = mda.Universe(str(out))
    scale = _remark_scale(u)
    np.testing.assert_allclose(u.atoms.tempfactors, np.round(values * scale, 2), rtol=0, atol=1e-5)
    assert abs(u.atoms.tempfactors[4] + RELEVANCE_PDB_MAX) < 1e-5
    np.testing.assert_allclose(u.atoms.positions, frame, atol=1e-3)
    np.testing.assert_array_equal(src.atoms.positions, before)  # the universe passed in is not changed
    assert not hasattr(src.atoms, "tempfactors") or np.all(src.atoms.tempfactors == 0)
    z = mda.Universe(str(write_relevance_pdb(src, np.zeros(5), tmp_path / "zero.pdb")))
    assert _remark_scale(z) == 1.0 and np.all(z.atoms.tempfactors == 0)


def test_write_relevance_pdb_errors(tmp_path):
    src = _cg_universe(5)
    path = tmp_path / "x.pdb"
    with pytest.raises(ValueError, match=r"4 values for the 5 residues"):
        write_relevance_pdb(src, np.ones(4), path)
    with pytest.raises(ValueError, match=r"39 values for the 40 residues of .*ntl9_k12m.pdb"):
        write_relevance_pdb(NTL9_PDB, np.ones(39), path)
    with pytest.raises(ValueError, match=r"finite; 2 are not, at residues LYS2 \(nan\), PHE5 \(inf\)"):
        write_relevance_pdb(src, [0.0, np.nan, 1.0, 2.0, np.inf], path)
    with pytest.raises(ValueError, match="shape"):
        write_relevance_pdb(src, np.ones((5, 1)), path)
    with pytest.raises(ValueError, match=r"frame_positions must be \(n_atoms, 3\) = \(5, 3\)"):
        write_relevance_pdb(src, np.ones(5), path, frame_positions=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="finite"):
        write_relevance_pdb(src, np.ones(5), path, frame_positions=np.full((5, 3), np.nan))
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_explain_stage_relevance_structure(tmp_path):
    """The explain stage writes on the native all-atom structure, the NHE cap getting the value of
    residue 39 (its bead); without a native structure, or with other bead types, on the CG topology."""
    import MDAnalysis as mda

    from cgexplain.workflow.config import load_system
    from cgexplain.workflow.kinds.protein import _relevance_structure
    from cgexplain.workflow.run import RunFolder

    cfg = load_system(NTL9_PDB.parent, "quick")
    run = RunFolder(tmp_path / "run")
    run.native_pdb.parent.mkdir(parents=True)
    run.native_pdb.write_text(NTL9_PDB.read_text())
    k12m = NTL9_TYPES.copy()
    k12m[11] = AMINO_ACID_TYPES["MET"]  # the system's structure is the K12M variant
    structure, bead_of_residue, on = _relevance_structure(cfg, run, k12m)
    assert structure == run.native_pdb and on == "native all-atom structure"
    np.testing.assert_array_equal(bead_of_residue, list(range(39)) + [38])
    values = np.arange(1.0, 40.0)
    u = mda.Universe(str(write_relevance_pdb(structure, values[bead_of_residue], tmp_path / "r.pdb")))
    scale = _remark_scale(u)
    nhe = u.select_atoms("resname NHE")
    assert len(nhe) and np.allclose(nhe.tempfactors, RELEVANCE_PDB_MAX) and np.allclose(u.residues[38].atoms.tempfactors, 39 * scale)
    assert np.allclose(u.residues[0].atoms.tempfactors, round(scale, 2), atol=1e-5)
    # other bead types (another sequence) do not match the native structure: the CG topology is used
    run.cg_topology.parent.mkdir(parents=True)
    _cg_universe(39).atoms.write(str(run.cg_topology))
    structure, bead_of_residue, on = _relevance_structure(cfg, run, NTL9_TYPES)  # K12, not K12M
    assert structure == run.cg_topology and on == "CG topology"
    np.testing.assert_array_equal(bead_of_residue, np.arange(39))
    run.native_pdb.unlink()
    assert _relevance_structure(cfg, run, k12m)[0] == run.cg_topology
    with pytest.raises(ValueError, match="39 residues for the model's 38 beads"):
        _relevance_structure(cfg, run, k12m[:38])
