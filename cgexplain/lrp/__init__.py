"""GNN-LRP for schnetpack potentials: walk relevances and their n-body grouping.

Sources: Schnake et al., "Higher-order explanations of graph neural networks via relevant
walks", IEEE TPAMI 44, 7581 (2022); Bonneau et al., "Peering inside the black box: learning the
relevance of many-body functions in neural network potentials", arXiv 2407.04526 (Nat. Commun.
16, 9898 (2025)).
"""

from cgexplain.lrp.engine import WalkResult, brute_force_relevance, enumerate_walks, make_lrp, walk_relevance
from cgexplain.lrp.nbody import (
    binned_statistics,
    body_order,
    nbody_sums,
    normalise,
    pair_relevance,
    three_body_points,
    triplet_angle_relevance,
    triplet_relevance,
    two_body_points,
)
from cgexplain.lrp.residues import (
    explain_protein_frames,
    format_pair_table,
    pair_table,
    residue_one_body,
    residue_pair_map,
    residue_triplets,
    triplet_projection,
)

__all__ = [
    "walk_relevance",
    "brute_force_relevance",
    "enumerate_walks",
    "make_lrp",
    "WalkResult",
    "body_order",
    "nbody_sums",
    "pair_relevance",
    "triplet_relevance",
    "triplet_angle_relevance",
    "binned_statistics",
    "normalise",
    "two_body_points",
    "three_body_points",
    "residue_pair_map",
    "residue_one_body",
    "residue_triplets",
    "triplet_projection",
    "explain_protein_frames",
    "pair_table",
    "format_pair_table",
]
