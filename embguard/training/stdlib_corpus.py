"""A real text corpus that is on every machine with Python: the standard library's own documentation.

Passages are docstrings of public functions, classes and methods, grouped by the top-level module they
document, so each group is a *topic* (``email``, ``asyncio``, ``statistics`` ...). Queries are the
summary line of a docstring; the passage is the rest of it. This gives demos, tests and benchmarks
real language with a known relevant passage for each query, with no network.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
import re
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache

_EXCLUDED = {
    "this",
    "antigravity",
    "idlelib",
    "test",
    "lib2to3",
    "pydoc_data",
    "turtledemo",
    "ensurepip",
    "venv",
    "distutils",
    "__future__",
}
# Every public top-level standard-library module is a topic; "language-reference" holds the paragraphs of
# the interpreter's bundled reference manual (pydoc_data), the largest block of prose that ships offline.
DEFAULT_TOPICS: tuple[str, ...] = tuple(
    sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in _EXCLUDED)
) + ("language-reference",)

_SKIP = re.compile(r"(^|\.)(test|tests|idlelib|__main__|antigravity|this)(\.|$)")


@dataclass(frozen=True)
class Passage:
    id: int
    topic: str
    title: str
    query: str
    text: str


def _clean(doc: str) -> tuple[str, str] | None:
    doc = inspect.cleandoc(doc)
    parts = re.split(r"\n\s*\n", doc, maxsplit=1)
    summary = " ".join(parts[0].split())
    body = " ".join(parts[1].split()) if len(parts) > 1 else ""
    # Signature-only summaries ("f(x) -> y") are not useful queries.
    if len(summary) < 20 or len(body) < 60 or "(" in summary[:12]:
        return None
    return summary, body[:1200]


def _reference_paragraphs() -> list[tuple[str, str, str]]:
    from pydoc_data.topics import topics

    out: list[tuple[str, str, str]] = []
    for key in sorted(topics):
        for i, para in enumerate(re.split(r"\n\s*\n", topics[key])):
            text = " ".join(para.split())
            if len(text) < 200 or text.count(">>>") or text.count("::="):
                continue
            first, _, rest = text.partition(". ")
            if 20 <= len(first) <= 200 and len(rest) >= 100:
                out.append((f"reference.{key}.{i}", first + ".", rest[:1200]))
    return out


def _walk(topic: str) -> list[tuple[str, str, str]]:
    if topic == "language-reference":
        return _reference_paragraphs()
    out: list[tuple[str, str, str]] = []
    try:
        root = importlib.import_module(topic)
    except Exception:  # optional stdlib parts (tkinter, curses) may be absent
        return out
    modules = [root]
    if hasattr(root, "__path__"):
        for info in pkgutil.walk_packages(root.__path__, prefix=topic + "."):
            if _SKIP.search(info.name):
                continue
            try:
                modules.append(importlib.import_module(info.name))
            except Exception:  # platform-specific submodules
                continue
    seen: set[int] = set()
    for mod in sorted(modules, key=lambda m: m.__name__):
        for name, obj in sorted(vars(mod).items()):
            if name.startswith("_") or id(obj) in seen:
                continue
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            members = [(name, obj)]
            if inspect.isclass(obj):
                members += [
                    (f"{name}.{m}", v) for m, v in sorted(vars(obj).items()) if not m.startswith("_") and callable(v)
                ]
            for qual, member in members:
                seen.add(id(member))
                doc = getattr(member, "__doc__", None)
                if not isinstance(doc, str):
                    continue
                cleaned = _clean(doc)
                if cleaned:
                    out.append((f"{mod.__name__}.{qual}", *cleaned))
    return out


@lru_cache(maxsize=4)
def stdlib_corpus(topics: tuple[str, ...] = DEFAULT_TOPICS) -> tuple[Passage, ...]:
    """All passages for ``topics``, in a stable order, deduplicated by text. Ids are stable across runs."""
    passages: list[Passage] = []
    seen_text: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for topic in topics:
            for title, summary, body in _walk(topic):
                if body in seen_text or summary in seen_text:
                    continue
                seen_text.update((body, summary))
                pid = int.from_bytes(hashlib.blake2b(title.encode(), digest_size=7).digest(), "big")
                passages.append(Passage(id=pid, topic=topic, title=title, query=summary, text=body))
    return tuple(passages)


def by_topic(passages: tuple[Passage, ...] | list[Passage]) -> dict[str, list[Passage]]:
    groups: dict[str, list[Passage]] = {}
    for p in passages:
        groups.setdefault(p.topic, []).append(p)
    return groups
