"""Managed collections (`embguard collection create|list`), a model of another dimension through the loop (tap ->
window -> check -> retrain -> gate), and one imported from elsewhere gated and swapped in, on each backend."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from embguard.checks.references import ReferenceStore
from embguard.checks.windows import query_window
from embguard.cli._base import cli
from embguard.client.client import Client
from embguard.client.tap import tap_collection_name
from embguard.demo.simulate import index, passages_for
from embguard.milvus.milvus import Milvus
from embguard.models.registry import ModelRegistry

pytestmark = pytest.mark.integration
DIM = 256


@pytest.fixture(scope="module")
def model_256(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """The default model plus a Dense projection to 256 dimensions: a real sentence-transformers model of
    another dimension, built locally (nothing downloaded)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense

    torch.manual_seed(0)
    st = SentenceTransformer(str(embedder.path), device="cpu", local_files_only=True)
    st.append(Dense(in_features=384, out_features=DIM, activation_function=torch.nn.Identity()))
    out = tmp_path_factory.mktemp("m256") / "minilm-256"
    st.save(str(out))
    return out


def _cli(env: dict[str, str], *args: str) -> str:
    res = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_collection_create_and_list(milvus_world, model_256: Path) -> None:
    env = milvus_world.env
    out = _cli(env, "collection", "create", "--collection", "docs", "--index", "FLAT")
    assert out.startswith("docs -> docs__v0000 (384-d, model all-MiniLM-L6-v2@")  # v0000: the shipped default
    out = _cli(env, "collection", "create", "-c", "small", "--model", str(model_256), "--index", "FLAT")
    assert "small -> small__v0001 (256-d, model v0001@" in out  # registered into the store, loadable by id
    res = CliRunner().invoke(cli, ["collection", "create", "docs"], env=env)
    assert res.exit_code != 0 and "a collection or alias named 'docs' already exists" in res.output
    m = Milvus.connect(milvus_world.settings)
    with Client(milvus_world.settings) as c:
        c.insert("docs", [{"id": i, "text": f"document {i}"} for i in range(7)])
    listing = _cli(env, "collection", "list")
    lines = {ln.split()[0]: ln.split() for ln in listing.splitlines()[1:]}
    assert lines["docs"][1:4] == ["docs__v0000", "384", "7"] and lines["docs"][4].startswith("all-MiniLM-L6-v2@")
    assert lines["small"][1:4] == ["small__v0001", "256", "0"] and lines["small"][4].startswith("v0001@")
    assert m.resolve("small") == "small__v0001"
    m.close()


@pytest.mark.slow
def test_a_256_dimensional_model_through_the_whole_loop(backend, tmp_path: Path, model_256: Path) -> None:
    from prometheus_client import CollectorRegistry

    from embguard.client.retention import Pins
    from embguard.daemon.service import Daemon
    from embguard.training.candidates import build_candidate
    from embguard.training.labels import import_labels

    with backend.world(
        tmp_path,
        EMBGUARD_COLLECTIONS='[{name="small", index_type="FLAT"}]',
        EMBGUARD_SAMPLING__QUERY_RATE="1.0",
        EMBGUARD_SAMPLING__STORE_QUERY_TEXT="true",
        EMBGUARD_DRIFT__MIN_WINDOW="20",
        EMBGUARD_RETRAIN__MIN_FEEDBACK_PAIRS="40",
        EMBGUARD_RETRAIN__MIN_HELD_OUT="10",
        EMBGUARD_RETRAIN__GUARD_QUERIES="0",
        EMBGUARD_RETRAIN__GATE_MARGIN="1.0",  # no candidate gains a whole nDCG point: rejected
        EMBGUARD_SWAP__GRACE_S="0.5",
        EMBGUARD_SWAP__SHADOW_QUERIES="10",
    ) as world:
        s = world.settings
        spec = s.collection("small")
        passages = passages_for(["json", "csv", "sqlite3", "logging"])[:80]
        with Client(s) as c:
            assert c.create_collection("small", str(model_256)) == "small__v0001"
            index(c, "small", passages)
            t0 = int(time.time() * 1000)
            queries = [p.query for p in passages] + [p.text[:80] for p in passages[:50]]  # the OOD monitor wants 100+
            # One batch, so a real server's strong-consistency wait (to see the rows just indexed) is paid once.
            c.search("small", queries, limit=5, consistency_level="Strong")
            c.flush_tap()
        m = Milvus.connect(s)
        assert m.has_collection(tap_collection_name(DIM)) and tap_collection_name(DIM) == "embguard_queries_d256"

        window = query_window(m, "small", t0, int(time.time() * 1000) + 1)  # follows the served dimension
        assert window.vectors.shape == (len(queries), DIM) and len(window.top_ids[0]) == 5
        ReferenceStore(s.state.dir).capture("small", window)
        daemon = Daemon(s, registry=CollectorRegistry())
        try:
            report = daemon.check_window("small", t0, int(time.time() * 1000) + 1)
        finally:
            daemon.stop()
        assert not report.skipped and report.outcomes
        assert all(o.p_value is None or 0 <= o.p_value <= 1 for o in report.outcomes)

        labels = tmp_path / "labels.jsonl"
        labels.write_text("\n".join(json.dumps({"query": p.query, "doc_id": p.id}) for p in passages[:60]) + "\n")
        assert import_labels(s, m, spec, labels) == 60
        cand = build_candidate(s, m, spec, say=lambda _: None, max_steps=3)
        # Rejected at the gate is decided: none of its training labels stay pinned against pruning.
        assert cand.version.status == "rejected" and Pins(s.state.dir).ids() == (set(), set())
        # Swapping a model of another dimension in: test_a_model_from_elsewhere_..._is_gated_and_swapped_in.
        m.close()


