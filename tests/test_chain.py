"""Bead chains whose beads are not residues (kind: chain): named internal coordinates, dihedral
maps, basins, the reference's noise, the model-against-prior verdict, bead names from the data,
explicit bead groups, the time step chosen from the prior, and the prior-only control."""

import json
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import pytest
import torch
import yaml

from cgexplain.analysis.chain import (
    VERDICTS,
    ChainAnalysis,
    basin_populations,
    chain_coordinates,
    compare_chain,
    ensemble_distances,
    free_energy_map,
    map_js,
    run_halves,
    verdict,
)
from cgexplain.diagnostics import OMEGA_DT_BOUND, check_timestep, choose_timestep
from cgexplain.mapping.maps import MappingError, mapping_from_section
from cgexplain.md.langevin import SimSettings, run_simulation
from cgexplain.model.potential import build_model, prior_only_model
from cgexplain.model.priors import fit_priors, prior_forces
from cgexplain.model.training import held_in_frames
from cgexplain.reference.premapped import PremappedError, read_arrays
from cgexplain.workflow.config import load_system
from cgexplain.workflow.kinds.chain import ChainKind
from cgexplain.workflow.kinds.protein import ProteinKind
from cgexplain.workflow.stages import run_all

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["head", "N", "CA", "C", "tail"]
PRIOR_SETTINGS = {"n_fourier": 2, "repulsion_exponent": 12, "repulsion_scale": 0.8}
AMINO = {"ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL"}


def _zigzag(n: int = 5) -> np.ndarray:
    """A bent chain, bonds 1.5 Å, angles ~110°, dihedrals away from 0 and 180°."""
    x = np.zeros((n, 3))
    for k in range(1, n):
        x[k] = x[k - 1] + 1.5 * np.array([np.cos(0.95 * k), np.sin(0.95 * k), 0.35 * (-1) ** k])
    return x


# ---------------------------------------------------------------- maths of the analysis
def test_basins_rectangles_and_other():
    x = np.array([-60.0, -60.0, 60.0, 180.0, -179.0, 10.0])
    y = np.array([140.0, -40.0, 40.0, 180.0, -150.0, -170.0])
    basins = {"beta": [[-180, 0, 50, 180], [-180, 0, -180, -120]], "alpha_R": [[-180, 0, -120, 50]], "alpha_L": [[0, 180, -180, 180]]}
    p = basin_populations(x, y, basins)
    # beta: (-60,140), (-179,-150); alpha_R: (-60,-40); alpha_L: (60,40), (180,180) (upper edge 180 inclusive), (10,-170)
    assert p == pytest.approx({"beta": 2 / 6, "alpha_R": 1 / 6, "alpha_L": 3 / 6, "other": 0.0})
    assert basin_populations(x, y, {"one": [[-90, -30, -90, 180]]})["other"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="basins.bad"):
        basin_populations(x, y, {"bad": [[10, 0, 0, 1]]})


def test_free_energy_map_and_map_js():
    rng = np.random.default_rng(0)
    a = (rng.normal(-60, 15, 4000), rng.normal(140, 15, 4000))
    b = (rng.normal(-60, 15, 4000), rng.normal(-40, 15, 4000))
    edges, f = free_energy_map(*a, temperature=300.0, bins=36)
    assert edges.shape == (37,) and f.shape == (36, 36) and np.nanmin(f) == 0.0
    i, j = np.unravel_index(np.nanargmin(f), f.shape)  # the minimum sits where the density peaks
    assert edges[i] <= -60 + 10 and edges[i + 1] >= -60 - 10 and edges[j] <= 150 and edges[j + 1] >= 130
    # a map against itself: 0; against a disjoint basin: ~1 (base 2)
    assert map_js(a, a) == pytest.approx(0.0, abs=1e-12)
    assert map_js(a, b) > 0.95
    assert run_halves([4, 6])[0].tolist() == [0, 1, 4, 5, 6] and run_halves([4, 6])[1].tolist() == [2, 3, 7, 8, 9]


def test_chain_coordinates_named_by_beads():
    x = _zigzag()[None] + np.random.default_rng(1).normal(0, 0.05, (10, 5, 3))
    c = chain_coordinates(x, [[0, 1], [1, 2], [2, 3], [3, 4]], NAMES, ["phi", "psi"])
    assert c["labels"]["bonds"][0] == "head1-N2" and c["labels"]["angles"][1] == "N2-CA3-C4"
    assert c["labels"]["dihedrals"] == ["phi", "psi"] and c["dihedrals"].shape == (10, 2)
    assert np.allclose(c["bonds"][:, 0], np.linalg.norm(x[:, 1] - x[:, 0], axis=1))
    with pytest.raises(ValueError, match="dihedral_names"):
        chain_coordinates(x, [[0, 1], [1, 2], [2, 3], [3, 4]], NAMES, ["phi"])


