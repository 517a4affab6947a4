"""benchmarks/gpu_check.py cannot rot: its dry mode runs here, and what it imports stays inside the
wheelhouse's lists (benchmarks/wheelhouse.py), so it still installs on the GPU machine."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--dry", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "DRY RUN" in r.stdout and "target R = 16" in r.stdout
    res = json.loads(out.read_text())
    figures = {row["figure"]: row for row in res["rows"]}
    assert len(figures) == 9
    for row in figures.values():
        assert row["cpu"] > 0 and row["accelerator"] > 0, row
    assert res["walks"]["methane"] > 1000 and res["walks"]["water512"] > 1000
    # the same device on both sides: relevances agree exactly
    assert res["relative_difference"] == {"methane": 0.0, "water": 0.0}


_BLOCKED_RUN = r"""
import importlib.abc, importlib.metadata as md, runpy, sys
sys.path.insert(0, "benchmarks")
import wheelhouse
allowed = {k.lower() for k in (*wheelhouse.WHEELS, *wheelhouse.IMAGE, *wheelhouse.IMAGE_PACKAGES)} | {
    "torch", "numpy", "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "filelock", "setuptools", "triton", "cgexplain"}
blocked = {top for top, ds in md.packages_distributions().items()
           if not any(d.lower().replace("_", "-") in allowed or d.lower().startswith("nvidia") for d in ds)
           and top not in sys.stdlib_module_names}

import importlib.machinery as mach


class Filtered(mach.PathFinder):
    # the path finder, blind to the blocked distributions' modules (as if not installed)

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            return None
        return mach.PathFinder.find_spec(name, path, target)


sys.meta_path[:] = [Filtered if f is mach.PathFinder else f for f in sys.meta_path]
for m in [m for m in sys.modules if m.split(".")[0] in blocked]:
    del sys.modules[m]
sys.argv = ["gpu_check.py", "--device", "cpu", "--dry"]
runpy.run_path("benchmarks/gpu_check.py", run_name="__main__")
"""


def test_gpu_check_runs_with_only_the_wheelhouse_and_the_image():
    """gpu_check.py's dry run with every other installed distribution made unimportable (the
    lent machine holds torch, the image's packages and the wheelhouse, nothing else): a new
    import-time dependency of the LRP engine, MD or training code fails here, not on the GPU."""
    r = subprocess.run([sys.executable, "-c", _BLOCKED_RUN], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "DRY RUN" in r.stdout
