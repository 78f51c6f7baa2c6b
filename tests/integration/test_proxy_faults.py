"""`embguard proxy` when something under or around it fails (both backends): Milvus restarting under the proxy,
and the proxy itself killed and restarted while an application keeps searching through it.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from backends import MilvusWorld
from builders import wait_until
from proxy_world import ProxyProcess, wait_for_tap
from pymilvus import DataType, MilvusClient, MilvusException

from embguard.milvus.milvus import Milvus

DIM = 384


def _app_collection(client: MilvusClient, name: str) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index)
    rng = np.random.default_rng(0)
    client.insert(name, [{"id": i, "vector": v.tolist()} for i, v in enumerate(rng.standard_normal((50, DIM)))])
    client.flush(name)
    client.load_collection(name)


# What pymilvus raises for a failed search: a MilvusException, or the bare gRPC error for a call past its timeout
# (DEADLINE_EXCEEDED is not wrapped). A real server that has just restarted can take longer than one call's timeout
# to answer its first search, directly as through the proxy.
SEARCH_FAILED = (MilvusException, grpc.RpcError)


def _failure(exc: Exception) -> str:
    if isinstance(exc, MilvusException):
        return f"{exc.code}: {exc.message}"
    return f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.Call) else repr(exc)


def _search(client: MilvusClient, name: str, q: np.ndarray) -> list[int]:
    return [h["id"] for h in client.search(name, data=[q.astype(np.float32).tolist()], limit=3, timeout=10)[0]]


@pytest.fixture()
def proxy(milvus_world: MilvusWorld, tmp_path: Path):
    env = {**milvus_world.env, "EMBGUARD_COLLECTIONS": '[{name="app"}]', "EMBGUARD_SAMPLING__QUERY_RATE": "1.0"}
    p = ProxyProcess(env, tmp_path / "proxy.log")
    p.start()
    yield p
    p.stop()


def test_milvus_restarting_under_the_proxy_fails_calls_as_directly_and_recovers_without_a_proxy_restart(
    milvus_world: MilvusWorld, proxy: ProxyProcess
) -> None:
    if not milvus_world.restartable:
        pytest.skip("an external Milvus is not restarted by the tests")
    db = milvus_world.settings.milvus.db_name
    uri = milvus_world.settings.milvus_uri
    app = MilvusClient(uri=proxy.uri, db_name=db)
    _app_collection(app, "app")
    q = np.random.default_rng(1).standard_normal(DIM)
    before = _search(app, "app", q)

    milvus_world.kill()
    with pytest.raises(MilvusException):
        MilvusClient(uri=uri, db_name=db, timeout=3).search("app", data=[q.tolist()], limit=3, timeout=3)
    with pytest.raises(MilvusException):  # through the proxy: a failure too, not a hang and not a proxy error
        app.search("app", data=[q.tolist()], limit=3, timeout=10)
    assert proxy.ready() and proxy.metric("embguard_proxy_upstream_up") == 0

    milvus_world.start()
    answers: list[list[int]] = []
    pairs: list[tuple[str, str]] = []  # (through the proxy, directly) while Milvus comes back

    def searches_again() -> bool:
        try:
            answers.append(_search(app, "app", q))
            return True
        except SEARCH_FAILED as exc:
            direct = MilvusClient(uri=uri, db_name=db, timeout=5)
            try:
                direct.search("app", data=[q.tolist()], limit=3, timeout=5)
                pairs.append((_failure(exc), "ok"))
            except SEARCH_FAILED as exc2:
                pairs.append((_failure(exc), _failure(exc2)))
            finally:
                direct.close()
            if "load" in _failure(exc):  # a restarted Lite serves its collections released: the app loads again
                app.load_collection("app")
            return False

    wait_until(searches_again, 180, interval_s=1.0, what="a search through the same proxy after Milvus restarted")
    assert all(via == direct for via, direct in pairs if "load" in via), pairs  # Milvus' own answer, unchanged
    assert answers[-1] == before and proxy.proc is not None and proxy.proc.poll() is None
    assert proxy.metric("embguard_proxy_upstream_up") == 1
    app.close()


def test_a_killed_proxy_restarted_on_its_port_serves_the_same_application_and_taps_nothing_twice(
    milvus_world: MilvusWorld, proxy: ProxyProcess
) -> None:
    db = milvus_world.settings.milvus.db_name
    app = MilvusClient(uri=proxy.uri, db_name=db)
    _app_collection(app, "app")
    rng = np.random.default_rng(2)
    sent: list[np.ndarray] = []
    for _ in range(10):
        sent.append(rng.standard_normal(DIM).astype(np.float32))
        _search(app, "app", sent[-1])
    m = Milvus.connect(milvus_world.settings)
    wait_for_tap(m, "app", 10)

    proxy.kill()
    with pytest.raises(MilvusException):
        app.search("app", data=[sent[0].tolist()], limit=3, timeout=5)
    proxy.start()
    after: list[np.ndarray] = []

    def searches_again() -> bool:
        q = rng.standard_normal(DIM).astype(np.float32)
        try:
            _search(app, "app", q)
        except MilvusException:
            return False
        after.append(q)
        return True

    wait_until(searches_again, 60, interval_s=0.5, what="the same client searching through the restarted proxy")
    for _ in range(9):
        assert searches_again()
    assert proxy.stop() == 0  # a clean stop writes what the tap holds
    rows = wait_for_tap(m, "app", 20)
    tapped = sorted(tuple(np.float32(r["vector"]).tolist()) for r in rows)
    assert tapped == sorted(tuple(v.tolist()) for v in sent + after)  # each search once, none twice
    app.close()
    m.close()
