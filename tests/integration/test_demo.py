"""`embguard demo --fast` end to end, as a new user runs it: the whole loop, then nothing left running."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_the_whole_loop_and_leaves_nothing_running(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EMBGUARD_STATE__DIR": str(tmp_path / "state")}
    res = subprocess.run(
        [sys.executable, "-m", "embguard.cli", "demo", "--fast"],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
        env=env,
    )
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    summary = out.split("\nsummary\n", 1)[1]
    field = {m.group(1).strip(): m.group(2) for m in re.finditer(r"^  (\S[^\n]*?)  +(\S[^\n]*)$", summary, re.M)}
    assert field["drift before the shift"] == "no"
    assert field["drift after the shift"] == "yes, sustained"
    assert field["candidate"].startswith("v0001: gate PASSED")
    swap = re.match(r"completed; (\d+) searches during it, (\d+) failed", field["swap"])
    assert swap and int(swap.group(1)) > 0 and swap.group(2) == "0"
    before, after = map(float, re.findall(r"([0-9.]+) (?:before|after)", field["live nDCG@10"]))
    assert after > before
    assert field["rollback"] == "restored the previous collection and model"
    assert field["time"].endswith("left running: nothing")
    # Real text and real clusters were shown along the way.
    assert "new query clusters" in out and "baseline captured: reference v0001" in out
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps  # no Milvus Lite server, no training child left behind
