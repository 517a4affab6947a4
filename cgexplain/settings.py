"""Settings schemas: field constraints, validation against a schema, and input hashes.

A leaf module: it imports nothing of cgexplain, so every stage module can declare its own
settings dataclass here (:func:`gt`, :func:`ge`, :func:`one_of`) and the workflow layer
(:mod:`cgexplain.workflow.config`) can validate a system.yaml section against it
(:func:`validate_section`) without an import circle. Library classes take plain keyword
arguments and never read a configuration file; the workflow layer builds them at the edge.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import typing
from pathlib import Path
from typing import Any, Literal

__all__ = ["ConfigError", "gt", "ge", "one_of", "settings_from_dict", "section_hash", "validate_section", "schema_defaults"]


class ConfigError(ValueError, KeyError):
    """A configuration that does not validate. The message names the file, the key path
    (``training.epochs``) and what is allowed. It is a ValueError (a bad value) and a KeyError
    (an unknown key, section or profile), so either ``except`` catches it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# ------------------------------------------------------------------ field constraints
def gt(x: float, default: Any = dataclasses.MISSING, unit: str = "") -> Any:
    """A dataclass field whose value must be > x (checked by :func:`validate_section`)."""
    return dataclasses.field(default=default, metadata={"gt": x, "unit": unit})


def ge(x: float, default: Any = dataclasses.MISSING, unit: str = "") -> Any:
    """A dataclass field whose value must be >= x (checked by :func:`validate_section`)."""
    return dataclasses.field(default=default, metadata={"ge": x, "unit": unit})


def one_of(*values: Any, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose value must be one of ``values`` (checked by :func:`validate_section`);
    the default is the first value unless given."""
    return dataclasses.field(default=values[0] if default is dataclasses.MISSING else default, metadata={"one_of": values})


def schema_defaults(schema: Any) -> dict:
    """The defaults of a settings dataclass, as a plain dict (fields without a default left out)."""
    out = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def settings_from_dict(cls: Any, d: dict, section: str) -> Any:
    """Build the settings dataclass ``cls`` from a config section.

    Raises KeyError naming the section and any key that ``cls`` does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise KeyError(f"{section} settings: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    return cls(**d)


def section_hash(*parts: Any) -> str:
    """A short stable hash (16 hex digits of SHA-256) of JSON-serialisable parts (stage inputs)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ validation
@functools.lru_cache(maxsize=64)
def _pydantic_model(schema: Any, name: str) -> Any:
    """A strict pydantic model (unknown keys forbidden) of a dataclass's fields, or of a function's
    keyword parameters (after the first two, plus ``temperature``), with the constraints of
    :func:`gt`, :func:`ge`, :func:`one_of`."""
    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    hints = typing.get_type_hints(schema)
    if dataclasses.is_dataclass(schema):
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
        for p in list(inspect.signature(schema).parameters.values())[2:]:
            fields[p.name] = (hints.get(p.name, Any), p.default)
        fields["temperature"] = (float | None, Field(None, gt=0))
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def _format_errors(path: Path, section: str, err: Any, known: list[str]) -> str:
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


def validate_section(path: str | Path, section: str, schema: Any, values: Any) -> dict:
    """Validate one configuration section against its schema and fill in the defaults.

    path: the file named in errors; section: its key path (``training``, ``reference.check``);
    schema: a settings dataclass (its field constraints and ``__post_init__`` checks), a function
    whose keyword parameters are the keys (priors), or None for a section the kind does not have.
    Returns a plain dict (tuples as lists, as YAML gives them). Raises :class:`ConfigError`
    naming the file, the key path and what is allowed."""
    from pydantic import ValidationError

    path = Path(path)
    if schema is None:
        if values:
            raise ConfigError(f"{path}: {section}: this kind of system has no {section} (got keys {sorted(values)})")
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: {section} must be a mapping, got {type(values).__name__}")
    model = _pydantic_model(schema, f"{section.replace('.', '_')}_schema")
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
