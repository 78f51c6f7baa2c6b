"""`embguard demo --fast` end to end, as a new user runs it: the whole loop, then nothing left running."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from builders import run_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_the_whole_loop_and_leaves_nothing_running(tmp_path: Path) -> None:
    out, field = run_demo(tmp_path, "--fast")
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
