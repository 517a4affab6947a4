"""Fluids (water, methane, Lennard-Jones, mW): one bead per molecule, periodic box.

- reference: :func:`cgexplain.reference.fluids.run_reference` and the RDF check of
  ``reference.check`` (first peak, digitised curve, NPT density);
- analyse: RDF, ADF and tetrahedral order of the CG simulation against the mapped reference;
- explain: GNN-LRP walk relevances on ``lrp.n_frames`` CG frames, n-body statistics and the 2-body
  (against distance) and 3-body (against angle) curves.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from cgexplain.analysis.structure import FluidAnalysis, first_peak, rdf, reference_noise, structure_comparison, structure_ensembles
from cgexplain.fileio import read_json, save_npz, write_json
from cgexplain.lrp.bodyorder import explain_body_order
from cgexplain.lrp.branching import check_rule_model
from cgexplain.lrp.settings import LrpSection
from cgexplain.lrp.statistics import explain_frames
from cgexplain.mapping.maps import MappedTrajectory
from cgexplain.model.potential import load_model
from cgexplain.plots.core import plot_rdf, plot_structure_comparison
from cgexplain.reference.fluids import ReferenceCheck, ReferenceSettings, read_reference, run_reference
from cgexplain.reference.potentials import MW, LennardJones
from cgexplain.settings import ConfigError, validate_section
from cgexplain.workflow.kinds.base import STAGE_SECTIONS, Kind
from cgexplain.workflow.run import RunFolder

__all__ = ["FluidKind"]


class FluidKind(Kind):
    name = "fluid"
    sections = {**STAGE_SECTIONS, "priors": None, "analysis": FluidAnalysis, "lrp": LrpSection}
    reference_schema = ReferenceSettings

    def validate_reference(self, path: Path, ref: dict) -> dict:
        """The OpenMM reference section with its optional RDF ``check`` (:class:`ReferenceCheck`);
        the analytic potential's parameters and the box density of the bead fluids are checked too."""
        ref = dict(ref)
        check = ref.pop("check", None)
        out = validate_section(path, "reference", self.reference_schema, ref)
        if check is not None:
            out["check"] = validate_section(path, "reference.check", ReferenceCheck, check)
        if out["system"] in ("lj", "mw"):
            cls = LennardJones if out["system"] == "lj" else MW
            try:
                cls(**out["potential"])
            except TypeError as e:
                raise ConfigError(f"{path}: reference.potential: {e}; known: {', '.join(inspect.signature(cls).parameters)}") from None
        if out["system"] in ("methane", "lj", "mw") and out["density"] <= 0:
            raise ConfigError(f"{path}: reference.density: a {out['system']} box needs a density > 0 g/cm³")
        return out

    def reference(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:

        rc = dict(cfg["reference"])
        check = rc.pop("check", None)
        if run.is_done("reference"):
            summary = read_json(run.done_file("reference"))
        else:
            summary = run_reference(ReferenceSettings.from_dict(rc), run.reference, progress=progress)
        if check and not run.reference_check.exists():
            self._check_reference(cfg, run, check, summary)
        if run.reference_check.exists():
            summary = {**summary, "check": read_json(run.reference_check)}
            c = summary["check"]
            extra = f"; RMS vs digitised {c['rms_vs_digitized']:.3f} (max {c['max_rms']})" if "rms_vs_digitized" in c else ""
            if "npt_mean_density_g_cm3" in c:
                extra += f"; NPT density {c['npt_mean_density_g_cm3']:.3f} g/cm³ (expected {c['expected_density_g_cm3']})"
            print(
                f"reference RDF check ({c['selection']}): first peak {c['first_peak_A']:.3f} Å, height {c['first_peak_height']:.2f}{extra}: "
                f"{'PASS' if c['passed'] else 'FAIL'}"
            )
        return summary

    @staticmethod
    def _check_reference(cfg: dict, run: RunFolder, check: dict, summary: dict) -> None:
        from MDAnalysis.lib.mdamath import triclinic_vectors

        u = read_reference(run.reference)
        sel = u.select_atoms(check["selection"])
        if sel.n_atoms == 0:
            raise ValueError(f"reference.check.selection {check['selection']!r} selects no atoms")
        pos = np.array([sel.positions for _ in u.trajectory])
        cells = np.array([triclinic_vectors(ts.dimensions) for ts in u.trajectory])
        r, g = rdf(pos, cells, r_max=float(check["r_max"]), n_bins=int(check["n_bins"]))
        pk, h = first_peak(r, g)
        res = {"selection": check["selection"], "first_peak_A": pk, "first_peak_height": h, "passed": True}
        curves = {f"reference ({check['selection']})": g}
        if check.get("peak_A") is not None:
            lo, hi = check["peak_A"]
            hlo, hhi = check["height"]
            res.update(expected_peak_A=[lo, hi], expected_height=[hlo, hhi], passed=bool(lo <= pk <= hi and hlo <= h <= hhi))
        if check.get("digitized") is not None:
            rms, r_lo, r_hi, g_ref = rdf_rms_against_digitized(r, g, Path(cfg["system_dir"]) / check["digitized"], check["rms_range_A"])
            curves["publication (digitised)"] = g_ref
            res.update(
                digitized=check["digitized"],
                rms_vs_digitized=rms,
                rms_range_A=[r_lo, r_hi],
                max_rms=float(check["max_rms"]),
                passed=bool(res["passed"] and rms <= float(check["max_rms"])),
            )
        if check.get("density_g_cm3") is not None:  # the NPT equilibrium density against a literature range
            lo, hi = check["density_g_cm3"]
            rho = summary.get("npt_mean_density_g_cm3")
            if rho is None:
                raise ValueError("reference.check.density_g_cm3 needs an NPT equilibration (reference.equilibration_npt > 0)")
            res.update(npt_mean_density_g_cm3=float(rho), expected_density_g_cm3=[lo, hi], passed=bool(res["passed"] and lo <= rho <= hi))
        save_npz(run.reference / "check_rdf.npz", r=r, g=g)
        write_json(run.reference_check, res)
        plot_rdf(r, curves, run.figures / "reference_rdf.png", title="Reference RDF check")

    def analyse(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        """RDF, ADF and tetrahedral order of the CG simulation against the mapped reference:
        compute (:func:`cgexplain.analysis.structure.structure_ensembles`), figures (:func:`cgexplain.plots.core.plot_structure_comparison`),
        then ``structure.npz`` and, last, ``analysis.json``."""
        ac = cfg["analysis"]
        ref = MappedTrajectory.load(run.mapped)
        cg_pos, cg_cells, _ = run.cg_frames()
        out = structure_ensembles({"reference": (ref.positions, ref.cells), "cg": (cg_pos, cg_cells)}, ac)
        plot_structure_comparison(out, run.figures, cfg["name"], float(ac["shell_cutoff"]))
        save_npz(run.structure_npz, **{f"{k}_{q}": v for k, dd in out.items() for q, v in dd.items() if isinstance(v, np.ndarray)})
        res = {
            **structure_comparison(out),
            "shell_cutoff_A": float(ac["shell_cutoff"]),
            "neighbours_in_shell_reference": out["reference"]["neighbours_in_shell"],
            "neighbours_in_shell_cg": out["cg"]["neighbours_in_shell"],
            "n_frames_reference": out["reference"]["n_frames"],
            "n_frames_cg": out["cg"]["n_frames"],
            # the same numbers between two blocks of the reference of the CG sample's size
            "reference_noise": reference_noise(ref.positions, ref.cells, ac, out["cg"]["n_frames"]),
            # a fluid model has no prior: nothing to tell the network's contribution from
            "prior_only_control": "skipped: the model has no prior, so there is no prior-only ensemble to compare the network with",
        }
        write_json(run.analysis / "analysis.json", res)
        return res

    def _explain_body_order(self, cfg: dict, run: RunFolder, src, lc: dict, progress: bool) -> dict:
        """The exact 1/2/3-body terms of a MACE model (:func:`cgexplain.lrp.bodyorder.explain_body_order`)
        on the chosen CG frames, binned on the lrp section's distance and angle grids."""
        model, _ = load_model(run.model)
        lo, hi, nb = lc["r_edges"]
        structure = dict(np.load(run.structure_npz)) if run.structure_npz.exists() else None
        return explain_body_order(
            model,
            src,
            run.lrp,
            r_edges=np.linspace(float(lo), float(hi), int(nb) + 1),
            a_edges=np.linspace(0.0, 180.0, int(lc["angle_bins"]) + 1),
            shell=float(cfg["analysis"]["shell_cutoff"]),
            structure=structure,
            figures=run.figures,
            title=cfg["name"],
            progress=progress,
        )

    def explain(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:

        src = run.cg_source()  # streamed: only the explained frames are read
        lc = dict(cfg["lrp"])
        frames = np.unique(np.linspace(0, len(src) - 1, int(lc["n_frames"])).round().astype(int))
        src.frame_ids = src.frame_ids[frames]
        if lc.get("rule", "publication") != "publication":  # before any frame: a branching rule needs a PaiNN
            check_rule_model(lc["rule"], load_model(run.model)[0], f"lrp.rule of {run.root}")
        if cfg["model"]["representation"] == "mace":  # body-ordered: its own exact terms, no walks
            return self._explain_body_order(cfg, run, src, lc, progress)
        workers, device = int(lc.pop("workers")), lc.pop("device")
        backend = lc.pop("backend")
        return explain_frames(
            run.model,
            src,
            None,
            None,
            run.lrp,
            lc,
            shell=float(cfg["analysis"]["shell_cutoff"]),
            structure=run.structure_npz,
            figures=run.figures,
            title=cfg["name"],
            frame_ids=frames,
            progress=progress,
            workers=workers,
            backend=backend,
            device=device,
        )


def rdf_rms_against_digitized(r: np.ndarray, g: np.ndarray, path: Path, r_range) -> tuple[float, float, float, np.ndarray]:
    """RMS of g - g_digitised over ``r_range`` (Å) where both exist.

    r (n,) Å and g (n,): a computed RDF. ``path``: an .npz with r (nm) and g, NaN where the
    published figure has no curve. Returns (rms, r_lo Å, r_hi Å, g_digitised on r (NaN outside)).
    Raises FileNotFoundError for a missing file, ValueError if fewer than 5 points overlap.
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"reference.check.digitized: {path} does not exist")
    z = np.load(path)
    rr, gg = 10.0 * z["r"], z["g"]
    ok = np.isfinite(gg)
    g_ref = np.interp(r, rr[ok], gg[ok], left=np.nan, right=np.nan)
    sel = (r >= r_range[0]) & (r <= r_range[1]) & np.isfinite(g_ref)
    if sel.sum() < 5:
        raise ValueError(f"reference.check: fewer than 5 RDF points in {r_range} Å overlap the digitised curve {path}")
    return float(np.sqrt(np.mean((g[sel] - g_ref[sel]) ** 2))), float(r[sel][0]), float(r[sel][-1]), g_ref
