"""Command line: ``cgexplain run SYSTEM_DIR`` and one subcommand per stage.

Units everywhere: Å, ps, K, amu, kcal/mol, kcal/mol/Å.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

_STAGE_HELP = {
    "reference": "atomistic reference MD with OpenMM (positions Å and forces kcal/mol/Å every save_interval ps)",
    "map": "map atoms to beads (centre-of-mass position map, summed force map); writes the CG dataset and topology",
    "train": "fit the potential by force matching (MSE of forces, kcal/mol/Å); saves state_dict + JSON",
    "simulate": "CG Langevin dynamics with the trained model (timestep ps, temperature K)",
    "analyse": "RDF and angle distribution of the CG simulation against the mapped reference",
    "explain": "GNN-LRP walk relevances (kcal/mol), n-body sums and relevance-vs-geometry figures",
}


def _common(p):
    p.add_argument("system_dir", type=Path, help="system folder holding system.yaml (e.g. systems/water)")
    p.add_argument("--profile", default="quick", help="settings profile from system.yaml: 'quick' (default; <= 20 min on 2 CPU cores) or 'full'")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<system>-<profile> in the current directory)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cgexplain", description="Machine-learned coarse-grained models and GNN-LRP explanations. "
                                 "Units: Å, ps, K, amu, kcal/mol, kcal/mol/Å.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run every stage (reference, map, train, simulate, analyse, explain); finished stages are reused",
                       description="Run every stage into one run folder; a second run reuses finished stages.")
    _common(p)
    for name, h in _STAGE_HELP.items():
        sp = sub.add_parser(name, help=h, description=h + ". Needs the earlier stages in the same run folder.")
        _common(sp)
    return ap


def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    args = build_parser().parse_args(argv)
    from .config import load_system
    from .pipeline import STAGES, default_run_dir, run_all

    cfg = load_system(args.system_dir, args.profile)
    run_dir = args.out or default_run_dir(cfg)
    stages = None if args.command == "run" else [args.command]
    print(f"cgexplain: {cfg['name']} ({args.profile}) -> run folder {Path(run_dir).resolve()}")
    summary = run_all(cfg, run_dir, progress=not args.no_progress, stages=stages)
    times = ", ".join(f"{k} {v:.0f} s" for k, v in summary["wall_time_s"].items())
    print(f"cgexplain: done ({times}). Summary: {Path(run_dir).resolve() / 'summary.json'}")
    if "analyse" in summary:
        a = summary["analyse"]
        print(f"  RDF max|Δg| {a['rdf_max_abs_diff']:.3f}; first peak ref {a['rdf_first_peak_reference_A']:.3f} Å, CG {a['rdf_first_peak_cg_A']:.3f} Å; "
              f"ADF JS distance {a['adf_js_distance']:.3f}")
    print(f"  figures: {Path(run_dir).resolve() / 'figures'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
