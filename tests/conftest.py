"""Shared fixtures: the Milvus backends (Lite and a real server, see backends.py), settings, the model."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import Backend, MilvusWorld, backend_names

from embguard import config
from embguard.lite import free_port

REPO = Path(__file__).resolve().parents[1]


def settings_env(tmp: Path, port: int | None = None, **env: str) -> dict[str, str]:
    """The EMBGUARD_* environment of a test: everything under ``tmp``, on a free loopback port."""
    base = {
        "EMBGUARD_LITE__DATA_DIR": str(tmp / "milvus"),
        "EMBGUARD_LITE__PORT": str(port or free_port()),
        "EMBGUARD_STATE__DIR": str(tmp / "state"),
        "EMBGUARD_MODEL__STORE_DIR": str(tmp / "models"),
    }
    base.update(env)
    return base


def make_settings(tmp: Path, port: int | None = None, **env: str) -> config.Settings:
    return config.load(None, environ=settings_env(tmp, port, **env))


# Fixtures that start a Milvus server or load the real model: a test that uses one (directly or through another
# fixture) is an integration test, whatever its module says, so `pytest -m "not integration"` stays fast.
INTEGRATION_FIXTURES = frozenset({"backend", "milvus_world", "milvus_env", "milvus_settings", "embedder"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A `slow` test (many-repetition calibration, several Evidently reports) is never part of the fast tier either.
    for item in items:
        if (
            INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or item.get_closest_marker("slow") is not None
        ):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", params=backend_names())
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """Each Milvus backend in turn (see tests/backends.py): every test that asks for one runs on all."""
    try:
        b = Backend(request.param, tmp_path_factory.mktemp(request.param))
    except Exception as exc:  # say what failed, then fail every test of this backend
        pytest.fail(f"could not start the {request.param!r} Milvus backend: {exc}")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture()
def milvus_world(backend: Backend, tmp_path: Path) -> Iterator[MilvusWorld]:
    """A fresh, empty Milvus for one test on the current backend; ``milvus_world.env`` reaches it."""
    with backend.world(tmp_path, EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S="0.2") as w:
        yield w


@pytest.fixture(scope="session")
def milvus_env(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Milvus shared by the session's integration tests on the current backend, as the EMBGUARD_*
    environment that reaches it, so other processes can be pointed at the same server."""
    with backend.world(
        tmp_path_factory.mktemp(f"shared-{backend.name}"),
        EMBGUARD_COLLECTIONS='[{name="docs"}, {name="pq", index_type="IVF_PQ"}, '
        '{name="kb", timestamp_field="ts", index_type="FLAT"}]',
        EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S="0.2",
    ) as w:
        yield w.env


@pytest.fixture(scope="session")
def milvus_settings(milvus_env: dict[str, str]) -> config.Settings:
    return config.load(None, environ=milvus_env)


@pytest.fixture(scope="session")
def embedder():
    from embguard import model

    return model.load()


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EMBGUARD_"):
            monkeypatch.delenv(name)


@pytest.fixture()
def settings_for(tmp_path: Path):
    """``settings_for(**env)``: settings under this test's tmp_path (a fresh data dir and free port)."""

    def build(port: int | None = None, **env: str) -> config.Settings:
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
