"""Kinds of system: each class says how a stage runs for that kind (fluid, protein).
"""
