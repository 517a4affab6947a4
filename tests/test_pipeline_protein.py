"""End-to-end: every stage of the protein path on a tiny NTL9 run (real OpenMM amber14/GBn2,
priors, schnetpack, CG replicas, protein analysis, residue maps and a mutation what-if)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from cgexplain.workflow.config import load_system
from cgexplain.workflow.stages import run_all

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "reference": {"high_temperature_time": 0.4, "equilibration": 0.2, "production": 1.0, "save_interval": 0.05, "chunk": 0.5},
    "model": {"n_atom_basis": 8, "n_interactions": 2, "cutoff": 8.0, "n_rbf": 8},
    "training": {"epochs": 2, "batch_size": 8},
    "simulation": {"n_steps": 100, "save_interval": 10, "n_replicas": 2},
    "analysis": {"tica_lag": 2},
    "lrp": {"n_frames": 2, "mutations": "F5A", "mutation_frames": 4, "mutant_simulation_steps": 50},
}


@pytest.mark.slow
def test_ntl9_pipeline_tiny(tmp_path):
    sysdir = tmp_path / "ntl9"
    shutil.copytree(ROOT / "systems" / "ntl9", sysdir, ignore=shutil.ignore_patterns("pretrained"))
    raw = yaml.safe_load((sysdir / "system.yaml").read_text())
    raw["profiles"]["tiny"] = TINY
    (sysdir / "system.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_system(sysdir, "tiny")
    run = tmp_path / "run"
    s = run_all(cfg, run, progress=False)
    ref = s["reference"]
    assert ref["run_kinds"] == ["native", "seeded"] and ref["run_lengths"] == [20, 20] and ref["n_atoms"] == 624
    assert len(ref["check"]["runs"]) == 2 and ref["check"]["rmsd_mean_A"] < 3.0  # short runs stay near the native
    assert s["map"]["n_beads"] == 39 and len(s["map"]["type_table"]) == 20
    # priors are part of the saved model, fitted by Boltzmann inversion to the mapped reference
    from cgexplain.model.potential import load_model
    from cgexplain.model.priors import PriorEnergy

    model, meta = load_model(run / "model")
    assert any(isinstance(m, PriorEnergy) for m in model.output_modules)
    pj = json.loads((run / "model" / "priors.json").read_text())
    assert pj["params"]["n_beads"] == 39 and pj["mean_abs_residual_force"] < pj["mean_abs_mapped_force"]
    a = s["analyse"]
    for k in ("rmsd_mean_cg_A", "q_mean_cg", "rg_mean_cg_A", "fraction_rmsd_le_3A_cg", "folded_fraction_cg", "bond_js_distance"):
        assert np.isfinite(a[k]), k
    assert a["n_frames_cg"] == 2 * s["simulate"]["n_frames"]
    # the prior-only control ran beside the model; every JS distance has the reference's noise and a verdict
    from cgexplain.analysis.verdicts import VERDICTS

    assert s["simulate"]["prior_only"]["n_replicas"] == 2 and (run / "simulation" / "prior_only" / "simulation.json").exists()
    rows = {r["name"]: r for r in a["observables"]}
    assert {"rmsd JS", "q JS", "rg JS", "bond JS", "angle JS", "dihedral JS"} <= set(rows)
    assert all(np.isfinite(r["reference_noise"]) and np.isfinite(r["prior"]) and r["verdict"] in VERDICTS for r in rows.values())
    e = s["explain"]
    assert len(e["most_stabilising_pairs"]) <= 5 and e["conservation_max_rel_error"] < 1e-4
    assert all(abs(p["i"] - p["j"]) >= 3 for p in e["most_stabilising_tertiary_pairs"])
    assert np.isfinite(e["mutation"]["dE_mean_kcal_mol"]) and e["mutation"]["spec"] == "F5A"
    ms = e["mutation"]["simulation"]
    assert ms["n_frames"] == 2 * 5 and 0.0 <= ms["folded_fraction_mutant"] <= 1.0 and np.isfinite(ms["rmsd_mean_mutant_A"])
    pm = np.load(run / "lrp" / "frames" / "residue_relevance.npz")["pair_map"]
    assert pm.shape == (39, 39) and np.allclose(pm, pm.T)
    for fig in (
        "reference_rmsd.png",
        "priors.png",
        "protein_distributions.png",
        "internal_distributions.png",
        "tica_fes.png",
        "residue_pair_relevance.png",
        "triplet_projection.png",
        "mutation_pair_difference.png",
        "mutant_distributions.png",
    ):
        assert (run / "figures" / fig).stat().st_size > 1000, fig
    # a second run reuses every finished stage
    s2 = run_all(cfg, run, progress=False)
    assert s2["reused_stages"] == ["reference", "map", "train", "simulate", "analyse", "explain"]
    # the run exports as a pretrained folder (priors, protein observables, residue maps) and loads back
    import torch

    from cgexplain.workflow.pretrained import export_pretrained, load_pretrained

    export_pretrained(run, tmp_path / "pre", note="tiny")
    pmodel, pmeta, res = load_pretrained(tmp_path / "pre")
    for (k, x), (_, y) in zip(pmodel.state_dict().items(), model.state_dict().items()):
        assert torch.equal(x, y), k
    assert res["priors"]["params"] == pj["params"] and np.array_equal(res["residues"]["pair_map"], pm)
    assert res["analysis"]["folded_fraction_cg"] == a["folded_fraction_cg"]
    # the mutant simulation belongs to the simulate stage: a new step count gives a new simulation,
    # and the report gives the length that was simulated (it reused the old simulation.json before)
    raw["profiles"]["tiny"]["lrp"]["mutant_simulation_steps"] = 60
    (sysdir / "system.yaml").write_text(yaml.safe_dump(raw))
    s3 = run_all(load_system(sysdir, "tiny"), run, progress=False)
    assert s3["reused_stages"] == ["reference", "map", "train"]
    ms3 = s3["explain"]["mutation"]["simulation"]
    assert ms3["n_steps"] == 60 and ms3["n_frames"] == 2 * 6
    sim = json.loads((run / "simulation" / "mutant_F5A" / "simulation.json").read_text())
    assert sim["settings"]["n_steps"] == 60 and sim["n_frames"] == 6
