"""GNN-LRP for schnetpack potentials: walk relevances and their n-body grouping.

Sources: Schnake et al., "Higher-order explanations of graph neural networks via relevant
walks", IEEE TPAMI 44, 7581 (2022); Bonneau et al., "Peering inside the black box: learning the
relevance of many-body functions in neural network potentials", arXiv 2407.04526 (Nat. Commun.
16, 9898 (2025)).

The names below are imported on first use, so that a light module of this package (the
settings of :mod:`cgexplain.lrp.settings`) does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "WalkResult": "cgexplain.lrp.engine",
    "brute_force_relevance": "cgexplain.lrp.engine",
    "enumerate_walks": "cgexplain.lrp.engine",
    "make_lrp": "cgexplain.lrp.engine",
    "walk_relevance": "cgexplain.lrp.engine",
    "binned_statistics": "cgexplain.lrp.nbody",
    "body_order": "cgexplain.lrp.nbody",
    "nbody_sums": "cgexplain.lrp.nbody",
    "normalise": "cgexplain.lrp.nbody",
    "pair_relevance": "cgexplain.lrp.nbody",
    "three_body_points": "cgexplain.lrp.nbody",
    "triplet_angle_relevance": "cgexplain.lrp.nbody",
    "triplet_relevance": "cgexplain.lrp.nbody",
    "two_body_points": "cgexplain.lrp.nbody",
    "explain_protein_frames": "cgexplain.lrp.residues",
    "format_pair_table": "cgexplain.lrp.residues",
    "pair_table": "cgexplain.lrp.residues",
    "residue_one_body": "cgexplain.lrp.residues",
    "residue_pair_map": "cgexplain.lrp.residues",
    "residue_triplets": "cgexplain.lrp.residues",
    "triplet_projection": "cgexplain.lrp.residues",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'cgexplain.lrp' has no attribute {name!r}")
