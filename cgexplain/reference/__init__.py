"""Atomistic reference data with forces: OpenMM engines and builders for the bundled fluids
(:mod:`.fluids`, :mod:`.methane`, :mod:`.potentials`) and proteins (:mod:`.protein`).
"""