@pytest.fixture(scope="module")
def model_rank4_256(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A 256-d model that retrieves badly: the default model squeezed through a rank-4 projection."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense

    torch.manual_seed(1)
    st = SentenceTransformer(str(embedder.path), device="cpu", local_files_only=True)
    dense = Dense(in_features=384, out_features=DIM, activation_function=torch.nn.Identity())
    with torch.no_grad():
        dense.linear.weight.copy_(torch.randn(DIM, 4) @ torch.randn(4, 384))
    st.append(dense)
    out = tmp_path_factory.mktemp("rank4") / "minilm-rank4-256"
    st.save(str(out))
    return out


@pytest.mark.slow
def test_a_model_from_elsewhere_of_another_dimension_is_gated_and_swapped_in(
    backend, tmp_path: Path, model_rank4_256: Path, embedder
) -> None:
    """`embguard models import`: a 384-d model brought to a collection served by a (bad) 256-d one passes the
    same held-out gate as a retrained candidate and is swapped in by `retrain --approve`."""
    import re

    from embguard.training.labels import import_labels

    with backend.world(
        tmp_path,
        EMBGUARD_COLLECTIONS='[{name="imp", index_type="FLAT"}]',
        EMBGUARD_RETRAIN__MIN_FEEDBACK_PAIRS="40",
        EMBGUARD_RETRAIN__MIN_HELD_OUT="12",
        EMBGUARD_RETRAIN__GUARD_QUERIES="0",
        EMBGUARD_SWAP__GRACE_S="0.5",
        EMBGUARD_SWAP__SHADOW_QUERIES="10",
        EMBGUARD_SWAP__MIN_OVERLAP="0",  # the two models are meant to disagree: the new one is better
    ) as world:
        s = world.settings
        passages = passages_for(["json", "csv", "sqlite3", "logging", "argparse", "pathlib", "datetime"])[:100]
        with Client(s) as c:
            assert c.create_collection("imp", str(model_rank4_256)) == "imp__v0001"
            index(c, "imp", passages)
            for p in passages[:50]:  # users click the right passage (wherever the bad model ranked it)
                c.feedback(c.search("imp", [p.query], limit=5).query_ids[0], p.id)
        m = Milvus.connect(s)
        labels = tmp_path / "labels.jsonl"  # annotators answer the rest
        labels.write_text("\n".join(json.dumps({"query": p.query, "doc_id": p.id}) for p in passages[50:]) + "\n")
        assert import_labels(s, m, s.collection("imp"), labels) == 50

        out = _cli(world.env, "models", "import", str(embedder.path), "--collection", "imp")
        assert f"imported from {embedder.path}" in out and "PASSED" in out, out
        # Both sources are held out and reported apart, with the bias of clicked queries stated.
        assert re.search(r"clicked queries \(n=\d+, \d+ the base model missed", out), out
        assert re.search(r"labelled queries \(n=\d+, \d+ the base model missed", out), out
        assert "clicked queries favour the base model" in out
        found = re.search(r"candidate (v\d{4})", out)
        assert found is not None
        version = ModelRegistry(s.model.store_dir).get(found.group(1))
        assert version.status == "awaiting_approval" and version.verdict is not None and version.verdict.promote
        assert version.verdict.candidate_mean > version.verdict.base_mean + 0.1
        assert version.extra["imported_from"] == str(embedder.path)

        _cli(world.env, "retrain", "--approve", "--candidate", version.version)
        served = m.resolve("imp")
        assert served == f"imp__{version.version}" and m.vector_dimension(served) == 384
        assert m.count(served) == len(passages)
        with Client(s) as c:
            res = c.search("imp", [p.query for p in passages[:20]], limit=5, consistency_level="Strong")
        assert res.collection == served and res.model_id == version.model_id
        found = sum(p.id in {h.id for h in hits} for p, hits in zip(passages[:20], res.hits, strict=True))
        assert found >= 12, found  # the imported model serves the collection it was gated for
        m.close()


def test_an_adapter_candidate_swaps_in_by_copying_vectors(backend, tmp_path: Path) -> None:
    """`retrain --recipe adapter`: seconds to train; the swap builds the versioned collection from the serving
    collection's vectors (no re-embedding), and searches through the alias then embed queries with the adapter."""
    import re

    import numpy as np

    from embguard.models import loading as models

    with backend.world(
        tmp_path,
        EMBGUARD_COLLECTIONS='[{name="ada", index_type="FLAT"}]',
        EMBGUARD_RETRAIN__MIN_FEEDBACK_PAIRS="40",
        EMBGUARD_RETRAIN__MIN_HELD_OUT="12",
        EMBGUARD_RETRAIN__GUARD_QUERIES="0",
        EMBGUARD_SWAP__GRACE_S="0.5",
        EMBGUARD_SWAP__SHADOW_QUERIES="10",
    ) as world:
        s = world.settings
        passages = passages_for(["json", "csv", "sqlite3", "logging", "argparse", "pathlib"])[:80]
        with Client(s) as c:
            assert c.create_collection("ada", "default") == "ada__v0000"
            index(c, "ada", passages)
            for p in passages:
                c.feedback(c.search("ada", [p.query], limit=5).query_ids[0], p.id)
        m = Milvus.connect(s)
        source = m.resolve("ada")
        before = {r["id"]: r["vector"] for r in m.query(source, filter="id >= 0", output_fields=["id", "vector"])}

        out = _cli(world.env, "retrain", "--collection", "ada", "--recipe", "adapter")
        assert "trained (recipe adapter)" in out and "copies the serving collection's vectors" in out, out
        found = re.search(r"candidate (v\d{4})", out)
        assert found is not None
        version = ModelRegistry(s.model.store_dir).get(found.group(1))
        assert version.extra["recipe"] == "adapter" and version.extra["documents_as"] == version.base_model_id
        assert "adapter (no re-embedding)" in _cli(world.env, "models", "list")

        # The gate's verdict is tested elsewhere; --force takes the swap whatever this small set said.
        out = _cli(world.env, "retrain", "--approve", "--candidate", version.version, "--force")
        assert "copying vectors" in out, out
        served = m.resolve("ada")
        assert served == f"ada__{version.version}" and served != source
        after = {r["id"]: r["vector"] for r in m.query(served, filter="id >= 0", output_fields=["id", "vector"])}
        assert after.keys() == before.keys()
        assert all(np.array_equal(np.asarray(after[i], np.float32), np.asarray(before[i], np.float32)) for i in before)
        with Client(s) as c:
            res = c.search("ada", [passages[0].query], limit=5, consistency_level="Strong")
        assert res.collection == served and res.model_id == version.model_id
        cand = models.load_by_id(version.model_id, s.model.store_dir)
        base = models.load("default")
        q = [passages[0].query]
        assert not np.allclose(cand.encode_queries(q), base.encode_queries(q))  # queries go through the adapter
        np.testing.assert_array_equal(cand.encode(q), base.encode(q))
        m.close()
