"""Observables of CG and reference ensembles: structure (RDF, ADF, tetrahedral order;
:mod:`.structure`) and protein observables (RMSD, Q, Rg, TICA; :mod:`.protein`).
"""
