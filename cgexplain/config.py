"""System configuration: ``systems/<name>/system.yaml``, read with ``yaml.safe_load`` and
validated at load, before any stage runs.

The file has top-level keys ``name``, ``description``, ``kind`` (``fluid``, the default, or
``protein``), sections (reference, mapping, priors, model, training, simulation, analysis,
lrp), optional ``profiles`` (e.g. ``quick``, ``full``) whose sections are merged over the base
ones, and optional ``architectures`` overrides. Units: Å, ps, K, bar, amu, kcal/mol.

Every section has one schema, a dataclass whose field defaults are the only defaults of those
keys in cgexplain (:data:`SCHEMAS`; for reference, training and simulation the settings classes
of the stages themselves). :func:`load_system` validates each section of the merged
configuration against its schema (unknown key, wrong type, out-of-range or unknown value ->
:class:`ConfigError` naming the file, the key path and what is allowed) and fills in the
defaults, so the stages read ``cfg[section][key]`` without defaults of their own.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "load_system",
    "validate_config",
    "section_hash",
    "settings_from_dict",
    "ConfigError",
    "SECTIONS",
    "EXECUTION_KEYS",
    "KIND_NAMES",
    "MappingSection",
    "ReferenceCheck",
    "FluidAnalysis",
    "ProteinAnalysis",
    "LrpSection",
    "ProteinLrpSection",
    "gt",
    "ge",
    "one_of",
]

SECTIONS = ("reference", "mapping", "priors", "model", "training", "simulation", "analysis", "lrp")

#: the kinds of system (:mod:`cgexplain.workflow.kinds`)
KIND_NAMES = ("fluid", "protein")

#: keys that say how a stage computes, not what: the CLI may override them, and they do not
#: enter the run folder's input hashes, so a model trained on 4 GPUs is reused by a rerun on a
#: laptop (training.json records the world size)
EXECUTION_KEYS = {
    "training": ("accelerator", "devices", "num_nodes", "strategy", "data_path"),
    "simulation": ("device",),
    "lrp": ("workers", "device", "backend"),
}


class ConfigError(ValueError, KeyError):
    """A configuration that does not validate. The message names the file, the key path
    (``training.epochs``) and what is allowed. It is a ValueError (a bad value) and a KeyError
    (an unknown key, section or profile), so either ``except`` catches it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# ------------------------------------------------------------------ field constraints
def gt(x: float, default: Any = dataclasses.MISSING, unit: str = "") -> Any:
    """A dataclass field whose value must be > x (checked by the schema)."""
    return dataclasses.field(default=default, metadata={"gt": x, "unit": unit})


def ge(x: float, default: Any = dataclasses.MISSING, unit: str = "") -> Any:
    """A dataclass field whose value must be >= x (checked by the schema)."""
    return dataclasses.field(default=default, metadata={"ge": x, "unit": unit})


