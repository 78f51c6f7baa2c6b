"""The daemon's retrain policy: when to build a candidate, and what on-call is told afterwards.

Training itself is exercised for real by the demo test and tests/integration/test_labels_and_training.py; here
``build_candidate`` is replaced so the policy's decisions can be checked in seconds.
"""

from __future__ import annotations

import shutil
import time
from types import SimpleNamespace

import pytest
from builders import gate_verdict
from prometheus_client import CollectorRegistry

from embguard.checks.reports import CheckReport, MonitorOutcome
from embguard.client.tap import ensure_feedback_collection, feedback_row
from embguard.daemon.service import Daemon
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION
from embguard.models.registry import ModelRegistry
from embguard.training import candidates as training

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list] = []

    def update(self, alerts):
        self.calls.append(list(alerts))
        return []

    def close(self) -> None:
        pass


@pytest.fixture()
def setup(backend, tmp_path, embedder, monkeypatch):
    world = backend.world(
        tmp_path,
        EMBGUARD_COLLECTIONS='[{name="kb", index_type="FLAT"}]',
        EMBGUARD_RETRAIN__SUSTAINED_CHECKS="2",
        EMBGUARD_RETRAIN__MIN_FEEDBACK_PAIRS="5",
    )
    settings = world.__enter__().settings
    m = Milvus.connect(settings)
    m.create_collection(
        settings.collection("kb"), 384, name="kb__v1", properties={MODEL_ID_PROPERTY: embedder.model_id}
    )
    m.create_alias("kb__v1", "kb")
    ensure_feedback_collection(m)
    built: list[str] = []

    def fake_build(s, milvus, spec, *, say=print, since_ms=0, max_steps=-1):
        built.append(spec.name)
        src = s.model.store_dir / "src"
        if not src.exists():
            shutil.copytree(embedder.path, src)
        version = ModelRegistry(s.model.store_dir).register(
            src,
            status="awaiting_approval",
            verdict=gate_verdict(reason="ndcg@10 gain CI low +0.01 >= min_gain +0.00"),
            extra={"alias": spec.name},
        )
        return SimpleNamespace(promoted=True, version=version, __str__=lambda self: "report")

    monkeypatch.setattr(training, "build_candidate", fake_build)
    notifier = Recorder()
    daemon = Daemon(settings, registry=CollectorRegistry(), notifier=notifier)
    daemon.job_milvus_watch()
    yield settings, m, daemon, notifier, built
    daemon.stop()
    m.close()
    world.__exit__(None, None, None)


def _drifting(daemon: Daemon, streak: int) -> None:
    st = daemon._collections["kb"]
    st.monitor = SimpleNamespace(consecutive={"mmd": streak, "top1": 0})
    st.record(
        CheckReport(
            collection="kb",
            served_by="kb__v1",
            model_id="x",
            reference_version=1,
            n_reference=100,
            n_current=100,
            checked_at=time.time(),
            outcomes=(MonitorOutcome("mmd", 1.0, 0.001, True, streak, streak >= 2),),
        )
    )


def _feedback(m: Milvus, n: int) -> None:
    rows = [
        feedback_row(
            query_id=f"q{i}",
            doc_id=i,
            alias="kb",
            collection="kb__v1",
            model_id="x",
            signal="click",
            weight=1.0,
            query_text=f"question {i}",
        )
        for i in range(n)
    ]
    m.insert(FEEDBACK_COLLECTION, rows)
    m.flush(FEEDBACK_COLLECTION)


def test_policy_waits_for_sustained_drift_and_enough_feedback(setup) -> None:
    settings, m, daemon, notifier, built = setup
    g = daemon.registry.get_sample_value
    _drifting(daemon, 1)
    _feedback(m, 10)
    daemon.job_retrain_policy()
    assert built == []  # drift not sustained long enough
    _drifting(daemon, 2)
    _feedback(m, 0)
    daemon.job_retrain_policy()
    assert built == ["kb"]
    assert g("embguard_candidate_awaiting_approval", {"collection": "kb"}) == 1
    assert g("embguard_retrain_state", {"collection": "kb", "state": "awaiting_approval"}) == 1
    alerts = [a for a in notifier.calls[-1] if a.name == "CandidateAwaitingApproval"]
    assert len(alerts) == 1
    assert alerts[0].next_command == "embguard retrain --approve --candidate v0001 --collection kb"
    assert "0.500 -> 0.560" in alerts[0].summary
    # While a candidate waits, no second one is trained.
    daemon.job_retrain_policy()
    assert built == ["kb"]


def test_policy_needs_feedback_since_the_last_model(setup) -> None:
    settings, m, daemon, notifier, built = setup
    _drifting(daemon, 3)
    _feedback(m, 3)  # fewer than retrain.min_feedback_pairs = 5
    daemon.job_retrain_policy()
    assert built == []
    assert daemon.registry.get_sample_value("embguard_retrain_state", {"collection": "kb", "state": "idle"}) == 1
