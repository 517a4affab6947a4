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
# # Tutorial 2: liquid water, one bead per molecule
#
# Water coarse-grained to one bead per molecule is the classic case where pair potentials fail: the tetrahedral
# hydrogen-bond network needs many-body terms. This notebook builds the CG model with cgexplain and asks, with GNN-LRP,
# how the relevance of the learned model splits over 2-, 3- and 4-body walks (a relevance, not an energy).
#
# Stages: TIP3P reference with OpenMM → centre-of-mass mapping → PaiNN force matching → CG Langevin dynamics →
# RDF, ADF and tetrahedral order → walk relevances. Units: Å, ps, K, amu, kcal/mol.

# %%
import os, json, warnings
warnings.filterwarnings("ignore", message="IProgress not found")   # no ipywidgets needed
warnings.filterwarnings("ignore", category=DeprecationWarning)
from pathlib import Path
import numpy as np
from IPython.display import Image, display

from cgexplain.workflow.config import load_system
from cgexplain.workflow.run import RunFolder
from cgexplain.workflow import stages

# TUTORIAL_MODE=ci (the default) keeps every stage small enough for CI (a few minutes on 2 CPU
# cores); TUTORIAL_MODE=quick uses the system's quick profile unchanged.
MODE = os.environ.get("TUTORIAL_MODE", "ci")

cfg = load_system("../systems/water", "quick")
if MODE == "ci":
    cfg["reference"].update(n_molecules=128, equilibration_npt=10.0, equilibration_nvt=5.0, production=30.0, nonbonded_cutoff=7.0)
    cfg["reference"]["check"]["r_max"] = 7.0
    cfg["training"].update(epochs=3)
    cfg["simulation"].update(n_steps=1500, save_interval=30)
    cfg["analysis"].update(rdf_r_max=7.0, rdf_bins=140)
    cfg["lrp"].update(n_frames=3)
run = RunFolder(Path("runs") / f"water-{MODE}")
figs = run.figures
print(run.root.resolve())

# %% [markdown]
# ## 1. Reference: TIP3P with OpenMM
#
# OpenMM's Modeller fills a box with TIP3P; NPT equilibration finds the density (TIP3P: 0.984 g/cm³ at 300 K), and the
# production box is the NPT state closest to the mean volume. Rigid water: OpenMM's forces leave out the constraint
# forces, which the molecule's summed force map cancels.

# %%
ref = stages.stage_reference(cfg, run, progress=False)
c = ref["check"]
print(f"NPT density {ref['npt_mean_density_g_cm3']:.3f} g/cm³; O–O first peak {c['first_peak_A']:.2f} Å, height {c['first_peak_height']:.2f}: {'pass' if c['passed'] else 'FAIL'}")
display(Image(figs / "reference_rdf.png"))

# %% [markdown]
# ## 2–4. Mapping, force matching and CG simulation

# %%
mp = stages.stage_map(cfg, run, progress=False)
tr = stages.stage_train(cfg, run, progress=False)
sim = stages.stage_simulate(cfg, run, progress=False)
print(f"{mp['n_beads']} beads, {mp['n_frames']} frames; validation force MAE {tr['validation']['force_mae']:.2f} kcal/mol/Å; "
      f"CG simulation {sim['n_frames']} frames at {sim['mean_kinetic_temperature_K']:.0f} K")

# %% [markdown]
# ## 5. Structure
#
# A good one-bead water model must reproduce the first peak of g(r) near 2.8 Å and the tetrahedral angles (≈ 100°
# at legs shorter than 3.3 Å).

# %%
an = stages.stage_analyse(cfg, run, progress=False)
print(f"RDF max|Δg| {an['rdf_max_abs_diff']:.3f}; first peak reference {an['rdf_first_peak_reference_A']:.2f} Å, CG {an['rdf_first_peak_cg_A']:.2f} Å")
print(f"ADF JS distance {an['adf_js_distance']:.3f}; mean q reference {an['q_mean_reference']:.3f}, CG {an['q_mean_cg']:.3f}")
for f in ("rdf.png", "adf.png", "q.png"):
    display(Image(figs / f))

# %% [markdown]
# ## 6. How does the learned model's relevance split by body order?
#
# `explain_trajectory` (the Python side of `cgexplain explain MODEL_DIR TRAJECTORY`) computes every walk of the
# chosen frames, groups relevances by body order, and bins 2-body relevance against distance and 3-body relevance against
# the angle at the central bead.

# %%
from cgexplain.lrp.explain import explain_trajectory

s = explain_trajectory(run.model, run.mapped, run.root / "lrp-reference-frames", frames="0:-1:100",
                       shell=3.3, r_edges=(2.0, 6.0, 40), progress=False)
