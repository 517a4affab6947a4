"""cgexplain: machine-learned coarse-grained models of molecules, and GNN-LRP explanations of what they learned.

The curated API (imported on first use, so ``import cgexplain`` stays light):

- :func:`load_system` (:mod:`cgexplain.workflow.config`): a validated system.yaml;
- :func:`run_all`, :class:`RunFolder` (:mod:`cgexplain.workflow`): the six stages into a run folder;
- :func:`load_model` (:mod:`cgexplain.model.potential`): a saved potential (state_dict + JSON);
- :func:`walk_relevance` (:mod:`cgexplain.lrp.engine`): GNN-LRP walk relevances of one frame;
- :func:`explain_trajectory` (:mod:`cgexplain.lrp.explain`): relevance statistics over a CG trajectory.

Units: Å, ps, K, amu, kcal/mol, kcal/mol/Å.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_system": "cgexplain.workflow.config",
    "run_all": "cgexplain.workflow.stages",
    "RunFolder": "cgexplain.workflow.run",
    "load_model": "cgexplain.model.potential",
    "walk_relevance": "cgexplain.lrp.engine",
    "explain_trajectory": "cgexplain.lrp.explain",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'cgexplain' has no attribute {name!r}")
