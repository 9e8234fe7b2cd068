"""Fixtures every test folder may use."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def python() -> str:
    """The interpreter of this venv, for starting napshare processes."""
    return sys.executable
