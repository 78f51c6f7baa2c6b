"""The README's generated sections cannot drift from the code, and it keeps exactly two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from embguard.config import reference_markdown
from embguard.metrics import catalogue_markdown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _block(name: str) -> str:
    return README.split(f"<!-- {name}:start -->\n", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def test_config_reference_is_generated_from_the_settings() -> None:
    assert _block("config-reference") == reference_markdown()


def test_metric_catalogue_is_generated_from_the_code() -> None:
    assert _block("metrics") == catalogue_markdown()


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci
