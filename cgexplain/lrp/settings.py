"""The ``lrp`` section of system.yaml: the settings of the explain stage, for fluids
(:class:`LrpSection`, read by :mod:`cgexplain.lrp.statistics`) and proteins
(:class:`ProteinLrpSection`, read by :mod:`cgexplain.lrp.residues` and
:mod:`cgexplain.lrp.mutations`). Kept light (no torch) so that the command line can show the
defaults at once."""

from __future__ import annotations

import dataclasses

from cgexplain.lrp.nbody import NORMALISATIONS
from cgexplain.settings import ge, gt, one_of

__all__ = ["LrpSection", "ProteinLrpSection", "ChainLrpSection"]


@dataclasses.dataclass
class LrpSection:
    """``lrp`` of a fluid (GNN-LRP, :mod:`cgexplain.lrp.statistics`).

    rule 'publication' (walks, the parity README's rules), 'branching' or 'branching-tree' (branching
    walks or trees through PaiNN's vector products, relevance per bead set:
    :mod:`cgexplain.lrp.branching`; PaiNN only;
    normalise 'abs_mean_total' (then |Σ R| / N_sets) or 'none'; no walk files);
    gamma >= 0 with bias_rule (LRP-γ; gamma 0 without bias rule: gradient x input); normalise:
    'abs_mean_total' (the publication's |Σ R| / N_walks), 'mean_abs', 'sum_abs' or 'none';
    enumeration 'pruned' or 'all'; save_walks 'first', 'all' or 'none'; n_frames CG frames;
    output_beads (None: all); r_edges [lo Å, hi Å, bins] of the 2-body curve (the publication's
    2-10 Å, 75 bins); angle_bins over 0-180°; workers processes with ``backend``
    ('multiprocessing' or 'dask'); device 'cpu', 'cuda' or 'cuda:N'."""

    rule: str = one_of("publication", "branching", "branching-tree")
    gamma: float = ge(0, 0.1)
    bias_rule: bool = True
    normalise: str = one_of(*NORMALISATIONS)
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
        if self.rule != "publication" and self.normalise not in ("abs_mean_total", "none"):
            raise ValueError(
                f"normalise {self.normalise!r} needs every walk's |R|; the branching rule gives relevance per bead set: use abs_mean_total or none"
            )
        lo, hi, nb = self.r_edges
        if not (0 <= lo < hi and nb >= 1):
            raise ValueError(f"r_edges {list(self.r_edges)}: need 0 <= lo < hi and bins >= 1")


@dataclasses.dataclass
class ChainLrpSection:
    """``lrp`` of a bead chain (:func:`cgexplain.workflow.kinds.chain.chain_explain`): gamma,
    bias_rule as for fluids; n_frames CG frames spread over the simulation; workers, backend,
    device as for fluids."""

    gamma: float = ge(0, 0.1)
    bias_rule: bool = True
    n_frames: int = gt(0, 5)
    workers: int = gt(0, 1)
    backend: str = one_of("multiprocessing", "dask")
    device: str | None = None


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