print(f"{s['n_frames']} frames, {s['walks_per_frame_mean']:,.0f} walks per frame, {s['seconds_per_frame_mean']:.2f} s per frame")
for k, v in s["relevance_by_body_order_kcal_mol_mean"].items():
    print(f"  {k}-body walks: {v:9.3f} kcal/mol (signed sum, mean over frames; s.d. over frames {s['relevance_by_body_order_std_over_frames_kcal_mol'][k]:.3f})")
b = s["relevance_budget_kcal_mol_mean"]
print(f"budget (kcal/mol): E_model {b['E_model']:.2f}, E_modified {b['E_modified']:.2f}, Σ walks {b['sum_walks']:.2f}; "
      f"taken by the γ rule {b['taken_by_rule_E_model_minus_E_modified']:.2f}, by the biases {b['taken_by_biases_E_modified_minus_sum_walks']:.2f}")
if s.get("abs_share_by_body_order_ge2"):
    print("s_k, share of Σ|R| over walks of >= 2 beads:", {k: f"{100 * v:.1f} %" for k, v in s["abs_share_by_body_order_ge2"].items()},
          "| signed σ_k:", {k: f"{100 * v:+.1f} %" for k, v in s["signed_share_by_body_order_ge2"].items()})
display(Image(run.root / "lrp-reference-frames" / "figures" / "relevance_2body.png"))
display(Image(run.root / "lrp-reference-frames" / "figures" / "relevance_3body.png"))

# %% [markdown]
# Negative relevance stabilises. Where the 2-body curve dips at the first RDF peak, the model rewards first-shell
# neighbours; 3-body relevance against angle shows whether tetrahedral angles are preferred over the 60° triangles of
# a simple liquid. With the short CI training these curves are only indicative; the README shows them for the quick and
# full models.

# %% [markdown]
# <!-- pretrained-section -->
# ## 7. The pretrained model: publication-quality relevance without training
#
# `systems/water/pretrained/` holds a PaiNN trained by cgexplain itself at the full setting (`cgexplain run systems/water --profile full`): a 300 ps TIP3P reference of 256 molecules (3,000 frames), 64 features, 3 layers, 6 Å cutoff, 6 epochs, a 40 ps CG simulation, and relevance over 100 of its frames, all on 2 CPU cores (about 1.4 hours after the reference). Its CG simulation reproduces the reference RDF to max |Δg| 0.081 with the first peak 0.001 Å off (height 2.77 against 2.76), the publication's level; like every one-bead model here, it under-structures the tetrahedral order (mean q 0.50 against 0.56).
#
# `load_pretrained` returns the model (rebuilt from `model.json`, weights loaded with
# `torch.load(..., weights_only=True)`) and the numbers and arrays the full run produced: training result,
# structure of its own CG simulation against the mapped reference, and walk-relevance statistics over 100 frames.
# Nothing here trains or simulates, so it runs in seconds.

# %%
from cgexplain.plots.pretrained import plot_pretrained_relevance, plot_relevance_comparison
from cgexplain.workflow.pretrained import load_pretrained

pre_model, pre_meta, pre = load_pretrained("../systems/water/pretrained")
hp, v, a, prov = pre_meta["hparams"], pre["training"]["validation"], pre["analysis"], pre["provenance"]
print(f"PaiNN F={hp['n_atom_basis']}, {hp['n_interactions']} layers, cutoff {hp['cutoff']} Å; "
      f"{pre['training']['n_train_frames']} training frames; validation force MAE {v['force_mae']:.2f}, "
      f"RMSE {v['force_rmse']:.2f} kcal/mol/Å")
print(f"made {prov['exported']} on {prov['machine']['cpus']} CPU cores; wall time (s):",
      {k: round(t) for k, t in prov["wall_time_s"].items()})
print(f"its CG simulation: RDF max|Δg| {a['rdf_max_abs_diff']:.3f}; first peak {a['rdf_first_peak_cg_A']:.3f} Å "
      f"(reference {a['rdf_first_peak_reference_A']:.3f} Å); ADF JS distance {a['adf_js_distance']:.3f}; "
      f"mean q {a['q_mean_cg']:.3f} (reference {a['q_mean_reference']:.3f})")
body = pre["lrp"]["relevance_by_body_order_kcal_mol_mean"]
print(f"relevance by body order, mean over {pre['lrp']['n_frames']} frames (kcal/mol):",
      {k: round(x, 3) for k, x in body.items()})
f2, f3 = plot_pretrained_relevance(pre, "water, pretrained")

# %% [markdown]
# ### Quick model against pretrained model
#
# The same frame explained by both models, and the curves of this notebook's quick model (few frames, short
# training) over the pretrained model's 100-frame averages. Each curve is divided by its own largest
# |mean| (raw kcal/mol curves), so models with different energy scales, or runs with different per-frame
# normalisations, compare by shape.

# %%
from cgexplain.lrp import walk_relevance, nbody_sums
from cgexplain.mapping.maps import MappedTrajectory, to_atoms
from cgexplain.model.potential import load_model

