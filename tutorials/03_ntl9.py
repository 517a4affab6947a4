# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 3: NTL9, a protein with one bead per residue
#
# NTL9 (K12M) is the 39-residue N-terminal domain of ribosomal protein L9: a three-stranded β-sheet packed against an
# α-helix, one of the fast folders of Lindorff-Larsen et al. (Science 2011) and the protein of Bonneau et al.'s
# "Peering inside the black box". Here every residue becomes one bead at its Cα atom, and a graph neural network
# (PaiNN) plus physics priors learns the potential of mean force of those 39 beads from all-atom forces.
#
# Then we ask the model *why* the protein is stable: GNN-LRP attributes the network's output to walk relevances (kcal/mol; they sum to Σ h0·∂E/∂h0, not to the energy), which we
# sum into residue pairs and residue triplets, and we try a mutation *in silico*.
#
# The path: **reference** (OpenMM, amber14 + GBn2 implicit solvent) → **mapping** (Cα beads, residue-summed forces) →
# **priors** (bonds, angles, dihedrals, repulsion by Boltzmann inversion) → **training** (force matching on the
# residual) → **simulation** (CG Langevin replicas) → **protein analysis** (RMSD, Q, Rg, TICA) → **residue maps** →
# **mutation what-if**. The quick settings below run in a few minutes on 2 CPU cores, so their numbers are only a
# demonstration; section 9 loads the pretrained model, trained by `cgexplain` on a longer reference, for real maps.

# %%
import os, json, warnings
warnings.filterwarnings("ignore", message="IProgress not found")   # no ipywidgets needed
warnings.filterwarnings("ignore", category=DeprecationWarning)
from pathlib import Path
import numpy as np
from IPython.display import Image, Markdown, display

from cgexplain.workflow.config import load_system
from cgexplain.workflow.run import RunFolder
from cgexplain.workflow import stages

# TUTORIAL_MODE=ci (the default) and quick both use the system's quick profile, which fits CI
# (a few minutes on 2 CPU cores); TUTORIAL_MODE=full uses the settings of the pretrained model.
MODE = os.environ.get("TUTORIAL_MODE", "ci")
cfg = load_system("../systems/ntl9", "full" if MODE == "full" else "quick")
run = RunFolder(Path("runs") / f"ntl9-{MODE}")
figs = run.figures
print(run.root.resolve())

# %% [markdown]
# ## 1. Reference: all-atom MD with forces
#
# OpenMM builds NTL9 with amber14 and the GBn2 implicit solvent, minimises it, and runs Langevin dynamics at 300 K
# (hydrogen mass repartitioning, 4 fs steps). Some runs start from the native structure; others start from snapshots
# of a short 400 K run, meant to widen what the data sample. Whether they did is measured, not assumed: in the
# pretrained model's reference (`systems/ntl9/pretrained/provenance.json`) the two seeded runs stayed within 1.09 Å
# CA-RMSD of native (mean 0.70 and 0.83 Å), no farther out than the native runs (max 1.37 Å over all four runs, every
# frame within the 3 Å folded threshold): the 400 K seeding did not take the data out of the native basin. Every run
# is re-equilibrated at 300 K before a frame is saved: force matching estimates the mean force of the atomistic ensemble at given bead positions, which holds
# once the atoms are at equilibrium at the target temperature, wherever the beads were seeded. The CA-RMSD to the
# minimised native structure records what each run sampled.

# %%
ref = stages.stage_reference(cfg, run, progress=False)
for r in ref["check"]["runs"]:
    print(f"run {r['run']} ({r['kind']}): CA-RMSD mean {r['rmsd_mean_A']:.2f} Å, max {r['rmsd_max_A']:.2f} Å")
print(f"{ref['n_frames']} frames of {ref['n_atoms']} atoms; production took {ref['timings_s'].get('production_s', float('nan')):.0f} s")
display(Image(figs / "reference_rmsd.png"))

# %% [markdown]
# ## 2. Mapping: one bead per residue
#
# The bead sits on the Cα atom; its type is the residue name (20 amino acids, so a mutation changes only this number).
# The force map sums the forces of *every* atom of the residue, with the C-terminal amide cap (NHE) joined to residue 39.
# That choice satisfies the consistency condition of Noid et al. (D Cᵀ = 1) and cancels the H-bond constraint forces
# that OpenMM leaves out of its forces, because each constrained X–H pair lies inside one bead.

