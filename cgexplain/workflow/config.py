"""System configuration: ``systems/<name>/system.yaml``, read with ``yaml.safe_load`` and
validated once, at load, before any stage runs.

The file has top-level keys ``name``, ``description``, ``kind`` (``fluid``, the default, or
``protein``), sections (reference, mapping, priors, model, training, simulation, analysis,
lrp), optional ``profiles`` (e.g. ``quick``, ``full``) whose sections are merged over the base
ones, and optional ``architectures`` overrides. Units: Å, ps, K, bar, amu, kcal/mol.

Every section has one schema, a settings dataclass that lives beside the code that reads it; its
field defaults are the only defaults of those keys in cgexplain. The run's kind
(:class:`~cgexplain.workflow.kinds.base.Kind`) declares the schemas of its sections, the run's
source (:class:`~cgexplain.workflow.sources.Source`) that of ``reference``. :func:`load_system`
validates each section of the merged configuration against its schema
(:func:`cgexplain.settings.validate_section`: unknown key, wrong type, out-of-range or unknown
value -> :class:`~cgexplain.settings.ConfigError` naming the file, the key path and what is
allowed) and fills in the defaults, so the stages read ``cfg[section][key]`` without defaults
of their own.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from cgexplain.settings import ConfigError, validate_section
from cgexplain.workflow.kinds import KINDS
from cgexplain.workflow.sources import SOURCES

__all__ = ["load_system", "validate_config", "ConfigError", "SECTIONS", "ARCHITECTURES"]

SECTIONS = ("reference", "mapping", "priors", "model", "training", "simulation", "analysis", "lrp")

#: architectures ``--arch`` may name (``model.representation``)
ARCHITECTURES = ("painn", "so3net", "mace")


def validate_config(cfg: dict, path: str | Path = "system.yaml") -> dict:
    """Validate every section of a merged configuration and fill in the defaults.

    Returns a new dict. Raises :class:`ConfigError` naming ``path``, the key path and what is
    allowed: an unknown kind, source, section or key, a wrong type, a value out of range or not
    among the allowed ones, a missing required key."""
    path = Path(path)
    kind_name = cfg.get("kind") or "fluid"
    if kind_name not in KINDS:
        raise ConfigError(f"{path}: kind {kind_name!r} is not known; kinds: {', '.join(KINDS)}")
    kind = KINDS[kind_name]()
    out = dict(cfg)
    out["kind"] = kind_name
    ref = dict(cfg.get("reference") or {})
    source_name = ref.get("source") or "openmm"
    if source_name not in SOURCES:
        raise ConfigError(f"{path}: reference.source {source_name!r} is not known; sources: {', '.join(SOURCES)} (default openmm)")
    out["reference"] = SOURCES[source_name]().validate_reference(path, ref, kind)
    for section in SECTIONS[1:]:
        out[section] = validate_section(path, section, kind.sections[section], dict(cfg.get(section) or {}))
    return out


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def read_yaml(path: str | Path) -> dict:
    """A YAML file's top-level mapping (``yaml.safe_load``). Raises :class:`ConfigError` naming the
    file, line and column of a syntax error, or saying that the top level is not a mapping."""
    path = Path(path)
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def load_system(system_dir: str | Path, profile: str = "quick", arch: str | None = None) -> dict:
    """Load ``system_dir/system.yaml`` and apply ``profile``, then the architecture ``arch``.

    ``arch`` ('painn', 'so3net' or 'mace'; default: the yaml's model.representation) sets
    model.representation and merges the yaml's ``architectures: {arch: {section: {...}}}``
    overrides (profiles may override those too), e.g. a smaller SO3net for quick CPU runs.
    Every section is validated and completed with its defaults (:func:`validate_config`).
    Returns the merged config with keys ``name``, ``kind``, ``system_dir``, ``profile``, ``arch`` and the
    sections. Raises FileNotFoundError if there is no system.yaml, :class:`ConfigError` (a
    ValueError) naming the key path for an unknown section, profile, architecture, kind or key, a
    wrong type or a value out of range, a YAML syntax error, or a YAML that is not a mapping.
    """
    d = Path(system_dir)
    path = d / "system.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (a system folder needs a system.yaml)")
    raw = read_yaml(path)
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
        if arch not in ARCHITECTURES:
            raise ConfigError(f"{path}: architecture {arch!r} is not supported; use {' or '.join(repr(a) for a in ARCHITECTURES)}")
        cfg = _merge(cfg, archs.get(arch, {}))
        cfg["model"]["representation"] = arch
    cfg = validate_config(cfg, path)
    cfg["arch"] = cfg["model"]["representation"]
    cfg["name"] = cfg.get("name", d.name)
    cfg["system_dir"] = str(d.resolve())
    cfg["profile"] = profile
    return cfg
