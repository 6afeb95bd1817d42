"""Shared test setup: CPU only, and a few tiny fixtures."""

import os

# Tests run on CPU; the sharding tests start subprocesses with more host devices.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def repo_root() -> pathlib.Path:
    return REPO
