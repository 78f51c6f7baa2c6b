"""Applications as users write them, pointed only at `embguard proxy`'s URI: pymilvus MilvusClient and ORM,
LangChain, LlamaIndex and a Node.js script on the Node SDK. Each runs once directly against Milvus and once
through the proxy (both backends); results (ids, scores, texts) and errors must be equal, and the proxy's tap
must hold exactly the query vectors the application sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from backends import Backend
from proxy_world import APPS, ProxyProcess, run_app, wait_for_tap

from embguard.milvus.milvus import Milvus


def same_errors(errors: dict[str, str]) -> dict[str, str]:
    """The errors with what differs between two runs masked: the server names the collection's internal ids and
    DML channel (``by-dev-rootcoord-dml_1_470893685446941398v0``), and the two runs make two collections."""
    return {k: re.sub(r"dml_\d+_\d+v\d+|\d{9,}", "<id>", v) for k, v in errors.items()}


@pytest.fixture(scope="module")
def proxied(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyProcess, Milvus, str]]:
    """One Milvus world per backend for the module, an `embguard proxy` in front of it, watching each app's
    collection at query_rate 1."""
    tmp = tmp_path_factory.mktemp(f"proxy-{backend.name}")
    watched = ", ".join(f'{{name="{app}"}}' for app in APPS)
    with backend.world(
        tmp,
        EMBGUARD_COLLECTIONS=f"[{watched}]",
        EMBGUARD_SAMPLING__QUERY_RATE="1.0",
        EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S="0.2",
    ) as world:
        proxy = ProxyProcess(world.env, tmp / "proxy.log")
        proxy.start()
        m = Milvus.connect(world.settings)
        try:
            yield proxy, m, world.settings.milvus.db_name
        finally:
            m.close()
            assert proxy.stop() == 0, (tmp / "proxy.log").read_text()[-2000:]


@pytest.mark.parametrize("app", APPS)
def test_an_unchanged_application_gets_the_same_answers_through_the_proxy_and_is_tapped(
    app: str, proxied: tuple[ProxyProcess, Milvus, str], tmp_path: Path
) -> None:
    proxy, m, db = proxied
    direct = run_app(app, m.uri, db, app, tmp_path / "direct.json")
    through = run_app(app, proxy.uri, db, app, tmp_path / "proxied.json", "--keep")

    assert through["hits"] == direct["hits"] and len(direct["hits"]) == 5
    assert all(len(h) == 5 for h in direct["hits"])
    assert same_errors(through["errors"]) == same_errors(direct["errors"])
    # Each SDK reports these its own way (the Node SDK fails on its own describe of an unknown collection,
    # LangChain returns no hits): what matters is that the proxy changes none of it.
    assert direct["errors"]["wrong_dimension"] != "no error"

    rows = wait_for_tap(m, app, 5)
    assert len(rows) == 5 and len({r["query_id"] for r in rows}) == 5
    tapped = sorted(tuple(np.float32(r["vector"]).tolist()) for r in rows)
    sent = sorted(tuple(np.float32(q).tolist()) for q in through["queries"])
    assert tapped == sent  # bit for bit: float32 in, float32 stored
    assert proxy.metric("embguard_proxy_document_rows_total", collection=app, op="insert") == 300
    assert proxy.metric("embguard_proxy_tap_dropped_total", reason="decode_error") == 0
