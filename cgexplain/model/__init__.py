"""The CG potential: network build/save/load (:mod:`.potential`), kernels, priors, training data and
force-matching training.
"""
