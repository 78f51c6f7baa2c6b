"""Corrupt state files never stop `status`, `rollback`, `abort` or the daemon's jobs, and label import names the
line of an oversized query and refuses non-UTF-8; on a real Milvus."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from embguard.cli._base import cli
from embguard.config import loader as config
from embguard.milvus.lite import free_port

TOKEN, PASSWORD, HOOK, HMAC = (
    "tok-9f8e7d6c5b4a",
    "pw-Zq8!xy77",
    "https://hooks.example.com/T01/B02/XyZsecretpath",
    "hmac-0a1b2c3d4e5f",
)


def cli_run(*args: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def one_line_error(res: Any, *needles: str) -> str:
    text = res.output.strip()
    assert res.exit_code == 1, text
    assert text.startswith("Error: ") and "\n" not in text and "Traceback" not in text, text
    for n in needles:
        assert n in text, text
    return text


def state_env(tmp: Path, **env: str) -> dict[str, str]:
    return {
        "EMBGUARD_STATE__DIR": str(tmp / "state"),
        "EMBGUARD_MODEL__STORE_DIR": str(tmp / "models"),
        "EMBGUARD_LITE__DATA_DIR": str(tmp / "milvus"),
        "EMBGUARD_LITE__PORT": str(free_port()),
        **env,
    }


# -- item 4: secrets ------------------------------------------------------------------------------------------------


# -- item 10: versions are names -------------------------------------------------------------------------------------


# -- item 11: one-line errors ---------------------------------------------------------------------------------------


def _corrupt_state(tmp: Path) -> dict[str, Path]:
    state, models = tmp / "state", tmp / "models"
    files = {
        "daemon_pid": state / "daemon.pid",
        "lite_pid": state / "lite-server.json",
        "swap": state / "swaps" / "docs.json",
        "reference": state / "references" / "docs" / "queries" / "v0001.json",
        "check": state / "checks" / "docs.json",
        "manifest": models / "v0001" / "embguard.json",
    }
    for p in files.values():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b'{"phase": "backf\xff\xfe')  # a torn write: half a JSON object, not even UTF-8
    (state / "references" / "docs" / "queries" / "v0001.npz").write_bytes(b"PK\x03\x04torn")
    (state / "daemon.pid").write_text("12ab")
    return files


@pytest.mark.integration
def test_status_rollback_abort_and_daemon_jobs_survive_corrupt_state(
    tmp_path: Path, milvus_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    from embguard.daemon.service import Daemon

    env = {**milvus_env, **state_env(tmp_path), "EMBGUARD_COLLECTIONS": '[{name="docs"}]'}
    for k in ("EMBGUARD_LITE__DATA_DIR", "EMBGUARD_LITE__PORT"):
        env[k] = milvus_env[k]
    files = _corrupt_state(tmp_path)
    status = cli_run("status", env=env)
    assert status.exit_code == 0 and "Traceback" not in status.output
    for name in ("swap", "reference", "check", "manifest"):
        assert str(files[name]) in status.output, (name, status.output)
    assert "daemon   not running" in status.output
    one_line_error(cli_run("rollback", "--collection", "docs", env=env), str(files["swap"]))
    one_line_error(cli_run("retrain", "--abort", "--collection", "docs", env=env), str(files["swap"]))

    pin = tmp_path / "state" / "training" / "pinned" / "set.json"
    pin.parent.mkdir(parents=True)
    pin.write_text('{"feedback_ids": [')
    settings = config.load(None, environ=env)
    caplog.set_level(logging.INFO)
    daemon = Daemon(settings, registry=CollectorRegistry())
    try:
        daemon._run("milvus_watch", daemon.job_milvus_watch)
        assert daemon.milvus_up
        for job in ("sample", "prune", "retrain_policy"):
            daemon._run(job, getattr(daemon, f"job_{job}"))
    finally:
        daemon.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    text = "\n".join(r.getMessage() for r in errors)
    assert str(pin) in text and str(files["swap"]) in text and str(files["manifest"]) in text
    assert daemon.metrics.job_runs.labels("prune", "failure")._value.get() == 1


@pytest.mark.integration
def test_label_import_names_the_line_of_an_oversized_query_and_refuses_non_utf8(
    tmp_path: Path, milvus_env: dict[str, str]
) -> None:
    env = {**milvus_env, "EMBGUARD_STATE__DIR": str(tmp_path / "state")}
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        json.dumps({"query": "fine", "doc_id": 1}) + "\n\n" + json.dumps({"query": "x" * 9000, "doc_id": 2}) + "\n"
    )
    one_line_error(
        cli_run("label", "import", str(labels), "--collection", "docs", env=env),
        "line 3: query is 9000 characters, more than 8192",
        "nothing imported",
    )
    labels.write_bytes(b'{"query": "caf\xe9", "doc_id": 1}\n')
    one_line_error(cli_run("label", "import", str(labels), "--collection", "docs", env=env), "not UTF-8")


# -- item 12: swap phase, progress and error in status ---------------------------------------------------------------
