from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from embguard.cli._base import cli


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.mark.integration
def test_lite_commands_end_to_end(tmp_path: Path) -> None:
    from embguard.milvus.lite import free_port

    cfg = tmp_path / "embguard.toml"
    cfg.write_text(f'[lite]\nport = {free_port()}\ndata_dir = "milvus"\n[state]\ndir = "state"\n')
    base = [sys.executable, "-m", "embguard.cli", "--config", str(cfg), "lite"]

    def cmd(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *a], capture_output=True, text=True, timeout=120)

    assert cmd("status").returncode == 3
    started = cmd("start")
    try:
        assert started.returncode == 0, started.stderr
        assert "started: Milvus Lite: running" in started.stdout
        assert cmd("status").returncode == 0
        again = cmd("start")
        assert again.returncode == 1 and "already serves" in again.stderr and "Traceback" not in again.stderr
    finally:
        stopped = cmd("stop")
    assert stopped.returncode == 0 and "stopped pid" in stopped.stdout
    assert cmd("status").returncode == 3