def test_verdict_rules():
    assert verdict(0.10, 0.01, 0.30, 0.01) == VERDICTS[0]  # far better than the prior
    assert verdict(0.30, 0.01, 0.10, 0.01) == VERDICTS[2]  # far worse
    assert verdict(0.20, 0.05, 0.25, 0.05) == VERDICTS[1]  # within the noise of the difference
    assert verdict(0.20, float("nan"), 0.25, 0.0).startswith("undetermined")  # no error estimate, no verdict


def test_compare_chain_prior_equal_to_model_gives_no_improvement():
    """Two CG ensembles drawn from one distribution: every verdict says no improvement, and the
    reference's own noise is the half-against-half distance."""
    rng = np.random.default_rng(3)

    def ens(nf):
        return _zigzag()[None] + rng.normal(0, 0.15, (nf, 5, 3))

    bonds = [[0, 1], [1, 2], [2, 3], [3, 4]]
    spec = ChainAnalysis(dihedral_names=["phi", "psi"], basins={"low": [[-180, 0, -180, 180]]})
    ref = chain_coordinates(ens(4000), bonds, NAMES, ["phi", "psi"])
    model = chain_coordinates(ens(4000), bonds, NAMES, ["phi", "psi"])
    prior = chain_coordinates(ens(2000), bonds, NAMES, ["phi", "psi"])
    halves = run_halves([2000, 2000])
    out = compare_chain(ref, halves, halves[1], model, [1000] * 4, prior, [1000, 1000], spec)
    assert {r["verdict"] for r in out["observables"]} == {VERDICTS[1]}
    noise = ensemble_distances(
        {**ref, **{k: ref[k][halves[0]] for k in ("bonds", "angles", "dihedrals")}},
        {**ref, **{k: ref[k][halves[1]] for k in ("bonds", "angles", "dihedrals")}},
        spec,
    )
    assert out["observables"][0]["reference_noise"] == pytest.approx(noise["bond head1-N2"])
    assert set(out["populations"]) == {
        "reference",
        "reference_first_half",
        "reference_second_half",
        "model",
        "model_first_half",
        "model_second_half",
        "prior_only",
    }
    # without a control there is no verdict to give
    out2 = compare_chain(ref, halves, halves[1], model, [1000] * 4, None, None, spec)
    assert {r["verdict"] for r in out2["observables"]} == {"no prior-only control"}


# ---------------------------------------------------------------- time step, prior-only model, held-out frames
def test_choose_timestep_within_the_bound():
    for w in (10.0, 188.0, 247.0, 1000.0):
        dt = choose_timestep(w)
        assert check_timestep(w, dt)[0] and w * dt <= OMEGA_DT_BOUND
        assert w * (dt + 1e-4) > OMEGA_DT_BOUND or dt == 0.01  # the longest 0.1 fs multiple within the bound
    assert choose_timestep(247.0) == pytest.approx(0.0018)
    assert choose_timestep(None) == 0.002 and choose_timestep(1.0) == 0.01
    with pytest.raises(ValueError):
        choose_timestep(-1.0)


def test_prior_only_model_gives_the_prior_forces():
    x = _zigzag()[None] + np.random.default_rng(2).normal(0, 0.1, (50, 5, 3))
    params = fit_priors(x, 300.0)
    model = build_model({"representation": "painn", "n_atom_basis": 8, "n_interactions": 1, "cutoff": 6.0, "n_rbf": 8, "priors": params})
    po = prior_only_model(model).double()
    from cgexplain.model.potential import batch_inputs

    inp = batch_inputs(x[:3], np.ones(5, int), np.zeros((3, 3, 3)), 6.0, dtype=torch.float64)
    f = po(inp)["forces"].detach().numpy().reshape(3, 5, 3)
    assert np.allclose(f, prior_forces(params, x[:3]), atol=1e-8)
    with pytest.raises(ValueError, match="no prior"):
        prior_only_model(build_model({"representation": "painn", "n_atom_basis": 8, "n_interactions": 1, "cutoff": 6.0, "n_rbf": 8}))


