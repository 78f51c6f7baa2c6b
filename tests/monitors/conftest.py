"""Fixtures for the monitors tests: synthetic embedding-like data and cached real sentence embeddings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _monitors_data import RealEmbeddings, load_real_embeddings

REPO_ROOT = Path(__file__).resolve().parents[2]
# The package is not installed into the venv; make the checkout importable however pytest was started.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def centres() -> np.ndarray:
    """30 known topics and, in the last 3 rows, topics that appear only when we inject drift."""
    rng = np.random.default_rng(1234)
    c = rng.standard_normal((33, 384))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def real() -> RealEmbeddings:
    """Real all-MiniLM-L6-v2 embeddings of the stdlib corpus (queries and passages), cached under .cache/."""
    pytest.importorskip("embguard.corpus")
    return load_real_embeddings()
