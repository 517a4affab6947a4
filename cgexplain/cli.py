"""Command line: ``cgexplain run SYSTEM_DIR`` and one subcommand per stage.

The pipeline (torch, schnetpack, MDAnalysis) is imported inside the command that needs it, so
that ``cgexplain --help`` and argument errors answer at once: the one place where cgexplain
imports its own modules lazily.

Units everywhere: Å, ps, K, amu, kcal/mol, kcal/mol/Å.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

from cgexplain.lrp.settings import LrpSection
from cgexplain.units import FORCE_UNITS, LENGTH_UNITS

_LRP = dataclasses.asdict(LrpSection())

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
    p.add_argument(
        "--arch", default=None, choices=["painn", "so3net", "mace"], help="network architecture (default: system.yaml's model.representation)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _devices(v: str):
    return int(v) if v.isdigit() else v


def _train_options(p):
    g = p.add_argument_group("training hardware (override system.yaml's training section; they do not change the run's input hashes)")
    g.add_argument("--accelerator", default=None, help="Lightning accelerator: auto (default), cpu, gpu, ...")
    g.add_argument("--devices", type=_devices, default=None, help="devices per node (default 1; e.g. 4 GPUs, or 2 CPU processes), or 'auto'")
    g.add_argument("--num-nodes", type=int, default=None, help="nodes (default 1; under SLURM: the job's nodes)")
    g.add_argument("--strategy", default=None, help="Lightning strategy: auto (default), ddp, ddp_spawn, ...; batch_size is per process")
    g.add_argument(
        "--data-path",
        default=None,
        choices=["cached", "schnetpack"],
        help="training data: frames in memory with neighbour lists computed once (cached, default) or schnetpack's ASEAtomsData",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop training after this wall time (minutes) and keep the best model so far (training.max_minutes; part of the run's inputs)",
    )


def _explain_options(p):
    p.add_argument("--workers", type=int, default=None, help="processes sharing the frames (default 1)")
    p.add_argument(
        "--backend",
        default=None,
        choices=["multiprocessing", "dask"],
        help="how the frames are spread over workers (MDAnalysis parallel backends; default multiprocessing)",
    )
    p.add_argument("--device", default=None, help="device for the relevances: cpu (default), cuda or cuda:N")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="cgexplain", description="Machine-learned coarse-grained models and GNN-LRP explanations. Units: Å, ps, K, amu, kcal/mol, kcal/mol/Å."
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "run",
        help="run every stage (reference, map, train, simulate, analyse, explain); finished stages are reused",
        description="Run every stage into one run folder; a second run reuses finished stages.",
    )
    _common(p)
    _train_options(p)
    _explain_options(p)
    for name, h in _STAGE_HELP.items():
        if name == "explain":
            continue
        sp = sub.add_parser(name, help=h, description=h + ". Needs the earlier stages in the same run folder.")
        _common(sp)
        if name == "train":
            _train_options(sp)
    ip = sub.add_parser(
        "init",
        help="write a system folder (system.yaml) for your own topology and trajectories with forces",
        description="Write DIR/system.yaml for a topology and trajectories with forces (anything MDAnalysis reads: TPR+TRR, "
        "prmtop+NetCDF, PSF+DCD, LAMMPS data+dump, H5MD, ...). The files are opened once to check them; the kind "
        "(protein or fluid) follows the mapping. Then: cgexplain run DIR.",
    )
    ip.add_argument("directory", type=Path, help="the system folder to write (created)")
    ip.add_argument("--topology", type=Path, required=True, help="topology file")
    ip.add_argument("--trajectory", type=Path, nargs="+", required=True, help="trajectory file(s) with forces, read in order")
    ip.add_argument("--select", default=None, help="MDAnalysis selection the beads cover, e.g. 'protein' (the rest is integrated out)")
    ip.add_argument(
        "--beads", default="CA", choices=["CA", "com", "cog"], help="one bead per residue at its CA (default), centre of mass or of geometry"
    )
    ip.add_argument("--temperature", type=float, default=None, help="K, the temperature the data were sampled at (required by the run)")
    ip.add_argument("--name", default=None, help="system name (default: the folder's name)")
    ip.add_argument("--force", action="store_true", help="overwrite an existing system.yaml")
    ip.add_argument(
        "--length-unit",
        default=None,
        choices=list(LENGTH_UNITS),
        help="length unit of the files, with --force-unit, where MDAnalysis cannot know it (a LAMMPS dump: 'units real' is A); "
        "the files are then read unconverted",
    )
    ip.add_argument(
        "--force-unit",
        default=None,
        choices=list(FORCE_UNITS),
        help="force unit of the files, with --length-unit (a LAMMPS dump of 'units real': kcal/mol/A)",
    )
    ip.add_argument(
        "--format",
        default=None,
        metavar="NAME",
        help="MDAnalysis format of the trajectories where the extension does not say (e.g. LAMMPSDUMP; .lammpstrj is read as LAMMPSDUMP)",
    )
    sp = sub.add_parser(
        "explain",
        help=_STAGE_HELP["explain"] + "; for a run folder's stage or for any model and CG trajectory",
        description="Two forms.  'cgexplain explain SYSTEM_DIR': the explain stage of a run (needs the earlier "
        "stages).  'cgexplain explain MODEL_DIR TRAJECTORY --out DIR': walk relevances of every walk of the chosen "
        "frames of any CG trajectory (an .npz with positions, cells, bead_types such as cg/mapped.npz, or any "
        "trajectory MDAnalysis reads with --topology and --types), n-body statistics and the two standard figures.",
    )
    sp.add_argument("target", type=Path, help="SYSTEM_DIR (holds system.yaml) or MODEL_DIR (holds model.pt and model.json)")
    sp.add_argument("trajectory", type=Path, nargs="?", default=None, help="CG trajectory (with MODEL_DIR)")
    sp.add_argument("--profile", default="quick", help="settings profile (SYSTEM_DIR form)")
    sp.add_argument("--arch", default=None, choices=["painn", "so3net", "mace"], help="architecture (SYSTEM_DIR form)")
    sp.add_argument(
        "--out", type=Path, default=None, help="run folder (SYSTEM_DIR form) or output folder (MODEL_DIR form; default lrp-<trajectory name>)"
    )
    sp.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sp.add_argument("--topology", type=Path, default=None, help="CG topology (PDB) for a trajectory that is not an .npz")
    sp.add_argument("--types", default=None, help="bead types: an .npz with bead_types (e.g. cg/mapped.npz) or a comma list of ints")
    sp.add_argument("--frames", default="all", help="frames: 'all' (default), 'start:stop[:step]' or '0,5,9'")
    sp.add_argument(
        "--rule",
        default=_LRP["rule"],
        choices=["publication", "branching", "branching-tree"],
        help="publication (default): walks with the publication's rules; branching (one branch point per walk) or branching-tree "
        "(every product branches): relevance of branching walks through PaiNN's vector products per bead set (PaiNN only)",
    )
    sp.add_argument("--gamma", type=float, default=_LRP["gamma"], help=f"LRP-gamma (default {_LRP['gamma']}, with the bias rule)")
    sp.add_argument("--no-bias-rule", action="store_true", help="plain gradient x input rule (needs --gamma 0)")
    sp.add_argument(
        "--normalise",
        default=_LRP["normalise"],
        choices=["abs_mean_total", "mean_abs", "sum_abs", "none"],
        help="per-frame normalisation of the curves: abs_mean_total (default; the publication's |Σ R| / N_walks), "
        "mean_abs (mean |R|; needs every walk), sum_abs, none",
    )
    sp.add_argument("--shell", type=float, default=None, help="leg cutoff (Å) of 3-body angles; default the first minimum of the frames' RDF")
    sp.add_argument(
        "--r-range",
        type=float,
        nargs=3,
        default=list(_LRP["r_edges"]),
        metavar=("LO", "HI", "BINS"),
        help="2-body distance bins (Å; default %(default)s, the publication's)",
    )
    sp.add_argument(
        "--save-walks",
        default=_LRP["save_walks"],
        choices=["first", "all", "none"],
        help="write every walk's relevance for the first frame (default), all frames (enumerates every walk), or none",
    )
    sp.add_argument(
        "--enumeration",
        default=_LRP["enumeration"],
        choices=["pruned", "all"],
        help="pruned (default): enumerate only walks with at most L distinct beads, the (L+1)-body total from the sum "
        "rule (same statistics, faster); all: every walk",
    )
    _explain_options(sp)
    return ap


def _explain_model(args) -> int:
    from cgexplain.lrp.explain import explain_trajectory

    out = args.out or Path(f"lrp-{args.trajectory.stem}")
    print(f"cgexplain explain: model {args.target} on {args.trajectory} -> {Path(out).resolve()}")
    r = args.r_range
    s = explain_trajectory(
        args.target,
        args.trajectory,
        out,
        topology=args.topology,
        types=args.types,
        frames=args.frames,
        rule=args.rule,
        gamma=args.gamma,
        bias_rule=not args.no_bias_rule,
        normalise=args.normalise,
        shell=args.shell,
        r_edges=(r[0], r[1], int(r[2])),
        save_walks=args.save_walks,
        enumeration=args.enumeration,
        progress=not args.no_progress,
        workers=args.workers or 1,
        backend=args.backend or _LRP["backend"],
        device=args.device,
    )
    if "body_order" in s:  # a body-ordered model: its exact terms
        _print_body_order(s)
        print(f"  files: {Path(out).resolve()} (bodyorder_statistics.npz, bodyorder.json, lrp.json, figures/)")
        return 0
    body = ", ".join(f"{k}: {v:.3f}" for k, v in s["relevance_by_body_order_kcal_mol_mean"].items())
    c = s["conservation_mean_kcal_mol"]
    print(
        f"  {s['n_frames']} frames, {s['walks_per_frame_mean']:.0f} walks per frame ({s['walks_enumerated_per_frame_mean']:.0f} enumerated, "
        f"{s['enumeration']}), {s['seconds_per_frame_mean']:.2f} s per frame"
    )
    print(f"  relevance by body order (kcal/mol, mean over frames): {body}")
    print(
        f"  Σ walks {c['sum_walk_relevance']:.4f} = Σ h0·∂E/∂h0 {c['sum_h0_dE_dh0_no_masks']:.4f}; modified-pass energy "
        f"{c['E_modified_forward']:.4f}; model energy {c['E_model']:.4f} (relevance is not energy: the rule takes "
        f"{c['E_model'] - c['E_modified_forward']:.4f}, biases {c['E_modified_forward'] - c['sum_walk_relevance']:.4f})"
    )
    if s.get("abs_share_by_body_order_ge2"):
        sh = ", ".join(f"{k}: {v:.1%}" for k, v in s["abs_share_by_body_order_ge2"].items())
        print(f"  share of Σ|R| over walks of 2 or more beads, by body order ({s['shares_from_n_frames']} fully enumerated frame(s)): {sh}")
    st = s.get("structure") or {}
    if st and not st.get("periodic"):
        print(f"  {st['rdf']}; 3-body angles with legs < {st['shell_A']:.2f} Å ({st['shell_from']})")
    print(f"  files: {Path(out).resolve()} (nbody_statistics.npz, lrp.json, figures/)")
    return 0


def _init(args) -> int:
    from cgexplain.workflow.init import init_system

    try:
        path = init_system(
            args.directory,
            args.topology,
            args.trajectory,
            args.select,
            args.beads,
            args.temperature,
            args.name,
            args.force,
            length_unit=args.length_unit,
            force_unit=args.force_unit,
            trajectory_format=args.format,
        )
    except (ValueError, OSError) as e:
        print(f"cgexplain init: error: {e}", file=sys.stderr)
        return 2
    print(f"cgexplain init: wrote {path}; edit it, then: cgexplain run {args.directory}")
    if args.temperature is None:
        print("cgexplain init: reference.temperature is a placeholder: set it (K) before running", file=sys.stderr)
    return 0


#: warnings of the libraries below cgexplain that a user cannot act on (placeholder unit cells of
#: the CG topology PDB, which has no box by design; MDAnalysis and mdtraj notes on their internals)
_UNACTIONABLE_WARNINGS = (
    "Unit cell dimensions not found",
    "CRYST1 record",
    "zeroed unitcell will be written",
    "DCDReader currently makes independent timesteps",
    "Unknown masses are set to 0.0",
    "Discarding unit cell vectors",
)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the command line: library notes a user cannot act on are
    dropped (even where a library resets the warning filters), the rest are printed as one line
    ``cgexplain: warning: ...`` without the library's source line."""
    text = str(message)
    if issubclass(category, DeprecationWarning) or any(s in text for s in _UNACTIONABLE_WARNINGS):
        return
    print(f"cgexplain: warning: {text}", file=sys.stderr if file is None else file)