# %%
mp = stages.stage_map(cfg, run, progress=False)
import MDAnalysis as mda
from cgexplain.mapping.maps import make_mapping
u = mda.Universe(str(run.reference_topology))
m = make_mapping(u, by="residue", method="atom", atom_name="CA", type_table="amino_acids")
print(f"{m.n_beads} beads from {m.n_atoms} atoms; consistency max|D Cᵀ − 1| = {np.abs((m.force_map @ m.position_map.T).toarray() - np.eye(m.n_beads)).max():.1e}")
print("bead types:", " ".join(f"{n}{t}" for n, t in zip(m.bead_names[:8], m.bead_types[:8])), "...")
print(f"last bead holds {len(m.bead_atoms[-1])} atoms: {[u.atoms[i].name for i in m.bead_atoms[-1]]}")

# %% [markdown]
# ## 3–4. Priors and force matching
#
# A network trained only on native-basin forces has never seen two beads overlap or a chain stretched apart, so it
# cannot be trusted there. Physics priors fill that gap: harmonic Cα–Cα bonds and Cα–Cα–Cα angles, Cα dihedrals as a
# short Fourier series, and a repulsion for pairs more than two bonds apart, each fitted by Boltzmann inversion
# (U = −k_BT ln p) of the mapped reference at 300 K. The network is then trained on the residual force (mapped force
# minus prior force), and the priors are saved inside the model, so simulation and explanation use the same energy.

# %%
tr = stages.stage_train(cfg, run, progress=False)
pj = json.loads((run.priors_json).read_text())
print(f"mean |mapped force| {pj['mean_abs_mapped_force']:.2f} kcal/mol/Å; after subtracting the priors {pj['mean_abs_residual_force']:.2f}")
print(f"validation force MAE {tr['validation']['force_mae']:.2f}, RMSE {tr['validation']['force_rmse']:.2f} kcal/mol/Å "
      f"(mean |force| {tr['validation']['mean_abs_reference_force']:.2f})")
display(Image(figs / "priors.png"))

# %% [markdown]
# ## 5. CG simulation
#
# Several Langevin replicas of the 39 beads run in one batched pass of the model, starting from frames of the native
# reference runs.

# %%
sim = stages.stage_simulate(cfg, run, progress=False)
print(f"{sim['n_replicas']} replicas × {sim['n_frames']} frames; kinetic temperature {sim['mean_kinetic_temperature_K']:.0f} K")

# %% [markdown]
# ## 6. Protein analysis: CG against the mapped reference
#
# CA-RMSD to the native structure, the fraction of native contacts Q (Best–Hummer–Eaton, Cα contacts within 8 Å),
# the radius of gyration, the bond/angle/dihedral distributions, and a free-energy surface on the reference's TICA
# (deeptime, fitted on the reference runs; both ensembles projected on it).

# %%
an = stages.stage_analyse(cfg, run, progress=False)
print(f"CA-RMSD mean: reference {an['rmsd_mean_reference_A']:.2f} Å, CG {an['rmsd_mean_cg_A']:.2f} Å; "
      f"Q: {an['q_mean_reference']:.2f} vs {an['q_mean_cg']:.2f}; Rg: {an['rg_mean_reference_A']:.2f} vs {an['rg_mean_cg_A']:.2f} Å")
print(f"folded (CA-RMSD ≤ 3 Å): {100 * an['folded_fraction_cg']:.0f} % of CG frames")
for f in ("protein_distributions.png", "internal_distributions.png", "tica_fes.png"):
    display(Image(figs / f))

# %% [markdown]
# ## 7. Which residues hold NTL9 together?
#
# GNN-LRP gives every walk of beads through the network's layers a relevance in kcal/mol; walks that visit exactly two
# residues sum into a residue-pair map, walks over three residues into triplets. Negative relevance stabilises. The
# priors are explicit terms and are not part of these maps: they show what the *network* learned. The secondary-structure
# elements come from DSSP on the native structure.

