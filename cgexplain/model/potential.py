"""Stage 3a: schnetpack potentials (PaiNN, SO3net), their inputs, and saving/loading.

The energy is a sum of atomwise terms, E = Σ_i ε(x_i^L), and forces come from autograd,
F = -∂E/∂R (schnetpack ``Atomwise`` + ``Forces``). A model folder holds ``model.pt``
(``state_dict``) and ``model.json`` (architecture, hyper-parameters, cutoff, bead-type table,
units, cgexplain version, prior parameters under ``hparams["priors"]``, and ``trained_for``:
what system the training data were, :func:`training_record`); loading rebuilds the
modules from the JSON and loads the weights with ``torch.load(..., weights_only=True)``. Whole
modules are never pickled.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import torch

from cgexplain import __version__
from cgexplain.aminoacids import AMINO_ACID_TYPES
from cgexplain.fileio import atomic_path, read_json, write_json
from cgexplain.geometry.neighbors import neighbor_list
from cgexplain.model.kernels import accelerate
from cgexplain.model.mace import MaceRepresentation, SiteEnergySum
from cgexplain.model.priors import PriorEnergy
from cgexplain.settings import ge, gt, one_of

__all__ = [
    "ModelSettings",
    "ModelFolderError",
    "BeadTypeError",
    "SystemMismatchError",
    "DEFAULT_HPARAMS",
    "build_model",
    "save_model",
    "load_model",
    "prior_only_model",
    "trained_bead_types",
    "check_bead_types",
    "training_record",
    "trained_system",
    "check_system",
    "warn_system",
    "neighbor_list",
    "batch_inputs",
]


@dataclasses.dataclass
class ModelSettings:
    """``model`` section: the representation ('painn' or 'so3net' from schnetpack, or 'mace': the
    body-ordered MACE of :mod:`cgexplain.model.mace`), n_atom_basis features, n_interactions
    layers, cutoff Å (cosine cutoff of the radial basis; MACE: r_max of its polynomial envelope),
    n_rbf radial functions (Gaussians; MACE: Bessel functions), lmax (SO3net's largest angular
    momentum; MACE's max_ell), shared_interactions (schnetpack only), correlation (MACE's
    product-basis order ν; 1 layer with ν 2 is exactly a 2 + 3-body potential), n_types and
    avg_num_neighbors (MACE; null: set by the train stage from the training data)."""

    representation: str = one_of("painn", "so3net", "mace")
    n_atom_basis: int = gt(0, 64)
    n_interactions: int = gt(0, 3)
    cutoff: float = gt(0, 6.0, "Å")
    n_rbf: int = gt(0, 20)
    lmax: int = ge(0, 2)
    shared_interactions: bool = False
    correlation: int = gt(0, 2)
    n_types: int | None = None
    avg_num_neighbors: float | None = None


#: ModelSettings' defaults plus ``priors``: a params dict of :mod:`cgexplain.model.priors`
#: (proteins; fitted by the train stage, never set in system.yaml), or None: no prior
DEFAULT_HPARAMS = {**dataclasses.asdict(ModelSettings()), "priors": None}


def build_model(hparams: dict, fast: bool = True) -> torch.nn.Module:
    """Build a schnetpack ``NeuralNetworkPotential`` from ``hparams`` (see DEFAULT_HPARAMS).

    Outputs: ``energy`` (kcal/mol, sum of atomwise terms) and ``forces`` (kcal/mol/Å). With
    ``hparams["priors"]`` a params dict (:func:`cgexplain.model.priors.fit_priors`), the output modules are
    [Atomwise, :class:`~cgexplain.model.priors.PriorEnergy`, Forces]: ``energy`` is the network energy plus
    the prior energy (also output as ``prior_energy``), and the forces include the prior's.
    With ``fast`` (default), PaiNN's interaction blocks are :class:`cgexplain.model.kernels.FastPaiNNInteraction`
    (the same parameters and function, evaluated faster); ``fast=False`` gives schnetpack's own modules.
    Raises ValueError for an unknown representation or malformed prior params.
    """
    import schnetpack as spk

    hp = {**DEFAULT_HPARAMS, **hparams}
    if hp["representation"].lower() == "mace":
        return _build_mace(hp)
    rbf = spk.nn.GaussianRBF(n_rbf=hp["n_rbf"], cutoff=hp["cutoff"])
    cut = spk.nn.CosineCutoff(hp["cutoff"])
    rep_name = hp["representation"].lower()
    if rep_name == "painn":
        rep = spk.representation.PaiNN(
            n_atom_basis=hp["n_atom_basis"],
            n_interactions=hp["n_interactions"],
            radial_basis=rbf,
            cutoff_fn=cut,
            shared_interactions=hp["shared_interactions"],
        )
    elif rep_name == "so3net":
        rep = spk.representation.SO3net(
            n_atom_basis=hp["n_atom_basis"],
            n_interactions=hp["n_interactions"],
            lmax=hp["lmax"],
            radial_basis=rbf,
            cutoff_fn=cut,
            shared_interactions=hp["shared_interactions"],
        )
    else:
        raise ValueError(f"unknown representation {hp['representation']!r}; use 'painn', 'so3net' or 'mace'")
    outputs = [spk.atomistic.Atomwise(n_in=hp["n_atom_basis"], output_key="energy", aggregation_mode="sum")]
    if hp.get("priors"):
        outputs.append(PriorEnergy.from_params(hp["priors"]))
    outputs.append(spk.atomistic.Forces(energy_key="energy", force_key="forces"))
    model = spk.model.NeuralNetworkPotential(
        representation=rep,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=outputs,
    )
    if fast:
        accelerate(model)
    return model


def _build_mace(hp: dict) -> torch.nn.Module:
    """[MaceRepresentation | SiteEnergySum, PriorEnergy?, Forces] (:mod:`cgexplain.model.mace`)."""
    import schnetpack as spk

    missing = [k for k in ("n_types", "avg_num_neighbors") if hp.get(k) is None]
    if missing:
        raise ValueError(f"a MACE model needs {' and '.join(missing)} (set by the train stage from the data: cgexplain.model.mace.complete_hparams)")
    rep = MaceRepresentation(
        n_types=int(hp["n_types"]),
        n_atom_basis=int(hp["n_atom_basis"]),
        n_interactions=int(hp["n_interactions"]),
        cutoff=float(hp["cutoff"]),
        n_rbf=int(hp["n_rbf"]),
        max_ell=int(hp["lmax"]),
        correlation=int(hp["correlation"]),
        avg_num_neighbors=float(hp["avg_num_neighbors"]),
    )
    outputs: list[torch.nn.Module] = [SiteEnergySum()]
    if hp.get("priors"):
        outputs.append(PriorEnergy.from_params(hp["priors"]))
    outputs.append(spk.atomistic.Forces(energy_key="energy", force_key="forces"))
    return spk.model.NeuralNetworkPotential(representation=rep, input_modules=[spk.atomistic.PairwiseDistances()], output_modules=outputs)


def save_model(model: torch.nn.Module, hparams: dict, directory: str | Path, extra: dict | None = None) -> Path:
    """Save ``model.pt`` (state_dict) and ``model.json`` (hparams + units + version) atomically."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {
        "cgexplain_version": __version__,
        "hparams": {**DEFAULT_HPARAMS, **hparams},
        "units": {"length": "Angstrom", "energy": "kcal/mol", "forces": "kcal/mol/Angstrom"},
        **(extra or {}),
    }
    with atomic_path(d / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    write_json(d / "model.json", meta)
    return d


class ModelFolderError(ValueError, RuntimeError):
    """A damaged or mismatched model folder; the message names the file and the problem."""


def load_model(directory: str | Path, map_location: str = "cpu", fast: bool = True):
    """Load a model folder written by :func:`save_model`.

    Returns (model, meta) with the model in eval mode; ``fast`` as in :func:`build_model`. The
    model carries ``meta`` as its attribute ``cgexplain_meta``, so that the functions given a
    loaded model (:func:`cgexplain.lrp.engine.walk_relevance`, :func:`cgexplain.lrp.mutations.mutation_whatif`)
    can check frames against what it was trained for (:func:`check_system`). A model.json
    written before ``trained_for`` was recorded loads as well (:func:`trained_system` infers what it can).
    Raises FileNotFoundError naming a missing file, and :class:`ModelFolderError` (a ValueError)
    naming the file and the problem for a model.json that is not JSON or lacks ``hparams``, a
    malformed ``trained_for`` record, a model.pt that is truncated, corrupted or not a state_dict,
    or weights that do not match the JSON architecture.
    """
    import json

    d = Path(directory)
    if not (d / "model.json").exists():
        raise FileNotFoundError(f"{d / 'model.json'}: no such file (a model folder holds model.pt and model.json)")
    if not (d / "model.pt").exists():
        raise FileNotFoundError(f"{d / 'model.pt'}: no such file")
    try:
        meta = read_json(d / "model.json")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{d / 'model.json'}: not valid JSON ({exc}); the model folder is damaged") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("hparams"), dict):
        raise ModelFolderError(f"{d / 'model.json'}: no 'hparams' mapping; not a model.json written by cgexplain")
    try:
        trained_system(meta)
    except ModelFolderError as exc:
        raise ModelFolderError(f"{d / 'model.json'}: {exc}") from None
    try:
        model = build_model(meta["hparams"], fast=fast)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{d / 'model.json'}: its hparams do not build a model: {exc}") from None
    try:
        state = torch.load(d / "model.pt", map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises OSError, RuntimeError, pickle errors ... for damaged files
        size = (d / "model.pt").stat().st_size
        raise ModelFolderError(
            f"{d / 'model.pt'}: cannot be read as a state_dict ({size} bytes; truncated or corrupted?): {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    if not isinstance(state, dict):
        raise ModelFolderError(f"{d / 'model.pt'}: holds a {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFolderError(f"{d / 'model.pt'} does not match the architecture in {d / 'model.json'}: {str(exc)[:500]}") from None
    model.eval()
    model.__dict__["cgexplain_meta"] = meta  # a plain attribute: not in the state_dict, never saved
    return model, meta


def prior_only_model(model: torch.nn.Module) -> torch.nn.Module:
    """The prior of a trained model alone: a schnetpack potential whose ``energy`` (kcal/mol) is the
    model's :class:`~cgexplain.model.priors.PriorEnergy` and whose ``forces`` (kcal/mol/Å) are its
    forces; the network's energy is left out (the control of the issue on CG ensembles: does the
    network improve on the prior it was trained on top of?). The returned module carries the
    model's ``cgexplain_meta``; it shares no parameters with ``model``.
    Raises ValueError for a model without a prior."""
    import copy

    import schnetpack as spk

    prior = next((m for m in getattr(model, "output_modules", []) if isinstance(m, PriorEnergy)), None)
    if prior is None:
        raise ValueError("prior_only_model: the model has no prior (no PriorEnergy output module)")
    prior = copy.deepcopy(prior)
    prior.model_outputs = ["energy", "prior_energy"]  # here the prior's energy is the model's energy
    out = spk.model.NeuralNetworkPotential(
        representation=torch.nn.Identity(),
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[prior, spk.atomistic.Forces(energy_key="energy", force_key="forces")],
    )
    out.eval()
    if "cgexplain_meta" in model.__dict__:
        out.__dict__["cgexplain_meta"] = model.__dict__["cgexplain_meta"]
    return out


class BeadTypeError(ValueError):
    """Bead types that the model was not trained on; the message names them and the trained ones."""


def trained_bead_types(meta: dict, n_embeddings: int | None = None) -> tuple[dict[int, str], str]:
    """The bead types a saved model knows, from its ``model.json`` (``meta`` of :func:`load_model`).

    Source, in this order: ``meta["trained_for"]["bead_types"]`` (the types that occur in the
    training data, written at training: :func:`training_record`; named from the type table), else
    ``meta["type_table"]`` (bead name -> type, written by the train stage from the mapping's table;
    'amino_acids' stands for :data:`cgexplain.aminoacids.AMINO_ACID_TYPES`), else the size
    ``n_embeddings`` of the network's type embedding (types 0..n_embeddings-1, all of them
    unnamed; schnetpack's default is 100, so this only catches types the model cannot embed at
    all). Returns ({type: name}, a description of the source); ({}, "") when none is known.
    Raises :class:`ModelFolderError` for a type_table that is not a name -> int mapping or
    trained_for bead types that are not integers.
    """
    table = meta.get("type_table") if isinstance(meta, dict) else None
    names: dict[int, str] = {}
    if table is not None:
        if table == "amino_acids":
            table = AMINO_ACID_TYPES
        try:
            names = {int(v): str(k) for k, v in dict(table).items()}
        except (TypeError, ValueError):
            raise ModelFolderError(f"model.json: type_table must map bead names to integer types, got {table!r}") from None
    record = meta.get("trained_for") if isinstance(meta, dict) else None
    if isinstance(record, dict) and record.get("bead_types") is not None:
        try:
            seen = [int(t) for t in record["bead_types"]]
        except (TypeError, ValueError):
            raise ModelFolderError(f"model.json: trained_for.bead_types must be a list of integers, got {record['bead_types']!r}") from None
        return {t: names.get(t, "") for t in seen}, "model.json trained_for: the bead types of the training data"
    if table is not None:
        return names, "model.json type_table"
    if n_embeddings is not None:
        n = int(n_embeddings)
        return dict.fromkeys(range(n), ""), f"the model's type embedding (types 0..{n - 1}; model.json has no type_table)"
    return {}, ""


def check_bead_types(meta: dict, types: np.typing.ArrayLike, source: str, n_embeddings: int | None = None) -> np.ndarray:
    """Check that every bead type in ``types`` is one the model was trained on.

    meta: the model.json dict (:func:`load_model`); types (n,) ints; source: what the types
    belong to (a trajectory or --types argument), named in the message; n_embeddings: the size
    of the network's type embedding (fallback when model.json has no ``type_table``; see
    :func:`trained_bead_types`). A type outside that set meets an embedding row that training
    never updated, and every relevance computed from it would be meaningless.
    Returns the types as an int64 array. Raises :class:`BeadTypeError` (a ValueError) naming the
    unknown types and the types the model was trained on, ValueError for types that are not
    integers. Nothing is checked when the model records neither a type table nor an embedding size.
    """
    arr = np.asarray(types)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError(f"{source}: bead types must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    known, where = trained_bead_types(meta, n_embeddings)
    if not where:
        return arr
    unknown = sorted(set(np.unique(arr).tolist()) - set(known))
    if unknown:
        counts = {t: int((arr == t).sum()) for t in unknown}
        bad = ", ".join(f"{t} ({counts[t]} bead{'s' if counts[t] > 1 else ''})" for t in unknown)
        if known and all(known.values()):
            ok = ", ".join(f"{t} ({name})" for t, name in sorted(known.items()))
        elif len(known) > 2 and sorted(known) == list(range(min(known), max(known) + 1)):
            ok = f"{min(known)}..{max(known)}"  # a whole range (the type embedding's): its bounds
        else:
            ok = ", ".join(str(t) for t in sorted(known)) or "none"
        raise BeadTypeError(
            f"{source}: bead type{'s' if len(unknown) > 1 else ''} {bad} not known to the model, which was trained on types {ok} "
            f"(from {where}); relevances for an unseen type would come from an untrained embedding"
        )
    return arr


class SystemMismatchError(ValueError):
    """Frames that do not fit the system a model was trained for: a bead count other than the one
    its priors were fitted for (the priors belong to a fixed chain). The message names the model,
    the frames and the mismatch."""


def _n_embeddings(model) -> int | None:
    rep = getattr(model, "representation", None)
    n_types = getattr(rep, "n_types", None)
    if n_types is not None:  # MACE: one-hot over n_types
        return int(n_types)
    emb = getattr(rep, "embedding", None)
    n = getattr(emb, "num_embeddings", None)
    return None if n is None else int(n)


def _is_periodic(cells) -> bool:
    """True when every cell in ``cells`` ((3, 3) or (F, 3, 3) Å) is a periodic box (not all zero)."""
    c = np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
    return bool(len(c)) and bool(np.all(np.abs(c).sum(axis=(1, 2)) > 0))


def training_record(types: np.typing.ArrayLike, cells: np.typing.ArrayLike | None, hparams: dict) -> dict:
    """What a model is trained for, as ``model.json`` records it under ``trained_for``.

    types (n,) the bead types of the training frames; cells (F, 3, 3) Å of the training frames
    (zeros or None: not periodic); hparams: the model's (``priors`` a params dict or None).
    Returns a JSON-serialisable dict:

    - ``n_beads``: beads per training frame;
    - ``fixed_chain``: True when the model has priors (:mod:`cgexplain.model.priors`): their terms
      index beads 0..n_beads-1 of the one chain (bead graph) they were fitted for, so the model
      applies to that many beads only, in that order;
    - ``bead_types``: the distinct bead types of the training data, sorted (the embedding rows
      training updated);
    - ``sequence``: with ``fixed_chain``, the bead types in chain order (what the priors were
      fitted for); else None;
    - ``periodic``: whether the training frames had a periodic box (a bulk fluid) or not (a
      molecule in vacuum or implicit solvent);
    - ``source``: 'training data'.

    Raises ValueError when the priors' ``n_beads`` is not the bead count of the data.
    """
    t = np.asarray(types, dtype=np.int64).reshape(-1)
    priors = (hparams or {}).get("priors") or {}
    fixed = bool(priors)
    if fixed and int(priors["n_beads"]) != len(t):
        raise ValueError(f"the priors are for {int(priors['n_beads'])} beads, the training data have {len(t)}")
    return {
        "n_beads": int(len(t)),
        "fixed_chain": fixed,
        "bead_types": sorted({int(x) for x in t}),
        "sequence": t.tolist() if fixed else None,
        "periodic": False if cells is None else bool(np.any(np.abs(np.asarray(cells, dtype=np.float64)).reshape(-1, 9).sum(1) > 0)),
        "source": "training data",
    }


def trained_system(meta: dict | None = None, model: torch.nn.Module | None = None) -> dict:
    """What a model was trained for: the keys of :func:`training_record`.

    meta: the model.json dict (:func:`load_model`); without it, the ``cgexplain_meta`` that
    :func:`load_model` attaches to ``model``, else what ``model``'s modules tell. A model.json
    without ``trained_for`` (written before it was recorded), or a model alone, gives what can be
    inferred: from the priors (``hparams["priors"]["n_beads"]``, or a
    :class:`~cgexplain.model.priors.PriorEnergy` output module) ``n_beads`` and ``fixed_chain``;
    from ``type_table`` the bead types; ``periodic`` and ``sequence`` None (not known); ``source``
    says it was inferred. Raises :class:`ModelFolderError` for a ``trained_for`` that is not a
    mapping or holds a non-integer bead count.
    """
    if meta is None and model is not None:
        meta = getattr(model, "cgexplain_meta", None)
    if isinstance(meta, dict) and meta.get("trained_for") is not None:
        rec = meta["trained_for"]
        if not isinstance(rec, dict):
            raise ModelFolderError(f"trained_for must be a mapping, got {type(rec).__name__}")
        out = {"n_beads": None, "fixed_chain": False, "bead_types": None, "sequence": None, "periodic": None, "source": "training data", **rec}
        try:
            out["n_beads"] = None if out["n_beads"] is None else int(out["n_beads"])
        except (TypeError, ValueError):
            raise ModelFolderError(f"trained_for.n_beads must be an integer, got {rec.get('n_beads')!r}") from None
        out["fixed_chain"] = bool(out["fixed_chain"])
        return out
    n_beads, where = None, ""
    priors = ((meta or {}).get("hparams") or {}).get("priors") if isinstance(meta, dict) else None
    if priors:
        try:
            n_beads, where = int(priors["n_beads"]), "model.json hparams.priors"
        except (KeyError, TypeError, ValueError):
            raise ModelFolderError(f"hparams.priors has no integer n_beads ({str(priors)[:80]})") from None
    elif model is not None:
        for m in getattr(model, "output_modules", []):
            if isinstance(m, PriorEnergy):
                n_beads, where = int(m.n_beads), "the model's prior module"
    types = None
    if isinstance(meta, dict) and meta.get("type_table") is not None:
        types = sorted(trained_bead_types(meta)[0])
        where = f"{where} and " * bool(where) + "model.json type_table"
    return {
        "n_beads": n_beads,
        "fixed_chain": n_beads is not None,
        "bead_types": types,
        "sequence": None,
        "periodic": None,
        "source": f"inferred from {where}" if where else "not recorded",
    }


def check_system(
    meta: dict | None,
    types: np.typing.ArrayLike,
    source: str,
    *,
    model: torch.nn.Module | None = None,
    cells: np.typing.ArrayLike | None = None,
    model_name: str = "the model",
    bead_types: bool = True,
) -> list[str]:
    """Check frames against what a model was trained for (:func:`trained_system`), before any work.

    meta: the model.json dict, or None to take it from ``model`` (:func:`trained_system`);
    types (n,): the frames' bead types; source: the frames, named in messages (a trajectory file,
    'the frame'); cells: (3, 3) or (F, 3, 3) Å of the frames (zeros: not periodic), None: the
    periodicity is not checked; model_name: how messages name the model ('model DIR');
    bead_types: also check every type is a trained one (:func:`check_bead_types`).

    Refused (raises): a bead count other than ``n_beads`` of a model whose priors fix it
    (:class:`SystemMismatchError`, a ValueError; the priors belong to a fixed chain, and walk
    relevances explain the network alone, so they would be left out silently), and with
    ``bead_types`` a bead type the model was not trained on (:class:`BeadTypeError`).
    Returned (a list of warning texts, for the caller to warn and record): frames periodic while
    the training data were not, or the other way round (the model extrapolates to environments it
    never saw: beads at a surface, or periodic images within the cutoff; not refused, since a
    large box around a molecule, or a cluster cut from a liquid, are sensible questions), and,
    for a fixed chain, a sequence other than the trained one (a mutant: the priors were fitted
    for the wild type).
    """
    rec = trained_system(meta, model)
    if meta is None and model is not None:
        meta = getattr(model, "cgexplain_meta", None)
    t = np.asarray(types).reshape(-1)
    n = int(len(t))
    periodic = None if cells is None else _is_periodic(cells)
    trained_periodic = rec.get("periodic")
    box = ""
    if periodic:
        c = np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)[0]
        box = " × ".join(f"{x:.4g}" for x in np.linalg.norm(c, axis=1)) + " Å"
    notes: list[str] = []
    if periodic is not None and trained_periodic is not None and periodic != bool(trained_periodic):
        if periodic:
            notes.append(
                f"{source} is periodic (box {box}) but {model_name} was trained on non-periodic frames: periodic images "
                "within the cutoff are neighbours it never saw"
            )
        else:
            notes.append(
                f"{source} is not periodic but {model_name} was trained on periodic frames (a bulk system): beads at the "
                "surface have fewer neighbours than any environment it saw"
            )
    if rec["fixed_chain"] and rec["n_beads"] is not None and n != rec["n_beads"]:
        also = ""
        if notes:  # a periodicity mismatch too
            also = (
                f"; its frames are also periodic (box {box}), the training data were not"
                if periodic
                else "; its frames are also not periodic, the training data were"
            )
        raise SystemMismatchError(
            f"{model_name} was trained for {rec['n_beads']} beads (its priors belong to a fixed chain); {source} has {n} beads{also}. "
            "The priors cannot be applied to another chain, and relevances of the network alone would leave them out silently"
        )
    if bead_types:
        check_bead_types(meta or {}, t, source, _n_embeddings(model) if model is not None else None)
    seq = rec.get("sequence")
    if rec["fixed_chain"] and seq is not None and len(seq) == n:
        diff = np.flatnonzero(np.asarray(seq, dtype=np.int64) != t.astype(np.int64))
        if len(diff):
            where = ", ".join(f"{k + 1} ({int(seq[k])} -> {int(t[k])})" for k in diff[:5]) + (" ..." if len(diff) > 5 else "")
            notes.append(
                f"{source}: bead types differ from the chain {model_name} was trained for at {len(diff)} position(s) "
                f"(1-based, trained -> given: {where}); its priors were fitted for the trained sequence"
            )
    return notes


def warn_system(notes: list[str], stacklevel: int = 3) -> None:
    """Issue each text of :func:`check_system` as a UserWarning."""
    for text in notes:
        warnings.warn(text, stacklevel=stacklevel)


def batch_inputs(positions, types, cells, cutoff: float, dtype=torch.float32, device="cpu") -> dict:
    """schnetpack input dict for one or more frames (a batch of systems of equal size).

    positions (n_frames, n, 3) or (n, 3) Å; types (n,) ints; cells (n_frames, 3, 3) or (3, 3) Å
    (zeros: not periodic). Neighbour lists are built with :func:`neighbor_list`.
    """
    import schnetpack.properties as P

    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    nf, n = pos.shape[:2]
    cells = np.zeros((nf, 3, 3)) if cells is None else np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
    if cells.shape[0] == 1 and nf > 1:
        cells = np.repeat(cells, nf, axis=0)
    ii, jj, oo = [], [], []
    for f in range(nf):
        i, j, o = neighbor_list(pos[f], cells[f], cutoff)
        ii.append(i + f * n)
        jj.append(j + f * n)
        oo.append(o)
    periodic = np.abs(cells).sum(axis=(1, 2)) > 0
    return {
        P.Z: torch.as_tensor(np.tile(np.asarray(types, dtype=np.int64), nf), device=device),
        P.R: torch.as_tensor(pos.reshape(-1, 3), dtype=dtype, device=device),
        P.cell: torch.as_tensor(cells, dtype=dtype, device=device),
        P.pbc: torch.as_tensor(np.repeat(periodic[:, None], 3, axis=1), device=device),
        P.idx_i: torch.as_tensor(np.concatenate(ii), device=device),
        P.idx_j: torch.as_tensor(np.concatenate(jj), device=device),
        P.offsets: torch.as_tensor(np.concatenate(oo), dtype=dtype, device=device),
        P.n_atoms: torch.full((nf,), n, dtype=torch.int64, device=device),
        P.idx_m: torch.repeat_interleave(torch.arange(nf, device=device), n),
    }
