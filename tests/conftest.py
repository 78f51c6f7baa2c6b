"""Shared fixtures: the Milvus backends (Lite and a real server, see backends.py), settings, the model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from embguard import config
from embguard.lite import free_port

from backends import Backend, MilvusWorld, backend_names

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


@pytest.fixture(scope="session", params=backend_names())
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """Each Milvus backend in turn (see tests/backends.py): every test that asks for one runs on all."""
    try:
        b = Backend(request.param, tmp_path_factory.mktemp(request.param))
    except Exception as exc:  # noqa: BLE001 - say what failed, then fail every test of this backend
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
            EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S="0.2") as w:
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
