"""The daemon's decisions as plain functions: what pages and in which words (embguard.daemon.active_alerts), and when a
candidate is built (embguard.daemon.retrain_policy). No Milvus, no scheduler: the daemon only wires these to its
jobs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from builders import gate_verdict

from embguard.checks.reports import COMBINED, CheckReport, MonitorOutcome, read_check_report, write_check_report
from embguard.checks.windows import Window
from embguard.config.lifecycle import RetrainSettings
from embguard.config.settings import CollectionSettings
from embguard.config.statedir import StateDir
from embguard.daemon import active_alerts, clusters
from embguard.daemon.retrain_policy import decide
from embguard.daemon.watched import Watched
from embguard.errors import RegistryError, StateFileError
from embguard.models.registry import ModelRegistry, ModelVersion


def _report(alias: str = "kb", sustained: bool = True, ood: bool = False) -> CheckReport:
    outcomes = [
        MonitorOutcome("mmd", 0.4, 0.001 if sustained else 0.4, sustained, 3 if sustained else 0, sustained),
        MonitorOutcome(COMBINED, 0.004, 0.004 if sustained else 0.8, sustained, 3 if sustained else 0, sustained),
    ]
    if ood:
        outcomes.append(MonitorOutcome("ood", 0.3, 0.0001, True, 3, True))
    return CheckReport(
        collection=alias,
        served_by=f"{alias}__v1",
        model_id="m",
        reference_version=2,
        n_reference=500,
        n_current=200,
        checked_at=time.time(),
        outcomes=tuple(outcomes),
        ood_rate=0.3 if ood else 0.05,
        ood_expected_rate=0.05,
        clusters=({"size": 2, "share": 0.01, "distance": 0.7, "rows": [0, 1]},),
        carried_by=("mmd",) if sustained else (),
    )


def _watched(report: CheckReport | None, texts: tuple[str, ...] = ("how do I reset", "")) -> Watched:
    w = Watched(CollectionSettings(name="kb", text_field="text"))
    w.window = Window(
        kind="queries",
        collection="kb__v1",
        model_id="m",
        start_ms=0,
        end_ms=3,
        ids=("q1", "q2"),
        vectors=np.zeros((2, 4), np.float32),
        timestamps_ms=np.array([1, 2]),
        texts=texts,
        top_ids=(("d1",), ("d2",)),
        top_scores=np.array([[0.5], [0.4]], np.float32),
    )
    if report is not None:
        w.record(report)  # the latest check that tested a window is the decision pages read
    return w


def test_sustained_drift_pages_once_naming_the_monitors_that_carried_it() -> None:
    w = _watched(_report())
    alerts = active_alerts.active_alerts(
        milvus_up=True,
        milvus_uri="http://u:secret@h:19530",
        watched={"kb": w},
        awaiting={},
        consecutive=3,
        describe=clusters.describe_cluster,
    )
    assert [a.name for a in alerts] == ["EmbeddingDriftSustained"]
    a = alerts[0]
    assert a.key == "drift:kb" and "sustained over 3 checks" in a.summary and "carried by mmd" in a.summary
    assert a.details["mmd"]["p_value"] == 0.001 and a.details["window_queries"] == 200
    assert a.clusters[0]["examples"] == ["how do I reset"]  # the empty text is not an example
    assert a.next_command == "embguard retrain --collection kb"


def test_no_drift_no_page_and_milvus_down_pages_without_the_secret() -> None:
    alerts = active_alerts.active_alerts(
        milvus_up=False,
        milvus_uri="http://u:secret@h:19530",
        watched={"kb": _watched(_report(sustained=False))},
        awaiting={},
        consecutive=3,
        describe=clusters.describe_cluster,
    )
    assert [a.name for a in alerts] == ["MilvusDown"]
    assert "secret" not in alerts[0].summary


def test_ood_and_candidate_alerts() -> None:
    v = ModelVersion(
        version="v0003",
        path="/m/v0003",
        model_id="m3",
        created_at=0.0,
        status="awaiting_approval",
        verdict=gate_verdict(),
    )
    alerts = active_alerts.active_alerts(
        milvus_up=True,
        milvus_uri="x",
        watched={"kb": _watched(_report(ood=True))},
        awaiting={"kb": [v]},
        consecutive=3,
        describe=clusters.describe_cluster,
    )
    by = {a.name: a for a in alerts}
    assert set(by) == {"EmbeddingDriftSustained", "CandidateAwaitingApproval", "OODRateHigh"}
    assert "0.500 -> 0.560" in by["CandidateAwaitingApproval"].summary
    assert by["CandidateAwaitingApproval"].next_command.endswith("--candidate v0003 --collection kb")
    assert "30% of queries out of distribution (expected 5%)" in by["OODRateHigh"].summary


def test_examples_fall_back_to_the_documents_hit_when_queries_have_no_text() -> None:
    w = _watched(_report(), texts=("", ""))
    seen = []

    def texts_of(collection, ids, field):
        seen.append((collection, ids, field))
        return ["Reset your password from the login page"]

    d = clusters.describe_cluster(w, {"size": 2, "share": 0.1, "distance": 0.5, "rows": [0, 1]}, texts_of)
    assert seen == [("kb__v1", ["d1", "d2"], "text")]
    assert d["examples"] == ["near: Reset your password from the login page"]


def test_settled_only_after_evaluation() -> None:
    w = _watched(None)
    assert not active_alerts.settled("drift:kb", watched_milvus=True, watched={"kb": w}, registry_ok=True)
    w.record(_report())
    assert active_alerts.settled("drift:kb", watched_milvus=True, watched={"kb": w}, registry_ok=True)
    assert active_alerts.settled("drift:gone", watched_milvus=True, watched={"kb": w}, registry_ok=True)
    assert not active_alerts.settled("milvus", watched_milvus=False, watched={}, registry_ok=True)
    assert not active_alerts.settled("candidate:kb:v1", watched_milvus=True, watched={}, registry_ok=False)


@pytest.mark.parametrize(
    ("awaiting", "streak", "feedback", "action"),
    [
        (True, 9, 999, "awaiting"),
        (False, None, 999, "wait"),
        (False, 1, 999, "wait"),
        (False, 2, 4, "wait"),
        (False, 2, None, "wait"),
        (False, 2, 5, "train"),
    ],
)
def test_retrain_rule(awaiting, streak, feedback, action) -> None:
    rs = RetrainSettings(sustained_checks=2, min_feedback_pairs=5)
    d = decide(rs, awaiting=awaiting, streak=streak, feedback=feedback)
    assert d.action == action and d.reason


def test_check_reports_round_trip_through_the_state_dir(tmp_path) -> None:
    state = StateDir(tmp_path)
    assert read_check_report(state, "kb") is None
    r = _report(ood=True)
    write_check_report(state, r)
    back = read_check_report(state, "kb")
    assert back == r and back.sustained and back.combined.p_value == 0.004
    assert not list(state.check_report("kb").parent.glob(".*"))  # no temporary file left behind
    state.check_report("kb").write_text("{not json")
    with pytest.raises(StateFileError, match="checks/kb.json"):
        read_check_report(state, "kb")


def test_the_registry_stores_and_reads_a_typed_gate_verdict(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "modules.json").write_text("[]")
    registry = ModelRegistry(tmp_path / "store")
    verdict = gate_verdict(0.41, 0.47, "ndcg@10 gain CI low +0.02 >= min_gain +0.00")
    v = registry.register(src, status="awaiting_approval", verdict=verdict)
    assert registry.get(v.version).verdict == verdict
    assert registry.register(src).verdict is None  # imported/base models have no verdict
    ident = v.path / "embguard.json"
    d = json.loads(ident.read_text())
    d["verdict"]["gain"] = "high"
    ident.write_text(json.dumps(d))
    with pytest.raises(RegistryError, match=str(ident)):
        registry.get(v.version)
