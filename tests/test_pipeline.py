"""End-to-end: every stage on a tiny water box (real OpenMM, schnetpack, LRP)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cgexplain.workflow.config import load_system
from cgexplain.workflow.stages import run_all

TINY = {
    "reference": {
        "n_molecules": 64,
        "nonbonded_cutoff": 6.0,
        "equilibration_npt": 1.0,
        "equilibration_nvt": 0.5,
        "production": 2.0,
        "chunk": 1.0,
        "check": {"r_max": 6.0},
    },
    "training": {"epochs": 1, "batch_size": 4},
    "model": {"n_atom_basis": 8, "n_interactions": 2, "cutoff": 4.0},
    "simulation": {"n_steps": 40, "save_interval": 10, "n_replicas": 2},
    "analysis": {"rdf_r_max": 6.0},
    "lrp": {"n_frames": 2, "output_beads": 8, "r_edges": [2.0, 4.0, 10]},
}


@pytest.mark.slow
def test_water_pipeline_tiny(tmp_path):
    sysdir = tmp_path / "water"
    sysdir.mkdir()
    raw = yaml.safe_load(Path("systems/water/system.yaml").read_text())
    raw["profiles"]["tiny"] = TINY
    raw["architectures"] = {"so3net": {"model": {"n_atom_basis": 8, "lmax": 1}}}
    (sysdir / "system.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_system(sysdir, "tiny")
    run = tmp_path / "run"
    s = run_all(cfg, run, progress=False)
    for sub in ("reference", "cg", "model", "simulation", "analysis", "lrp", "figures"):
        assert (run / sub).is_dir(), sub
    for fig in ("rdf.png", "adf.png", "relevance_2body.png", "relevance_3body.png", "reference_rdf.png"):
        assert (run / "figures" / fig).stat().st_size > 1000, fig
    summ = json.loads((run / "summary.json").read_text())
    a = summ["analyse"]
    assert {"rdf_max_abs_diff", "rdf_first_peak_reference_A", "rdf_first_peak_cg_A", "adf_js_distance"} <= set(a)
    assert 2.5 < a["rdf_first_peak_reference_A"] < 3.2
    lrp = summ["explain"]
    cons = lrp["conservation_mean_kcal_mol"]
    body = lrp["relevance_by_body_order_kcal_mol_mean"]
    assert abs(sum(body.values()) - cons["sum_walk_relevance"]) < 1e-6 * max(1, abs(cons["sum_walk_relevance"]))
    assert summ["reference"]["n_frames"] == 20 and summ["map"]["n_beads"] == 64
    # two replicas in one batched pass, one DCD each; the analysis reads both
    assert summ["simulate"]["trajectories"] == ["trajectory_r00.dcd", "trajectory_r01.dcd"]
    assert summ["analyse"]["n_frames_cg"] == 2 * summ["simulate"]["n_frames"] == 8

    # export as a pretrained folder and load it back
    import torch

    from cgexplain.model.potential import load_model
    from cgexplain.plots.pretrained import plot_pretrained_relevance
    from cgexplain.workflow.pretrained import MAX_BYTES, export_pretrained, load_pretrained

    with pytest.raises(FileNotFoundError, match="summary.json"):
        export_pretrained(tmp_path / "nothing", tmp_path / "pre")
    export_pretrained(run, tmp_path / "pre", note="tiny test")
    assert sum(f.stat().st_size for f in (tmp_path / "pre").iterdir()) < MAX_BYTES
    model, meta, res = load_pretrained(tmp_path / "pre")
    ref_model, _ = load_model(run / "model")
    for (k, a), (_, b) in zip(model.state_dict().items(), ref_model.state_dict().items()):
        assert torch.equal(a, b), k
    assert res["training"] == summ["train"] and res["provenance"]["note"] == "tiny test"
    assert np.array_equal(res["nbody"]["body_sum_per_frame"], np.load(run / "lrp" / "nbody_statistics.npz")["body_sum_per_frame"])
    with np.load(tmp_path / "pre" / "frame.npz") as fr, np.load(run / "cg" / "mapped.npz") as mp:
        np.testing.assert_allclose(fr["positions"], mp["positions"][-1], atol=1e-5)
        assert np.array_equal(fr["bead_types"], mp["bead_types"])
    plot_pretrained_relevance(res, "tiny", tmp_path / "pre_fig")
    assert (tmp_path / "pre_fig_2body.png").stat().st_size > 1000
    from cgexplain.plots.pretrained import plot_relevance_comparison

    plot_relevance_comparison({"a": res["nbody"], "b": res["nbody"]}, res["structure"], "three", tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="kind"):
        plot_relevance_comparison({"a": res["nbody"]}, res["structure"], "four")
    # a second run reuses every finished stage
    s2 = run_all(cfg, run, progress=False)
    assert s2["analyse"] == s["analyse"]
    assert s2["reused_stages"] == ["reference", "map", "train", "simulate", "analyse", "explain"]
    assert s2["wall_time_s"] == s["wall_time_s"]
    # a changed input restarts that stage and those after it
    cfg["lrp"]["n_frames"] = 1
    s3 = run_all(cfg, run, progress=False, stages=["explain"])
    assert s3["explain"]["n_frames"] == 1 and s3["reused_stages"] == []

    # the same system with SO3net in a sibling folder: reference and mapping are copied (same
    # inputs), the model is an SO3net, and the explain stage runs on it
    cfg_so3 = load_system(sysdir, "tiny", arch="so3net")
    assert cfg_so3["model"]["representation"] == "so3net" and cfg_so3["model"]["lmax"] == 1
    cfg_so3["lrp"]["output_beads"] = None  # every walk, so the sum rule applies to the frame
    run2 = tmp_path / "run-so3net"
    s4 = run_all(cfg_so3, run2, progress=False)
    assert (run2 / "reference" / "reference.json").read_text() == (run / "reference" / "reference.json").read_text()
    assert np.array_equal(np.load(run2 / "cg" / "mapped.npz")["forces"], np.load(run / "cg" / "mapped.npz")["forces"])
    assert json.loads((run2 / "model" / "model.json").read_text())["hparams"]["representation"] == "so3net"
    c4 = s4["explain"]["conservation_mean_kcal_mol"]
    assert abs(sum(s4["explain"]["relevance_by_body_order_kcal_mol_mean"].values()) - c4["sum_walk_relevance"]) < 1e-6 * max(
        1, abs(c4["sum_walk_relevance"])
    )
    assert abs(c4["sum_walk_relevance"] - c4["sum_h0_dE_dh0_no_masks"]) < 1e-4 * max(1, abs(c4["sum_walk_relevance"]))

    # the body-ordered MACE in a third sibling: trained, simulated, analysed, and explained by its
    # own exact terms, whose sum is the network energy of each frame
    raw["architectures"]["mace"] = {
        "model": {"n_atom_basis": 8, "n_interactions": 1, "cutoff": 4.0, "n_rbf": 6, "lmax": 2, "correlation": 2},
        "training": {"batch_size": 1, "lr": 0.005, "amsgrad": True},
    }
    (sysdir / "system.yaml").write_text(yaml.safe_dump(raw))
    cfg_mace = load_system(sysdir, "tiny", arch="mace")
    run3 = tmp_path / "run-mace"
    s5 = run_all(cfg_mace, run3, progress=False)
    meta = json.loads((run3 / "model" / "model.json").read_text())
    assert meta["hparams"]["representation"] == "mace" and meta["hparams"]["n_types"] >= 2 and meta["hparams"]["avg_num_neighbors"] > 1
    ex = s5["explain"]
    assert ex["body_order"] == 3 and ex["closed"] and ex["frames"] == 2
    assert ex["max_abs_remainder_kcal_mol"] < 1e-8
    bo = json.loads((run3 / "lrp" / "bodyorder.json").read_text())
    for fr in bo["per_frame"]:
        assert fr["1-body"] + fr["2-body"] + fr["3-body"] == pytest.approx(fr["energy"], abs=1e-8)
    assert (run3 / "figures" / "bodyorder_3body.png").stat().st_size > 1000
    assert s5["analyse"]["n_frames_cg"] > 0
