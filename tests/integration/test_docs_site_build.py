"""The docs cannot drift from the code: the generated reference pages (docs/hooks.py) list every settings key,
metric and alert; the commands table equals the CLI; the site builds with ``mkdocs build --strict``; the README
keeps exactly two set-up commands and links only to pages and anchors that exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


# --- generated reference pages ------------------------------------------------------------------------------


@pytest.mark.integration
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """The site builds with --strict: no broken link or anchor, every page in the nav, every generated block
    known. (`make test` runs the same build through `make docs`.)"""
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    html = (tmp_path / "site" / "configuration" / "index.html").read_text()
    assert "[milvus] uri" in html and "[[alerts]] url_env" in html


# --- the commands table: exactly the commands `embguard --help` offers ---------------------------------------