def one_of(*values: Any, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose value must be one of ``values`` (checked by the schema)."""
    return dataclasses.field(default=values[0] if default is dataclasses.MISSING else default, metadata={"one_of": values})


# ------------------------------------------------------------------ section schemas without a stage class
@dataclasses.dataclass
class MappingSection:
    """``mapping``: which atoms form a bead and where it sits (:func:`cgexplain.mapping.maps.make_mapping`).

    by: 'residue' or 'fragment' (one bead per molecule); method: 'com' (centre of mass), 'cog'
    (centre of geometry) or 'atom' (the atom named ``atom_name``); bead_name: name(s) of the
    residues/atoms mapped; type_table: 'amino_acids' or {bead name: type >= 1} (default: order of
    appearance); merge_caps: merge ACE/NME caps into their neighbour residue; masses: {atom name:
    amu} for particles without an element (mW); select: MDAnalysis selection of the atoms the beads
    cover (default all; the others, e.g. a solvent, are integrated out); constraints: the bonds the
    simulation constrained ('h-bonds' (default; also rigid waters), 'all-bonds' or 'none'): a bead
    boundary or the selection's edge may not split them (:func:`cgexplain.mapping.maps.check_constraint_groups`)."""

    by: str = one_of("residue", "fragment")
    method: str = one_of("com", "cog", "atom")
    atom_name: str | None = None
    bead_name: str | list[str] | None = None
    type_table: str | dict[str, int] | None = None
    merge_caps: bool = True
    masses: dict[str, float] | None = None
    select: str | None = None
    constraints: str = one_of("h-bonds", "all-bonds", "none")


@dataclasses.dataclass
class ReferenceCheck:
    """``reference.check`` (fluids): the RDF of ``selection`` against expectations.

    r_max Å, n_bins; peak_A [lo, hi] Å with height [lo, hi]; digitized: an .npz (r nm, g) beside
    system.yaml with rms_range_A [lo, hi] Å and max_rms; density_g_cm3 [lo, hi] of the NPT run."""

    selection: str
    r_max: float = gt(0, 9.0, "Å")
    n_bins: int = gt(0, 180)
    peak_A: tuple[float, float] | None = None
    height: tuple[float, float] | None = None
    digitized: str | None = None
    rms_range_A: tuple[float, float] = (3.0, 10.0)
    max_rms: float | None = None
    density_g_cm3: tuple[float, float] | None = None

    def __post_init__(self):
        if (self.peak_A is None) != (self.height is None):
            raise ValueError("peak_A and height go together")
        if (self.digitized is None) != (self.max_rms is None):
            raise ValueError("digitized and max_rms go together")


@dataclasses.dataclass
class FluidAnalysis:
    """``analysis`` of a fluid: RDF up to rdf_r_max Å in rdf_bins bins; ADF of bead triplets whose
    legs are shorter than shell_cutoff Å (also the leg cutoff of the 3-body relevance), adf_bins bins."""

    shell_cutoff: float = gt(0, unit="Å")
    rdf_r_max: float = gt(0, 9.0, "Å")
    rdf_bins: int = gt(0, 180)
    adf_bins: int = gt(0, 90)


@dataclasses.dataclass
class ProteinAnalysis:
    """``analysis`` of a protein: folded means CA-RMSD <= rmsd_threshold Å to the native
    structure; native contacts within contact_cutoff Å; TICA with lag tica_lag frames, tica_dim >= 2 components."""

    rmsd_threshold: float = gt(0, 3.0, "Å")
    contact_cutoff: float = gt(0, 8.0, "Å")
    tica_lag: int = gt(0, 10)
    tica_dim: int = ge(2, 2)


@dataclasses.dataclass
class LrpSection:
    """``lrp`` of a fluid (GNN-LRP, :mod:`cgexplain.lrp.statistics`).

    gamma >= 0 with bias_rule (LRP-γ; gamma 0 without bias rule: gradient x input); normalise:
    'abs_mean_total' (the publication's |Σ R| / N_walks), 'mean_abs', 'sum_abs' or 'none';
    enumeration 'pruned' or 'all'; save_walks 'first', 'all' or 'none'; n_frames CG frames;
    output_beads (None: all); r_edges [lo Å, hi Å, bins] of the 2-body curve (the publication's
    2-10 Å, 75 bins); angle_bins over 0-180°; workers processes with ``backend``
    ('multiprocessing' or 'dask'); device 'cpu', 'cuda' or 'cuda:N'."""

    gamma: float = ge(0, 0.1)
    bias_rule: bool = True
    normalise: str = one_of("abs_mean_total", "mean_abs", "sum_abs", "none")
    enumeration: str = one_of("pruned", "all")
    save_walks: str = one_of("first", "all", "none")
    n_frames: int = gt(0, 5)
    output_beads: int | None = None
    r_edges: tuple[float, float, int] = (2.0, 10.0, 75)
    angle_bins: int = gt(0, 36)
    workers: int = gt(0, 1)
    backend: str = one_of("multiprocessing", "dask")
    device: str | None = None

    def __post_init__(self):
        lo, hi, nb = self.r_edges
        if not (0 <= lo < hi and nb >= 1):
            raise ValueError(f"r_edges {list(self.r_edges)}: need 0 <= lo < hi and bins >= 1")


@dataclasses.dataclass
class ProteinLrpSection:
    """``lrp`` of a protein (:mod:`cgexplain.lrp.residues`, :mod:`cgexplain.lrp.mutations`).

    gamma, bias_rule as for fluids; n_frames folded CG frames; mutations e.g. 'F5A' (or a list);
    mutation_frames reference frames for ΔE; mutant_simulation_steps (0: no mutant simulation);
    workers, backend, device as for fluids."""

    gamma: float = ge(0, 0.1)
    bias_rule: bool = True
    n_frames: int = gt(0, 5)
    mutations: str | list | dict | None = None
    mutation_frames: int = gt(0, 20)
    mutant_simulation_steps: int = ge(0, 0)
    workers: int = gt(0, 1)
    backend: str = one_of("multiprocessing", "dask")
    device: str | None = None


def _reference_schema(source: str | None, kind: str) -> Any:
    """The ``reference`` schema of a source: the user's files, data already mapped, or (default)
    the kind's OpenMM settings."""
    if source == "files":
        from cgexplain.reference.external import FilesReference

        return FilesReference
    if source in ("arrays", "mdcath"):
        from cgexplain.reference.premapped_config import ArraysReference, MdcathReference

        return ArraysReference if source == "arrays" else MdcathReference
    if kind == "protein":
        from cgexplain.reference.protein import ProteinReferenceSettings

        return ProteinReferenceSettings
    from cgexplain.reference.fluids import ReferenceSettings

    return ReferenceSettings


def _schemas(kind: str, source: str | None = None) -> dict[str, Any]:
    """section -> schema (a dataclass, or a callable's signature for priors) of ``kind``."""
    from cgexplain.md.langevin import SimSettings
    from cgexplain.model.potential import ModelSettings
    from cgexplain.model.training import TrainSettings

    if kind == "protein":
        from cgexplain.model.priors import fit_priors

        return {
            "reference": _reference_schema(source, kind),
            "mapping": MappingSection,
            "priors": fit_priors,
            "model": ModelSettings,
            "training": TrainSettings,
            "simulation": SimSettings,
            "analysis": ProteinAnalysis,
            "lrp": ProteinLrpSection,
        }
    return {
        "reference": _reference_schema(source, kind),
        "mapping": MappingSection,
        "priors": None,
        "model": ModelSettings,
        "training": TrainSettings,
        "simulation": SimSettings,
        "analysis": FluidAnalysis,
        "lrp": LrpSection,
    }


def _pydantic_model(schema: Any, name: str):
    """A strict pydantic model (unknown keys forbidden) of a dataclass's fields, or of a function's
    keyword parameters (after the first two), with the constraints of :func:`gt`, :func:`ge`, :func:`one_of`."""
    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    if dataclasses.is_dataclass(schema):
        hints = typing.get_type_hints(schema)
        for f in dataclasses.fields(schema):
            default = (
                f.default if f.default is not dataclasses.MISSING else (f.default_factory() if f.default_factory is not dataclasses.MISSING else ...)
            )
            md = f.metadata
            tp = hints[f.name]
            if "one_of" in md:
                tp = Literal[md["one_of"]]  # type: ignore[valid-type]
            fields[f.name] = (tp, Field(default, gt=md.get("gt"), ge=md.get("ge")))
    else:  # a function: its keyword parameters, plus temperature (priors)
        hints = typing.get_type_hints(schema)
        for p in list(inspect.signature(schema).parameters.values())[2:]:
            fields[p.name] = (hints.get(p.name, Any), p.default)
        fields["temperature"] = (float | None, Field(None, gt=0))
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def _format_errors(path: Path, section: str, err, known: list[str]) -> str:
    """One message for a pydantic ValidationError of ``section``; ``known``: the section's keys."""
    lines = []
    for e in err.errors():
        key = ".".join(str(x) for x in (section, *e["loc"]))
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key; known keys of {section}: {', '.join(sorted(known))}")
        elif e["type"] == "missing":
            lines.append(f"{key}: required key missing")
        else:
            lines.append(f"{key}: {e['msg']} (got {e.get('input')!r})")
    return f"{path}: " + "; ".join(lines)


def _validate_section(path: Path, section: str, schema: Any, values: dict) -> dict:
    from pydantic import ValidationError

    if schema is None:
        if values:
            raise ConfigError(f"{path}: {section}: this kind of system has no {section} (got keys {sorted(values)})")
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: {section} must be a mapping, got {type(values).__name__}")
    model = _pydantic_model(schema, f"{section}_schema")
    try:
        checked = model.model_validate(values)
    except ValidationError as e:
        raise ConfigError(_format_errors(path, section, e, list(model.model_fields))) from None
    out = {k: getattr(checked, k) for k in model.model_fields}
    out = json.loads(json.dumps(out, default=list))  # tuples -> lists, as YAML would give
    if dataclasses.is_dataclass(schema):
        try:  # the class's own cross-field checks (__post_init__)
            schema(**{k: (tuple(v) if isinstance(v, list) and k in ("forcefield",) else v) for k, v in out.items()})  # type: ignore[operator]
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{path}: {section}: {e}") from None
    return out


def validate_config(cfg: dict, path: str | Path = "system.yaml") -> dict:
    """Validate every section of a merged configuration and fill in the defaults.

    Returns a new dict. Raises :class:`ConfigError` naming ``path``, the key path and what is
    allowed: an unknown kind, section or key, a wrong type, a value out of range or not among
    the allowed ones, a missing required key."""
    path = Path(path)
    kind = cfg.get("kind") or "fluid"
    if kind not in KIND_NAMES:
        raise ConfigError(f"{path}: kind {kind!r} is not known; kinds: {', '.join(KIND_NAMES)}")
    out = dict(cfg)
    out["kind"] = kind
    ref = dict(cfg.get("reference") or {})
    source = ref.get("source") or "openmm"
    if source not in ("openmm", "files", "arrays", "mdcath"):
        raise ConfigError(f"{path}: reference.source {source!r} is not known; sources: openmm (default), files, arrays, mdcath")
    if source == "openmm":
        ref.pop("source", None)
    schemas = _schemas(kind, source)
    check = ref.pop("check", None) if (kind == "fluid" and source == "openmm") else None
    for section in SECTIONS:
        values = dict(ref if section == "reference" else (cfg.get(section) or {}))
        out[section] = _validate_section(path, section, schemas[section], values)
    if check is not None:
        out["reference"]["check"] = _validate_section(path, "reference.check", ReferenceCheck, check)
    if source == "mdcath" and out["reference"]["temperature"] is None:
        out["reference"]["temperature"] = float(out["reference"]["temperatures"][0])
    if source != "openmm":
        return out
    if kind == "fluid" and out["reference"]["system"] in ("lj", "mw"):
        from cgexplain.reference.potentials import MW, LennardJones

        cls = LennardJones if out["reference"]["system"] == "lj" else MW
        try:
            cls(**out["reference"]["potential"])
        except TypeError as e:
            raise ConfigError(f"{path}: reference.potential: {e}; known: {', '.join(inspect.signature(cls).parameters)}") from None
    if kind == "fluid" and out["reference"]["system"] in ("methane", "lj", "mw") and out["reference"]["density"] <= 0:
        raise ConfigError(f"{path}: reference.density: a {out['reference']['system']} box needs a density > 0 g/cm³")
    return out


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load_system(system_dir: str | Path, profile: str = "quick", arch: str | None = None) -> dict:
    """Load ``system_dir/system.yaml`` and apply ``profile``, then the architecture ``arch``.

    ``arch`` ('painn' or 'so3net'; default: the yaml's model.representation) sets
    model.representation and merges the yaml's ``architectures: {arch: {section: {...}}}``
    overrides (profiles may override those too), e.g. a smaller SO3net for quick CPU runs.
    Every section is validated and completed with its defaults (:func:`validate_config`).
    Returns the merged config with keys ``name``, ``kind``, ``system_dir``, ``profile``, ``arch`` and the
    sections. Raises FileNotFoundError if there is no system.yaml, :class:`ConfigError` (a
    ValueError) naming the key path for an unknown section, profile, architecture, kind or key, a
    wrong type or a value out of range, or a YAML that is not a mapping.
    """
    d = Path(system_dir)
    path = d / "system.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (a system folder needs a system.yaml)")
    with open(path) as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    profiles = raw.pop("profiles", {}) or {}
    unknown = set(raw) - set(SECTIONS) - {"name", "description", "kind", "architectures"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; known: {list(SECTIONS)}")
    if profile not in profiles and profile != "base":
        raise ConfigError(f"{path}: no profile {profile!r}; available: {sorted(profiles)}")
    for pname, prof in profiles.items():
        bad = set(prof or {}) - set(SECTIONS) - {"architectures"}
        if bad:
            raise ConfigError(f"{path}: profiles.{pname}: unknown section(s) {sorted(bad)}; known: {list(SECTIONS)}")
    cfg = _merge(raw, profiles.get(profile, {}))
    archs = cfg.pop("architectures", {}) or {}
    for s in SECTIONS:
        cfg.setdefault(s, {})
    if arch is not None:
        if arch not in ("painn", "so3net"):
            raise ConfigError(f"{path}: architecture {arch!r} is not supported; use 'painn' or 'so3net'")
        cfg = _merge(cfg, archs.get(arch, {}))
        cfg["model"]["representation"] = arch
    cfg = validate_config(cfg, path)
    cfg["arch"] = cfg["model"]["representation"]
    cfg["name"] = cfg.get("name", d.name)
    cfg["system_dir"] = str(d.resolve())
    cfg["profile"] = profile
    return cfg


def section_hash(*parts) -> str:
    """A short stable hash of JSON-serialisable parts (stage inputs)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def settings_from_dict(cls, d: dict, section: str):
    """Build the settings dataclass ``cls`` from a config section.

    Raises KeyError naming the section and any key that ``cls`` does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise KeyError(f"{section} settings: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    return cls(**d)
