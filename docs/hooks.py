"""MkDocs hook (``hooks:`` in mkdocs.yml): the reference tables of the docs site, generated from the code at build
time so they cannot drift from it.

A page asks for a table with a marker line; :func:`expand` replaces it (``on_page_markdown`` runs it on every
page, and tests/unit/test_docs_pages.py runs it on the page sources):

- ``<!-- generated: config-reference -->``: every settings key (``reference_markdown()``), docs/configuration.md;
- ``<!-- generated: metrics -->`` ... ``<!-- generated: metrics-end -->``: the daemon's metric catalogue
  (``catalogue()``), joined with the hand-written ``| metric | details |`` table between the two markers (the
  details are what a help string cannot say: label values, derived series); docs/metrics.md. The build fails when
  the two tables do not name the same metrics;
- ``<!-- generated: alerts -->``: every alert of prometheus/rules/embguard.rules.yml, docs/alerts.md;
- ``<!-- generated: packages -->``: embguard's subpackages and modules with their docstrings, docs/development.md;
- ``<!-- generated: layers -->``: the import-linter contracts of pyproject.toml, docs/development.md.

An unknown marker fails the build.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

# --- embguard imports: the ONLY place the docs (and tests/unit/test_docs_pages.py, through this module) import
# embguard. ---
# When a module moves, update its line here.
import embguard
from embguard.cli._base import cli
from embguard.config.loader import reference_markdown
from embguard.config.settings import Settings
from embguard.daemon.metrics import catalogue

# ---------------------------------------------------------------------------------------------------------------

__all__ = ["Settings", "cli", "catalogue", "expand", "on_page_markdown"]

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "prometheus" / "rules" / "embguard.rules.yml"
PYPROJECT = REPO / "pyproject.toml"
PACKAGE = Path(embguard.__file__).resolve().parent

_MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->\n", re.M)


class GenerationError(Exception):
    """A page asks for something the hook cannot generate, or its hand-written half disagrees with the code."""


def _cell(text: str) -> str:
    """One Markdown table cell: on one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def config_reference() -> str:
    return reference_markdown()


def metrics_table(details_block: str) -> str:
    """The daemon's catalogue (name, type, labels, help from the code) joined with ``details_block``, a
    ``| metric | details |`` table naming every metric of the catalogue once."""
    details: dict[str, str] = {}
    for line in details_block.strip().splitlines()[2:]:  # after the header and its rule
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2:
            raise GenerationError(f"metrics details row needs 2 cells (metric | details): {line}")
        name = cells[0].strip("`")
        if name in details:
            raise GenerationError(f"metrics details: {name} listed twice")
        details[name] = cells[1]
    docs = catalogue()
    names = {d.name for d in docs}
    if set(details) != names:
        raise GenerationError(
            "docs/metrics.md's details table and the metric catalogue differ: "
            f"not in the code {sorted(set(details) - names)}, no details row {sorted(names - set(details))}"
        )
    lines = ["| metric | type | labels | meaning | details |", "|---|---|---|---|---|"]
    for d in docs:
        labels = ", ".join(f"`{label}`" for label in d.labels) or "—"
        extra = details[d.name] if details[d.name] not in ("", "-", "—") else ""
        lines.append(f"| `{d.name}` | {d.kind} | {labels} | {_cell(d.help)} | {extra} |")
    return "\n".join(lines) + "\n"


def alerts() -> list[dict[str, Any]]:
    """Every rule of the rules file that is an alert, in file order."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def alerts_table() -> str:
    lines = ["| alert | severity | for | expression | summary |", "|---|---|---|---|---|"]
    for rule in alerts():
        name = rule["alert"]
        lines.append(
            f"| [{name}](runbook.md#{name.lower()}) | {rule['labels']['severity']} | {rule.get('for', '—')} "
            f"| `{_cell(rule['expr'])}` | {_cell(rule['annotations']['summary'])} |"
        )
    return "\n".join(lines) + "\n"


def _docstring(path: Path) -> str:
    """The first paragraph of a module's docstring, read without importing it."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return _cell(doc.split("\n\n", 1)[0])


def packages_table() -> str:
    """embguard's top-level modules, then each subpackage with its docstring and a table of its modules and
    theirs (read from the source, never imported)."""
    top = ["| module | what it holds |", "|---|---|"]
    sections = []
    for path in sorted(PACKAGE.iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            rows = ["| module | what it holds |", "|---|---|"]
            for mod in sorted(path.glob("*.py")):
                if mod.stem != "__init__":
                    rows.append(f"| `{mod.stem}` | {_docstring(mod) or '—'} |")
            sections.append(f"### `embguard.{path.name}`\n\n{_docstring(path / '__init__.py')}\n\n" + "\n".join(rows))
        elif path.suffix == ".py" and path.stem != "__init__":
            top.append(f"| `embguard.{path.stem}` | {_docstring(path) or '—'} |")
    top.insert(2, f"| `embguard` | {_docstring(PACKAGE / '__init__.py') or '—'} |")
    return "\n".join(top) + "\n\n" + "\n\n".join(sections) + "\n"


def layers() -> str:
    """The import-linter contracts of pyproject.toml, as a list (layered contracts with their layers, top first)."""
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    out = []
    for c in contracts:
        out.append(f"- **{c['name']}** ({c['type']})")
        for layer in c.get("layers", []):
            out.append(f"    - `{layer}`")
    return "\n".join(out) + "\n"


def catalogue_table(module: str) -> str:
    """A process's metric catalogue (``<module>.CATALOGUE``: name, type, labels, help) as a Markdown table."""
    import importlib

    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for name, kind, labels, help_text in importlib.import_module(module).CATALOGUE:
        lines.append(f"| `{name}` | {kind} | {', '.join(labels) or '-'} | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"


_SIMPLE = {
    "config-reference": config_reference,
    "proxy-metrics": lambda: catalogue_table("embguard.proxy.metrics"),  # docs/proxy.md
    "endpoint-metrics": lambda: catalogue_table("embguard.endpoint.metrics"),  # docs/endpoint.md
    "alerts": alerts_table,
    "packages": packages_table,
    "layers": layers,
}


def expand(markdown: str) -> str:
    """``markdown`` with every ``<!-- generated: NAME -->`` marker replaced by the generated Markdown."""
    out: list[str] = []
    pos = 0
    for m in _MARKER.finditer(markdown):
        if m.start() < pos:  # inside a block already consumed (the metrics details)
            continue
        out.append(markdown[pos : m.start()])
        name = m.group(1)
        if name == "metrics":
            end = "<!-- generated: metrics-end -->\n"
            stop = markdown.find(end, m.end())
            if stop < 0:
                raise GenerationError("<!-- generated: metrics --> without its <!-- generated: metrics-end -->")
            out.append(metrics_table(markdown[m.end() : stop]))
            pos = stop + len(end)
        elif name in _SIMPLE:
            out.append(_SIMPLE[name]())
            pos = m.end()
        else:
            raise GenerationError(f"unknown generated block {name!r}")
    out.append(markdown[pos:])
    return "".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    from mkdocs.exceptions import PluginError

    try:
        return expand(markdown)
    except GenerationError as exc:
        raise PluginError(f"{page.file.src_path}: {exc}") from exc
