from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_indexes_real_text_searches_and_leaves_nothing_running(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "EMBGUARD_STATE__DIR": str(tmp_path / "state"), "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "embguard.cli", "demo", "--docs", "200", "--queries", "60"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "query: 'compute the median of a list of numbers'" in out
    first_hit = out.split("query: 'compute the median of a list of numbers'")[1].splitlines()[1]
    assert "statistics." in first_hit  # a real answer from real text
    assert re.search(r"collection\s+embguard_demo_docs__v1 via alias embguard_demo_docs: 200 documents", out)
    recall = float(re.search(r"Recall@10 ([0-9.]+)", out).group(1))
    assert recall >= 0.6
    assert "stopped: yes" in out
    pid_file = tmp_path / "state" / "demo" / "lite-server.json"
    assert not pid_file.exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path / "state" / "demo" / "milvus") not in ps