# %%
ex = stages.stage_explain(cfg, run, progress=False)
print(f"{ex['n_frames']} folded CG frames; relevance by body order (kcal/mol):",
      {k: round(v, 2) for k, v in ex["body_sum_mean_kcal_mol"].items()})
print("secondary structure:", ", ".join(f"{s['name']} {s['start']}–{s['end']}" for s in ex["segments"]))
display(Markdown("**All pairs** (chain neighbours dominate):\n\n" + ex["pair_table_markdown"]))
display(Markdown("**Tertiary pairs** (|i − j| ≥ 3):\n\n" + ex["tertiary_pair_table_markdown"]))
display(Image(figs / "residue_pair_relevance.png"))
display(Image(figs / "triplet_projection.png"))

# %% [markdown]
# The same relevance on the structure: summed per residue (each pair's relevance shared ½ by its two residues, each
# triplet's ⅓ by its three, so the residues sum to the 2- and 3-body totals; a relevance in kcal/mol, not an energy),
# written into the B-factor column of `lrp/relevance_2body.pdb` and `lrp/relevance_3body.pdb` on the native all-atom
# structure. The B-factors are scaled so that the largest |value| is 99.99 (the scale is in a REMARK line); colour
# them with one symmetric range, e.g. in PyMOL `spectrum b, blue_white_red, minimum=-99.99, maximum=99.99`
# (blue stabilising). Below, the 2-body file in py3Dmol, if it is installed (`pip install py3Dmol`).

# %%
q2 = np.array(ex["residue_relevance_2body_kcal_mol"])
print("most stabilising residues (2-body, kcal/mol):", ", ".join(f"{m.bead_names[i]}{i + 1} {q2[i]:+.2f}" for i in np.argsort(q2)[:3]))
for f in ex["relevance_pdb"].values():
    print(f"{f['path']}: on the {f['structure']}, B-factor = relevance × {f['bfactor_scale_per_kcal_mol']:.2f} per kcal/mol")
try:
    import py3Dmol
except ImportError:
    py3Dmol = None
    print("py3Dmol is not installed, so no 3-D view here: open the PDB files above in PyMOL, VMD or ChimeraX")
if py3Dmol is not None:
    view = py3Dmol.view(width=640, height=420)
    view.addModel((run / ex["relevance_pdb"]["2body"]["path"]).read_text(), "pdb")
    # red-white-blue with min > max runs reversed: negative (stabilising) blue, positive red
    view.setStyle({"cartoon": {"colorscheme": {"prop": "b", "gradient": "rwb", "min": 99.99, "max": -99.99}}})
    view.zoomTo()
    view.show()

# %% [markdown]
# ## 8. A mutation what-if
#
# Phe5 sits in the hydrophobic core between strand β1 and the helix. We change its bead type to Ala and ask the model how
# the CG energy of the native ensemble changes, and which residue pairs change relevance. Two limits, stated plainly:
# the model never saw the mutant in training, so ΔE is its extrapolation on wild-type conformations, with no relaxation,
# not a folding free energy; and force matching never fixes a constant energy per bead type (the composition of the
# training data never changes), so the total ΔE carries an arbitrary offset ε(Ala) − ε(Phe). The change of the 2- and
# more-body relevance is free of that offset, and is the number to read.

# %%
mu = ex["mutation"]
print(f"{mu['spec']}: total ΔE = {mu['dE_mean_kcal_mol']:+.2f} ± {mu['dE_sem_kcal_mol']:.2f} kcal/mol over {mu['n_frames']} native frames "
      f"(includes the undetermined per-type offset)")
print("ΔE by body order on the explained frames (kcal/mol):", {k: round(v, 2) for k, v in mu["dE_by_body_order_kcal_mol"].items()},
      f"; 2+-body: {mu['dE_multibody_kcal_mol']:+.2f}")
for c in mu["largest_pair_changes"][:3]:
    print(f"  pair {c['resname_i']}{c['i']}–{c['resname_j']}{c['j']}: {c['change_kcal_mol']:+.3f} kcal/mol")
