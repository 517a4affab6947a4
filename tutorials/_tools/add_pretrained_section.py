"""Append the 'pretrained model' section to tutorials 01 and 02 (idempotent: replaces an earlier one)."""
import json, sys
from pathlib import Path

MARK = "<!-- pretrained-section -->"


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n").splitlines(True)}


def code(text):
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": text.strip("\n").splitlines(True)}


def section(name, label, quick_stats_expr, intro, reading):
    return [
        md(f"""{MARK}
## 7. The pretrained model: publication-quality relevance without training

{intro}

`load_pretrained` returns the model (rebuilt from `model.json`, weights loaded with
`torch.load(..., weights_only=True)`) and the numbers and arrays the full run produced: training result,
structure of its own CG simulation against the mapped reference, and walk-relevance statistics over 100 frames.
Nothing here trains or simulates, so it runs in seconds."""),
        code(f"""
from cgexplain.pretrained import load_pretrained, plot_pretrained_relevance, plot_relevance_comparison

pre_model, pre_meta, pre = load_pretrained("../systems/{name}/pretrained")
hp, v, a, prov = pre_meta["hparams"], pre["training"]["validation"], pre["analysis"], pre["provenance"]
print(f"PaiNN F={{hp['n_atom_basis']}}, {{hp['n_interactions']}} layers, cutoff {{hp['cutoff']}} Å; "
      f"{{pre['training']['n_train_frames']}} training frames; validation force MAE {{v['force_mae']:.2f}}, "
      f"RMSE {{v['force_rmse']:.2f}} kcal/mol/Å")
print(f"made {{prov['exported']}} on {{prov['machine']['cpus']}} CPU cores; wall time (s):",
      {{k: round(t) for k, t in prov["wall_time_s"].items()}})
print(f"its CG simulation: RDF max|Δg| {{a['rdf_max_abs_diff']:.3f}}; first peak {{a['rdf_first_peak_cg_A']:.3f}} Å "
      f"(reference {{a['rdf_first_peak_reference_A']:.3f}} Å); ADF JS distance {{a['adf_js_distance']:.3f}}; "
      f"mean q {{a['q_mean_cg']:.3f}} (reference {{a['q_mean_reference']:.3f}})")
body = pre["lrp"]["relevance_by_body_order_kcal_mol_mean"]
print(f"relevance by body order, mean over {{pre['lrp']['n_frames']}} frames (kcal/mol):",
      {{k: round(x, 3) for k, x in body.items()}})
f2, f3 = plot_pretrained_relevance(pre, "{label}, pretrained")
"""),
        md("""### Quick model against pretrained model

The same frame explained by both models, and the curves of this notebook's quick model (few frames, short
training) over the pretrained model's 100-frame averages. Each curve is divided by its own largest
|mean| (raw kcal/mol curves), so models with different energy scales, or runs with different per-frame
normalisations, compare by shape."""),
        code(f"""
from cgexplain.lrp import walk_relevance, nbody_sums
from cgexplain.mapping import MappedTrajectory, to_atoms
from cgexplain.models import load_model

ref_cg = MappedTrajectory.load(run / "cg" / "mapped.npz")
frame = to_atoms(ref_cg.positions[-1], ref_cg.bead_types, ref_cg.cells[-1])   # last mapped reference frame
res_q = walk_relevance(load_model(run / "model")[0], frame)
res_pre = walk_relevance(pre_model, frame)
q_sums, p_sums = nbody_sums(res_q["walks"], res_q["relevance"]), nbody_sums(res_pre["walks"], res_pre["relevance"])
print("body order    quick model   pretrained   (kcal/mol, one frame)")
for k in sorted(q_sums):
    print(f"  {{k}}-body   {{q_sums[k][0]:12.3f}} {{p_sums[k][0]:12.3f}}")
quick_stats = {quick_stats_expr}
curves = {{"quick (this notebook)": quick_stats, "pretrained (100 frames)": pre["nbody"]}}
fig2 = plot_relevance_comparison(curves, pre["structure"], "two", title="{label}: 2-body relevance, quick vs pretrained")
fig3 = plot_relevance_comparison(curves, pre["structure"], "three", title="{label}: 3-body relevance, quick vs pretrained")
"""),
        md(reading),
    ]


def apply(path, cells_new, drop_last_md_if=None):
    nb = json.loads(Path(path).read_text())
    cells = nb["cells"]
    for i, c in enumerate(cells):
        if MARK in "".join(c["source"]):
            cells = cells[:i]
            break
    nb["cells"] = cells + cells_new
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    texts = json.loads(Path(sys.argv[1]).read_text())
    which = sys.argv[2:] or ["methane", "water"]
    if "methane" in which:
      apply("tutorials/01_methane.ipynb", section(
        "methane", "methane",
        'dict(np.load(run / "lrp" / "nbody_statistics.npz"))', texts["methane_intro"], texts["methane_reading"]))
    if "water" in which:
      apply("tutorials/02_water.ipynb", section(
        "water", "water",
        'dict(np.load(run / "lrp-reference-frames" / "nbody_statistics.npz"))', texts["water_intro"], texts["water_reading"]))
