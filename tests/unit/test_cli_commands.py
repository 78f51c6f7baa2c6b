from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from embguard.cli._base import cli


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of ``group``, walked from the click tree itself (never a hand-kept list)."""
    paths: list[tuple[str, ...]] = []
    for name, cmd in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(cmd, click.Group):
            paths += _command_paths(cmd, (*prefix, name))
    return paths


COMMANDS = _command_paths(cli)


def test_the_command_tree_is_walked() -> None:
    # Guards the walk itself: top-level commands and the subcommands of groups are all found.
    assert {("config", "check"), ("lite", "start"), ("serve",), ("demo",)} <= set(COMMANDS)
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    parent = run(*path[:-1], "--help")
    assert parent.exit_code == 0 and path[-1] in parent.output, f"{path[:-1]} --help does not list {path[-1]}"
    out = run(*path, "--help")
    assert out.exit_code == 0 and out.output.startswith("Usage: "), out.output
    doc = out.output.split("\n\n")[1].strip()
    assert len(doc) > 15 and not doc.startswith("Options:"), f"`embguard {' '.join(path)}` has no help text"


def test_version() -> None:
    res = run("--version")
    assert res.exit_code == 0 and res.output.startswith("embguard, version 0.1.0")


def test_bad_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "embguard.toml"
    cfg.write_text("[drift]\nalpha = 3.0\n")
    res = subprocess.run(
        [sys.executable, "-m", "embguard.cli", "--config", str(cfg), "config", "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: invalid config") and "drift.alpha = 3.0" in lines[0]


def test_config_check_and_show_mask_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "embguard.toml"
    cfg.write_text('[milvus]\nuri = "http://milvus:19530"\n[[collections]]\nname = "docs"\n')
    env = {"EMBGUARD_MILVUS__TOKEN": "root:Milvus-very-secret"}
    ok = run("--config", str(cfg), "config", "check", env=env)
    assert ok.exit_code == 0 and "ok:" in ok.output and "1 collection(s)" in ok.output
    shown = run("--config", str(cfg), "config", "show", env=env)
    assert shown.exit_code == 0
    assert "very-secret" not in shown.output and 'token = "********"' in shown.output
    assert 'uri = "http://milvus:19530"' in shown.output
    # `config check FILE` validates that file, not the active one.
    bad = tmp_path / "bad.toml"
    bad.write_text("[metrics]\nport = 0\n")
    res = run("--config", str(cfg), "config", "check", str(bad))
    assert res.exit_code == 1 and "metrics.port = 0" in res.output


def test_missing_config_file_is_clear(tmp_path: Path) -> None:
    res = run("--config", str(tmp_path / "nope.toml"), "config", "show")
    assert res.exit_code == 1 and "does not exist; pass --config PATH" in res.output