def main(argv=None) -> int:
    """The command line; returns the exit code (2 for bad input, with the problem named on stderr).
    Warnings are shown as one line each, and library notes a user cannot act on are dropped,
    inside this call only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command == "init":
        return _init(args)
    if args.command == "explain":
        if args.trajectory is not None or (args.target / "model.json").exists():
            if args.trajectory is None:
                ap.error(f"explain: {args.target} is a model folder; give a TRAJECTORY after it")
            try:
                return _explain_model(args)
            except (ValueError, KeyError, FileNotFoundError) as e:
                print(f"cgexplain explain: error: {e}", file=sys.stderr)
                return 2
        args.system_dir = args.target
    from cgexplain.distributed import is_main_process
    from cgexplain.workflow.config import ConfigError, load_system, validate_config
    from cgexplain.workflow.run import EXECUTION_KEYS, RunFolder, RunFolderError
    from cgexplain.workflow.stages import run_all

    try:
        cfg = load_system(args.system_dir, args.profile, arch=args.arch)
        for section in ("training", "lrp"):  # the hardware options override the execution keys of system.yaml
            for key in EXECUTION_KEYS[section]:
                if getattr(args, key, None) is not None:
                    cfg[section][key] = getattr(args, key)
        if getattr(args, "max_minutes", None) is not None:
            cfg["training"]["max_minutes"] = args.max_minutes
        cfg = validate_config(cfg, args.system_dir / "system.yaml (with command-line options)")  # keeps name, profile, arch
    except (ConfigError, FileNotFoundError) as e:
        print(f"cgexplain: error: {e}", file=sys.stderr)
        return 2
    run_dir = RunFolder(args.out) if args.out else RunFolder.default(cfg)
    stages = None if args.command == "run" else [args.command]
    main_process = is_main_process()
    if not main_process:  # a rank > 0 (DDP training, or explain under torchrun/srun): no report
        run_all(cfg, run_dir, progress=False, stages=stages)
        return 0
    print(f"cgexplain: {cfg['name']} ({args.profile}, {cfg['arch']}) -> run folder {run_dir.root.resolve()}")
    from cgexplain.mapping.maps import MappingError
    from cgexplain.model.potential import BeadTypeError, ModelFolderError
    from cgexplain.reference.external import ExternalDataError
    from cgexplain.reference.premapped import PremappedError

    try:
        summary = run_all(cfg, run_dir, progress=not args.no_progress, stages=stages)
    except (ModelFolderError, MappingError, PremappedError, ExternalDataError, BeadTypeError, RunFolderError, FileNotFoundError) as e:
        # bad input (a damaged model folder, the user's files): the message names the file, key, frame or atom
        print(f"cgexplain: error: {e}", file=sys.stderr)
        return 2
    times = ", ".join(f"{k} {v:.0f} s" for k, v in summary["wall_time_s"].items())
    print(f"cgexplain: done ({times}). Summary: {run_dir.summary_json.resolve()}")
    a = summary.get("analyse")
    if a and "folded_fraction_cg" in a:  # a protein
        print(
            f"  CA-RMSD mean ref {a['rmsd_mean_reference_A']:.2f} Å, CG {a['rmsd_mean_cg_A']:.2f} Å; Q {a['q_mean_reference']:.2f} / {a['q_mean_cg']:.2f}; "
            f"folded (CA-RMSD <= {cfg['analysis']['rmsd_threshold']:g} Å) {100 * a['folded_fraction_cg']:.0f} % of CG frames"
        )
        if a.get("observables"):
            _print_verdicts(a)
    elif a and "observables" in a:  # a bead chain: every observable, the model beside the prior-only control
        _print_verdicts(a)
    elif a:
        print(
            f"  RDF max|Δg| {a['rdf_max_abs_diff']:.3f}; first peak ref {a['rdf_first_peak_reference_A']:.3f} Å, CG {a['rdf_first_peak_cg_A']:.3f} Å; "
            f"ADF JS distance {a['adf_js_distance']:.3f}"
        )
        nz = a.get("reference_noise")
        if nz:
            print(
                f"  reference against itself ({nz['n_frames_each']} frames each, first against last): RDF max|Δg| {nz['rdf_max_abs_diff']:.3f}, "
                f"ADF JS distance {nz['adf_js_distance']:.3f} (the sampling noise of the numbers above)"
            )
    ex = summary.get("explain") or {}
    if "body_order" in ex:  # a body-ordered model: its own exact terms
        _print_body_order(ex, "explain: ")
    _print_diagnostics(summary)
    print(f"  figures: {(run_dir.root / 'figures').resolve()}")
    return 0


def _print_verdicts(a: dict) -> None:
    """The analysis table of a chain or protein: distance from the reference of the model and of
    the prior-only control, the reference's own noise, and the verdict per observable; basin populations."""
    from cgexplain.analysis.verdicts import format_verdicts

    n = a.get("n_frames") or {}
    print(
        f"  ensembles against {a['compared_with']} ({n.get('compared_with', '?')} frames; model {n.get('model', '?')}, prior only {n.get('prior_only', '?')} CG frames); "
        f"{a['distance']}; noise: {a['noise_is']}"
    )
    for line in format_verdicts(a["observables"]):
        print(f"    {line}")
    for name, pops in (a.get("populations") or {}).items():
        print(f"    populations {name:<22s} " + "  ".join(f"{k} {v:.3f}" for k, v in pops.items()))


