"""No secret in any output, versions are names, one-line errors instead of tracebacks for bad files and numbers,
and `status` shows each swap's phase, progress and error."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from embguard.checks.references import ReferenceStore
from embguard.checks.windows import Window
from embguard.cli._base import cli
from embguard.config import loader as config
from embguard.config.credentials import redact_uri, secret
from embguard.errors import ConfigError, ReferenceMissing, RegistryError
from embguard.milvus.lite import free_port
from embguard.models.registry import ModelRegistry
from embguard.swap.state import SwapState, SwapStore

TOKEN, PASSWORD, HOOK, HMAC = (
    "tok-9f8e7d6c5b4a",
    "pw-Zq8!xy77",
    "https://hooks.example.com/T01/B02/XyZsecretpath",
    "hmac-0a1b2c3d4e5f",
)
URI_PASSWORD = "S3cretUriPW"


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


def test_config_errors_never_print_secrets_set_through_the_environment(tmp_path: Path, clean_env: None) -> None:
    secrets = dict(EMBGUARD_MILVUS__TOKEN=TOKEN, EMBGUARD_MILVUS__PASSWORD=PASSWORD, HOOK_URL=HOOK, HOOK_SECRET=HMAC)
    alerts = (
        '[{name="a", kind="webhook", url_env="HOOK_URL", secret_env="HOOK_SECRET"}, '
        '{name="a", kind="webhook", url_env="HOOK_URL"}]'
    )
    cases = [  # the reproduction (a whole-settings error), then field errors next to secrets
        (
            state_env(
                tmp_path, **secrets, EMBGUARD_COLLECTIONS='[{name="docs"}, {name="docs"}]', EMBGUARD_ALERTS=alerts
            ),
            "duplicate name(s) 'docs'",
        ),
        (
            state_env(
                tmp_path,
                HOOK_URL=HOOK,
                HOOK_SECRET=HMAC,
                EMBGUARD_ALERTS=alerts,
                EMBGUARD_MILVUS__URI=f"http://root:{URI_PASSWORD}@db.internal:19530",
                EMBGUARD_MILVUS__PASSWORD=PASSWORD,
                EMBGUARD_SCHEDULE__CHECK_INTERVAL_S="-1",
            ),
            "milvus.uri holds credentials",
        ),
        (
            state_env(tmp_path, **secrets, EMBGUARD_ALERTS=alerts.replace('kind="webhook"', 'kind="email"', 1)),
            "alerts[0].kind",
        ),
    ]
    for env, says in cases:
        with pytest.raises(ConfigError) as err:
            config.load(None, environ=env)
        res = cli_run("config", "check", env=env)
        for text in (str(err.value), res.output):
            assert says in text
            for s in (TOKEN, PASSWORD, HOOK, "XyZsecretpath", HMAC, URI_PASSWORD):
                assert s not in text, (s, text)


def test_an_invalid_uri_with_credentials_is_quoted_masked(clean_env: None) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(None, environ={"EMBGUARD_MILVUS__URI": f"ftp://root:{URI_PASSWORD}@db:19530"})
    assert URI_PASSWORD not in str(err.value) and "milvus.uri" in str(err.value)
    assert (
        redact_uri(f"x http://u:{URI_PASSWORD}@h:1/p and https://tok{URI_PASSWORD}@h")
        == "x http://u:***@h:1/p and https://***@h"
    )


def test_uri_credentials_never_reach_config_show_status_readyz_alerts_or_logs(
    tmp_path: Path, clean_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    from embguard.daemon.service import Daemon

    env = state_env(
        tmp_path,
        EMBGUARD_MILVUS__URI=f"http://admin:{URI_PASSWORD}@127.0.0.1:{free_port()}",
        EMBGUARD_MILVUS__TIMEOUT_S="1.0",
    )
    settings = config.load(None, environ=env)
    # The credentials still authenticate (they moved to user/password), but the URI no longer carries them.
    assert settings.milvus.user == "admin" and secret(settings.milvus.password) == URI_PASSWORD
    assert URI_PASSWORD not in settings.milvus_uri
    outputs = [
        cli_run("config", "show", env=env).output,
        cli_run("config", "show", "--json", env=env).output,
        cli_run("config", "check", env=env).output,
    ]
    status = cli_run("status", env=env)
    assert "DOWN" in status.output
    outputs.append(status.output)
    caplog.set_level(logging.DEBUG)
    daemon = Daemon(settings, registry=CollectorRegistry())
    try:
        daemon._run("milvus_watch", daemon.job_milvus_watch)
        ok, body = daemon.ready()
        assert not ok
        outputs += [json.dumps(body), json.dumps([a.as_dict() for a in daemon.alerts()])]
    finally:
        daemon.stop()
    outputs.append("\n".join(r.getMessage() for r in caplog.records))
    assert any("127.0.0.1" in o for o in outputs)
    assert not [o for o in outputs if URI_PASSWORD in o]


# -- item 10: versions are names -------------------------------------------------------------------------------------


def test_model_versions_are_names_never_paths(tmp_path: Path, clean_env: None) -> None:
    env = state_env(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "embguard.json").write_text(
        json.dumps({"version": "v0009", "model_id": "v0009@x", "status": "awaiting_approval", "created_at": 0})
    )
    registry = ModelRegistry(tmp_path / "models")
    for bad in ("../outside", str(outside), "v0001/../../outside", "", "v1"):
        with pytest.raises(RegistryError, match="is not a version name"):
            registry.get(bad)
        with pytest.raises(RegistryError, match="is not a version name"):
            registry.set_status(bad, "approved")
    one_line_error(cli_run("models", "show", str(outside), env=env), "is not a version name")
    one_line_error(cli_run("models", "show", "../outside", env=env), "is not a version name")
    one_line_error(cli_run("retrain", "--approve", "--candidate", "../outside", env=env), "is not a version name")
    with pytest.raises(ReferenceMissing, match="is not a collection name"):
        ReferenceStore(tmp_path / "state").capture(
            "../x",
            Window(
                kind="queries",
                collection="x",
                model_id="m",
                start_ms=0,
                end_ms=1,
                ids=(1,),
                vectors=np.ones((1, 4)),
                timestamps_ms=np.zeros(1),
            ),
        )
    assert not (tmp_path / "x").exists()


# -- item 11: one-line errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("EMBGUARD_SCHEDULE__CHECK_INTERVAL_S", "100000000000000000", "less than or equal to"),
        ("EMBGUARD_SCHEDULE__SAMPLE_INTERVAL_S", "1e17", "valid integer"),
        ("EMBGUARD_SWAP__GRACE_S", "1e17", "less than or equal to"),
        ("EMBGUARD_RETRAIN__EPOCHS", "inf", "finite number"),
        ("EMBGUARD_RETRAIN__LEARNING_RATE", "nan", "finite number"),
        ("EMBGUARD_MILVUS__TIMEOUT_S", "inf", "finite number"),
        ("EMBGUARD_SAMPLING__DOC_SAMPLE_SIZE", str(2**63), "less than or equal to"),
    ],
)
def test_huge_and_non_finite_numbers_are_refused_by_validation(
    clean_env: None, key: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        config.load(None, environ={key: value})
    assert key.removeprefix("EMBGUARD_").replace("__", ".").lower() in str(err.value)


def test_a_non_utf8_config_file_is_one_line(tmp_path: Path, clean_env: None) -> None:
    cfg = tmp_path / "embguard.toml"
    cfg.write_bytes(b"[drift]\nalpha = 0.05 # \xff\xfe caf\xe9\n")
    one_line_error(cli_run("--config", str(cfg), "config", "check", env={}), "is not UTF-8")


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


def test_corrupt_state_files_give_one_line_errors_naming_the_file(tmp_path: Path, clean_env: None) -> None:
    env = state_env(tmp_path, EMBGUARD_COLLECTIONS='[{name="docs"}]')
    files = _corrupt_state(tmp_path)
    one_line_error(cli_run("models", "list", env=env), str(files["manifest"]), "remove the version directory")
    one_line_error(cli_run("models", "show", "v0001", env=env), str(files["manifest"]))
    one_line_error(cli_run("baseline", "list", env=env), str(files["reference"]), "baseline capture docs")
    res = cli_run("lite", "status", env=env)  # an unreadable pid file is no server
    assert res.exit_code == 3 and "not running" in res.output
    with pytest.raises(Exception, match=str(files["swap"])):
        SwapStore(tmp_path / "state").load("docs")


# -- item 12: swap phase, progress and error in status ---------------------------------------------------------------


def test_status_shows_each_swaps_phase_progress_and_error(tmp_path: Path, clean_env: None) -> None:
    from embguard.daemon.status import gather, render

    settings = config.load(
        None,
        environ=state_env(
            tmp_path,
            EMBGUARD_COLLECTIONS='[{name="docs"}, {name="kb"}]',
            EMBGUARD_MILVUS__URI=f"http://127.0.0.1:{free_port()}",
            EMBGUARD_MILVUS__TIMEOUT_S="1.0",
        ),
    )
    store = SwapStore(settings.state.dir)
    store.save(
        SwapState(
            alias="docs",
            source="docs__v1",
            target="docs__v0002",
            source_model_id="a",
            candidate_version="v0002",
            candidate_model_id="b",
            phase="dual_write",
            done=80,
            total=303,
            error="cannot reach Milvus at http://127.0.0.1:1",
        )
    )
    store.save(
        SwapState(
            alias="kb",
            source="kb__v1",
            target="kb__v0003",
            source_model_id="a",
            candidate_version="v0003",
            candidate_model_id="c",
            phase="backfilled",
            done=303,
            total=303,
        )
    )
    st = gather(settings)
    assert st.to_json()["collections"]["docs"]["swap"] | {"updated_at": 0} == {
        "phase": "dual_write",
        "done": 80,
        "total": 303,
        "error": "cannot reach Milvus at http://127.0.0.1:1",
        "source": "docs__v1",
        "target": "docs__v0002",
        "candidate": "v0002",
        "updated_at": 0,
    }
    text = render(st)
    assert "docs__v1 -> docs__v0002 (v0002): phase dual_write, 80/303 documents; FAILED: cannot reach Milvus" in text
    assert "kb__v1 -> kb__v0003 (v0003): phase backfilled, 303/303 documents" in text
