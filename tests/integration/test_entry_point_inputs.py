"""Property-based input checks: arbitrary ids, names, texts, vectors and feedback thrown at every public
entry point of the client and the CLI. Whatever comes in: no traceback (only embguard's own errors, or a
one-line CLI error), no write outside the documents the call named, and no secret in any output. On each
backend."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embguard.cli._base import cli
from embguard.client.client import Client
from embguard.errors import EmbguardError
from embguard.milvus.milvus import Milvus

pytestmark = pytest.mark.integration
SECRETS = {"HOOK_URL": "http://127.0.0.1:9/hook-path-s3cr3t-url", "HOOK_SECRET": "hmac-s3cr3t-value"}
INJECTIONS = [
    "0] or id > 0 or id in [0",
    '" or id != "',
    "1 or 1 == 1",
    ") or (id > 0",
    "x\\",
    "../../etc",
    "/etc/passwd",
    "v0001/../../x",
    "",
    " ",
    "kb; drop",
    "\x00",
    "é" * 300,
]
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(INJECTIONS),
    st.binary(max_size=8),
)
junk = st.one_of(scalar, st.lists(scalar, max_size=4), st.dictionaries(st.text(max_size=5), scalar, max_size=3))
names = st.one_of(st.text(max_size=40), st.sampled_from(INJECTIONS))
SLOW = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture()
def world(milvus_world):
    env = {
        **milvus_world.env,
        **SECRETS,
        "EMBGUARD_ALERTS": '[{name="hook", kind="webhook", url_env="HOOK_URL", secret_env="HOOK_SECRET"}]',
    }
    from embguard.config import loader as config

    s = config.load(None, environ=env)
    with Client(s, query_rate=1.0) as c:
        c.create_collection("p", index_type="FLAT")
        c.insert("p", [{"id": i, "text": f"document number {i}"} for i in range(20)])
        m = Milvus.connect(s)
        yield env, s, c, m
        m.close()


def _ids(m: Milvus) -> set[Any]:
    return {r["id"] for b in m.iterate("p__v0000", ["id"]) for r in b}


def _no_secret(text: str) -> None:
    for v in SECRETS.values():
        assert v not in text and "s3cr3t" not in text, text


def _named_ints(value: Any) -> set[int]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return {int(i) for i in items if isinstance(i, int) and not isinstance(i, bool) and -(2**63) <= i < 2**63}


@given(op=st.sampled_from(["search_texts", "search_vectors", "feedback", "insert", "delete"]), value=junk)
@SLOW
def test_client_entry_points_fail_cleanly_and_touch_only_what_they_name(world, op: str, value: Any, caplog) -> None:
    env, s, c, m = world
    caplog.set_level(logging.WARNING)
    before = _ids(m)
    expected = set(before)
    try:
        if op == "search_texts":
            c.search("p", value, limit=3)
        elif op == "search_vectors":
            c.search("p", vectors=value, limit=3)
        elif op == "feedback":
            res = c.search("p", ["document number 3"], limit=3)
            c.feedback(res.query_ids[0], value)
        elif op == "insert":
            docs = value if isinstance(value, list) else [value]
            c.insert("p", [{"id": d, "text": "inserted"} for d in docs])
            expected |= _named_ints(docs)
        else:
            c.delete("p", value)
            expected -= _named_ints(value)
    except EmbguardError as exc:  # a clean, named refusal; anything else fails the test with its traceback
        _no_secret(str(exc))
        expected = set(before)
    after = _ids(m)
    assert after == expected, f"{op}({value!r}) changed {sorted(after ^ expected)[:5]}"
    _no_secret(caplog.text)
    if after != before:  # put the collection back for the next example
        c.delete("p", sorted(after - before))
        c.insert("p", [{"id": i, "text": f"document number {i}"} for i in sorted(before - after)])


COMMANDS = [
    lambda n, f: ["collection", "create", n],
    lambda n, f: ["adopt", n, "--model", n],
    lambda n, f: ["models", "show", n],
    lambda n, f: ["retrain", "--approve", "--candidate", n, "--collection", "p"],
    lambda n, f: ["rollback", "--collection", n],
    lambda n, f: ["baseline", "capture", n],
    lambda n, f: ["label", "import", str(f), "--collection", n],
    lambda n, f: ["status"],
]


@given(cmd=st.sampled_from(range(len(COMMANDS))), name=names, content=st.binary(max_size=200))
@SLOW
def test_cli_entry_points_answer_in_one_line_and_touch_nothing_else(
    world, tmp_path_factory, cmd: int, name: str, content: bytes
) -> None:
    env, s, c, m = world
    f = Path(tmp_path_factory.mktemp("in")) / "labels.jsonl"
    f.write_bytes(content)
    before = _ids(m)
    res = CliRunner().invoke(cli, COMMANDS[cmd](name, f), env=env)
    out = res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), (res.exception, out)
    assert "Traceback" not in out, out
    if res.exit_code not in (0,):
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        assert lines and (lines[-1].startswith("Error: ") or "Usage:" in out), out
    _no_secret(out)
    assert _ids(m) == before  # no command here writes documents of p
    assert np.isfinite(len(before))
