"""Mutation what-ifs (cgexplain.lrp.mutations): the type table, parsing and its errors, ΔE against
direct model calls, the identity mutation, and the relevance-map difference."""

import numpy as np
import pytest
import torch
from test_residues import CUTOFF, NTL9_RESNAMES, NTL9_TYPES, chain, tiny_model

from cgexplain.aminoacids import AMINO_ACID_TYPES, canonical_resname
from cgexplain.lrp.mutations import Mutation, model_energies, mutate_types, mutation_whatif, parse_mutations
from cgexplain.model.potential import batch_inputs


def test_type_table():
    assert len(AMINO_ACID_TYPES) == 20
    assert list(AMINO_ACID_TYPES) == sorted(AMINO_ACID_TYPES)
    assert AMINO_ACID_TYPES["ALA"] == 1 and AMINO_ACID_TYPES["VAL"] == 20 and AMINO_ACID_TYPES["HIS"] == 9
    assert sorted(AMINO_ACID_TYPES.values()) == list(range(1, 21))
    for h in ("HID", "HIE", "HIP", "HIS", "hie"):
        assert canonical_resname(h) == "HIS"
    assert canonical_resname("l") == "LEU"


def test_parse_forms():
    a = parse_mutations("L6A,I4A", NTL9_RESNAMES)
    assert a == [Mutation(6, "LEU", "ALA"), Mutation(4, "ILE", "ALA")] and [m.code for m in a] == ["L6A", "I4A"]
    assert parse_mutations([(6, "ALA"), (4, "ALA")], NTL9_RESNAMES) == a
    assert parse_mutations({6: "ALA", 4: "A"}, NTL9_RESNAMES) == a
    assert parse_mutations(" L6A ;  i4a ", NTL9_RESNAMES) == a
    assert parse_mutations("LEU6ALA", NTL9_RESNAMES) == a[:1]
    assert parse_mutations(["L6A", "I4A"], NTL9_RESNAMES) == a
    assert parse_mutations("", NTL9_RESNAMES) == [] and parse_mutations({}, NTL9_RESNAMES) == []


@pytest.mark.parametrize(
    "spec, words",
    [
        ({6: "XYZ"}, ["'XYZ'", "position 6", "LEU", "ALA", "VAL"]),
        ("L6Z", ["'Z'", "position 6"]),
        ({0: "ALA"}, ["position 0", "1..39"]),
        ({40: "ALA"}, ["position 40", "1..39"]),
        ("A40G", ["position 40", "1..39"]),
        ("L5A", ["residue 5", "PHE", "not LEU"]),
        ([(6, "ALA"), (6, "GLY")], ["position 6", "twice"]),
        ("6A", ["cannot read"]),
    ],
)
def test_parse_errors(spec, words):
    with pytest.raises(ValueError) as e:
        parse_mutations(spec, NTL9_RESNAMES)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_mutate_types():
    t, r = mutate_types(NTL9_TYPES, NTL9_RESNAMES, "L6A,I4A", AMINO_ACID_TYPES)
    assert t[5] == AMINO_ACID_TYPES["ALA"] and t[3] == AMINO_ACID_TYPES["ALA"] and r[5] == "ALA" and r[3] == "ALA"
    keep = np.ones(39, bool)
    keep[[3, 5]] = False
    assert np.array_equal(t[keep], NTL9_TYPES[keep]) and NTL9_TYPES[5] == AMINO_ACID_TYPES["LEU"]  # input untouched
    bad = NTL9_TYPES.copy()
    bad[5] = 3
    with pytest.raises(ValueError, match="position 6"):
        mutate_types(bad, NTL9_RESNAMES, "L6A", AMINO_ACID_TYPES)
    with pytest.raises(ValueError, match="no bead type"):
        mutate_types(NTL9_TYPES, NTL9_RESNAMES, "L6W", {k: v for k, v in AMINO_ACID_TYPES.items() if k != "TRP"})


