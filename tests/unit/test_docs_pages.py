"""The docs cannot drift from the code: the generated reference pages (docs/hooks.py) list every settings key,
metric and alert; the commands table equals the CLI; the site builds with ``mkdocs build --strict``; the README
keeps exactly two set-up commands and links only to pages and anchors that exist."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = (REPO / "README.md").read_text()
CLI_PAGE = (DOCS / "cli.md").read_text()
RULES = REPO / "prometheus" / "rules" / "embguard.rules.yml"


def _load_hooks() -> ModuleType:
    """docs/hooks.py, the mkdocs hook: the one place the docs and these tests import embguard from."""
    spec = importlib.util.spec_from_file_location("embguard_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


_UNEXPANDED = re.compile(r"^<!-- generated: ", re.M)


def _page(name: str) -> str:
    """A docs page as the site shows it: its source with the generated blocks expanded."""
    return hooks.expand((DOCS / name).read_text())


def _block(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci


# --- generated reference pages ------------------------------------------------------------------------------


def _models_in(annotation: Any) -> list[type]:
    """The pydantic models an annotation holds (``Section``, ``tuple[Section, ...]``, ``Section | None``)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def settings_keys(model: type | None = None, prefix: str = "") -> set[str]:
    """Every settings key as a dotted path (``milvus.uri``, ``collections.name``, ``alerts.url_env``), walking the
    pydantic Settings model recursively; fields excluded from the settings' output (``source``) are not keys."""
    model = model or hooks.Settings
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        nested = _models_in(field.annotation)
        if nested:
            for sub in nested:
                keys |= settings_keys(sub, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def listed_keys(page: str) -> set[str]:
    """The dotted keys a configuration page's table rows name: `` `[milvus] uri` `` is ``milvus.uri``,
    `` `[[alerts]] url_env` `` is ``alerts.url_env``, `` `[retrain.finetune] step_budget` `` is
    ``retrain.finetune.step_budget``."""
    keys = set()
    for m in re.finditer(r"^\| `\[\[?([\w.]+)\]\]? (\w+)` \|", page, re.M):
        keys.add(f"{m.group(1)}.{m.group(2)}")
    return keys


def test_configuration_page_lists_every_settings_key() -> None:
    page = _page("configuration.md")
    assert not _UNEXPANDED.search(page)
    expected = settings_keys()
    listed = listed_keys(page)
    assert not expected - listed, f"settings keys missing from docs/configuration.md: {sorted(expected - listed)}"
    assert not listed - expected, f"docs/configuration.md lists keys the settings lack: {sorted(listed - expected)}"


def test_settings_walk_and_page_parser_can_fail() -> None:
    """The comparison above sees every kind of key, and a page without a row does not pass."""
    keys = settings_keys()
    assert {"milvus.uri", "lite.port", "collections.name", "alerts.url_env", "drift.alpha", "swap.ray_workers"} <= keys
    assert "source" not in keys and not any(k.startswith("source.") for k in keys)
    assert len(keys) > 80
    page = _page("configuration.md")
    short = "\n".join(line for line in page.splitlines() if "`[drift] alpha`" not in line)
    assert "drift.alpha" in listed_keys(page) and "drift.alpha" not in listed_keys(short)


def test_metrics_page_lists_every_registered_metric() -> None:
    page = _page("metrics.md")
    assert not _UNEXPANDED.search(page)
    names = [d.name for d in hooks.catalogue()]
    assert len(names) > 20
    for name in names:
        assert re.search(rf"^\| `{name}` \| \w+ \|", page, re.M), f"{name} has no row with its type in docs/metrics.md"


def test_metrics_details_must_name_the_catalogue() -> None:
    """The hand-written details table is joined with the catalogue; a metric missing from either fails the build."""
    source = (DOCS / "metrics.md").read_text()
    row = next(line for line in source.splitlines() if line.startswith("| `embguard_milvus_up` |"))
    with pytest.raises(hooks.GenerationError, match="embguard_milvus_up"):
        hooks.expand(source.replace(row + "\n", ""))
    with pytest.raises(hooks.GenerationError, match="embguard_made_up"):
        hooks.expand(source.replace(row, row + "\n| `embguard_made_up` | - |"))
    with pytest.raises(hooks.GenerationError, match="unknown generated block"):
        hooks.expand("<!-- generated: nonsense -->\n")


def test_alerts_page_lists_every_alert() -> None:
    page = _page("alerts.md")
    assert not _UNEXPANDED.search(page)
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert len(rules) >= 7
    for rule in rules:
        name = rule["alert"]
        row = re.search(rf"^\| \[{name}\]\(runbook\.md#{name.lower()}\) \| (\w+) \| ([\w-]+) \|", page, re.M)
        assert row, f"{name} has no row in docs/alerts.md"
        assert row.group(1) == rule["labels"]["severity"] and row.group(2) == rule.get("for", "—"), name


def test_every_docs_page_expands_and_is_in_the_nav() -> None:
    """Every page's generated blocks are known to the hook, and every page is in mkdocs.yml's nav."""
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]

    def pages(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for n in node for p in pages(n)]
        return [p for v in node.values() for p in pages(v)]

    in_nav = set(pages(nav))
    for path in DOCS.glob("*.md"):
        assert path.name in in_nav, f"docs/{path.name} is not in mkdocs.yml's nav"
        assert not _UNEXPANDED.search(hooks.expand(path.read_text())), path.name