def test_held_in_frames_first_halves():
    assert held_in_frames([4, 6], "second_half").tolist() == [0, 1, 4, 5, 6]
    assert held_in_frames([4, 6], None) is None
    with pytest.raises(ValueError):
        held_in_frames([4], "random")


# ---------------------------------------------------------------- names: data, mapping, no amino-acid labels
def test_bead_names_from_npz(tmp_path):
    x = _zigzag()[None] + np.random.default_rng(0).normal(0, 0.1, (6, 5, 3))
    np.savez(tmp_path / "a.npz", positions=x, forces=np.ones_like(x) * 5.0, bead_names=np.array(NAMES))
    traj, info = read_arrays(tmp_path / "a.npz")
    assert info["bead_names"] == NAMES and traj.bead_types.tolist() == [1, 2, 3, 4, 5]
    names, table = ChainKind().premapped_names(traj.bead_types, info["bead_names"])
    assert names == NAMES and table == {n: k + 1 for k, n in enumerate(NAMES)}
    # integer types 1-5 of a chain are never amino acids; a protein's are, unless the data name them
    assert ChainKind().premapped_names(np.arange(1, 6))[0] == ["B1", "B2", "B3", "B4", "B5"]
    assert ProteinKind().premapped_names(np.arange(1, 6))[0][0] == "ALA"
    assert ProteinKind().premapped_names(np.arange(1, 6), NAMES)[0] == NAMES
    # a name with two types is refused, naming the bead
    np.savez(
        tmp_path / "b.npz",
        positions=x,
        forces=np.ones_like(x) * 5.0,
        bead_names=np.array(["C", "N", "CA", "C", "N"]),
        bead_types=np.array([1, 2, 3, 4, 2]),
    )
    with pytest.raises(PremappedError, match="bead 3 named 'C' has type 4"):
        read_arrays(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", positions=x, forces=np.ones_like(x) * 5.0, bead_names=np.array(["C", "N"]))
    with pytest.raises(PremappedError, match="5 strings"):
        read_arrays(tmp_path / "c.npz")


def test_mapping_beads_of_alanine_dipeptide():
    """ala2's 5 backbone beads: each atom in one bead, positions on the named atoms, the force map
    consistent with the position map (D Cᵀ = 1) and summing whole constrained groups."""
    u = mda.Universe(str(ROOT / "systems" / "ala2" / "ala2.pdb"))
    sec = yaml.safe_load((ROOT / "systems" / "ala2" / "system.yaml").read_text())["mapping"]
    m = mapping_from_section(u, {"by": "residue", "method": "com", **sec})
    assert m.bead_names == ["C_ace", "N", "CA", "C", "N_nme"] and m.bonds.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert sorted(np.concatenate(m.bead_atoms).tolist()) == list(range(22))
    assert np.allclose((m.force_map @ m.position_map.T).toarray(), np.eye(5))
    pos = m.position_map @ u.atoms.positions
    for b, name in enumerate(["C", "N", "CA", "C", "N"]):
        assert np.allclose(pos[b], u.atoms[[i for i in m.bead_atoms[b] if u.atoms[i].name == name][0]].position)
    bad = {**sec, "beads": sec["beads"][:-1] + [{"name": "X", "select": "resname NME", "atom": "CA"}]}
    with pytest.raises(MappingError, match="bead 4 .* 0 atoms named 'CA'"):
        mapping_from_section(u, {"by": "residue", "method": "com", **bad})
    with pytest.raises(MappingError, match=r"beads\[0\].*selects no atoms"):
        mapping_from_section(u, {"by": "residue", "method": "com", "beads": [{"name": "X", "select": "resname FOO"}]})


# ---------------------------------------------------------------- end to end: an exact prior
def _sample_exact_prior(tmp_path: Path, T: float = 300.0) -> Path:
    """A synthetic 5-bead chain whose forces its fitted prior explains exactly: frames sampled by
    Langevin from a prior P0, then the prior P1 that the pipeline will fit to those frames
    (Boltzmann inversion with the same settings; deterministic) and P1's forces as the data. Force
    matching then leaves the network a zero residual: the prior is already exact, there is
    nothing for the network to add."""
    x0 = _zigzag()[None] + np.random.default_rng(5).normal(0, 0.08, (400, 5, 3))
    p0 = fit_priors(x0, T, **PRIOR_SETTINGS)
    hp = {"representation": "painn", "n_atom_basis": 8, "n_interactions": 1, "cutoff": 8.0, "n_rbf": 8, "priors": p0}
    prior = prior_only_model(build_model(hp))
    s = SimSettings(temperature=T, timestep=0.002, n_steps=6000, save_interval=10, n_replicas=4, skin=2.0, seed=3)
    out = tmp_path / "sample"
    run_simulation(
        prior,
        {"cutoff": 8.0, "hparams": hp},
        _topology(tmp_path),
        x0[[0, 100, 200, 300]],
        np.ones(5, int),
        np.full(5, 14.0),
        np.zeros((4, 3, 3)),
        s,
        out,
        progress=False,
    )
    u = mda.Universe(str(_topology(tmp_path)), [str(p) for p in sorted(out.glob("trajectory_r*.dcd"))])
    x = np.array([u.atoms.positions.copy() for _ in u.trajectory], dtype=np.float32).astype(np.float64)
    p1 = fit_priors(x, T, **PRIOR_SETTINGS)  # what the train stage will fit to these frames
    npz = tmp_path / "chain.npz"
    np.savez(npz, positions=x, forces=prior_forces(p1, x), bead_names=np.array(NAMES), bead_masses=np.full(5, 14.0))
    return npz


def _topology(tmp_path: Path) -> Path:
    p = tmp_path / "chain.pdb"
    if not p.exists():
        lines = [
            f"ATOM  {k + 1:5d}  CA  BEA A{k + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C" for k, (x, y, z) in enumerate(_zigzag())
        ]
        p.write_text("\n".join(lines + ["END", ""]))
    return p


@pytest.mark.slow
def test_exact_prior_chain_pipeline_says_no_improvement(tmp_path):
    """Data whose forces the fitted prior explains exactly (:func:`_sample_exact_prior`): the network
    has nothing to add, its validation force error is ~0 beside the prior's 0, and the analyse
    stage's verdict says "no improvement" for every observable. The data's bead names reach every
    output; no amino-acid name appears; the time step is chosen within the bound."""
    npz = _sample_exact_prior(tmp_path)
    sysdir = tmp_path / "chain"
    sysdir.mkdir()
    cfg = {
        "name": "chain",
        "kind": "chain",
        "reference": {"source": "arrays", "positions": str(npz), "temperature": 300.0},
        "priors": {k: list(v) if isinstance(v, tuple) else v for k, v in PRIOR_SETTINGS.items()},
        "model": {"representation": "painn", "n_atom_basis": 8, "n_interactions": 1, "cutoff": 8.0, "n_rbf": 8},
        "training": {"epochs": 6, "batch_size": 32, "lr": 0.002},
        "simulation": {"n_steps": 6000, "save_interval": 10, "n_replicas": 4, "prior_replicas": 4, "skin": 2.0},
        "analysis": {"dihedral_names": ["phi", "psi"], "basins": {"minus": [[-180, 0, -180, 180]], "plus": [[0, 180, -180, 180]]}},
        "lrp": {"n_frames": 2},
        "profiles": {"quick": {}},
    }
    (sysdir / "system.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = tmp_path / "run"
    s = run_all(load_system(sysdir, "quick"), run, progress=False)
    a = s["analyse"]
    assert s["train"]["prior_only"]["force_rmse"] < 1e-3  # the prior is exact on these frames
    verdicts = {r["name"]: r["verdict"] for r in a["observables"]}
    assert verdicts and set(verdicts.values()) == {VERDICTS[1]}, verdicts
    assert a["compared_with"] == "every reference frame" and a["n_frames"]["prior_only"] == a["n_frames"]["model"]
    # the time step was chosen from the prior, within the bound
    tc = s["simulate"]["timestep_check"]
    assert tc["chosen"] and tc["ok"] and tc["omega_dt"] <= OMEGA_DT_BOUND and s["simulate"]["timestep_ps"] == tc["timestep_ps"]
    assert s["simulate"]["prior_only"]["n_replicas"] == 4
    # names everywhere, never amino acids
    mapping = json.loads((run / "cg" / "mapping.json").read_text())
    assert mapping["bead_names"] == NAMES and set(mapping["type_table"]) == set(NAMES)
    lrp = json.loads((run / "lrp" / "lrp.json").read_text())
    assert lrp["bead_names"] == NAMES
    text = (run / "cg" / "topology.pdb").read_text() + json.dumps(lrp) + json.dumps(a)
    assert not any(f" {aa} " in text or f'"{aa}' in text for aa in AMINO)
    assert a["labels"]["angles"][0] == "head1-N2-CA3"
    for fig in ("dihedral_maps.png", "chain_distributions.png", "bead_pair_relevance.png"):
        assert (run / "figures" / fig).stat().st_size > 5000, fig
