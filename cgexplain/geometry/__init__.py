"""Geometry shared by the model, the priors, the dynamics and the analyses: neighbour lists
(:mod:`cgexplain.geometry.neighbors`) and internal coordinates (:mod:`cgexplain.geometry.internal`)."""
