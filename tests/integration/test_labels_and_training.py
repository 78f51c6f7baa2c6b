"""Labels for annotators and the retrain wiring, on a real Milvus Lite server with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from builders import wait_until

from embguard.client.client import Client
from embguard.demo.simulate import index, passages_for
from embguard.errors import EmbguardError
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION
from embguard.models import loading as models
from embguard.models.registry import ModelRegistry
from embguard.training.candidates import build_candidate
from embguard.training.labels import export_labels, import_labels

pytestmark = pytest.mark.integration


@pytest.fixture()
def lab(backend, tmp_path):
    world = backend.world(
        tmp_path,
        EMBGUARD_COLLECTIONS='[{name="lab", index_type="FLAT"}]',
        EMBGUARD_SAMPLING__QUERY_RATE="1.0",
        EMBGUARD_SAMPLING__STORE_QUERY_TEXT="true",
        EMBGUARD_RETRAIN__MIN_FEEDBACK_PAIRS="40",
        EMBGUARD_RETRAIN__MIN_HELD_OUT="10",
        EMBGUARD_RETRAIN__GUARD_QUERIES="0",
    )
    settings = world.__enter__().settings
    m = Milvus.connect(settings)
    m.create_collection(
        settings.collection("lab"), 384, name="lab__v1", properties={MODEL_ID_PROPERTY: models.model_id_of("default")}
    )
    m.create_alias("lab__v1", "lab")
    passages = passages_for(["json", "csv", "sqlite3", "logging"])[:90]
    client = Client(settings)
    index(client, "lab", passages)
    yield settings, m, client, passages
    client.close()
    m.close()
    world.__exit__(None, None, None)


def _feedback_count(m: Milvus) -> int:
    return m.count(FEEDBACK_COLLECTION) if m.has_collection(FEEDBACK_COLLECTION) else 0


def test_label_import_rejects_bad_lines_by_number_and_imports_nothing(lab, tmp_path: Path) -> None:
    settings, m, _, passages = lab
    spec = settings.collection("lab")
    good = json.dumps({"query": passages[0].query, "doc_id": passages[0].id})
    f = tmp_path / "labels.jsonl"
    f.write_text(
        "\n".join(
            [
                good,
                "{not json",
                good,
                json.dumps({"query": "q", "doc_id": 1, "signal": "like"}),
                json.dumps({"query": "", "doc_id": 1}),
            ]
        )
        + "\n"
    )
    with pytest.raises(
        EmbguardError,
        match=r"3 bad line\(s\), nothing imported: line 2: .*; line 4: .*'like'.*"
        r"; line 5: ",
    ):
        import_labels(settings, m, spec, f)
    assert _feedback_count(m) == 0
    f.write_text(good + "\n" + json.dumps({"query": "valid", "doc_id": 123456789}) + "\n")
    with pytest.raises(EmbguardError, match=r"doc_id\(s\) \[123456789\] are not in lab__v1; nothing imported"):
        import_labels(settings, m, spec, f)
    assert _feedback_count(m) == 0


def test_export_then_import_round_trip(lab, tmp_path: Path) -> None:
    settings, m, client, passages = lab
    spec = settings.collection("lab")
    for p in passages[:30]:
        client.search("lab", [p.query], limit=5, consistency_level="Strong")
    client.flush_tap()
    out = tmp_path / "picks.jsonl"
    assert export_labels(settings, m, spec, out, budget=12) == 12
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len({x["query"] for x in lines}) == 12
    assert all(len(x["candidates"]) == 5 and x["candidates"][0]["text"] for x in lines), lines
    for x in lines:  # the annotator picks the first candidate
        x["doc_id"] = x["candidates"][0]["doc_id"]
    out.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert import_labels(settings, m, spec, out) == 12
    rows = m.query(FEEDBACK_COLLECTION, filter='alias == "lab"', output_fields=["query_text", "signal", "doc_id"])
    assert len(rows) == 12 and {r["signal"] for r in rows} == {"positive"}
    assert {r["query_text"] for r in rows} == {x["query"] for x in lines}


def test_annotators_get_the_live_models_misses_first(lab, tmp_path: Path) -> None:
    """Without sustained drift, `label export` (auto) ranks the misses first: searches that ended without a click,
    then a click found deep in the list; queries the model answered at the top come last."""
    settings, m, client, passages = lab
    spec = settings.collection("lab")
    res = client.search("lab", [p.query for p in passages[:24]], limit=5, consistency_level="Strong")
    deep = None
    for p, qid, hits in zip(passages[:24], res.query_ids, res.hits, strict=True):
        ids = [h.id for h in hits]
        if len(ids) == 5 and deep is None:
            deep = p.query
            client.feedback(qid, ids[4])  # found at rank 5
        elif len(ids) >= 1 and p.query not in {x.query for x in passages[16:24]}:
            client.feedback(qid, ids[0])  # answered at the top
    client.flush_tap()
    wait_until(lambda: _feedback_count(m) >= 16, 10, what="the clicks to land")
    unclicked = {p.query for p in passages[16:24]}
    for strategy in ("auto", "misses"):
        out = tmp_path / f"{strategy}.jsonl"
        assert export_labels(settings, m, spec, out, budget=10, strategy=strategy) == 10
        picked = [json.loads(x)["query"] for x in out.read_text().splitlines()]
        assert set(picked[:8]) == unclicked and picked[8] == deep, (strategy, picked)


def test_drift_aimed_export_picks_the_queries_the_drift_is_made_of(lab, tmp_path: Path) -> None:
    """Reference traffic asks about logging and json; then a quarter of the traffic asks about sqlite3 and csv.
    Aimed at the drift, most picks are the new topics' queries; at random, about a quarter. Ten picks from a pool
    of 40 are one noisy draw (random alone picks 4+ new ones a fifth of the time), so both strategies are
    compared on their mean over ten seeds."""
    import time

    from embguard.checks.references import ReferenceStore
    from embguard.checks.windows import query_window
    from embguard.errors import ConfigError

    settings, m, client, passages = lab
    spec = settings.collection("lab")
    old = [p for p in passages if p.topic in ("logging", "json")]
    new = [p for p in passages if p.topic in ("sqlite3", "csv")]
    t0 = int(time.time() * 1000)
    client.search(
        "lab", [p.query for p in old] + [f"{p.query} in python" for p in old], limit=5, consistency_level="Strong"
    )
    client.flush_tap()
    ReferenceStore(settings.state.dir).capture(
        "lab", query_window(m, "lab", t0, int(time.time() * 1000) + 1), min_size=100
    )
    since = int(time.time() * 1000) + 1
    wait_until(lambda: int(time.time() * 1000) > since, 1, interval_s=0.001, what="the clock to pass `since`")
    client.search(
        "lab", [f"how to {p.query}" for p in old[:30]] + [p.query for p in new], limit=5, consistency_level="Strong"
    )
    client.flush_tap()
    is_new = {p.query for p in new}

    def new_picks(strategy: str, seed: int) -> int:
        out = tmp_path / f"{strategy}.jsonl"
        assert export_labels(settings, m, spec, out, budget=10, since_ms=since, strategy=strategy, seed=seed) == 10
        return sum(json.loads(x)["query"] in is_new for x in out.read_text().splitlines())

    drift = [new_picks("drift", seed) for seed in range(10)]
    random = [new_picks("random", seed) for seed in range(10)]
    # 10 of the 40 pool queries are new: random's expected mean is 2.5 (measured means 1.8-3.2, drift's 6.1-6.8)
    assert np.mean(drift) >= 5 and np.mean(drift) >= np.mean(random) + 2, (drift, random)
    with pytest.raises(ConfigError, match="'newest' is unknown; use one of auto, random, drift, misses"):
        export_labels(settings, m, spec, tmp_path / "x.jsonl", budget=5, strategy="newest")


def test_a_crashing_training_run_leaves_the_model_and_registry_untouched(lab, tmp_path: Path, monkeypatch) -> None:
    settings, m, _, passages = lab
    spec = settings.collection("lab")
    f = tmp_path / "labels.jsonl"
    f.write_text("\n".join(json.dumps({"query": p.query, "doc_id": p.id}) for p in passages[:60]) + "\n")
    assert import_labels(settings, m, spec, f) == 60
    monkeypatch.setenv("RETRAIN_WORKER_FAIL_AT_STEP", "1")  # the training child dies hard at its first step
    with pytest.raises(
        EmbguardError, match="training a candidate for lab failed; the active model and the registry are untouched"
    ):
        build_candidate(settings, m, spec, say=lambda s: None)
    assert ModelRegistry(settings.model.store_dir).list() == []
    assert m.resolve("lab") == "lab__v1"
    assert m.properties("lab__v1")[MODEL_ID_PROPERTY] == models.model_id_of("default")
    leftovers = [p.name for p in (settings.model.store_dir / ".work").glob("candidate-*")]
    assert leftovers == []


def test_the_gate_rejects_a_candidate_trained_on_shuffled_labels(lab, tmp_path: Path, monkeypatch) -> None:
    """The training pairs shuffled (every query paired with another query's passage) after the real split, the
    gate's held-out labels left true; trained through the default loop (epochs chosen on a validation split,
    pseudo-queries, the winner retrained on all pairs): the candidate ranks the held-out queries worse than the
    live model, the gate sees it, and it is registered as rejected, never served."""
    from dataclasses import replace

    from embguard.training import candidates

    settings, m, _, passages = lab
    settings = settings.model_copy(update={"retrain": settings.retrain.model_copy(update={"learning_rate": 5e-4})})
    spec = settings.collection("lab")
    f = tmp_path / "labels.jsonl"
    f.write_text("\n".join(json.dumps({"query": p.query, "doc_id": p.id}) for p in passages[:60]) + "\n")
    assert import_labels(settings, m, spec, f) == 60
    real_split = candidates.split_feedback

    def shuffled(*args, **kw):
        fs = real_split(*args, **kw)
        pairs = fs.train_pairs
        moved = pairs[5:] + pairs[:5]
        wrong = tuple(
            replace(p, positive=w.positive, positive_id=w.positive_id) for p, w in zip(pairs, moved, strict=True)
        )
        assert all(p.positive_id != w.positive_id for p, w in zip(pairs, wrong, strict=True))
        return replace(fs, train_pairs=wrong)

    monkeypatch.setattr(candidates, "split_feedback", shuffled)
    said: list[str] = []
    report = build_candidate(settings, m, spec, say=said.append, max_steps=12)
    assert any("chose finetune" in s for s in said), said
    assert report.metrics["candidate"]["ndcg@10"] < report.metrics["base"]["ndcg@10"] - 0.05, report.metrics
    assert not report.promoted and report.version.status == "rejected"
    assert any("gain CI" in r for r in report.verdict.reasons), report.verdict.reasons
    assert m.resolve("lab") == "lab__v1"


def test_too_little_feedback_is_a_clear_error(lab) -> None:
    settings, m, _, _ = lab
    with pytest.raises(
        EmbguardError,
        match=r"lab: 0 feedback pairs over 0 distinct queries; a candidate needs at "
        r"least 40 pairs",
    ):
        build_candidate(settings, m, settings.collection("lab"), say=lambda s: None)


def test_the_domain_adapt_recipe_pretrains_on_the_collections_documents(lab, tmp_path: Path) -> None:
    """`retrain --recipe domain_adapt`: TSDAE on a sample of the collection's own documents, then the contrastive
    step; the gate report and the registry name the recipe."""
    from embguard.cli.model_actions import with_recipe

    settings, m, _, passages = lab
    settings = with_recipe(settings, "domain_adapt")
    settings = settings.model_copy(
        update={"retrain": settings.retrain.model_copy(update={"domain_documents": 16, "tsdae_epochs": 1.0})}
    )
    spec = settings.collection("lab")
    f = tmp_path / "labels.jsonl"
    f.write_text("\n".join(json.dumps({"query": p.query, "doc_id": p.id}) for p in passages[:60]) + "\n")
    assert import_labels(settings, m, spec, f) == 60
    said: list[str] = []
    report = build_candidate(settings, m, spec, say=said.append, max_steps=2)
    assert report.recipe == "domain_adapt" and "trained (recipe domain_adapt)" in str(report)
    assert any("domain adaptation (TSDAE) on 16 of lab's documents" in s for s in said), said
    extra = report.version.extra
    assert extra["recipe"] == "domain_adapt" and extra["train_result"]["tsdae_steps"] > 0
    assert m.resolve("lab") == "lab__v1"  # a candidate never touches serving
