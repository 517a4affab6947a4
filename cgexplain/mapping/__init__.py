"""Atoms to beads: position maps, consistent force maps, bead types and the CG topology (:mod:`.maps`)."""
