"""Shared fixtures: a real Milvus Lite server on a free loopback port, settings pointing at it, the model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from embguard import config
from embguard.lite import LiteServer, free_port

REPO = Path(__file__).resolve().parents[1]


def make_settings(tmp: Path, port: int | None = None, **env: str) -> config.Settings:
    """Settings for a test: everything under ``tmp``, nothing read from the developer's environment."""
    base = {
        "EMBGUARD_LITE__DATA_DIR": str(tmp / "milvus"),
        "EMBGUARD_LITE__PORT": str(port or free_port()),
        "EMBGUARD_STATE__DIR": str(tmp / "state"),
        "EMBGUARD_MODEL__STORE_DIR": str(tmp / "models"),
    }
    base.update(env)
    return config.load(None, environ=base)


@pytest.fixture(scope="session")
def lite_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[config.Settings]:
    """A Milvus Lite server shared by the session's integration tests; stopped at the end."""
    tmp = tmp_path_factory.mktemp("lite")
    settings = make_settings(tmp, EMBGUARD_COLLECTIONS='[{name="docs"}, {name="pq", index_type="IVF_PQ"}]')
    server = LiteServer.from_settings(settings)
    server.start()
    try:
        yield settings
    finally:
        server.stop()


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