display(Image(figs / "mutation_pair_difference.png"))
if "simulation" in mu:  # CG replicas of the mutant against the wild type's
    ms = mu["simulation"]
    print(f"CG simulation of {mu['spec']}: CA-RMSD mean {ms['rmsd_mean_mutant_A']:.2f} Å (wild type {ms['rmsd_mean_wild_type_A']:.2f}), "
          f"Q {ms['q_mean_mutant']:.3f} ({ms['q_mean_wild_type']:.3f}), folded {100 * ms['folded_fraction_mutant']:.0f} % "
          f"({100 * ms['folded_fraction_wild_type']:.0f} %)")
    display(Image(figs / "mutant_distributions.png"))

# the same in Python, for any mutation: positions are 1-based, names one-letter or three-letter
from cgexplain.model.potential import load_model
from cgexplain.mapping.maps import MappedTrajectory
from cgexplain.lrp.mutations import mutation_whatif
model, meta = load_model(run.model)
traj = MappedTrajectory.load(run.mapped)
w = mutation_whatif(model, traj.positions[:10].astype(float), traj.bead_types, m.bead_names, "L6A,L35A", meta["type_table"],
                    explain=False, progress=False)
print(f"L6A,L35A on 10 reference frames: ΔE = {w['dE_mean']:+.2f} ± {w['dE_sem']:.2f} kcal/mol")
try:
    mutation_whatif(model, traj.positions[:1].astype(float), traj.bead_types, m.bead_names, "L40A", meta["type_table"], explain=False)
except ValueError as e:
    print("error, as it should be:", e)

# %% [markdown]
# ## 9. The pretrained model
#
# `systems/ntl9/pretrained/` holds a PaiNN model with priors trained by `cgexplain run systems/ntl9 --profile full`
# (its provenance and cost are in `provenance.json` and README.md). Its results were computed when it was made; here we
# load them and draw its residue maps, and run its energy on the quick reference frames above.

# %%
from cgexplain.workflow.pretrained import load_pretrained
pre = Path("../systems/ntl9/pretrained")
if not (pre / "model.pt").exists():
    print("no pretrained NTL9 model in this checkout")
else:
    pmodel, pmeta, pres = load_pretrained(pre)
    a, l = pres["analysis"], pres["lrp"]
    print(f"pretrained: validation force MAE {pres['training']['validation']['force_mae']:.2f} kcal/mol/Å; "
          f"folded {100 * a['folded_fraction_cg']:.0f} % of CG frames (CA-RMSD ≤ 3 Å); Q {a['q_mean_cg']:.2f} (reference {a['q_mean_reference']:.2f})")
    display(Markdown("**Tertiary pairs** (|i − j| ≥ 3) of the pretrained model:\n\n" + l["tertiary_pair_table_markdown"]))
    if "mutation" in l:
        lm = l["mutation"]
        print(f"{lm['spec']}: total ΔE = {lm['dE_mean_kcal_mol']:+.2f} ± {lm['dE_sem_kcal_mol']:.2f} kcal/mol; "
              f"2+-body part {lm.get('dE_multibody_kcal_mol', float('nan')):+.2f} kcal/mol")
        if "simulation" in lm:
            ms = lm["simulation"]
            print(f"  its CG replicas: CA-RMSD {ms['rmsd_mean_mutant_A']:.2f} Å (wild type {ms['rmsd_mean_wild_type_A']:.2f}), "
                  f"Q {ms['q_mean_mutant']:.3f} ({ms['q_mean_wild_type']:.3f}), folded {100 * ms['folded_fraction_mutant']:.0f} %")
    from cgexplain.plots.residues import plot_pair_map
    rr = pres["residues"]
    native = pres["protein"]["native"]
    d = np.linalg.norm(native[:, None] - native[None], axis=-1)
    sep = np.abs(np.arange(39)[:, None] - np.arange(39)[None])
    fig = plot_pair_map(rr["pair_map"], ((d < 8) & (sep >= 3)).astype(float), segments=l["segments"],
                        title="pretrained NTL9: residue-pair relevance", contact_label="native CA contacts")
    # the same model on the quick reference frames: energy = network + priors
    from cgexplain.lrp.mutations import model_energies
    e = model_energies(pmodel, traj.positions[:20].astype(float), traj.bead_types)
    print(f"pretrained model energy on 20 quick reference frames: {e.mean():.1f} ± {e.std():.1f} kcal/mol")
