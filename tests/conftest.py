"""Shared fixtures: a real Milvus Lite server on a free loopback port, settings pointing at it, the model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from embguard import config
from embguard.lite import LiteServer, free_port

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


@pytest.fixture(scope="session")
def lite_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Milvus Lite server shared by the session's integration tests (stopped at the end), as the
    EMBGUARD_* environment that reaches it, so other processes can be pointed at the same server."""
    env = settings_env(
        tmp_path_factory.mktemp("lite"),
        EMBGUARD_COLLECTIONS='[{name="docs"}, {name="pq", index_type="IVF_PQ"}, '
                             '{name="kb", timestamp_field="ts", index_type="FLAT"}]',
        EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S="0.2")
    server = LiteServer.from_settings(config.load(None, environ=env))
    server.start()
    try:
        yield env
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lite_settings(lite_env: dict[str, str]) -> config.Settings:
    return config.load(None, environ=lite_env)


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
