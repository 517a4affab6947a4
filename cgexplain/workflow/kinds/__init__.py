"""Kinds of system: each class says how a stage runs for that kind.

``kind`` in system.yaml picks the class: ``fluid`` (default), ``protein`` (one bead per residue)
or ``chain`` (a bonded bead chain whose beads need not be residues). Adding a kind is
adding one :class:`~cgexplain.workflow.kinds.base.Kind` subclass to :data:`KINDS`.
"""

from __future__ import annotations

from cgexplain.workflow.kinds.base import Kind
from cgexplain.workflow.kinds.chain import ChainKind
from cgexplain.workflow.kinds.fluid import FluidKind
from cgexplain.workflow.kinds.protein import ProteinKind

__all__ = ["KINDS", "Kind", "kind_for"]

#: kind name in system.yaml -> class
KINDS: dict[str, type[Kind]] = {"fluid": FluidKind, "protein": ProteinKind, "chain": ChainKind}


def kind_for(cfg: dict) -> Kind:
    """The :class:`Kind` of a loaded configuration (``cfg['kind']``, default 'fluid').
    Raises KeyError naming the unknown kind and the known ones."""
    name = cfg.get("kind") or "fluid"
    if name not in KINDS:
        raise KeyError(f"kind {name!r} is not known; kinds: {sorted(KINDS)}")
    return KINDS[name]()
