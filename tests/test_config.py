"""The configuration schema: every key of every section is validated at load, before any stage
runs, and each default lives in one place."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from cgexplain.analysis.protein import ProteinAnalysis
from cgexplain.lrp.settings import LrpSection
from cgexplain.settings import ConfigError
from cgexplain.workflow.config import SECTIONS, load_system

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path, base: str, edit) -> Path:
    """Copy systems/<base>/system.yaml into tmp_path/<base>, changed by edit(dict)."""
    raw = yaml.safe_load((ROOT / "systems" / base / "system.yaml").read_text())
    edit(raw)
    d = tmp_path / base
    d.mkdir(exist_ok=True)
    (d / "system.yaml").write_text(yaml.safe_dump(raw))
    return d


@pytest.mark.parametrize("system", ["water", "methane", "lj", "mw", "ntl9"])
def test_bundled_systems_validate_in_every_profile_and_architecture(system):
    raw = yaml.safe_load((ROOT / "systems" / system / "system.yaml").read_text())
    for profile in raw.get("profiles", {}):
        for arch in (None, "painn", "so3net"):
            cfg = load_system(ROOT / "systems" / system, profile, arch=arch)
            assert set(SECTIONS) <= set(cfg) and cfg["kind"] in ("fluid", "protein")


@pytest.mark.parametrize(
    "system,section,key",
    [
        ("water", "reference", "temprature"),
        ("water", "mapping", "methd"),
        ("ntl9", "priors", "n_fouriers"),
        ("water", "model", "n_layers"),
        ("water", "training", "epoch"),
        ("water", "simulation", "n_step"),
        ("water", "analysis", "rdf_max"),
        ("water", "lrp", "gama"),
        ("ntl9", "lrp", "gama"),
        ("ntl9", "analysis", "rmsd_treshold"),
        ("ntl9", "reference", "pbd_file"),
    ],
)
def test_a_typo_in_any_section_is_an_error_naming_the_key(tmp_path, system, section, key):
    d = _write(tmp_path, system, lambda raw: raw.setdefault(section, {}).__setitem__(key, 1))
    with pytest.raises(ConfigError, match=rf"{section}\.{key}: unknown key; known keys of {section}: "):
        load_system(d, "quick")


def test_a_typo_inside_a_profile_is_found_at_load(tmp_path):
    d = _write(tmp_path, "water", lambda raw: raw["profiles"]["full"]["training"].__setitem__("epoch", 6))
    load_system(d, "quick")  # the quick profile is fine
    with pytest.raises(ConfigError, match=r"training\.epoch: unknown key"):
        load_system(d, "full")


def test_a_typo_in_a_reference_check_or_potential_is_an_error(tmp_path):
    d = _write(tmp_path, "water", lambda raw: raw["reference"]["check"].__setitem__("peak", [2.7, 2.9]))
    with pytest.raises(ConfigError, match=r"reference\.check\.peak: unknown key"):
        load_system(d, "quick")
    d = _write(tmp_path, "lj", lambda raw: raw["reference"]["potential"].__setitem__("sigmaa", 3.4))
    with pytest.raises(ConfigError, match=r"reference\.potential: .*sigmaa"):
        load_system(d, "quick")


@pytest.mark.parametrize(
    "section,key,value,pattern",
    [
        ("training", "epochs", "many", r"training\.epochs: .*integer"),
        ("training", "batch_size", 0, r"training\.batch_size: .*greater than 0"),
        ("reference", "temperature", -5.0, r"reference\.temperature: .*greater than 0"),
        ("simulation", "temperature", -300.0, r"simulation\.temperature: .*greater than 0"),
        ("simulation", "timestep", "2 fs", r"simulation\.timestep: .*number"),
        ("lrp", "normalise", "publication", r"lrp\.normalise: .*'abs_mean_total'"),
        ("lrp", "r_edges", [6.0, 2.0, 10], r"lrp: r_edges \[6.0, 2.0, 10\]: need 0 <= lo < hi"),
        ("mapping", "method", "centroid", r"mapping\.method: .*'com'"),
        ("model", "representation", "schnet", r"model\.representation: .*'painn'"),
        ("lrp", "workers", 0, r"lrp\.workers: .*greater than 0"),
    ],
)
def test_wrong_types_and_out_of_range_values_are_errors(tmp_path, section, key, value, pattern):
    d = _write(tmp_path, "water", lambda raw: raw.setdefault(section, {}).__setitem__(key, value))
    with pytest.raises(ConfigError, match=pattern):
        load_system(d, "quick")


def test_unknown_profile_kind_section_and_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match=r"no profile 'nope'; available: \['full', 'quick'\]"):
        load_system(ROOT / "systems" / "water", "nope")
    d = _write(tmp_path, "water", lambda raw: raw.__setitem__("kind", "gas"))
    with pytest.raises(ConfigError, match=r"kind 'gas' is not known; kinds: fluid, protein"):
        load_system(d, "quick")
    d = _write(tmp_path, "water", lambda raw: raw.__setitem__("trainig", {}))
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['trainig'\]"):
        load_system(d, "quick")
    d = _write(tmp_path, "water", lambda raw: raw["analysis"].pop("shell_cutoff"))
    with pytest.raises(ConfigError, match=r"analysis\.shell_cutoff: required key missing"):
        load_system(d, "quick")
    d = _write(tmp_path, "water", lambda raw: raw.__setitem__("priors", {"n_fourier": 3}))
    with pytest.raises(ConfigError, match=r"priors: this kind of system has no priors"):
        load_system(d, "quick")
    # ConfigError is a ValueError and a KeyError, and its message is not quoted
    e = ConfigError("x: y")
    assert isinstance(e, ValueError) and isinstance(e, KeyError) and str(e) == "x: y"


def test_defaults_are_filled_in_from_one_place(tmp_path):
    """The drifted defaults made single: lrp.r_edges (was [2, 6, 40] in the stage and (2, 10, 75) in
    the CLI), analysis.rmsd_threshold (3.0 in five places), the CLI's hardware options (a second
    list of the execution keys)."""
    import inspect

    from cgexplain.cli import build_parser
    from cgexplain.lrp.explain import explain_trajectory
    from cgexplain.workflow.run import EXECUTION_KEYS

    d = _write(tmp_path, "water", lambda raw: raw.__setitem__("lrp", {}))
    cfg = load_system(d, "quick")
    lrp = dataclasses.asdict(LrpSection())
    assert cfg["lrp"] == {**lrp, "r_edges": list(lrp["r_edges"])}
    assert tuple(inspect.signature(explain_trajectory).parameters["r_edges"].default) == LrpSection().r_edges
    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    ex = {a.dest: a.default for a in sub["explain"]._actions}
    assert tuple(ex["r_range"]) == LrpSection().r_edges and ex["gamma"] == LrpSection().gamma and ex["normalise"] == LrpSection().normalise
    run_opts = {a.dest for a in sub["run"]._actions}
    assert set(EXECUTION_KEYS["training"]) | {"workers", "device", "backend"} <= run_opts
    d = _write(tmp_path, "ntl9", lambda raw: raw["analysis"].pop("rmsd_threshold"))
    assert load_system(d, "quick")["analysis"]["rmsd_threshold"] == ProteinAnalysis().rmsd_threshold


def test_simulate_stage_hash_covers_the_mutant_simulation_keys(tmp_path):
    """The simulate stage runs the mutant of ``lrp.mutations`` for ``lrp.mutant_simulation_steps``:
    both enter its input hash (a changed step count clears the folder, so simulation.json is not
    reused), and a run without a mutant simulation keeps its hash whatever lrp.mutations says."""
    from cgexplain.workflow.run import RunFolder

    def cfg_with(**lrp):
        sub = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        sub.mkdir()
        return load_system(_write(sub, "ntl9", lambda raw: raw.__setitem__("lrp", {**(raw.get("lrp") or {}), **lrp})), "quick")

    h = {
        k: RunFolder.input_hash(cfg_with(**v), "simulate")
        for k, v in {
            "steps 50": {"mutations": "F5A", "mutant_simulation_steps": 50},
            "steps 60": {"mutations": "F5A", "mutant_simulation_steps": 60},
            "other mutant": {"mutations": "K12M", "mutant_simulation_steps": 50},
            "no mutant simulation": {"mutations": "F5A", "mutant_simulation_steps": 0},
            "no mutant simulation, other mutant": {"mutations": "K12M", "mutant_simulation_steps": 0},
        }.items()
    }
    assert h["steps 50"] != h["steps 60"] and h["steps 50"] != h["other mutant"]
    assert h["no mutant simulation"] == h["no mutant simulation, other mutant"] != h["steps 50"]
    # stages that do not read the mutant keys keep their hashes
    a, b = cfg_with(mutations="F5A", mutant_simulation_steps=50), cfg_with(mutations="F5A", mutant_simulation_steps=60)
    assert RunFolder.input_hash(a, "train") == RunFolder.input_hash(b, "train")


def test_bundled_systems_keep_their_input_hashes():
    """Keys added after run folders existed (LATER_KEYS: the MACE keys, hold_out, prior_replicas,
    mapping.beads, reference.processes) leave the input hashes of the bundled systems as they were
    at commit 3d86d7b, so a new version does not delete and redo finished stages
    (tests/data/input_hashes_3d86d7b.json)."""
    import json

    from cgexplain.workflow.run import RunFolder

    old = json.loads((Path(__file__).parent / "data" / "input_hashes_3d86d7b.json").read_text())
    root = Path(__file__).resolve().parents[1]
    changed = []
    for key, hashes in old.items():
        system, profile = key.split("/")
        cfg = load_system(root / "systems" / system, profile)
        cfg["system_dir"] = f"systems/{system}"
        changed += [(key, stage) for stage, h in hashes.items() if RunFolder.input_hash(cfg, stage) != h]
    assert changed == []
