import pytest

from cgexplain.cli import build_parser
from cgexplain.config import load_system


@pytest.mark.parametrize("cmd", ["run", "reference", "map", "train", "simulate", "analyse", "explain"])
def test_help_every_command(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--profile" in out and "--out" in out and "system_dir" in out


def test_config_profiles_and_errors(tmp_path):
    cfg = load_system("systems/water", "quick")
    assert cfg["model"]["representation"] == "painn" and cfg["reference"]["n_molecules"] >= 256
    full = load_system("systems/water", "full")
    assert full["model"]["n_atom_basis"] > cfg["model"]["n_atom_basis"]
    with pytest.raises(KeyError, match="no profile 'nope'"):
        load_system("systems/water", "nope")
    (tmp_path / "system.yaml").write_text("reference: {}\nbogus: 1\n")
    with pytest.raises(KeyError, match="unknown section"):
        load_system(tmp_path)
    with pytest.raises(FileNotFoundError, match="system.yaml"):
        load_system(tmp_path / "missing")
