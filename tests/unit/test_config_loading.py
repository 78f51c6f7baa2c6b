from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from embguard.config import loader as config
from embguard.config.credentials import masked, secret
from embguard.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "embguard.toml"
    p.write_text(text)
    return p


def test_defaults_are_usable_and_frozen() -> None:
    s = config.load(None, environ={})
    assert s.milvus.uri == "lite"
    assert s.milvus_uri == "http://127.0.0.1:19530"
    assert s.metrics.host == "127.0.0.1" and s.metrics.port == 9464
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        s.drift.alpha = 0.5  # type: ignore[misc]


def test_file_values_and_relative_paths(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
[milvus]
uri = "http://milvus.internal:19530"
[lite]
data_dir = "data/milvus"
[drift]
alpha = 0.05
monitors = ["mmd", "ood"]
[[collections]]
name = "docs"
text_field = "body"
index_type = "ivf_flat"
""",
    )
    s = config.load(p, environ={})
    assert s.milvus_uri == "http://milvus.internal:19530"
    assert s.lite.data_dir == tmp_path / "data" / "milvus"
    assert s.drift.alpha == 0.05 and s.drift.monitors == ("mmd", "ood")
    assert s.collection("docs").text_field == "body"
    assert s.collection("docs").index_type == "IVF_FLAT"
    with pytest.raises(ConfigError, match="collection 'nope' is not watched"):
        s.collection("nope")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[drift]\ncolour = 1\n", r"unknown key 'drift.colour' in \[drift\]; allowed: alpha"),
        ("colour = 1\n", r"unknown key 'colour'; allowed: milvus, lite"),
        ('[lite]\nport = "abc"\n', r"lite.port = 'abc': Input should be a valid integer"),
        ('[lite]\nport = "19530"\n', r"lite.port = '19530': Input should be a valid integer"),
        ("[lite]\nport = 70000\n", r"lite.port = 70000: Input should be less than or equal to 65535"),
        ('[lite]\nhost = "0.0.0.0"\n', r"lite.host = '0.0.0.0': must be a loopback address"),
        ("[drift]\nalpha = 0.7\n", r"drift.alpha = 0.7: Input should be less than 0.5"),
        ("[sampling]\nquery_rate = 0.0\n", r"sampling.query_rate = 0.0: Input should be greater than 0"),
        ('[drift]\nmonitors = ["mmd", "vibes"]\n', r"unknown monitor\(s\) 'vibes'; allowed: mmd"),
        ('[[collections]]\nname = "docs"\nindex_type = "FANCY"\n', r"collections\[0\].index_type = 'FANCY'"),
        ('[[collections]]\nname = "a"\n[[collections]]\nname = "a"\n', r"duplicate name\(s\) 'a'"),
        ('[[collections]]\nname = "9lives"\n', r"collections\[0\].name = '9lives': must start with a letter"),
        ('[milvus]\nuri = "milvus.internal:19530"\n', r"milvus.uri = 'milvus.internal:19530': must be 'lite'"),
        ('[model]\ndevice = "tpu"\n', r"model.device = 'tpu': Input should be 'cpu', 'cuda' or 'mps'"),
        ('[[alerts]]\nname = "x"\n', r"alerts\[0\].kind = <missing>: Field required"),
    ],
)
def test_bad_values_name_key_value_and_allowed(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        config.load(write(tmp_path, body), environ={})
    assert str(tmp_path) in str(info.value)  # the message names the file
    assert "\n" not in str(info.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        config.load(write(tmp_path, "[milvus\n"), environ={})
    with pytest.raises(ConfigError, match="does not exist; pass --config PATH"):
        config.load(tmp_path / "missing.toml", environ={})


def test_env_overrides_win_and_are_typed(tmp_path: Path) -> None:
    p = write(tmp_path, '[drift]\nalpha = 0.05\n[milvus]\ndb_name = "x"\n')
    s = config.load(
        p,
        environ={
            "EMBGUARD_DRIFT__ALPHA": "0.02",
            "EMBGUARD_SAMPLING__STORE_QUERY_TEXT": "true",
            "EMBGUARD_MILVUS__DB_NAME": "123",  # a text field keeps digits as text
            "EMBGUARD_COLLECTIONS": '[{name="docs", text_field="body"}]',
            "EMBGUARD_LOG_LEVEL": "debug",  # not a settings key: ignored
        },
    )
    assert s.drift.alpha == 0.02
    assert s.sampling.store_query_text is True
    assert s.milvus.db_name == "123"
    assert s.collection("docs").text_field == "body"
    assert "EMBGUARD_* environment" in s.source
    with pytest.raises(ConfigError, match=r"drift.alpha = 'lots'"):
        config.load(p, environ={"EMBGUARD_DRIFT__ALPHA": "lots"})
    with pytest.raises(ConfigError, match=r"unknown key 'drift.nope'"):
        config.load(p, environ={"EMBGUARD_DRIFT__NOPE": "1"})


def test_config_path_from_environment(tmp_path: Path) -> None:
    p = write(tmp_path, "[metrics]\nport = 9999\n")
    assert config.load(None, environ={"EMBGUARD_CONFIG": str(p)}).metrics.port == 9999


def test_secrets_never_in_file_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secrets are not read from the config file; set EMBGUARD_MILVUS__TOKEN"):
        config.load(write(tmp_path, '[milvus]\ntoken = "hunter2"\n'), environ={})
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")
    s = config.load(
        write(tmp_path, f'[milvus]\ntoken_file = "{token_file}"\n'),
        environ={"EMBGUARD_MILVUS__PASSWORD": "pw-from-env"},
    )
    assert secret(s.milvus.token) == "s3cr3t-token"
    assert secret(s.milvus.password) == "pw-from-env"
    shown = repr(masked(s)) + repr(s)
    assert "s3cr3t-token" not in shown and "pw-from-env" not in shown
    assert masked(s)["milvus"]["token"] == "********"


def test_alert_secrets_come_from_env(tmp_path: Path) -> None:
    p = write(tmp_path, '[[alerts]]\nname = "ops"\nkind = "slack"\nurl_env = "SLACK_URL"\n')
    msg = "alerts\\[0\\].url_env = 'SLACK_URL': environment variable SLACK_URL is not set"
    unset = config.load(p, environ={})  # only what sends alerts needs the variable (tests/unit/test_input_checks.py)
    with pytest.raises(ConfigError, match=msg):
        unset.check_alerts()
    s = config.load(p, environ={"SLACK_URL": "https://hooks.example/T000/B000/XXXX"})
    assert secret(s.alerts[0].url).endswith("XXXX")
    assert "XXXX" not in repr(masked(s))
    with pytest.raises(ConfigError, match="alerts.url in .*secrets are not read from the config file"):
        config.load(write(tmp_path, '[[alerts]]\nname = "o"\nkind = "slack"\nurl = "https://x"\n'), environ={})
