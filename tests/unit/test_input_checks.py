"""Input checks that need no Milvus: credentials in a Client URI when Milvus is down, alert variables only
needed by serve, weights float32 cannot hold, unusable vectors, one webhook URL validator, lone surrogates,
and a readable config reference."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import settings_env
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from embguard.checks.references import ReferenceStore
from embguard.checks.windows import Window
from embguard.cli._base import cli
from embguard.client.client import Client
from embguard.client.inputs import check_documents, check_feedback, check_texts, check_vectors
from embguard.config import loader as config
from embguard.config.alert_targets import AlertTarget, alert_url_problem
from embguard.config.credentials import masked, secret
from embguard.config.settings import CollectionSettings
from embguard.errors import (
    AlertConfigError,
    ConfigError,
    FeedbackError,
    InvalidFeedback,
    InvalidInput,
    MilvusUnavailable,
)
from embguard.milvus.lite import free_port
from embguard.milvus.milvus import Milvus

PW = "Uri-Pa55word-7f3e"
LONE = "abc\ud800"


def state_env(tmp: Path, **env: str) -> dict[str, str]:
    return {
        "EMBGUARD_STATE__DIR": str(tmp / "state"),
        "EMBGUARD_MODEL__STORE_DIR": str(tmp / "models"),
        "EMBGUARD_LITE__DATA_DIR": str(tmp / "milvus"),
        "EMBGUARD_LITE__PORT": str(free_port()),
        **env,
    }


def cli_run(*args: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def with_credentials(uri: str, user: str = "root", password: str = PW) -> str:
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


# -- 1: credentials in Client(uri=...) --------------------------------------------------------------------------------


def test_client_uri_credentials_never_reach_an_error_when_milvus_is_down(
    tmp_path: Path, clean_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = config.load(None, environ=state_env(tmp_path, EMBGUARD_MILVUS__TIMEOUT_S="1.0"))
    uri = with_credentials(f"http://127.0.0.1:{free_port()}", "admin")
    with pytest.raises(MilvusUnavailable) as err:
        Client(settings, uri=uri)
    assert PW not in str(err.value) and "127.0.0.1" in str(err.value)
    with pytest.raises(MilvusUnavailable) as err2:
        Milvus.connect(settings, uri=uri)  # the same for the Milvus layer called directly
    assert PW not in str(err2.value)
    assert all(PW not in r.getMessage() for r in caplog.records)
    # The credentials move out of the URI into user/password, as they do for milvus.uri in the config.
    moved = settings.with_milvus_uri(uri)
    assert moved.milvus.user == "admin" and secret(moved.milvus.password) == PW
    assert PW not in moved.milvus_uri and PW not in repr(moved) and PW not in json.dumps(masked(moved))
    # A URI with credentials next to configured ones, or a bad scheme: InvalidInput, masked.
    for bad, says in (
        (with_credentials("ftp://db:19530"), "must be 'lite' or a URI"),
        (uri, "keep one"),
    ):
        other = (
            settings
            if "ftp" in bad
            else settings.model_copy(
                update={"milvus": settings.milvus.model_copy(update={"password": SecretStr("x-other-pw")})}
            )
        )
        with pytest.raises(InvalidInput, match=says) as bad_err:
            Client(other, uri=bad)
        assert PW not in str(bad_err.value)


# -- 5 and 11: alert variables are serve's business; one webhook URL validator ----------------------------------------

ALERTS = '[{name="ops", kind="slack", url_env="OPS_SLACK_URL"}]'


def test_an_unset_alert_url_env_does_not_stop_loading_but_stops_serve(tmp_path: Path, clean_env: None) -> None:
    from embguard.alerts.notifier import Notifier
    from embguard.daemon.service import Daemon

    env = state_env(tmp_path, EMBGUARD_ALERTS=ALERTS)
    settings = config.load(None, environ=env)  # what Client(load_config()) and `lite start` do
    assert settings.alerts[0].url is None and settings.alerts[0].url_env == "OPS_SLACK_URL"
    res = cli_run("lite", "status", env=env)  # a command that only loads the settings: no config error
    assert res.exit_code == 3 and "not running" in res.output, res.output
    says = "alerts[0].url_env = 'OPS_SLACK_URL': environment variable OPS_SLACK_URL is not set"
    for build in (
        settings.check_alerts,
        lambda: Notifier(settings.alerts),
        lambda: Daemon(settings, CollectorRegistry()),
    ):
        with pytest.raises(ConfigError) as err:
            build()
        assert isinstance(err.value, AlertConfigError) and says in str(err.value), err.value
    # With the variable set, serve's side builds.
    ok = config.load(None, environ={**env, "OPS_SLACK_URL": "https://hooks.example.com/T1/B2/tokentokentoken"})
    ok.check_alerts()
    Notifier(ok.alerts).close()


def test_an_unset_signing_secret_never_sends_unsigned(tmp_path: Path, clean_env: None) -> None:
    from embguard.alerts.notifier import Notifier

    env = state_env(
        tmp_path,
        EMBGUARD_ALERTS='[{name="hook", kind="webhook", url_env="HOOK_URL", secret_env="HOOK_SECRET"}]',
        HOOK_URL="https://hooks.example.com/in",
    )
    settings = config.load(None, environ=env)
    with pytest.raises(AlertConfigError, match="alerts\\[0\\].secret_env = 'HOOK_SECRET'"):
        Notifier(settings.alerts)


def test_config_check_and_serve_refuse_an_ftp_webhook_with_one_message(tmp_path: Path, clean_env: None) -> None:
    from embguard.alerts.notifier import Notifier

    secret_url = "ftp://hooks.example.com/T01/B02/SecretPathToken"
    env = state_env(tmp_path, EMBGUARD_ALERTS=ALERTS, OPS_SLACK_URL=secret_url)
    with pytest.raises(ConfigError) as load_err:
        config.load(None, environ=env)
    res = cli_run("config", "check", env=env)
    assert res.exit_code == 1
    target = AlertTarget(name="ops", kind="slack", url_env="OPS_SLACK_URL", url=SecretStr(secret_url))
    with pytest.raises(AlertConfigError) as send_err:
        Notifier([target])
    problem = alert_url_problem(target)
    assert problem is not None and "scheme 'ftp'" in problem and "not an http:// or https:// URL" in problem
    for text in (str(load_err.value), res.output, str(send_err.value)):
        assert problem in text, text
        assert "SecretPathToken" not in text and secret_url not in text
    for fine in ("https://hooks.example.com/x", "http://127.0.0.1:8080/hook"):
        assert alert_url_problem(target.model_copy(update={"url": SecretStr(fine)})) is None
    for bad in ("hooks.example.com/x", "https:///nohost", "file:///etc/passwd", "javascript:alert(1)"):
        assert alert_url_problem(target.model_copy(update={"url": SecretStr(bad)})) is not None, bad


# -- 6: weights float32 cannot hold ----------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [1e300, float("inf"), 1e-50, 0.0, -1.0, 101.0, "1", True])
def test_feedback_weights_outside_the_stored_range_are_refused_naming_the_value(weight: Any) -> None:
    with pytest.raises(InvalidFeedback) as err:
        check_feedback("click", weight, None)
    assert isinstance(err.value, FeedbackError) and isinstance(err.value, InvalidInput)
    assert repr(weight)[:10] in str(err.value) and "100" in str(err.value)


@pytest.mark.parametrize("weight", [1e-6, 0.5, 1, 100.0, np.float32(3.0)])
def test_feedback_weights_in_range_pass(weight: Any) -> None:
    check_feedback("positive", weight, None)
    assert np.isfinite(np.float32(weight)) and np.float32(weight) > 0


# -- 7: unusable vectors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (np.zeros(4), "norm 0"),
        (np.full(4, 3e38), "beyond"),
        (np.full(4, 1e39), "beyond"),  # float32 cannot hold it: named before the cast, not turned into inf
        (np.array([1.0, np.nan, 0.0, 0.0]), "NaN"),
        (np.array([1.0, np.inf, 0.0, 0.0]), "NaN or infinite"),
    ],
)
def test_the_client_door_refuses_unusable_vectors(row: np.ndarray, says: str) -> None:
    good = np.ones(4) / 2
    with pytest.raises(InvalidInput, match=f"position 1 .*{says}"):
        check_vectors(np.stack([good, row]), 4, "search vectors")
    assert check_vectors(np.stack([good, good]), 4, "search vectors").dtype == np.float32


def test_a_reference_never_holds_unusable_vectors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(8, 4)).astype(np.float32)
    vectors[2] = 0.0
    vectors[5] = 3e38
    window = Window(
        kind="queries",
        collection="docs__v1",
        model_id="m@1",
        start_ms=0,
        end_ms=10,
        ids=tuple(f"q{i}" for i in range(8)),
        vectors=vectors,
        timestamps_ms=np.arange(8),
        top_ids=tuple((i,) for i in range(8)),
        top_scores=np.ones((8, 1)),
        meta={"skipped_rows": 3},  # left out already when the window was read from Milvus
    )
    caplog.set_level(logging.INFO)
    store = ReferenceStore(tmp_path)
    info = store.capture("docs", window)
    assert info.size == 6 and info.excluded == 5
    loaded = store.load(info)
    assert loaded.ids == ("q0", "q1", "q3", "q4", "q6", "q7") and loaded.top_ids[2] == (3,)
    assert (
        np.isfinite(loaded.vectors.astype(np.float64) ** 2).all() and (np.linalg.norm(loaded.vectors, axis=1) > 0).all()
    )
    assert any("left out 2 row(s)" in r.getMessage() for r in caplog.records)


# -- 12: lone surrogates ---------------------------------------------------------------------------------------------


def test_lone_surrogates_are_invalid_input_naming_where() -> None:
    with pytest.raises(
        InvalidInput, match="search text at position 1 \\(character 3\\) is not valid UTF-8.*lone surrogate"
    ):
        check_texts(["fine", LONE])
    spec = CollectionSettings(name="docs")
    with pytest.raises(InvalidInput, match="document at position 0: field 'text' \\(character 3\\).*lone surrogate"):
        check_documents(spec, [{"id": 1, "text": LONE}], True)
    with pytest.raises(InvalidInput, match="field 'tags'\\[1\\]"):
        check_documents(spec, [{"id": 1, "text": "ok", "tags": ["a", LONE]}], True)
    with pytest.raises(InvalidInput, match="documents' 'id'.*lone surrogate"):
        check_documents(spec, [{"id": LONE, "text": "ok"}], False)
    with pytest.raises(InvalidFeedback, match="feedback query_text \\(character 3\\).*lone surrogate") as err:
        check_feedback("click", 1.0, LONE)
    assert isinstance(err.value, InvalidInput)


# -- config reference, log levels ------------------------------------------------------------------------------------


def test_config_reference_prints_readable_types() -> None:
    res = CliRunner().invoke(cli, ["config", "reference"])
    assert res.exit_code == 0
    types = {}
    for line in res.output.splitlines()[2:]:
        cells = line.split(" | ")
        assert len(cells) == 4, line  # no '|' inside a cell breaks the table
        types[cells[0].strip("| `")] = cells[1]
    assert types["[retrain] matryoshka_dims"] == "list[int]"
    assert types["[drift] monitors"] == "list[str]"
    assert types["[model] device"] == "one of: cpu, cuda, mps"
    assert types["[retrain] auto_recipes"] == "list, each one of: finetune, adapter, matryoshka, distill, domain_adapt"
    assert types["[[collections]] index_params"] == "table[str, int or float or str]"
    assert types["[milvus] token"] == "secret (optional)" and types["[milvus] timeout_s"] == "float"
    for t in types.values():
        assert t.count("[") == t.count("]"), t
        assert not any(junk in t for junk in ("Annotated", "Strict", "FieldInfo", "typing", "<class", "Literal")), t


def test_a_tap_that_recovers_says_so_at_info(caplog: pytest.LogCaptureFixture) -> None:
    from embguard.client.tapwriter import _Outage

    caplog.set_level(logging.DEBUG, logger="embguard.tap")
    outage = _Outage()
    outage.failed("embguard_queries", 3, "refused")
    assert outage.recovered()
    levels = {r.getMessage().split(":")[1].strip().split(" ")[0]: r.levelno for r in caplog.records}
    assert levels["writing"] == logging.WARNING and levels["writes"] == logging.INFO


def test_a_tuple_setting_from_the_environment_is_parsed_as_a_toml_array(tmp_path: Path) -> None:
    # tuple[str, ...] has str among its type arguments; it was taken for text and never parsed.
    settings = config.load(None, environ=settings_env(tmp_path, EMBGUARD_DRIFT__MONITORS='["mmd"]'))
    assert tuple(settings.drift.monitors) == ("mmd",)


def test_a_watched_collection_with_other_field_names_is_refused_naming_the_keys_and_its_fields() -> None:
    """LlamaIndex stores its vectors in ``embedding``: watching it with the default ``vector_field`` says so."""
    from fakes import FakeMilvus

    from embguard.checks.windows import sample_documents
    from embguard.errors import ConfigError

    milvus = FakeMilvus()
    milvus.create_collection(CollectionSettings(name="kb", vector_field="embedding", text_field="text"), 8)
    with pytest.raises(ConfigError) as err:
        sample_documents(milvus, CollectionSettings(name="kb", text_field="body"), 10)
    assert str(err.value) == (
        "[[collections]] 'kb': collection 'kb' has no field for vector_field = 'vector', text_field = 'body'; its "
        "fields are id, embedding, text: set those keys of 'kb' to the collection's own field names"
    )
    watched = CollectionSettings(name="kb", vector_field="embedding", text_field="text")
    milvus.insert("kb", [{"id": 1, "embedding": [1.0] * 8, "text": "a"}])
    assert sample_documents(milvus, watched, 10).size == 1


def test_stored_texts_fit_milvus_varchar_bytes_not_characters() -> None:
    """Milvus counts a VARCHAR's max_length in bytes: 8,192 characters of CJK text (24 KB) were refused, and the
    feedback row with them lost. Texts are cut at 8,192 UTF-8 bytes, on a character boundary."""
    from embguard.client.tap import feedback_row, fit_bytes

    cjk = "\u4e00" * 5000  # 15,000 bytes
    row = feedback_row(
        query_id="q", doc_id=1, alias="a", collection="c", model_id="m", signal="click", weight=1.0, query_text=cjk
    )
    stored = row["query_text"]
    assert len(stored.encode()) <= 8192 and stored == "\u4e00" * (8192 // 3)
    assert fit_bytes("short", 8192) == "short" and fit_bytes("aé", 2) == "a"
