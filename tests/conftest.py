"""Shared test setup: importing gradflow switches float64 on once for the whole session."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import gradflow  # noqa: E402,F401
import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)
