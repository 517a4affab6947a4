"""The pretrained models in the honest relevance metrics, beside the network's own deletion
interactions, and the publication's methane SO3net on its own parity frame with the same metrics.

Models: the publication's SO3net (``../shared/parity``; or ``tests/data/parity``), and this
project's pretrained methane PaiNN and water PaiNN (``systems/*/pretrained``). Frames: the
methane models start from the publication's parity frame (125 beads), the water model from its
``frame.npz`` (256 beads); four more frames follow by CG Langevin with the model itself
(``--steps`` steps apart, at the temperature and time step of its own CG simulation: 250 K, 4 fs; 300 K, 2 fs), so every frame is one the model itself
samples.

Per model:
- on the first frame, every walk enumerated, for both rule settings (γ 0.1 with the bias rule; γ 0):
  signed sums per body order, shares of Σ|R| over walks of >= 2 beads s_k and signed σ_k, and the
  relevance budget (E_model, E_modified, Σ walks; the parts taken by the rule and by the biases);
- over the five frames (pruned enumeration, γ 0.1): the mean and the frame-to-frame standard
  deviation of the 2- and 3-body sums (offset-free: the per-type energy offset cannot reach them);
- on the first frame, the network's deletion interactions I_ij and I_ijk on ``--pairs`` sampled
  pairs within the cutoff and ``--triplets`` sampled triplets (two legs inside the first shell)
  beside the per-pair and per-triplet LRP sums: Spearman ρ and sign agreement, and
  rms(I_ijk)/rms(I_ij).

Prints one table per model; ``--json`` writes every number. Not a test.

    python benchmarks/pretrained_metrics.py [--pairs 150] [--triplets 150] [--steps 200] [--json docs/pretrained_metrics.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from cgexplain.lrp import walk_relevance
from cgexplain.lrp.interactions import SubsetEnergy, deletion_interactions, pairs_within, triplets_with_vertex
from cgexplain.lrp.nbody import body_order_abs_sums, body_order_shares, nbody_sums, pair_relevance, triplet_relevance
from cgexplain.mapping.maps import to_atoms

ROOT = Path(__file__).resolve().parents[1]
RULES = {"γ0.1+bias": (0.1, True), "γ0": (0.0, False)}


def _parity_dir() -> Path:
    for d in (ROOT.parent / "shared" / "parity", ROOT / "tests" / "data" / "parity"):
        if (d / "so3net_methane_state_dict.pt").exists():
            return d
    raise SystemExit("parity data not found (../shared/parity or tests/data/parity)")


def _frames(model, x0, types, masses, cell, cutoff, temperature, timestep, steps, n_more, seed=1):
    """The start frame and ``n_more`` frames of CG Langevin with the model, ``steps`` apart."""
    from cgexplain.md.langevin import SimSettings, langevin

    out = [np.asarray(x0, float)]
    s = SimSettings(temperature=temperature, timestep=timestep, n_steps=steps * n_more, save_interval=steps, seed=seed, skin=1.0)
    langevin(model, x0, types, masses, cell, cutoff, s, writer=lambda x, k: out.append(np.asarray(x, float)), progress=False)
    return out[: n_more + 1]


def _lookup(keys, table_keys, values):
    d = {tuple(k): v for k, v in zip(np.asarray(table_keys).tolist(), values)}
    return np.array([d.get(tuple(k), 0.0) for k in np.asarray(keys).tolist()])


def _rho(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan"), float("nan")
    nz = np.abs(b) > 1e-12
    return float(spearmanr(a, b)[0]), float(np.mean(np.sign(a[nz]) == np.sign(b[nz])))


def analyse(name, model, frames, types, cell, shell, n_pairs, n_triplets, seed=0) -> dict:
    model = model.double()
    L = int(model.representation.n_interactions)
    cutoff = float(model.representation.cutoff)
    atoms0 = to_atoms(frames[0], types, cell)
    out: dict = {"model": name, "n_beads": int(len(types)), "n_frames": len(frames), "rules": {}}
    t0 = time.perf_counter()
    full = {}
    for rname, (g, br) in RULES.items():
        res = walk_relevance(model, atoms0, gamma=g, bias_rule=br)
        w, r = res["walks"], res["relevance"]
        sums = nbody_sums(w, r)
        orders = sorted(sums)
        sh = body_order_shares(np.array([sums[o][0] for o in orders]), body_order_abs_sums(w, r, L + 1))
        full[rname] = (w, r)
        out["rules"][rname] = {
            "n_walks": int(len(r)),
            "signed_sum_by_order": {str(o): float(sums[o][0]) for o in orders},
            "s_k": {str(k): float(v) for k, v in sh["abs"].items()},
            "sigma_k": {str(k): float(v) for k, v in sh["signed"].items()},
            "budget": {
                "E_model": float(res["E_model"]),
                "E_modified": float(res["E_modified"]),
                "sum_walks": float(r.sum()),
                "taken_by_rule": float(res["E_model"] - res["E_modified"]),
                "taken_by_biases": float(res["E_modified"] - r.sum()),
            },
        }
    # offset-free: frame-to-frame fluctuation of the 2- and 3-body sums (γ 0.1, pruned)
    per = []
    for x in frames:
        res = walk_relevance(model, to_atoms(x, types, cell), gamma=0.1, bias_rule=True, max_order=L if L >= 3 else None)
        s = nbody_sums(res["walks"], res["relevance"])
        per.append([float(s.get(k, (0.0,))[0]) for k in (2, 3)])
    per_a = np.array(per)
    out["fluctuation_gamma01"] = {
        "frames": len(frames),
        "2body_mean": float(per_a[:, 0].mean()),
        "2body_std": float(per_a[:, 0].std(ddof=1)),
        "3body_mean": float(per_a[:, 1].mean()),
        "3body_std": float(per_a[:, 1].std(ddof=1)),
    }
    # deletion interactions on the first frame beside the LRP sums
    rng = np.random.default_rng(seed)
    x, n = frames[0], len(types)
    pairs = pairs_within(x, cell, cutoff)
    tri = triplets_with_vertex(x, cell, shell)
    ps = pairs[rng.choice(len(pairs), min(n_pairs, len(pairs)), replace=False)]
    ts = tri[rng.choice(len(tri), min(n_triplets, len(tri)), replace=False)]
    E = SubsetEnergy(model, x, types, cell, batch_size=16)
    I2, I3 = deletion_interactions(E, n, ps), deletion_interactions(E, n, ts)
    dele = {
        "pairs": int(len(ps)),
        "triplets": int(len(ts)),
        "rms_I3_over_rms_I2": float(np.sqrt(np.mean(I3**2)) / np.sqrt(np.mean(I2**2))),
        "subset_energies": E.n_evaluations,
    }
    for rname, (w, r) in full.items():
        lp, lr, _ = pair_relevance(w, r)
        lt, ltr = triplet_relevance(w, r)
        rp, sp = _rho(_lookup(ps, lp, lr), I2)
        rt, st = _rho(_lookup(ts, lt, ltr), I3)
        dele[rname] = {"pairs_rho": rp, "pairs_sign": sp, "triplets_rho": rt, "triplets_sign": st}
    out["deletion_first_frame"] = dele
    out["seconds"] = time.perf_counter() - t0
    return out


def _print(res: dict) -> None:
    print(f"\n== {res['model']}: {res['n_beads']} beads; {res['seconds']:.0f} s")
    for rname, s in res["rules"].items():
        b = s["budget"]
        sk = " / ".join(f"{100 * s['s_k'][k]:.1f}" for k in sorted(s["s_k"]))
        sg = " / ".join(f"{100 * s['sigma_k'][k]:+.1f}" for k in sorted(s["sigma_k"]))
        print(f"  {rname:<9} walks {s['n_walks']:,}; s_k (k = 2..) {sk} %; σ_k {sg} %")
        print(
            f"            budget: E_model {b['E_model']:.3f}, E_modified {b['E_modified']:.3f}, Σ walks {b['sum_walks']:.3f} kcal/mol "
            f"(rule {b['taken_by_rule']:+.3f}, biases {b['taken_by_biases']:+.3f}); signed sums "
            + ", ".join(f"{k}: {v:.3f}" for k, v in s["signed_sum_by_order"].items())
        )
    f = res["fluctuation_gamma01"]
    print(
        f"  over {f['frames']} frames (γ0.1): 2-body {f['2body_mean']:.3f} ± {f['2body_std']:.3f}, 3-body {f['3body_mean']:.3f} ± {f['3body_std']:.3f} (mean ± s.d.)"
    )
    d = res["deletion_first_frame"]
    print(f"  deletion (first frame; {d['pairs']} pairs, {d['triplets']} triplets): rms(I_ijk)/rms(I_ij) {d['rms_I3_over_rms_I2']:.3f}")
    for rname in RULES:
        e = d[rname]
        print(
            f"    LRP {rname:<9} vs I: pairs ρ {e['pairs_rho']:.2f} (sign {100 * e['pairs_sign']:.0f} %), triplets ρ {e['triplets_rho']:.2f} (sign {100 * e['triplets_sign']:.0f} %)"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--triplets", type=int, default=150)
    ap.add_argument("--steps", type=int, default=200, help="CG Langevin steps between the five frames")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    from cgexplain.lrp.parity import load_parity
    from cgexplain.workflow.pretrained import load_pretrained

    pm, patoms, _, _ = load_parity(_parity_dir())
    cell_m = np.asarray(patoms.cell[:], float)
    types_m = np.asarray(patoms.numbers)
    results = []
    methane_T = 250.0
    for name, model in (
        ("publication SO3net (methane, parity frame)", pm),
        ("cgexplain methane PaiNN (pretrained)", load_pretrained(ROOT / "systems/methane/pretrained")[0]),
    ):
        types = types_m if "publication" in name else np.ones(len(types_m), int)
        fr = _frames(model.float(), patoms.positions, types, np.full(len(types), 16.043), cell_m, 5.0, methane_T, 0.004, a.steps, 4)
        results.append(analyse(name, model, fr, types, cell_m, 5.608, a.pairs, a.triplets))
        _print(results[-1])
    wm, wmeta, _ = load_pretrained(ROOT / "systems/water/pretrained")
    with np.load(ROOT / "systems/water/pretrained/frame.npz") as z:
        xw, cw, tw = z["positions"], z["cell"], z["bead_types"]
    fr = _frames(wm.float(), xw, tw, np.full(len(tw), 18.015), cw, float(wmeta["hparams"]["cutoff"]), 300.0, 0.002, a.steps, 4)
    results.append(analyse("cgexplain water PaiNN (pretrained)", wm, fr, tw, cw, 3.3, a.pairs, a.triplets))
    _print(results[-1])
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
