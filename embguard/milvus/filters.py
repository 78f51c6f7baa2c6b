"""Milvus filter expressions, built so that no value can change what they select.

pymilvus writes ids into a filter unquoted (INT64 keys) or quoted without escaping (VARCHAR keys), so every
value embguard puts into an expression goes through :func:`literal` or :func:`check_ids` first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embguard.errors import InvalidInput

MAX_ID_LENGTH = 512


def literal(value: str) -> str:
    """``value`` as a Milvus filter string literal: quoted and escaped, so it can never end the literal."""
    if not isinstance(value, str):
        raise InvalidInput(f"filter value {value!r} must be a string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def surrogate_at(value: Any, _depth: int = 0) -> str | None:
    """Where ``value`` (a string, or a list/dict holding strings) has a lone surrogate, which no UTF-8 encoder
    (pymilvus, a tokenizer, a JSON writer) accepts: ``""`` for the value itself, ``"[3]"`` or ``"['k']"`` inside
    it; None when it has none."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f" (character {exc.start})"
        return None
    if _depth > 32:
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            for part, label in ((k, f"[{k!r:.40}] (key)"), (v, f"[{k!r:.40}]")):
                at = surrogate_at(part, _depth + 1)
                if at is not None:
                    return label + at
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            at = surrogate_at(v, _depth + 1)
            if at is not None:
                return f"[{i}]{at}"
    return None


def check_utf8(text: str, what: str) -> str:
    """``text`` if it encodes as UTF-8; else :class:`InvalidInput` naming ``what`` and the character."""
    at = surrogate_at(text)
    if at is not None:
        raise InvalidInput(
            f"{what}{at} is not valid UTF-8 text: it holds a lone surrogate (usually bytes decoded with "
            "errors='surrogateescape', or a broken '\\ud800' escape); decode the source with errors='replace' "
            "or drop the character"
        )
    return text


def check_ids(ids: Any, int_keys: bool, what: str = "ids") -> list[int | str]:
    """Validate primary keys by the key's type; a bad one is named, and nothing is sent to Milvus.

    pymilvus writes ids into a filter expression unquoted (int keys) or quoted without escaping (varchar),
    so a crafted id such as ``"0] or id > 0 or id in [0"`` would select every row: every id is checked here.
    """
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple, set, frozenset)):
        raise InvalidInput(f"{what} must be a list of document ids, got {type(ids).__name__} {ids!r:.80}")
    out: list[int | str] = []
    for i in ids:
        if int_keys:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise InvalidInput(f"{what}: {i!r:.80} is not an integer; this collection's primary key is INT64")
            if not -(2**63) <= int(i) < 2**63:
                raise InvalidInput(f"{what}: {i} is out of the INT64 range of this collection's primary key")
            out.append(int(i))
        else:
            if not isinstance(i, str) or not i or len(i) > MAX_ID_LENGTH:
                raise InvalidInput(
                    f"{what}: {i!r:.80} is not a non-empty string of at most {MAX_ID_LENGTH} "
                    "characters; this collection's primary key is VARCHAR"
                )
            check_utf8(i, f"{what}: {i!r:.80}")
            out.append(i)
    return out


def ids_expr(field: str, int_keys: bool, ids: Any, what: str = "ids") -> str:
    """``field in [...]`` selecting exactly ``ids`` (validated by the key's type)."""
    values = [str(i) if int_keys else literal(str(i)) for i in check_ids(ids, int_keys, what)]
    return f"{field} in [{', '.join(values)}]"


def after_expr(field: str, int_keys: bool, last: int | str | None) -> str:
    """``field > last`` for paging by primary key ("" before the first page)."""
    if last is None:
        return ""
    return f"{field} > {int(last) if int_keys else literal(str(last))}"
