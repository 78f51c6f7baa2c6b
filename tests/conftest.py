"""Shared fixtures for both tiers: the Milvus backends (Lite and a real server, see backends.py), settings, the
model, synthetic and real embeddings (monitors tests), a tiny model (retrain tests).

The tiers are directories: ``tests/unit`` (no services, no real model, no subprocess worth a second) and
``tests/integration`` (everything else, on every backend). Importable helpers live next to this file, without
a leading underscore: ``builders`` (settings, ``wait_until``), ``backends``, ``fakes`` (an in-memory Milvus),
``monitors_data``, ``tiny_model``, ``alert_hooks``, ``promql``, ``swap_world``; no test module imports another.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alert_hooks import Hook
from backends import Backend, MilvusWorld, backend_names
from builders import make_settings
from daemon_world import Receiver
from monitors_data import RealEmbeddings, load_real_embeddings
from prometheus_client import CollectorRegistry, Gauge
from tiny_model import build_tiny_model

from embguard.config import loader as config
from embguard.config.settings import Settings
from embguard.http.exporter import Exporter

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
UNIT, INTEGRATION = TESTS / "unit", TESTS / "integration"
# The checkout first, however pytest was started: tests/unit/monitors and tests/unit/retrain must never be taken
# for the real packages (pyproject's pythonpath does the same for a run from the repo root).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# The retrain tests build models from local files only, never from the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# Fixtures that start a Milvus server or load a model (the real one, or the tiny one built with torch): a test that
# uses one (directly or through another fixture) is an integration test, and so is a `slow` one (many-repetition
# calibration, several Evidently reports).
INTEGRATION_FIXTURES = frozenset({"backend", "milvus_world", "milvus_env", "milvus_settings", "embedder", "tiny_model"})


# The longest files of a CI run (--durations): 4, 2.5, 2.5 and 4 minutes on 2 cores.
LONGEST_FILES = frozenset(
    {"test_demo.py", "test_demo_apps.py", "test_swap_ray_backfill.py", "test_monitors_calibration_slow.py"}
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/integration is marked ``integration`` (so ``-m "not integration"`` still works);
    a test under tests/unit that needs services, the real model or is slow stops the run, naming it.

    Files with a ``slow`` test run first: `make test` hands whole files to two workers in this order, and a long
    file started last leaves one worker idle while the other finishes it."""
    misplaced = []
    for item in items:
        path = Path(str(item.path)).resolve()
        needs_services = (
            INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or item.get_closest_marker("slow") is not None
            or item.get_closest_marker("integration") is not None
        )
        if INTEGRATION in path.parents or needs_services:
            item.add_marker(pytest.mark.integration)
        if UNIT in path.parents and needs_services:
            misplaced.append(item.nodeid)
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    # stable: the order within a file is kept
    items.sort(key=lambda item: (item.path.name not in LONGEST_FILES, item.path not in slow_files))
    if misplaced:
        raise pytest.UsageError(
            "these tests need services, the real model or are slow, so they belong under tests/integration: "
            + ", ".join(misplaced[:10])
            + (f" and {len(misplaced) - 10} more" if len(misplaced) > 10 else "")
        )


class _SessionPool:
    """Session-wide things keyed by backend, started on first use and closed when the session ends.

    pytest finalises a parametrised session fixture whenever the next test asks for another parameter; under
    xdist a worker alternates between files on ``lite`` and ``server``, so without the pool it would restart the
    server (and the shared worlds) once per file."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._made: dict[tuple[str, str], object] = {}

    def get(self, key: tuple[str, str], make):
        if key not in self._made:
            self._made[key] = make(self._stack)
        return self._made[key]

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def _session_pool() -> Iterator[_SessionPool]:
    pool = _SessionPool()
    yield pool
    pool.close()


@pytest.fixture(scope="session", params=backend_names())
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, _session_pool: _SessionPool
) -> Backend:
    """Each Milvus backend in turn (see tests/backends.py): every test that asks for one runs on all."""

    def start(stack: contextlib.ExitStack) -> Backend:
        try:
            b = Backend(request.param, tmp_path_factory.mktemp(request.param))
        except Exception as exc:  # say what failed, then fail every test of this backend
            pytest.fail(f"could not start the {request.param!r} Milvus backend: {exc}")
        stack.callback(b.close)
        return b

    return _session_pool.get(("backend", request.param), start)


@pytest.fixture()
def milvus_world(backend: Backend, tmp_path: Path) -> Iterator[MilvusWorld]:
    """A fresh, empty Milvus for one test on the current backend; ``milvus_world.env`` reaches it."""
    with backend.world(tmp_path, EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S="0.2") as w:
        yield w


@pytest.fixture(scope="session")
def milvus_env(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory, _session_pool: _SessionPool
) -> dict[str, str]:
    """A Milvus shared by the session's integration tests on the current backend, as the EMBGUARD_*
    environment that reaches it, so other processes can be pointed at the same server."""

    def open_world(stack: contextlib.ExitStack) -> dict[str, str]:
        world = backend.world(
            tmp_path_factory.mktemp(f"shared-{backend.name}"),
            EMBGUARD_COLLECTIONS='[{name="docs"}, {name="pq", index_type="IVF_PQ"}, '
            '{name="kb", timestamp_field="ts", index_type="FLAT"}]',
            EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S="0.2",
        )
        return stack.enter_context(world).env

    return _session_pool.get(("milvus_env", backend.name), open_world)


@pytest.fixture(scope="session")
def milvus_settings(milvus_env: dict[str, str]) -> Settings:
    return config.load(None, environ=milvus_env)


@pytest.fixture(scope="session")
def embedder():
    from embguard.models import loading as model

    return model.load()


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EMBGUARD_"):
            monkeypatch.delenv(name)


@pytest.fixture()
def settings_for(tmp_path: Path):
    """``settings_for(**env)``: settings under this test's tmp_path (a fresh data dir and free port)."""

    def build(port: int | None = None, **env: str) -> Settings:
        return make_settings(tmp_path, port=port, **env)

    return build


def perturbed_copy(src: Path, dst: Path, scale: float = 0.05) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    sd = load_file(str(dst / "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    for k, v in sd.items():
        if "encoder.layer.5" in k and v.dtype.is_floating_point:
            sd[k] = v + scale * v.std() * torch.randn(v.shape, generator=g)
    save_file(sd, str(dst / "model.safetensors"))
    return dst


@pytest.fixture(scope="module")
def candidate_dir(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    return perturbed_copy(embedder.path, tmp_path_factory.mktemp("cand") / "model")


@pytest.fixture(scope="session")
def centres() -> np.ndarray:
    """30 known topics and, in the last 3 rows, topics that appear only when we inject drift."""
    rng = np.random.default_rng(1234)
    c = rng.standard_normal((33, 384))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def real() -> RealEmbeddings:
    """Real all-MiniLM-L6-v2 embeddings of the stdlib corpus (queries and passages), cached under .cache/."""
    return load_real_embeddings()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 32-d sentence-transformers model built locally (see tiny_model.py)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture()
def hook() -> Iterator[Hook]:
    """A webhook receiver on loopback that records every (event, alert key) it is sent."""
    h = Hook()
    yield h
    h.close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture()
def exporter() -> Iterator[str]:
    registry = CollectorRegistry()
    Gauge("embguard_test_gauge", "a test gauge", ("i",), registry=registry).labels("1").set(1)
    exp = Exporter(registry, "127.0.0.1", 0, lambda: (True, {}), lambda: (False, {"milvus": "down"}))
    exp.start()
    yield f"http://127.0.0.1:{exp.address[1]}"
    exp.stop()
