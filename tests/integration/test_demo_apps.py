"""`embguard demo --app langchain --fast` end to end: the loop for an unchanged LangChain application, through the
proxy and the endpoint, then nothing left running. Its own file, so `make test`'s two workers run it beside the
main demo."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from builders import run_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_app_langchain_closes_the_loop_for_an_unchanged_application(tmp_path: Path) -> None:
    out, field = run_demo(tmp_path, "--app", "langchain", "--fast")
    assert field["drift after the shift"] == "yes"
    assert int(field["clicks over HTTP"].split()[0]) > 50
    swap = re.match(r"completed; (\d+) calls during it, (\d+) failed; (\d+) searches routed", field["swap"])
    assert swap and int(swap.group(1)) > 0 and swap.group(2) == "0" and int(swap.group(3)) > 0
    assert field["new documents"] == "in both collections"
    assert field["rollback"] == "restored the previous collection and model"
    assert field["time"].endswith("left running: nothing")
    assert "a LangChain application, unchanged but for two URLs" in out
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps
