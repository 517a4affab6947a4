"""Mutation what-ifs for one-bead-per-residue protein models.

A point mutation of a CG protein changes only the bead type of the mutated residue (its bead
sits on the CA either way). :func:`mutation_whatif` evaluates the trained model on the wild
type's frames with the mutant's types: the energy change per frame and, optionally, how the
residue-pair relevance map (:mod:`cgexplain.lrp.residues`) moves.

Bead types come from :data:`cgexplain.aminoacids.AMINO_ACID_TYPES`: the 20 standard residues in alphabetical order of their three-letter codes (ALA = 1 ...
VAL = 20). Protonation and force-field variants are read as their parent residue
(:data:`cgexplain.aminoacids.RESIDUE_ALIASES`): histidine HID, HIE, HIP (Amber) and HSD, HSE, HSP
(CHARMM) -> HIS, and likewise CYX/CYM -> CYS, ASH -> ASP, GLH -> GLU, LYN -> LYS; a CG bead does
not resolve protonation states.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from typing import NamedTuple

import numpy as np

from cgexplain.aminoacids import AMINO_ACID_TYPES, ONE_LETTER, canonical_resname
from cgexplain.lrp.residues import explain_protein_frames
from cgexplain.model.potential import batch_inputs, check_system, warn_system

__all__ = [
    "Mutation",
    "parse_mutations",
    "mutate_types",
    "model_energies",
    "mutation_whatif",
]


class Mutation(NamedTuple):
    """One point mutation: ``position`` 1-based residue number, ``wild_type`` and ``mutant``
    standard three-letter names."""

    position: int
    wild_type: str
    mutant: str

    @property
    def code(self) -> str:
        """e.g. ``L6A``."""
        return f"{ONE_LETTER.get(self.wild_type, 'X')}{self.position}{ONE_LETTER.get(self.mutant, 'X')}"


_CODE = re.compile(r"^([A-Za-z]{3}|[A-Za-z])(\d+)([A-Za-z]{3}|[A-Za-z])$")


def _native(resnames, pos):
    raw = str(resnames[pos - 1])
    try:
        return canonical_resname(raw)
    except ValueError:
        return raw.strip().upper()  # a non-standard native residue: kept as is


def _check_position(pos, n, spec):
    if isinstance(pos, (bool, np.bool_)) or not isinstance(pos, (int, np.integer)):
        try:
            if float(pos) != int(float(pos)):
                raise ValueError
            pos = int(float(pos))
        except (TypeError, ValueError):
            raise ValueError(f"mutation {spec!r}: position {pos!r} is not an integer residue number (1..{n})") from None
    pos = int(pos)
    if not 1 <= pos <= n:
        raise ValueError(f"mutation {spec!r}: position {pos} is out of range; residues are numbered 1..{n}")
    return pos


def parse_mutations(spec, resnames) -> list:
    """Read a mutation specification against the native sequence ``resnames`` (n,).

    ``spec`` may be a string of codes "L6A,I4A" (one-letter wild type, 1-based position, one-letter
    mutant; three-letter names "LEU6ALA" also work; separated by commas, semicolons or spaces), a
    list of such codes or of (position, new name) pairs [(6, "ALA"), (4, "A")], or a dict
    {6: "ALA"}. Positions are 1-based residue numbers. An empty spec gives no mutations.

    Returns a list of :class:`Mutation` (position, wild_type, mutant) in the given order.
    Raises ValueError, naming the position, the residue and the allowed names, for an unknown
    residue name, a position outside 1..n, a code whose wild-type residue is not the native one,
    or a position given twice.
    """
    n = len(resnames)
    items: list[tuple[int, str, str | None, str]] = []  # (position, new name, given wild type or None, text for messages)
    if spec is None:
        return []
    if isinstance(spec, Mutation):
        spec = [spec]
    if isinstance(spec, str):
        spec = [t for t in re.split(r"[,;\s]+", spec.strip()) if t]
    if isinstance(spec, dict):
        spec = list(spec.items())
    if isinstance(spec, tuple) and len(spec) == 2 and not isinstance(spec[0], (tuple, list, str)):
        spec = [spec]  # a single (position, name) pair
    for it in spec:
        if isinstance(it, Mutation):
            items.append((it.position, it.mutant, it.wild_type, it.code))
        elif isinstance(it, str):
            m = _CODE.match(it.strip())
            if m is None:
                raise ValueError(f"cannot read mutation {it!r}: expected e.g. 'L6A' (wild type, 1-based position, mutant)")
            items.append((int(m.group(2)), m.group(3), m.group(1), it.strip()))
        elif isinstance(it, (tuple, list)) and len(it) == 2:
            items.append((it[0], it[1], None, f"{it[0]}:{it[1]}"))
        else:
            raise ValueError(f"cannot read mutation {it!r}: use a code 'L6A', a pair (6, 'ALA') or a dict {{6: 'ALA'}}")
    out, seen = [], set()
    for pos, new, wt, text in items:
        pos = _check_position(pos, n, text)
        native = _native(resnames, pos)
        where = f" for position {pos} (native {native}) in mutation {text!r}"
        new = canonical_resname(new, where)
        if wt is not None:
            wt_c = canonical_resname(wt, f" as the wild type of mutation {text!r} at position {pos}")
            if wt_c != native:
                raise ValueError(f"mutation {text!r}: residue {pos} is {native} ({ONE_LETTER.get(native, '?')}), not {wt_c} ({ONE_LETTER[wt_c]})")
        if pos in seen:
            raise ValueError(f"mutation {text!r}: position {pos} is mutated twice")
        seen.add(pos)
        out.append(Mutation(pos, native, new))
    return out


def mutate_types(types, resnames, mutations, type_table=None):
    """Bead types and residue names of the mutant.

    types (n,) ints; resnames (n,); mutations: anything :func:`parse_mutations` reads (or its
    result); type_table: residue name -> bead type (default :data:`AMINO_ACID_TYPES`).
    Returns (new types (n,) int64, new resnames list). Raises ValueError if a mutant residue is
    not in ``type_table`` or if a mutated position's type disagrees with the table's type of its
    native residue (types and resnames out of step).
    """
    table = AMINO_ACID_TYPES if type_table is None else {str(k).upper(): int(v) for k, v in dict(type_table).items()}
    types = np.asarray(types, dtype=np.int64)
    if len(types) != len(resnames):
        raise ValueError(f"types ({len(types)}) and resnames ({len(resnames)}) differ in length")
    muts = parse_mutations(mutations, resnames)
    new_t, new_r = types.copy(), [str(r) for r in resnames]
    for m in muts:
        k = m.position - 1
        if m.mutant not in table:
            raise ValueError(
                f"mutation {m.code}: residue {m.mutant} (position {m.position}) has no bead type in the type table; table holds {sorted(table)}"
            )
        if m.wild_type in table and table[m.wild_type] != int(types[k]):
            raise ValueError(
                f"position {m.position}: bead type {int(types[k])} but the type table gives {m.wild_type} -> "
                f"{table[m.wild_type]}; are types and resnames in step?"
            )
        new_t[k] = table[m.mutant]
        new_r[k] = m.mutant
    return new_t, new_r


def _cutoff(model) -> float:
    c = getattr(model.representation, "cutoff", None)
    if c is None:
        raise ValueError("the model's representation has no cutoff; pass cutoff=")
    return float(c.max()) if hasattr(c, "max") else float(c)


def model_energies(model, positions, types, *, batch_size: int = 32, cutoff: float | None = None, progress: bool = False) -> np.ndarray:
    """The model's total energy (kcal/mol; the output ``energy``: network plus any prior module)
    of each frame. positions (F, n, 3) Å, non-periodic; types (n,). Frames go through the model in
    batches of ``batch_size`` (:func:`cgexplain.model.potential.batch_inputs`, in the model's dtype); the
    forces module is skipped. cutoff Å: the neighbour-list cutoff (default the representation's).
    Returns (F,) float64."""
    import torch
    from schnetpack.atomistic import Forces
    from tqdm.auto import tqdm

    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    par = next(model.parameters())
    cut = _cutoff(model) if cutoff is None else float(cutoff)
    out = []
    starts = range(0, len(pos), int(batch_size))
    with torch.no_grad():
        for s in tqdm(starts, desc="energies", disable=not progress or len(starts) < 2):
            x = batch_inputs(pos[s : s + batch_size], types, None, cut, dtype=par.dtype, device=par.device)
            for m in model.input_modules:
                x = m(x)
            x = model.representation(x)
            for m in model.output_modules:
                if not isinstance(m, Forces):
                    x = m(x)
            if hasattr(model, "postprocess"):
                x = model.postprocess(x)
            out.append(x["energy"].detach().double().cpu().numpy().reshape(-1))
    return np.concatenate(out) if out else np.zeros(0)


def mutation_whatif(
    model,
    positions,
    types,
    resnames,
    mutations,
    type_table=None,
    explain: bool = True,
    gamma: float = 0.1,
    progress: bool = True,
    *,
    bias_rule: bool = True,
    batch_size: int = 32,
    out_dir=None,
    cutoff: float | None = None,
    wild_type: dict | None = None,
) -> dict:
    """What the model says about a mutation, on the wild type's (native-ensemble) frames.

    For each frame of ``positions`` (F, n, 3) Å (non-periodic) the model's total energy
    (network + any prior; the output ``energy``, kcal/mol) with the wild-type ``types`` and with
    the mutant's types (:func:`mutate_types`), ΔE = E_mutant - E_wild_type per frame, its mean
    and standard error (std with ddof 1 / √F; frames taken as independent, so correlated MD
    frames understate it; NaN for one frame). With ``explain`` also the residue-pair relevance
    maps (:func:`cgexplain.lrp.residues.explain_protein_frames`, LRP ``gamma``/``bias_rule``,
    network energy only) of wild type and mutant averaged over the frames, and their difference
    (mutant - wild type), likewise for the triplet projection. ``out_dir`` keeps the per-frame
    relevance files (``wild_type/``, ``mutant_<codes>/``) for reuse; without it they go to a
    temporary folder. ``wild_type``: the result of
    :func:`~cgexplain.lrp.residues.explain_protein_frames` on the same ``positions`` and ``types``
    with the same rule, if the caller has it already (it is not computed again).

    Limits, honestly: the model never saw the mutant in training. ΔE is the model's
    extrapolation to the mutant's bead type on wild-type conformations, without relaxing the
    structure; it is not a ΔΔG of folding (no unfolded-state reference, no entropy, no
    conformational response). A mutant bead type that does not occur in the training protein has
    an untrained embedding: the result lists such types in ``types_unseen_in_wild_type`` and warns.

    Returns a dict: ``mutations`` (codes), ``types_wt``/``types_mutant``, ``resnames_mutant``,
    ``E_wt``, ``E_mutant``, ``dE`` (F,), ``dE_mean``, ``dE_sem``, ``dE_std`` (kcal/mol), and with
    ``explain``: ``pair_map_wt``, ``pair_map_mutant``, ``pair_map_diff`` (n, n),
    ``triplet_projection_wt``, ``triplet_projection_mutant``, ``triplet_projection_diff`` (n,),
    ``body_sum_wt``, ``body_sum_mutant`` ({order: mean}).

    Before any computation the wild type is checked against what the model was trained for
    (:func:`~cgexplain.model.potential.check_system`; a model from
    :func:`~cgexplain.model.potential.load_model` carries its model.json): raises
    :class:`~cgexplain.model.potential.SystemMismatchError` (a ValueError) for a bead count other
    than the one the model's priors were fitted for, :class:`~cgexplain.model.potential.BeadTypeError`
    (a ValueError) for wild-type bead types the model was not trained on; warns when the model was
    trained on periodic frames (these frames are not periodic) or for a sequence other than the
    trained chain's. Raises ValueError for positions that are not (F, n, 3) and for mutations
    :func:`mutate_types` refuses.
    """
    types = np.asarray(types, dtype=np.int64)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    if pos.shape[1:] != (len(types), 3):
        raise ValueError(f"positions must be (F, {len(types)}, 3), got {pos.shape}")
    warn_system(check_system(None, types, "the wild type", model=model, cells=np.zeros((3, 3))))
    muts = parse_mutations(mutations, resnames)
    t_mut, r_mut = mutate_types(types, resnames, muts, type_table)
    unseen = sorted({int(t) for t in t_mut} - {int(t) for t in types})
    if unseen:
        warnings.warn(
            f"mutant bead types {unseen} do not occur in the wild type: if the model was trained on this protein only, their "
            "embeddings are untrained and ΔE is not meaningful",
            stacklevel=2,
        )
    E_wt = model_energies(model, pos, types, batch_size=batch_size, cutoff=cutoff, progress=progress)
    E_mut = model_energies(model, pos, t_mut, batch_size=batch_size, cutoff=cutoff, progress=progress)
    dE = E_mut - E_wt
    F = len(dE)
    res = {
        "mutations": [m.code for m in muts],
        "types_wt": types,
        "types_mutant": t_mut,
        "resnames_mutant": r_mut,
        "E_wt": E_wt,
        "E_mutant": E_mut,
        "dE": dE,
        "dE_mean": float(dE.mean()),
        "dE_std": float(dE.std(ddof=1)) if F > 1 else float("nan"),
        "dE_sem": float(dE.std(ddof=1) / np.sqrt(F)) if F > 1 else float("nan"),
        "types_unseen_in_wild_type": unseen,
        "units": "kcal/mol",
    }
    if explain:
        from pathlib import Path

        tag = "_".join(m.code for m in muts) or "none"
        with tempfile.TemporaryDirectory(prefix="cgexplain_mut_") as tmp:
            base = Path(out_dir) if out_dir is not None else Path(tmp)
            wt = (
                wild_type
                if wild_type is not None
                else explain_protein_frames(model, pos, types, base / "wild_type", gamma=gamma, bias_rule=bias_rule, progress=progress)
            )
            mu = explain_protein_frames(model, pos, t_mut, base / f"mutant_{tag}", gamma=gamma, bias_rule=bias_rule, progress=progress)
        res.update(
            pair_map_wt=wt["pair_map"],
            pair_map_mutant=mu["pair_map"],
            pair_map_diff=mu["pair_map"] - wt["pair_map"],
            triplet_projection_wt=wt["triplet_projection"],
            triplet_projection_mutant=mu["triplet_projection"],
            triplet_projection_diff=mu["triplet_projection"] - wt["triplet_projection"],
            body_sum_wt=wt["body_sum_mean"],
            body_sum_mutant=mu["body_sum_mean"],
        )
    return res
