"""Diagnostics: read a model or a `Trajectory` and return named numbers (see MODELS.md).

Each submodule holds one idea; the public names are re-exported here.
"""
