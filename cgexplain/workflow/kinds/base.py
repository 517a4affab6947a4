"""What a kind of system decides in each stage.

A kind (fluid, protein, ...) is one class. The stages of :mod:`cgexplain.workflow.stages` are
the same for every kind: they prepare the stage folder and ask the run's kind for the parts
that differ. Adding a kind is adding one subclass of :class:`Kind` and registering it in
:data:`cgexplain.workflow.kinds.KINDS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cgexplain.fileio import read_json
from cgexplain.mapping.maps import MappingSection
from cgexplain.md.langevin import SimSettings
from cgexplain.model.potential import ModelSettings
from cgexplain.model.training import TrainSettings, held_in_frames
from cgexplain.settings import validate_section
from cgexplain.workflow.run import RunFolder

__all__ = ["Kind", "STAGE_SECTIONS", "held_in"]

#: the sections every kind reads with the same schema; a kind adds priors, analysis and lrp
STAGE_SECTIONS = {"mapping": MappingSection, "model": ModelSettings, "training": TrainSettings, "simulation": SimSettings}


def held_in(cfg: dict, run: RunFolder) -> np.ndarray | None:
    """Indices of the mapped frames that training, the priors and the CG start frames may use:
    None (all) without ``training.hold_out``, else the first half of every reference run
    (:func:`cgexplain.model.training.held_in_frames`; run lengths from ``reference.json``)."""
    hold_out = cfg["training"].get("hold_out")
    if not hold_out:
        return None
    return held_in_frames(read_json(run.reference_json).get("run_lengths") or [], hold_out)


class Kind:
    """Base class: the stage parts that differ between kinds of system.

    Every method receives the merged configuration ``cfg`` (:func:`cgexplain.workflow.config.load_system`)
    and the :class:`~cgexplain.workflow.run.RunFolder`; the stage has already prepared its folder.
    """

    name = "base"

    #: section of system.yaml -> its schema (a settings dataclass, a function whose keyword
    #: parameters are the keys, or None: this kind has no such section), for every section but
    #: ``reference`` (:mod:`cgexplain.workflow.config`)
    sections: dict[str, Any] = {}

    #: the ``reference`` schema of the kind's own OpenMM reference (``source: openmm``)
    reference_schema: Any = None

    def validate_reference(self, path: Path, ref: dict) -> dict:
        """The validated ``reference`` section of the kind's own OpenMM reference. Raises
        :class:`cgexplain.settings.ConfigError` naming ``path`` and the key."""
        return validate_section(path, "reference", self.reference_schema, ref)

    #: whether the beads form chains of residues with a native structure (proteins): the sources
    #: then make periodic chains whole, write and check the native structure and chain the beads
    #: of data already mapped
    residue_chains: bool = False

    #: whether ``cg/mapping.json`` lists every bead's name (chains and proteins; not the
    #: thousands of molecules of a fluid)
    named_beads: bool = False

    def premapped_names(self, bead_types: np.ndarray, names: list[str] | None = None) -> tuple[list[str], dict[str, int]]:
        """Bead names (n,) and the type table {name: type} of data already mapped: the data's own
        ``names`` (``bead_names`` of an .npz, checked one type per name by the reader) or, for
        beads that carry only integer types, ``B<type>`` for each."""
        types = [int(t) for t in bead_types]
        if names is not None:
            return list(names), {str(nm): t for nm, t in zip(names, types)}
        return [f"B{t}" for t in types], {f"B{t}": t for t in sorted(set(types))}

    def premapped_bonds(self, n_beads: int) -> np.ndarray:
        """CG bonds (m, 2) of data already mapped, which carry no topology: none."""
        return np.zeros((0, 2), dtype=np.int64)

    def check_mapping(self, run: RunFolder, n_beads: int) -> None:
        """Check a mapping of ``n_beads`` beads against the run's reference before any frame is
        mapped; raises :class:`cgexplain.mapping.maps.MappingError` naming the mismatch."""

    def reference(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        """Produce the atomistic reference in ``run.reference`` and check it; returns its summary."""
        raise NotImplementedError

    def priors(self, cfg: dict, run: RunFolder) -> dict | None:
        """Prior terms fitted to the mapped reference (the network learns the residual), or None."""
        return None

    def start_frames(self, cfg: dict, run: RunFolder, n_replicas: int, start_frame: int, n_frames: int) -> list[int]:
        """Indices into the mapped reference (``n_frames`` frames) from which ``n_replicas`` CG
        replicas start, when ``simulation.start_frames`` is not given: ``start_frame`` for one
        replica, else spread evenly over the reference so that the replicas start decorrelated."""
        if n_replicas == 1:
            return [int(start_frame)]
        return np.linspace(0, n_frames - 1, n_replicas).round().astype(int).tolist()

    def extra_simulations(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        """Simulations beside the main one (e.g. a mutant's); returns their summaries by name."""
        return {}

    def analyse(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        """Compare the CG ensemble with the mapped reference; writes ``run.analysis``."""
        raise NotImplementedError

    def explain(self, cfg: dict, run: RunFolder, progress: bool = True) -> dict:
        """Walk relevances and their decompositions; writes ``run.lrp``."""
        raise NotImplementedError
