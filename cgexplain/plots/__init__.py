"""Figure functions shared by the stages (:mod:`.core`: pyplot, save_figure, RDF/ADF plots)."""
