"""Mapping throughput and memory on a system of >= 100,000 atoms with forces.

Builds (once, into ``--data``) a large system by replicating the MDAnalysisTests GROMACS file
``cobrotoxin`` (a protein in TIP4P water, 19,385 atoms, with forces) ``--copies`` times side by
side (6 copies: 116,310 atoms), written as a GRO topology and a TRR of ``--frames`` frames with
positions, forces and box (each frame of the source cycled, copies shifted by one box length).
Then, each in a fresh process so that the peak memory is the mapping's own:

- bare read: MDAnalysis iterating the TRR and touching every position and force (frames/s);
- mapping: cgexplain's ``map_universe`` with one bead per residue (centre of mass: 28,000+ beads;
  massless TIP4P sites weight 0), sparse maps, streaming (frames/s, and the mapping's build time);
- peak resident memory (ru_maxrss) of each process.

Prints the ratio mapping / bare read (target >= 0.5) and the peak memory of the mapping process
(target <= 2 GB), measured side by side in one run. Not a test.

    python benchmarks/mapping_throughput.py [--copies 6] [--frames 50] [--data /tmp/cgexplain_mapbench]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def build(data: Path, copies: int, frames: int) -> tuple[Path, Path, Path]:
    """Write the replicated system (GRO, TRR) and its masses (.npy) unless they exist."""
    import MDAnalysis as mda
    import MDAnalysisTests.datafiles as mdat

    gro, trr, masses = data / f"big_{copies}.gro", data / f"big_{copies}_{frames}.trr", data / f"big_{copies}_masses.npy"
    if gro.exists() and trr.exists() and masses.exists():
        return gro, trr, masses
    data.mkdir(parents=True, exist_ok=True)
    src = mda.Universe(mdat.TPR_xvf, mdat.TRR_xvf)
    box = src.dimensions.copy()
    big = mda.Merge(*[src.atoms] * copies)
    n0 = src.atoms.n_atoms
    big.dimensions = np.array([box[0] * copies, box[1], box[2], 90, 90, 90])
    np.save(masses, np.tile(src.atoms.masses, copies))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        big.atoms.write(str(gro))
        with mda.Writer(str(trr), n_atoms=big.atoms.n_atoms) as w:
            for k in range(frames):
                ts = src.trajectory[k % len(src.trajectory)]
                x = np.concatenate([ts.positions + np.array([c * box[0], 0, 0]) for c in range(copies)])
                f = np.concatenate([ts.forces for _ in range(copies)])
                big.trajectory.ts.positions = x
                big.trajectory.ts.forces = f
                big.trajectory.ts.dimensions = big.dimensions
                big.trajectory.ts.has_forces = True
                big.trajectory.ts.time = k * 10.0
                w.write(big.atoms)
    print(f"built {gro.name} + {trr.name}: {copies} x {n0} = {copies * n0:,} atoms, {frames} frames")
    return gro, trr, masses


def _bare(gro: str, trr: str) -> dict:
    import MDAnalysis as mda

    u = mda.Universe(gro, trr)
    t0 = time.perf_counter()
    s = 0.0
    for ts in u.trajectory:
        s += float(ts.positions[0, 0]) + float(ts.forces[-1, 0])  # touch both arrays
    dt = time.perf_counter() - t0
    return {"frames": len(u.trajectory), "seconds": dt, "frames_per_s": len(u.trajectory) / dt}


def _mapping(gro: str, trr: str, masses: str) -> dict:
    from cgexplain.mapping.maps import load_universe, make_mapping, map_universe

    u = load_universe(gro, trr)
    u.add_TopologyAttr("masses", np.load(masses))  # GRO has no masses: the TPR's, tiled
    t0 = time.perf_counter()
    m = make_mapping(u, by="residue", method="com", constraints="none")  # a GRO has no bonds to check
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    t = map_universe(u, m, progress=False)
    dt = time.perf_counter() - t0
    dense_gb = 2 * m.n_beads * m.n_atoms * 8 / 1e9
    return {
        "frames": int(len(t.positions)),
        "n_atoms": int(m.n_atoms),
        "n_beads": int(m.n_beads),
        "build_seconds": t_build,
        "seconds": dt,
        "frames_per_s": len(t.positions) / dt,
        "dense_maps_would_need_GB": dense_gb,
        "sparse_nnz": int(m.position_map.nnz + m.force_map.nnz),
    }


def _child(what: str, args: list[str]) -> dict:
    res = _bare(*args) if what == "bare" else _mapping(*args)
    res["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=6)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--data", type=Path, default=Path("/tmp/cgexplain_mapbench"))
    ap.add_argument("--repeats", type=int, default=3, help="alternating bare / mapping runs; medians reported")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child[0], a.child[1:])))
        return
    gro, trr, masses = build(a.data, a.copies, a.frames)
    runs: dict[str, list[dict]] = {"bare": [], "mapping": []}
    for _ in range(a.repeats):
        for what, args in (("bare", [str(gro), str(trr)]), ("mapping", [str(gro), str(trr), str(masses)])):
            out = subprocess.run([sys.executable, __file__, "--child", what, *args], capture_output=True, text=True, check=True).stdout
            runs[what].append(json.loads(out.strip().splitlines()[-1]))
    med = {w: {k: float(np.median([r[k] for r in rs])) for k in ("frames_per_s", "peak_rss_MB")} for w, rs in runs.items()}
    m0 = runs["mapping"][0]
    ratio = med["mapping"]["frames_per_s"] / med["bare"]["frames_per_s"]
    peak_gb = med["mapping"]["peak_rss_MB"] / 1024.0
    print(
        f"\nmapping throughput ({m0['n_atoms']:,} atoms -> {m0['n_beads']:,} beads, one per residue, centre of mass; {m0['frames']} frames; medians of {a.repeats})"
    )
    print(
        f"  MDAnalysis bare read (positions + forces)   {med['bare']['frames_per_s']:8.1f} frames/s   peak RSS {med['bare']['peak_rss_MB']:7.0f} MB"
    )
    print(
        f"  cgexplain map_universe (sparse, streaming)  {med['mapping']['frames_per_s']:8.1f} frames/s   peak RSS {med['mapping']['peak_rss_MB']:7.0f} MB"
    )
    print(
        f"  mapping build (make_mapping) {m0['build_seconds']:.2f} s; dense maps would need {m0['dense_maps_would_need_GB']:.1f} GB, sparse hold {m0['sparse_nnz']:,} entries"
    )
    print(f"  ratio mapping / bare read: {ratio:.2f} (target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")
    print(f"  peak memory of the mapping process: {peak_gb:.2f} GB (target <= 2 GB: {'met' if peak_gb <= 2 else 'NOT met'})")
    if a.json:
        a.json.write_text(json.dumps({"runs": runs, "medians": med, "ratio": ratio, "peak_GB": peak_gb}, indent=1))


if __name__ == "__main__":
    main()
