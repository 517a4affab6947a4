"""A wheelhouse for benchmarks/gpu_check.py on the lent GPU machine, which has no package registry.

That machine's image has Python 3.12, torch 2.11, Lightning, numpy, scipy, matplotlib and h5py, and
none of schnetpack, ase, matscipy, vesin, MDAnalysis or OpenMM. ``build`` downloads (on a machine with
PyPI) the wheels gpu_check.py needs at import time and the image lacks, for CPython 3.12 on x86_64
Linux, without their dependencies (the lists below), into ``wheelhouse/`` (git-ignored; it travels
as a carried path, and the tree and carried paths together may be at most 64 MiB). ``install`` (on
the GPU machine, offline) installs from it only the distributions that are not installed already,
so the image's torch, numpy and Lightning stay as they are, and stops with a clear message if one
of the closure is neither installed nor in the wheelhouse.

    python benchmarks/wheelhouse.py build   [--dest wheelhouse]   # needs PyPI; prints the size
    python benchmarks/wheelhouse.py install [--dest wheelhouse]   # offline: pip --no-index --find-links --no-deps
    python benchmarks/wheelhouse.py missing                       # which of the list this Python lacks

Rebuild it whenever a pin below or cgexplain's import-time dependencies change; check it with an
offline install into a fresh Python 3.12 venv (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The import-time closure of gpu_check.py and of the CLI's train stage (pydantic), found by importing it in a venv that held only torch, numpy and these
#: (torch's own dependencies aside). Not in it: MDAnalysis, OpenMM, mdtraj, contourpy, rich, pygments.
#: WHEELS: what the GPU machine's image lacks (its package list: the device tool's KINDS.md, read 2026-11-17), pinned
#: to the versions this project is tested with; these go into the wheelhouse (about 5 MiB).
WHEELS = {
    "schnetpack": "2.2.0",
    "ase": "3.29.0",
    "matscipy": "1.3.1",
    "vesin": "0.6.2",
    "dirsync": "2.2.6",
    "fasteners": "0.20",
    "progressbar": "2.5",
    "torch-ema": "0.3",
    "omegaconf": "2.3.1",
    "antlr4-python3-runtime": "4.9.3",
    "hydra-core": "1.3.8",
    "pydantic": "2.13.4",  # the configuration schema (cgexplain.settings): the CLI's stages on the GPU machine
    "pydantic-core": "2.46.4",
    "annotated-types": "0.7.0",
    "typing-inspection": "0.4.2",
}
#: IMAGE: the rest of the closure, which the image already holds (numpy, torch, Lightning, scipy, matplotlib, ...).
#: ``build --with-image`` adds them too (about 60 MiB more: over the 64 MiB that may travel, for another image only).
IMAGE = {
    "scipy": "1.17.1",
    "h5py": "3.16.0",
    "pyyaml": "6.0.3",
    "tqdm": "4.70.1",
    "packaging": "26.2",
    "typing-extensions": "4.15.0",
    "pytorch-lightning": "2.6.6",
    "lightning-utilities": "0.15.3",
    "torchmetrics": "1.9.0",
    "fsspec": "2026.9.0",
    "matplotlib": "3.11.2",
    "pillow": "11.0.0",
    "fonttools": "4.68.0",
    "kiwisolver": "1.5.1",
    "pyparsing": "3.3.2",
    "python-dateutil": "2.9.0.post0",
    "six": "1.17.0",
    "cycler": "0.12.1",
}
#: Every distribution of the GPU image (KINDS.md of the device tool, read on a machine on 2026-11-17): the test that
#: runs gpu_check.py with nothing else importable uses it.
IMAGE_PACKAGES = (
    "absl-py",
    "accelerate",
    "aiofiles",
    "aiohappyeyeballs",
    "aiohttp",
    "aiosignal",
    "annotated-doc",
    "anyio",
    "attrs",
    "botorch",
    "build",
    "certifi",
    "charset-normalizer",
    "chex",
    "click",
    "cloudpickle",
    "cmake",
    "colorama",
    "contourpy",
    "coverage",
    "cuda-bindings",
    "cuda-core",
    "cuda-pathfinder",
    "cuda-toolkit",
    "cupy-cuda13x",
    "cycler",
    "cython",
    "diffrax",
    "e3nn",
    "einops",
    "equinox",
    "etils",
    "execnet",
    "filelock",
    "flatbuffers",
    "flax",
    "fonttools",
    "formulaic",
    "frozenlist",
    "fsspec",
    "gpytorch",
    "grpcio",
    "h11",
    "h5py",
    "hf-xet",
    "httpcore",
    "httpx",
    "huggingface-hub",
    "humanize",
    "hypothesis",
    "idna",
    "imageio",
    "iniconfig",
    "interface-meta",
    "jax",
    "jax-cuda13-pjrt",
    "jax-cuda13-plugin",
    "jaxlib",
    "jaxtyping",
    "jinja2",
    "joblib",
    "kiwisolver",
    "lazy-loader",
    "lightning",
    "lightning-utilities",
    "linear-operator",
    "lineax",
    "llvmlite",
    "lxml",
    "markdown",
    "markdown-it-py",
    "markupsafe",
    "matplotlib",
    "mdurl",
    "meson",
    "ml-dtypes",
    "mpi4py",
    "mpmath",
    "msgpack",
    "multidict",
    "multipledispatch",
    "mypy-extensions",
    "nanobind",
    "narwhals",
    "networkx",
    "ninja",
    "numba",
    "numba-cuda",
    "numpy",
    "numpyro",
    "nvidia-cublas",
    "nvidia-cuda-cupti",
    "nvidia-cuda-nvrtc",
    "nvidia-cuda-runtime",
    "nvidia-cudnn-cu13",
    "nvidia-cufft",
    "nvidia-cufile",
    "nvidia-curand",
    "nvidia-cusolver",
    "nvidia-cusparse",
    "nvidia-cusparselt-cu13",
    "nvidia-ml-py",
    "nvidia-nccl-cu13",
    "nvidia-nvjitlink",
    "nvidia-nvshmem-cu13",
    "nvidia-nvtx",
    "onnx",
    "onnx-ir",
    "onnxruntime",
    "onnxscript",
    "opencv-python-headless",
    "optax",
    "opt-einsum",
    "opt-einsum-fx",
    "optimistix",
    "orbax-checkpoint",
    "packaging",
    "pandas",
    "pathspec",
    "patsy",
    "peft",
    "pillow",
    "pip",
    "pluggy",
    "portalocker",
    "prometheus-client",
    "propcache",
    "protobuf",
    "psutil",
    "pyarrow",
    "pybind11",
    "py-cpuinfo",
    "pygments",
    "pyparsing",
    "pyproject-hooks",
    "pyre-extensions",
    "pytest",
    "pytest-benchmark",
    "pytest-cov",
    "pytest-mock",
    "pytest-timeout",
    "pytest-xdist",
    "python-dateutil",
    "pytorch-lightning",
    "pyyaml",
    "regex",
    "requests",
    "rich",
    "sacrebleu",
    "safetensors",
    "scikit-build-core",
    "scikit-image",
    "scikit-learn",
    "scipy",
    "seaborn",
    "sentencepiece",
    "sentence-transformers",
    "setuptools",
    "shellingham",
    "simplejson",
    "six",
    "sortedcontainers",
    "statsmodels",
    "sympy",
    "tabulate",
    "tensorboard",
    "tensorboard-data-server",
    "tensorstore",
    "threadpoolctl",
    "tifffile",
    "tiktoken",
    "timm",
    "tokenizers",
    "toolz",
    "torch",
    "torchaudio",
    "torchdiffeq",
    "torch-geometric",
    "torchmetrics",
    "torchvision",
    "tqdm",
    "transformers",
    "treescope",
    "triton",
    "typer",
    "typing-extensions",
    "typing-inspect",
    "urllib3",
    "uvloop",
    "wadler-lindig",
    "werkzeug",
    "wheel",
    "wrapt",
    "xarray",
    "xxhash",
    "yarl",
    "zipp",
)
#: pure-Python distributions published only as source: built here into py3-none-any wheels
SOURCE_ONLY = ("progressbar", "dirsync", "antlr4-python3-runtime")
#: taken as their pure-Python wheel (much smaller than the compiled one)
PURE = ("fonttools",)
PLATFORMS = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "any"]


def _download(dest: Path, platforms: list[str], specs: list[str]) -> None:
    """pip download of binary wheels for CPython 3.12 on ``platforms``, without dependencies."""
    cmd = [sys.executable, "-m", "pip", "download", "--dest", str(dest), "--only-binary=:all:", "--no-deps", "--python-version", "3.12"]
    cmd += ["--implementation", "cp"] if platforms != ["any"] else []
    for p in platforms:
        cmd += ["--platform", p]
    subprocess.run(cmd + specs, check=True)


def build(dest: Path, with_image: bool = False) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    wheels = {**WHEELS, **IMAGE} if with_image else WHEELS
    _download(dest, PLATFORMS, [f"{k}=={v}" for k, v in wheels.items() if k not in SOURCE_ONLY + PURE])
    pure = [f"{k}=={wheels[k]}" for k in PURE if k in wheels]
    if pure:
        _download(dest, ["any"], pure)
    src = [f"{k}=={wheels[k]}" for k in SOURCE_ONLY]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest), *src], check=True)
    for w in dest.glob("*.whl"):
        if (
            w.name.split("-")[0].lower().replace("_", "-") in SOURCE_ONLY
            and not w.name.endswith("-py3-none-any.whl")
            and not w.name.endswith("-py2.py3-none-any.whl")
        ):
            raise SystemExit(f"{w.name}: a source-only distribution built into a platform wheel; it may not install on 3.12")
    size = sum(f.stat().st_size for f in dest.glob("*.whl"))
    print(f"{dest}: {len(list(dest.glob('*.whl')))} wheels, {size / 2**20:.1f} MiB (carry limit 64 MiB)")


def missing(names=None) -> list[str]:
    """The distributions of ``names`` (default: the whole closure) that this Python lacks."""
    out = []
    for name in names or {**WHEELS, **IMAGE}:
        try:
            md.version(name)
        except md.PackageNotFoundError:
            out.append(name)
    return out


def install(dest: Path) -> None:
    have = {w.name.split("-")[0].lower().replace("_", "-") for w in dest.glob("*.whl")}
    absent = [n for n in missing() if n not in have]
    if absent:
        raise SystemExit(f"wheelhouse: {', '.join(absent)} neither installed nor in {dest}: rebuild with --with-image")
    todo = missing()
    if not todo:
        print("wheelhouse: every distribution is installed already")
        return
    print(f"wheelhouse: installing {', '.join(todo)} from {dest} (offline)")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(dest), "--no-deps", *todo], check=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["build", "install", "missing"])
    ap.add_argument("--dest", type=Path, default=ROOT / "wheelhouse")
    ap.add_argument("--with-image", action="store_true", help="build: also the distributions the GPU image already has")
    a = ap.parse_args(argv)
    if a.command == "build":
        build(a.dest, a.with_image)
    elif a.command == "install":
        install(a.dest)
    else:
        print(" ".join(missing()) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