ref_cg = MappedTrajectory.load(run.mapped)
frame = to_atoms(ref_cg.positions[-1], ref_cg.bead_types, ref_cg.cells[-1])   # last mapped reference frame
res_q = walk_relevance(load_model(run.model)[0], frame)
res_pre = walk_relevance(pre_model, frame)
q_sums, p_sums = nbody_sums(res_q["walks"], res_q["relevance"]), nbody_sums(res_pre["walks"], res_pre["relevance"])
print("body order    quick model   pretrained   (kcal/mol, one frame)")
for k in sorted(q_sums):
    print(f"  {k}-body   {q_sums[k][0]:12.3f} {p_sums[k][0]:12.3f}")
quick_stats = dict(np.load(run.root / "lrp-reference-frames" / "nbody_statistics.npz"))
curves = {"quick (this notebook)": quick_stats, "pretrained (100 frames)": pre["nbody"]}
fig2 = plot_relevance_comparison(curves, pre["structure"], "two", title="water: 2-body relevance, quick vs pretrained")
fig3 = plot_relevance_comparison(curves, pre["structure"], "three", title="water: 3-body relevance, quick vs pretrained")

# %% [markdown]
# **Reading the curves.** Negative relevance stabilises. The pretrained model's pair term is repulsive below 2.5 Å, strongly stabilising across the first RDF peak (deepest at 2.75 Å, the hydrogen-bond distance), has a second shallow stabilising dip near 3.9 Å where the second shell begins, and is zero from about 5 Å out to the 6 Å cutoff. The 3-body term is destabilising at every angle: most at 50–65° (compact, simple-liquid triangles), least at 90–115°, under the tetrahedral peak of the ADF, and rising again towards straight angles. The 3-body walk relevance favours tetrahedral arrangements of first-shell neighbours, which a pair potential cannot do. Unlike methane, 3-body walks carry a sizeable share: on the pretrained model's frame, 27 % of Σ|R| over walks of two or more beads (2-body 70 %, signed 3-body share +7.1 %), and the network's own deletion interactions agree that it is many-body (rms(I_ijk)/rms(I_ij) 0.83), although per pair and per triplet the walk sums do not rank those interactions (Spearman 0.02 and 0.17; `benchmarks/pretrained_metrics.py`, docs/systems.md). The publication's water model was not measured here, so no comparison with it is made. The quick model of this notebook has the same shapes at a different energy scale.

# %% [markdown]
# ## 8. A body-ordered model: exact 2- and 3-body maps
#
# GNN-LRP explains PaiNN through walks, and a walk holds one bead per layer: an angle that PaiNN builds inside one
# layer from two neighbours lands in 2-body walks (see the docs' "How faithful are the explanations?"). A MACE
# model with one interaction layer and correlation order 2 (`--arch mace`) is instead *exactly* a sum of 1-, 2- and
# 3-body terms, and `cgexplain.lrp.bodyorder` computes every one of them from the model on isolated clusters: the
# maps below are the model's own energy (kcal/mol), not relevances, and they add up to its energy to round-off.
#
# What this licenses: on mW water, whose true pair and three-body energies are known, such a model's triplet terms
# match the true ones (README, "How faithful are the explanations?"), and on Lennard-Jones its 3-body terms are
# small. For TIP3P water mapped to one bead the true many-body split of the CG free energy is **unknown** (it has
# terms beyond three bodies), so these maps are the best pairs-plus-triplets model force matching finds, not the
# truth; PaiNN's LRP maps above are relevances of a different, deeper model.

# %%
cfg_mace = load_system("../systems/water", "quick", arch="mace")
if MODE == "ci":
    for sec in ("reference", "analysis", "lrp"):
        cfg_mace[sec] = cfg[sec]
    cfg_mace["training"].update(epochs=1, max_minutes=None)
    cfg_mace["simulation"].update(n_steps=600, save_interval=30)
run_mace = RunFolder(Path("runs") / f"water-{MODE}-mace")
tr_mace = stages.run_all(cfg_mace, run_mace, progress=False)
v_m, v_p = tr_mace["train"]["validation"], tr["validation"]
print(f"validation force MAE per component: MACE {v_m['force_mae']:.3f}, PaiNN {v_p['force_mae']:.3f} kcal/mol/Å")
ex = tr_mace["explain"]
print(f"exact terms on {ex['frames']} CG frames (body order {ex['body_order']}): per frame Σ 2-body {ex['mean_2body_kcal_mol']:.2f}, "
      f"Σ 3-body {ex['mean_3body_kcal_mol']:.2f} kcal/mol; max |E − Σ terms| {ex['max_abs_remainder_kcal_mol']:.1e} kcal/mol")
display(Image(run_mace.figures / "bodyorder_2body.png"))
display(Image(run_mace.figures / "bodyorder_3body.png"))