def _print_body_order(s: dict, prefix: str = "") -> None:
    """One line on the exact many-body terms of a body-ordered model (``lrp.json`` of its explain)."""
    print(
        f"  {prefix}exact many-body terms (body order {s['body_order'] or 'unbounded'}) on {s['frames']} frames: per frame Σ 2-body "
        f"{s['mean_2body_kcal_mol']:.4g}, Σ 3-body {s['mean_3body_kcal_mol']:.4g} kcal/mol; max |remainder| {s['max_abs_remainder_kcal_mol']:.2g} kcal/mol"
    )


def _print_diagnostics(summary: dict) -> None:
    """The three diagnostics of what the data allow (map, train, simulate), one line each."""
    fl = ((summary.get("map") or {}).get("diagnostics") or {}).get("unfittable_force_floor")
    if fl:
        what = "net force" if fl["periodic"] else "net force and torque"
        print(
            f"  map: {what} per frame that no invariant conservative model can fit: force RMSE floor {fl['floor_rmse']:.3g} kcal/mol/Å "
            f"({100 * fl['floor_fraction_of_zero_mse']:.2g} % of the force MSE)"
        )
    tr = summary.get("train") or {}
    if tr.get("prior_only") and tr.get("validation"):
        p, v = tr["prior_only"], tr["validation"]
        print(
            f"  train: force RMSE prior alone {p['force_rmse']:.3g}, prior + network {v['force_rmse']:.3g} kcal/mol/Å "
            f"(zero model {p['zero_model_rmse']:.3g})"
        )
    sim = summary.get("simulate") or {}
    tc = sim.get("timestep_check")
    if tc and tc.get("chosen"):
        print(
            f"  simulate: time step {1000 * tc['timestep_ps']:.3g} fs chosen from the stiffest prior term (ω = {tc['omega_max_per_ps']:.3g} 1/ps, ω·Δt {tc['omega_dt']:.3g} <= {tc['bound']:g})"
        )
    elif tc:
        print(
            f"  simulate: stiffest prior term ω = {tc['omega_max_per_ps']:.3g} 1/ps, ω·Δt = {tc['omega_dt']:.3g} (bound {tc['bound']:g}): {'ok' if tc['ok'] else 'TOO LONG'}"
        )


if __name__ == "__main__":
    sys.exit(main())
