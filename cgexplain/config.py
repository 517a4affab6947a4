"""System configuration: ``systems/<name>/system.yaml``, read with ``yaml.safe_load``.

The file has top-level sections (reference, mapping, model, training, simulation, analysis,
lrp) and optional ``profiles`` (e.g. ``quick``, ``full``) whose sections are merged over the
base ones. Units: Å, ps, K, bar, amu, kcal/mol.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import yaml

__all__ = ["load_system", "section_hash", "settings_from_dict", "SECTIONS"]

SECTIONS = ("reference", "mapping", "priors", "model", "training", "simulation", "analysis", "lrp")


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
    Returns the merged config with keys ``name``, ``system_dir``, ``profile``, ``arch`` and the
    sections. Raises FileNotFoundError if there is no system.yaml, KeyError naming an unknown
    section, profile or architecture, ValueError if the YAML is not a mapping.
    """
    d = Path(system_dir)
    path = d / "system.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (a system folder needs a system.yaml)")
    with open(path) as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    profiles = raw.pop("profiles", {}) or {}
    unknown = set(raw) - set(SECTIONS) - {"name", "description", "kind", "architectures"}
    if unknown:
        raise KeyError(f"{path}: unknown section(s) {sorted(unknown)}; known: {list(SECTIONS)}")
    if profile not in profiles and profile != "base":
        raise KeyError(f"{path}: no profile {profile!r}; available: {sorted(profiles)}")
    cfg = _merge(raw, profiles.get(profile, {}))
    archs = cfg.pop("architectures", {}) or {}
    for s in SECTIONS:
        cfg.setdefault(s, {})
    if arch is not None:
        if arch not in ("painn", "so3net"):
            raise KeyError(f"{path}: architecture {arch!r} is not supported; use 'painn' or 'so3net'")
        cfg = _merge(cfg, archs.get(arch, {}))
        cfg["model"]["representation"] = arch
    cfg["arch"] = cfg["model"].get("representation", "painn")
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
