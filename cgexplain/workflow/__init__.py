"""The pipeline layer: the run folder (:mod:`.run`), the six stages (:mod:`.stages`), one class per kind
of system (:mod:`.kinds`) and pretrained-model folders (:mod:`.pretrained`).
"""
