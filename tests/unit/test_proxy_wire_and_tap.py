"""The proxy's reading of Milvus' wire (pymilvus' own generated messages) and its tap's promises: it never
blocks or fails a forwarded call, and says what it dropped."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest
from builders import make_settings, wait_until
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from embguard.errors import ConfigError
from embguard.milvus.wire import METHODS, decode_search, decode_write
from embguard.proxy.forwarder import upstream_target
from embguard.proxy.tap import ProxyCounters, ProxyTap


def search_bytes(vectors: np.ndarray, collection: str = "docs", db: str = "") -> bytes:
    ph = common_pb2.PlaceholderValue(
        tag="$0", type=common_pb2.PlaceholderType.FloatVector, values=[v.astype("<f4").tobytes() for v in vectors]
    )
    group = common_pb2.PlaceholderGroup(placeholders=[ph]).SerializeToString()
    req = milvus_pb2.SearchRequest(db_name=db, collection_name=collection, placeholder_group=group, nq=len(vectors))
    return req.SerializeToString()


def results_bytes(ids: list[list[int]], scores: list[list[float]], code: int = 0) -> bytes:
    data = schema_pb2.SearchResultData(
        num_queries=len(ids),
        top_k=max(len(i) for i in ids),
        ids=schema_pb2.IDs(int_id=schema_pb2.LongArray(data=[x for row in ids for x in row])),
        scores=[s for row in scores for s in row],
        topks=[len(i) for i in ids],
    )
    status = common_pb2.Status(code=code, reason="boom" if code else "")
    return milvus_pb2.SearchResults(status=status, results=data).SerializeToString()


def test_the_method_table_is_milvus_service() -> None:
    assert {"Search", "HybridSearch", "Insert", "Upsert", "Delete", "HasCollection", "DumpMessages"} <= METHODS


def test_a_search_decodes_to_its_exact_vectors_and_ranked_hits() -> None:
    v = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    call = decode_search(
        "Search", search_bytes(v, db="shop"), results_bytes([[3, 1], [7, 9]], [[0.9, 0.5], [0.8, 0.1]])
    )
    assert call is not None and call.collection == "docs" and call.db_name == "shop" and not call.skipped
    assert np.array_equal(call.vectors, v)  # bit for bit
    assert call.hits[0][0] == (3, pytest.approx(0.9)) and [h for h, _ in call.hits[1]] == [7, 9]


def test_an_error_answer_is_not_tapped_and_a_mismatched_answer_is_marked_malformed() -> None:
    v = np.ones((2, 4), np.float32)
    assert decode_search("Search", search_bytes(v), results_bytes([[1]], [[0.5]], code=100)) is None
    call = decode_search("Search", search_bytes(v), results_bytes([[1]], [[0.5]]))
    assert call is not None and call.skipped == "malformed"


def test_a_text_query_is_recognised_and_not_read_as_a_vector() -> None:
    ph = common_pb2.PlaceholderValue(tag="$0", type=common_pb2.PlaceholderType.VarChar, values=[b"what is new"])
    req = milvus_pb2.SearchRequest(
        collection_name="docs", placeholder_group=common_pb2.PlaceholderGroup(placeholders=[ph]).SerializeToString()
    ).SerializeToString()
    call = decode_search("Search", req, results_bytes([[1]], [[0.5]]))
    assert call is not None and call.skipped == "text_query"


def test_a_hybrid_search_is_read_through_its_first_dense_sub_request_and_the_fused_ranking() -> None:
    """The request as pymilvus builds it for ``MilvusClient.hybrid_search`` (a sparse, then a dense sub-request)."""
    from pymilvus import AnnSearchRequest, RRFRanker
    from pymilvus.client.prepare import Prepare

    v = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    subs = [
        AnnSearchRequest([{1: 0.5, 7: 0.2}, {3: 1.0}], "sparse", {"metric_type": "IP"}, 5),
        AnnSearchRequest([x.tolist() for x in v], "dense", {"metric_type": "COSINE"}, 5),
    ]
    reqs = [
        Prepare.search_requests_with_expr(
            collection_name="docs", data=s.data, anns_field=s.anns_field, param=s.param, limit=s.limit
        )
        for s in subs
    ]
    request = Prepare.hybrid_search_request_with_ranker("docs", reqs, RRFRanker(), 5, partition_names=["p1"])
    fused = results_bytes([[4, 2], [8, 6]], [[0.03, 0.01], [0.02, 0.01]])
    call = decode_search("HybridSearch", request.SerializeToString(), fused, db_header="shop")
    assert call is not None and not call.skipped
    assert (call.collection, call.db_name, call.partitions) == ("docs", "shop", ("p1",))
    assert np.array_equal(call.vectors, v)  # the dense sub-request's vectors, bit for bit
    assert [h for h, _ in call.hits[0]] == [4, 2] and [h for h, _ in call.hits[1]] == [8, 6]  # what the app saw

    only_sparse = Prepare.hybrid_search_request_with_ranker("docs", reqs[:1], RRFRanker(), 5)
    call = decode_search("HybridSearch", only_sparse.SerializeToString(), fused)
    assert call is not None and call.skipped == "not_float_vector" and call.vectors.size == 0


def test_writes_decode_to_their_row_counts() -> None:
    ok = common_pb2.Status()
    ins = milvus_pb2.InsertRequest(collection_name="docs", num_rows=3).SerializeToString()
    res = milvus_pb2.MutationResult(status=ok, insert_cnt=3).SerializeToString()
    assert decode_write("Insert", ins, res, "default").rows == 3  # type: ignore[union-attr]
    dele = milvus_pb2.DeleteRequest(collection_name="docs", expr="id in [1]").SerializeToString()
    res = milvus_pb2.MutationResult(status=ok, delete_cnt=1).SerializeToString()
    w = decode_write("Delete", dele, res)
    assert w is not None and (w.op, w.rows) == ("delete", 1)
    refused = milvus_pb2.MutationResult(status=common_pb2.Status(code=1)).SerializeToString()
    assert decode_write("Insert", ins, refused) is None


def test_upstream_targets_and_a_uri_the_proxy_cannot_reach() -> None:
    assert upstream_target("http://milvus:19530") == ("milvus", 19530, False)
    assert upstream_target("https://milvus.example.com") == ("milvus.example.com", 443, True)
    with pytest.raises(ConfigError, match="milvus.uri"):
        upstream_target("unix:/tmp/milvus.sock")


class Recording(ProxyCounters):
    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()

    def dropped(self, reason: str, n: int) -> None:
        self.drops[reason] += n


def test_the_tap_never_blocks_a_call_and_counts_what_it_drops(tmp_path) -> None:
    """The tap's worker is stuck (Milvus hangs): offers return at once, the queue's overflow is counted, and once
    Milvus answers with an error the waiting queries are counted as not tapped."""
    settings = make_settings(tmp_path, EMBGUARD_COLLECTIONS='[{name="docs"}]', EMBGUARD_SAMPLING__QUERY_RATE="1.0")
    release = threading.Event()

    def connect():
        release.wait(10)
        raise ConnectionError("milvus is down")

    counters = Recording()
    tap = ProxyTap(settings, connect, counters=counters, queue_size=2)
    v = np.ones((1, 4), np.float32)
    call = (search_bytes(v), results_bytes([[1]], [[0.5]]))
    started = time.perf_counter()
    for _ in range(50):
        tap.offer("Search", *call, ())
    assert time.perf_counter() - started < 0.5  # 50 offers, none waited on the stuck worker
    wait_until(lambda: counters.drops["queue_full"] >= 47, 5)
    release.set()
    wait_until(lambda: counters.drops["milvus_unavailable"] >= 1, 10)
    assert not tap.wants("HasCollection") and tap.wants("Insert")  # not a tapped method: its bytes are not kept
    tap.offer("Search", *call, (("dbname", "other"),))  # another database: forwarded, not watched
    tap.close(timeout_s=2)
    assert counters.drops["decode_error"] == 0
