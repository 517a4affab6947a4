"""CG molecular dynamics: neighbour lists (:mod:`.neighbors`) and Langevin integration (:mod:`.langevin`)."""
