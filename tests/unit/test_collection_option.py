"""Commands take the collection one way: `-c/--collection` when several are configured, the only alias by
default, flags only in their mode, and the positional name as a deprecated synonym."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from embguard.cli._base import cli
from embguard.config import loader as config


def _cli(env: dict[str, str], *args: str, code: int = 0) -> str:
    res = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


# --- 2: gc after the first swap keeps the rollback target and what embguard did not create -------------------


# --- 8: backfill progress never passes its total, and reaches it exactly ---------------------------------------


# --- the CLI: one collection for state changes, -c/--collection everywhere, flags refused outside their mode ------


@pytest.fixture()
def two_aliases(tmp_path: Path) -> dict[str, str]:
    from builders import settings_env

    return settings_env(tmp_path, EMBGUARD_COLLECTIONS='[{name="docs"}, {name="news"}]')


@pytest.mark.parametrize(
    "args",
    [("retrain", "--approve"), ("retrain", "--approve", "--candidate", "v0001"), ("retrain", "--abort"), ("rollback",)],
    ids=" ".join,
)
def test_state_changes_need_the_collection_when_several_are_configured(
    two_aliases: dict[str, str], args: tuple[str, ...]
) -> None:
    out = _cli(two_aliases, *args, code=1)
    assert "acts on one collection and 2 are configured (docs, news)" in out, out
    assert "--collection docs" in out, out


def test_with_one_alias_configured_it_is_the_default(tmp_path: Path) -> None:
    from builders import settings_env

    env = settings_env(tmp_path, EMBGUARD_COLLECTIONS='[{name="docs"}]')
    out = _cli(env, "retrain", "--approve", code=1)  # gets past the alias: no candidate awaits approval
    assert "0 candidates await approval" in out and "acts on one collection" not in out, out


@pytest.mark.parametrize(
    ("args", "flag", "mode"),
    [
        (("retrain", "--abort", "--candidate", "v0001"), "--candidate", "retrain --abort"),
        (("retrain", "--abort", "--force"), "--force", "retrain --abort"),
        (("retrain", "--force"), "--force", "retrain (building a candidate)"),
        (("retrain", "--candidate", "v0001"), "--candidate", "retrain (building a candidate)"),
        (("retrain", "--approve", "--recipe", "adapter"), "--recipe", "retrain --approve"),
        (("retrain", "--abort", "--recipe", "adapter"), "--recipe", "retrain --abort"),
        (("retrain", "--approve", "--abort"), "--approve and --abort", ""),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_a_flag_outside_its_mode_is_a_usage_error(
    two_aliases: dict[str, str], args: tuple[str, ...], flag: str, mode: str
) -> None:
    out = _cli(two_aliases, *args, "-c", "docs", code=2)
    assert flag in out and mode in out, out


def test_every_collection_taking_command_accepts_dash_c() -> None:
    for path in (
        ("adopt",),
        ("collection", "create"),
        ("baseline", "capture"),
        ("baseline", "list"),
        ("retrain",),
        ("rollback",),
        ("models", "import"),
        ("label", "export"),
        ("label", "import"),
    ):
        out = _cli({}, *path, "--help")
        assert "-c, --collection ALIAS" in out, (path, out)


def test_the_positional_name_is_a_deprecated_synonym_of_collection(tmp_path: Path) -> None:
    from builders import settings_env

    from embguard.checks.references import ReferenceStore

    env = settings_env(tmp_path, EMBGUARD_COLLECTIONS='[{name="docs"}, {name="news"}]')
    s = config.load(None, environ=env)
    assert not ReferenceStore(s.state.dir).list("docs")
    runner = CliRunner()
    new = runner.invoke(cli, ["baseline", "list", "-c", "docs"], env=env, catch_exceptions=False)
    old = runner.invoke(cli, ["baseline", "list", "docs"], env=env, catch_exceptions=False)
    assert new.exit_code == old.exit_code == 0
    assert new.stdout == old.stdout and "capture one with `embguard baseline capture --collection ALIAS`" in new.stdout
    assert "positional collection name is deprecated; use `--collection docs`" in old.stderr
    out = _cli(env, "baseline", "list", "docs", "--collection", "news", code=2)
    assert "named twice" in out, out
    out = _cli(env, "collection", "create", code=2)
    assert "missing the collection: pass --collection ALIAS" in out, out
