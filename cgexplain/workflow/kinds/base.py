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

from cgexplain.settings import validate_section
from cgexplain.workflow.run import RunFolder

__all__ = ["Kind"]


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
