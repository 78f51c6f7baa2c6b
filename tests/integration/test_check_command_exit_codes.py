"""`embguard check` and `embguard status` against a real Milvus: exit codes, and drift streaks resumed from the
state directory.

Queries are tapped into a real Milvus (both backends); the CLI runs in-process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_world import DIM, REFERENCE, cli_run, daemon_env, synthetic_window
from prometheus_client import CollectorRegistry

from embguard.checks.reports import write_evidence
from embguard.checks.windows import Window, query_window
from embguard.client.tap import ensure_tap_collection, tap_row
from embguard.config import loader as config
from embguard.config.statedir import StateDir
from embguard.daemon.check_jobs import check_now
from embguard.daemon.service import Daemon
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus

# --- helpers ---------------------------------------------------------------------------------------------------


# --- item 3: a restart during sustained drift continues the incident ---------------------------------------


# --- item 4: a skipped check is no evidence ----------------------------------------------------------------------


# --- item 9: an unwritable state directory ------------------------------------------------------------------------


# --- item 10: /metrics under a burst of scrapes --------------------------------------------------------------------


# --- series initialised at start, swap events --------------------------------------------------------------------


# --- the reconnect back-off ---------------------------------------------------------------------------------------


# --- embguard check and embguard status -------------------------------------------------------------------------


# -- against Milvus (both backends) ------------------------------------------------------------------------------


@pytest.fixture()
def tapped(backend: Any, tmp_path: Path) -> Iterator[tuple[dict[str, str], Milvus]]:
    """A watched alias kb served by a 16-d collection, a reference of 200 tapped queries an hour old."""
    env = {k: v for k, v in daemon_env(tmp_path).items() if not k.startswith("EMBGUARD_MILVUS")}
    env["EMBGUARD_SAMPLING__WINDOW_S"] = "600"
    with backend.world(tmp_path, **env) as world:
        m = Milvus.connect(world.settings)
        m.create_collection(world.settings.collection("kb"), DIM, name="kb__v1", properties={MODEL_ID_PROPERTY: "m"})
        m.create_alias("kb__v1", "kb")
        ensure_tap_collection(m, DIM)
        try:
            yield world.env, m
        finally:
            m.close()


def _tap(m: Milvus, window: Window, ts_ms: int) -> None:
    rows = [
        tap_row(
            query_id=f"q{ts_ms}-{i}",
            vector=v,
            alias="kb",
            collection="kb__v1",
            model_id="m",
            text=f"query {i}",
            store_text=True,
            hits=[{"id": 1, "distance": 0.5}],
            ts_ms=ts_ms + i,
        )
        for i, v in enumerate(window.vectors)
    ]
    name = rows[0].pop("_collection")
    for r in rows[1:]:
        r.pop("_collection")
    m.insert(name, rows)
    m.flush(name)


def test_check_command_exit_codes_and_resumed_streaks(tapped: tuple[dict[str, str], Milvus]) -> None:
    env, m = tapped
    settings = config.load(None, environ=env)
    now_ms = int(time.time() * 1000)
    res = cli_run(env, "check", "--json")
    assert res.exit_code == 2, res.output  # no reference yet
    assert "baseline capture" in json.loads(res.output)["collections"]["kb"]["skipped"]

    _tap(m, REFERENCE, now_ms - 3_600_000)
    from embguard.checks.references import ReferenceStore

    ReferenceStore(settings.state.dir).capture("kb", query_window(m, "kb", now_ms - 3_700_000, now_ms - 3_000_000))
    _tap(m, synthetic_window(1, 100), now_ms - 60_000)
    res = cli_run(env, "check")
    assert res.exit_code == 0, res.output
    assert "verdict: no drift" in res.output

    _tap(m, synthetic_window(2, 300, shift=1.5), now_ms - 30_000)
    run = check_now(settings)
    assert run.exit_code == 1 and run.reports["kb"].drift and not run.reports["kb"].sustained
    # A daemon that persisted one drifted check: the one-off check continues its streak (same reference).
    write_evidence(StateDir(settings.state.dir), run.reports["kb"])
    again = check_now(settings)
    combined = again.reports["kb"].combined
    assert again.reports["kb"].sustained and combined is not None and combined.consecutive == 2
    res = cli_run(env, "check", "--collection", "kb", "--json")
    assert res.exit_code == 1 and json.loads(res.output)["verdict"] == "drift"
    assert not (settings.state.dir / "checks").exists()  # `check` writes nothing


def test_status_exits_1_when_the_last_check_failed(tapped: tuple[dict[str, str], Milvus]) -> None:
    env, m = tapped
    settings = config.load(None, environ=env)
    assert cli_run(env, "status").exit_code == 0
    refs = settings.state.dir / "references" / "kb" / "queries"
    refs.mkdir(parents=True)
    meta = {"model_id": "m", "size": 200, "captured_at": time.time(), "start_ms": 0, "end_ms": 1}
    (refs / "v0001.json").write_text(json.dumps(meta))
    (refs / "v0001.npz").write_bytes(b"not an npz")  # listed, then fails to load: the check fails
    daemon = Daemon(settings, registry=CollectorRegistry())
    try:
        daemon._run("milvus_watch", daemon.job_milvus_watch)
        daemon._run("check", daemon.job_check)
        assert daemon.registry.get_sample_value("embguard_checks_total", {"collection": "kb", "outcome": "error"}) == 1
    finally:
        daemon.stop()
    res = cli_run(env, "status")
    assert res.exit_code == 1, res.output
    assert "FAILED" in res.output and res.output.strip().splitlines()[-1].startswith("Error: the last check of kb")
