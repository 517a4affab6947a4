"""Why branching walks do not move the mW triplet ranking: how much relevance passes through the
vector products, and how each part of a triplet's relevance ranks the network's own I_ijk.

For a finished ``cgexplain run systems/mw`` (PaiNN) on ``--frames`` held-out frames (the training's
validation split): the branching rule's conserved total C_b split into the ordinary walks (no
product: the walks of the pass whose products are constant) and the product terms (C_b − ordinary);
per triplet the branching relevance R_b, its ordinary-walk part R_o and its product part R_b − R_o,
and the publication's R_p; each ranked (Spearman ρ) against the network's deletion interactions
I_ijk on ``--triplets`` triplets per frame with t >= 0.1 kcal/mol (those with |I| >= 0.1), beside
the radial-envelope baseline; and the share Σ|R_b − R_o| / Σ|R_b| over all triplets. γ 0 (no bias
rule) and γ 0.1 with it. Not a timed test.

    python benchmarks/branching_diagnostic.py runs/mw-quick [--frames 3] [--triplets 150] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from cgexplain.fileio import read_json
from cgexplain.lrp.branching import BranchingPaiNN, _dense, sets_from_factors
from cgexplain.lrp.engine import _inputs
from cgexplain.lrp.faithfulness import TRIPLET_THRESHOLD, item_metrics, triplet_baselines
from cgexplain.lrp.interactions import SubsetEnergy, deletion_interactions, triplets_with_vertex
from cgexplain.mapping.maps import to_atoms
from cgexplain.model.potential import load_model
from cgexplain.reference.potentials import MW
from cgexplain.workflow.run import RunFolder


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--triplets", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    run = RunFolder(args.run)
    pot = MW(**read_json(run.reference_json)["settings"].get("potential", {}))
    model = load_model(run.model)[0].double()
    with np.load(run.mapped) as z:
        P, C, types = z["positions"], z["cells"], z["bead_types"]
    val = np.sort(np.load(run.folder("train") / "split.npz")["val"])
    frames = val[np.unique(np.linspace(0, len(val) - 1, args.frames).round().astype(int))]
    out: dict = {"run": str(args.run), "frames": frames.tolist(), "rules": {}}
    for gname, (g, br) in {"γ0": (0.0, False), "γ0.1+bias": (0.1, True)}.items():
        acc: dict[str, list] = {k: [] for k in ("I", "R_p", "R_b", "R_o", "env", "all_b", "all_o")}
        split = []
        rng = np.random.default_rng(args.seed)
        for f in frames:
            x, cell = P[f].astype(float), C[f].astype(float)
            n = len(x)
            lrp = BranchingPaiNN(model, gamma=g, bias_rule=br)
            inp = _inputs(model, to_atoms(x, types, cell), None, float(lrp.rep.cutoff))
            fb = lrp.set_factors(inp, "branching")
            fp = lrp.set_factors(inp, "publication")
            c_b = _dense(fb)
            fo = dataclasses.replace(fb, rule="publication")  # the Jacobians without the product and no product terms: ordinary walks only
            c_o = _dense(fo)
            sb = sets_from_factors(fb)
            tri_all, rb = sb["triplets"], sb["triplet_relevance"]
            ro = sets_from_factors(fo, tri_all)["triplet_relevance"]
            split.append({"C_b": c_b, "ordinary": c_o, "products": c_b - c_o})
            acc["all_b"].append(rb)
            acc["all_o"].append(ro)
            tt, te = pot.triplet_energies(x, cell)
            tri = triplets_with_vertex(x, cell, pot.cutoff)
            d = {tuple(k): v for k, v in zip(tt.tolist(), te)}
            t = np.array([d.get(tuple(k), 0.0) for k in tri.tolist()])
            pick = rng.choice(np.flatnonzero(t >= TRIPLET_THRESHOLD), args.triplets, replace=False)
            ts = tri[pick]
            E = SubsetEnergy(model, x, types, cell, batch_size=8)
            acc["I"].append(deletion_interactions(E, n, ts))
            idx = {tuple(k): i for i, k in enumerate(tri_all.tolist())}
            rows = np.array([idx[tuple(k)] for k in ts.tolist()])
            acc["R_p"].append(sets_from_factors(fp, ts)["triplet_relevance"])
            acc["R_b"].append(rb[rows])
            acc["R_o"].append(ro[rows])
            acc["env"].append(triplet_baselines(x, cell, ts, pot.three_body_envelope, pot.cutoff)["radial envelope"])
            print(f"  {gname} frame {f}: C_b {c_b:.3f}, ordinary walks {c_o:.3f}, products {c_b - c_o:.3f} kcal/mol", flush=True)
        cat = {k: np.concatenate(v) for k, v in acc.items()}
        sel = np.abs(cat["I"]) >= TRIPLET_THRESHOLD
        res = {
            "split_mean": {k: float(np.mean([s[k] for s in split])) for k in split[0]},
            "product_share_of_triplet_abs": float(np.abs(cat["all_b"] - cat["all_o"]).sum() / np.abs(cat["all_b"]).sum()),
            "n_triplets_I_ge_0.1": int(sel.sum()),
        }
        for name, v in (
            ("publication R_p", cat["R_p"]),
            ("branching R_b", cat["R_b"]),
            ("ordinary walks R_o", cat["R_o"]),
            ("products R_b - R_o", cat["R_b"] - cat["R_o"]),
            ("baseline: radial envelope", cat["env"]),
        ):
            res[name] = item_metrics(v[sel], cat["I"][sel])["spearman"]
        out["rules"][gname] = res
        print(f"== {gname}: {json.dumps(res, ensure_ascii=False)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