def _direct_energy(m, pos, types):
    """Energy by calling the model as a user would (forward with forces), one frame at a time."""
    out = []
    for p in pos:
        inp = batch_inputs(p, types, None, CUTOFF, dtype=torch.float64)
        out.append(float(m(inp)["energy"].detach().sum()))
    return np.array(out)


def test_energies_and_delta_equal_direct_calls():
    m = tiny_model(seed=2)
    pos = chain(5, seed=6)
    E = model_energies(m, pos, NTL9_TYPES, batch_size=2)
    np.testing.assert_allclose(E, _direct_energy(m, pos, NTL9_TYPES), rtol=0, atol=1e-10)
    r = mutation_whatif(m, pos, NTL9_TYPES, NTL9_RESNAMES, "L6A,I4A", AMINO_ACID_TYPES, explain=False, progress=False, batch_size=2)
    t_mut, _ = mutate_types(NTL9_TYPES, NTL9_RESNAMES, "L6A,I4A", AMINO_ACID_TYPES)
    dE = _direct_energy(m, pos, t_mut) - _direct_energy(m, pos, NTL9_TYPES)
    assert np.abs(dE).min() > 1e-6
    np.testing.assert_allclose(r["dE"], dE, rtol=0, atol=1e-10)
    assert abs(r["dE_mean"] - dE.mean()) < 1e-10
    assert abs(r["dE_sem"] - dE.std(ddof=1) / np.sqrt(5)) < 1e-10
    assert r["mutations"] == ["L6A", "I4A"] and r["types_unseen_in_wild_type"] == []


def test_identity_mutation_and_map_difference(tmp_path):
    m = tiny_model(seed=3)
    pos = chain(2, seed=7)
    same = mutation_whatif(m, pos, NTL9_TYPES, NTL9_RESNAMES, {6: "LEU"}, AMINO_ACID_TYPES, progress=False, out_dir=tmp_path)
    assert np.all(same["dE"] == 0.0) and same["dE_mean"] == 0.0
    np.testing.assert_array_equal(same["pair_map_mutant"], same["pair_map_wt"])
    assert np.all(same["pair_map_diff"] == 0.0) and np.all(same["triplet_projection_diff"] == 0.0)
    r = mutation_whatif(m, pos, NTL9_TYPES, NTL9_RESNAMES, "L6A", AMINO_ACID_TYPES, progress=False, out_dir=tmp_path)
    np.testing.assert_array_equal(r["pair_map_wt"], same["pair_map_wt"])  # wild type reused from out_dir
    np.testing.assert_array_equal(r["pair_map_diff"], r["pair_map_mutant"] - r["pair_map_wt"])
    assert np.abs(r["pair_map_diff"]).max() > 1e-8
    # locality: pairs more than L = 2 graph hops from residue 6 (index 5) in every frame keep their relevance
    far = np.ones(39, bool)
    for p in pos:
        adj = (np.linalg.norm(p[:, None] - p[None], axis=-1) < CUTOFF) | np.eye(39, dtype=bool)
        reach = adj[5]
        for _ in range(2):
            reach = adj[reach].any(0)
        far &= ~reach
    assert far.sum() > 5
    np.testing.assert_allclose(r["pair_map_diff"][np.ix_(far, far)], 0.0, atol=1e-12)
    near = np.abs(r["pair_map_diff"]).max(axis=1) > 1e-12
    assert near[5]


def test_unseen_mutant_type_warns():
    m = tiny_model(seed=4)
    pos = chain(1, seed=8)
    with pytest.warns(UserWarning, match="untrained"):
        r = mutation_whatif(m, pos, NTL9_TYPES, NTL9_RESNAMES, "L6W", AMINO_ACID_TYPES, explain=False, progress=False)
    assert r["types_unseen_in_wild_type"] == [AMINO_ACID_TYPES["TRP"]] and np.isnan(r["dE_sem"])