def _anchors(markdown: str) -> set[str]:
    from markdown.extensions.toc import slugify

    return {slugify(h, "-") for h in re.findall(r"^#{1,6} (.+)$", markdown, re.M)}


def test_readme_links_resolve() -> None:
    """Every relative link of the README names a file of the repository, and its anchor a heading of that page
    (generated headings included)."""
    links = re.findall(r"\]\(([^)#\s]+\.md)(?:#([\w-]+))?\)", README)
    assert any(path.startswith("docs/") for path, _ in links)
    for path, anchor in links:
        if path.startswith("http"):
            continue
        target = REPO / path
        assert target.exists(), f"README links to {path}, which does not exist"
        if anchor:
            text = target.read_text()
            text = hooks.expand(text) if target.parent == DOCS else text
            assert anchor in _anchors(text), f"README links to {path}#{anchor}, which has no such heading"


# --- the commands table: exactly the commands `embguard --help` offers ---------------------------------------


def _cli_commands() -> dict[str, tuple[list[str], list[str]]]:
    """Every runnable command of the click tree, recursively (hidden ones left out):
    ``{"embguard baseline capture": (["ALIAS"], ["--collection", "--kind", ...]), ...}``."""
    import click

    cli = hooks.cli

    out: dict[str, tuple[list[str], list[str]]] = {}

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                if not sub.hidden:
                    walk(sub, [*path, name])
            return
        args = [p.human_readable_name for p in cmd.params if isinstance(p, click.Argument)]
        opts = [
            o
            for p in cmd.params
            if isinstance(p, click.Option) and not p.hidden
            for o in p.opts
            if o.startswith("--") and o != "--help"
        ]
        out[" ".join(["embguard", *path])] = (args, opts)

    walk(cli, [])
    return out


def _help_commands(text: str) -> list[str]:
    """The command names a click ``--help`` page lists under "Commands:"."""
    block = text.split("\nCommands:\n", 1)[1]
    return [line.split()[0] for line in block.splitlines() if line.startswith("  ") and not line.startswith("   ")]


def _table_commands(block: str) -> dict[str, tuple[list[str], list[str]]]:
    """``{command: (arguments, sorted long options)}`` of a commands table (header, rule, then one row each)."""
    rows = {}
    for line in block.strip().splitlines()[2:]:  # after the header and its rule
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"commands table row needs 4 cells (command | arguments | options | what): {line}"
        command = cells[0].strip("`")
        args = re.findall(r"`([^`]+)`", cells[1])
        opts = re.findall(r"`(--[\w-]+)`", cells[2])
        assert command not in rows, f"{command} listed twice"
        rows[command] = (args, sorted(opts))
    return rows


def _expected_rows(cli: dict[str, tuple[list[str], list[str]]]) -> str:
    return "\n".join(
        f"| `{cmd}` | {' '.join(f'`{a}`' for a in args) or '-'} | {', '.join(f'`{o}`' for o in opts) or '-'} | ... |"
        for cmd, (args, opts) in sorted(cli.items())
    )


def test_help_lists_the_click_tree() -> None:
    """`embguard --help` (the installed entry point, run for real) and each group's --help list exactly the
    commands the click tree has, so walking the tree is walking what users see."""

    import click
    from click.testing import CliRunner

    cli = hooks.cli

    res = subprocess.run(
        [sys.executable, "-m", "embguard", "--help"], capture_output=True, text=True, timeout=120, check=True
    )
    assert _help_commands(res.stdout) == sorted(n for n, c in cli.commands.items() if not c.hidden)
    for name, group in cli.commands.items():
        if isinstance(group, click.Group):
            out = CliRunner().invoke(cli, [name, "--help"]).output
            assert _help_commands(out) == sorted(n for n, c in group.commands.items() if not c.hidden), name


def test_commands_table_matches_the_cli() -> None:
    """The commands table of docs/cli.md lists every command of `embguard --help`, recursively, with its arguments
    and long options; no more, no fewer. The failure prints the rows the table should have."""
    cli = _cli_commands()
    expected = _expected_rows(cli)
    assert "<!-- commands:start -->" in CLI_PAGE, f"docs/cli.md has no commands table; its rows:\n{expected}"
    readme = _table_commands(_block(CLI_PAGE, "commands"))
    assert sorted(readme) == sorted(cli), f"commands differ; the rows:\n{expected}"
    for cmd, (args, opts) in cli.items():
        assert readme[cmd] == (args, sorted(opts)), f"{cmd}: README {readme[cmd]}, CLI {(args, opts)}:\n{expected}"


def test_commands_table_parser_sees_missing_rows_and_options() -> None:
    """The comparison above can fail: a table generated from the CLI matches, one without a row or an option
    does not."""
    cli = _cli_commands()
    assert {"embguard status", "embguard baseline capture", "embguard lite start"} <= set(cli)
    table = "| command | arguments | options | what |\n|---|---|---|---|\n" + _expected_rows(cli)
    assert _table_commands(table) == {c: (a, sorted(o)) for c, (a, o) in cli.items()}
    short = "\n".join(line for line in table.splitlines() if "`embguard status`" not in line)
    assert "embguard status" not in _table_commands(short)
    fewer = table.replace(", `--window-s`", "")
    assert _table_commands(fewer)["embguard baseline capture"] != (
        cli["embguard baseline capture"][0],
        sorted(cli["embguard baseline capture"][1]),
    )
