"""gc on a real Milvus: right after the first swap it keeps the rollback target and a hand-made backup, and it
counts retention from when a collection stopped serving; backfill progress never passes its total while the
application inserts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import Backend
from click.testing import CliRunner

from embguard.cli._base import cli
from embguard.client.client import DUAL_WRITE_PROPERTY, Client
from embguard.config import loader as config
from embguard.demo.simulate import index, passages_for
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import CREATED_PROPERTY
from embguard.models.registry import ModelRegistry
from embguard.swap.retire import gc_plan
from embguard.swap.state import SwapEvent, SwapState, SwapStore
from embguard.swap.swapper import Swapper

SWAP_ENV = {"EMBGUARD_SWAP__GRACE_S": "0.5", "EMBGUARD_SWAP__SHADOW_QUERIES": "10"}


def _cli(env: dict[str, str], *args: str, code: int = 0) -> str:
    res = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


@contextlib.contextmanager
def managed_docs(backend: Backend, tmp: Path, candidate_dir: Path, n: int = 40, **env: str) -> Iterator[Any]:
    """``docs`` made by `embguard collection create`, ``n`` passages indexed, a candidate awaiting approval."""
    with backend.world(tmp, EMBGUARD_COLLECTIONS='[{name="docs", index_type="FLAT"}]', **{**SWAP_ENV, **env}) as w:
        out = _cli(w.env, "collection", "create", "--collection", "docs")
        assert out.startswith("docs -> docs__v0000 "), out
        with Client(w.settings) as c:
            assert index(c, "docs", passages_for(["json", "csv", "logging", "argparse"])[:n]) == n
        cand = ModelRegistry(w.settings.model.store_dir).register(candidate_dir, status="awaiting_approval")
        m = Milvus.connect(w.settings)
        try:
            yield w, m, cand
        finally:
            m.close()


# --- 2: gc after the first swap keeps the rollback target and what embguard did not create -------------------


@pytest.mark.integration
def test_gc_right_after_the_first_swap_keeps_the_rollback_target_and_a_hand_made_backup(
    backend: Backend, tmp_path: Path, candidate_dir: Path
) -> None:
    with managed_docs(backend, tmp_path, candidate_dir) as (w, m, cand):
        assert m.properties("docs__v0000").get(CREATED_PROPERTY)  # marked as embguard's own
        spec = w.settings.collection("docs")
        m.create_collection(spec, 384, name="docs__backup")  # an operator's copy: not embguard's
        m.create_collection(spec, 384, name="docs__v0007")  # an embguard-style name without a creation time
        out = _cli(w.env, "retrain", "--approve", "--collection", "docs", "--candidate", cand.version)
        assert m.resolve("docs") == f"docs__{cand.version}", out

        out = _cli(w.env, "gc", "--retention-s", "0")
        assert "keep docs__v0000: rollback target of docs" in out, out
        assert "keep docs__backup: not one of embguard's versioned names" in out, out
        assert "keep docs__v0007: embguard did not create it" in out, out
        assert f"keep docs__{cand.version}: serves alias docs" in out, out
        assert "dropped: nothing" in out, out
        assert {"docs__v0000", "docs__backup", "docs__v0007"} <= set(m.list_collections())

        out = _cli(w.env, "rollback", "--collection", "docs")
        assert "rolled back to docs__v0000" in out, out
        assert m.resolve("docs") == "docs__v0000"

        # The rolled-back candidate's collection is no rollback target: past retention, gc says so, then drops it.
        out = _cli(w.env, "gc", "--retention-s", "0", "--dry-run")
        assert f"would drop docs__{cand.version}: no alias serves it; stopped serving" in out, out
        assert m.has_collection(f"docs__{cand.version}")
        out = _cli(w.env, "gc", "--retention-s", "0")
        assert out.index(f"drop docs__{cand.version}") < out.index(f"dropped docs__{cand.version}"), out
        assert not m.has_collection(f"docs__{cand.version}")
        assert DUAL_WRITE_PROPERTY not in m.properties("docs__v0000")
        assert {"docs__v0000", "docs__backup", "docs__v0007"} <= set(m.list_collections())


@pytest.mark.integration
def test_gc_counts_retention_from_when_a_collection_stopped_serving(milvus_world: Any) -> None:
    """Retention counts from when a collection stopped serving (the switch away from it), not from its creation:
    an old-style ``__v1`` created in 1970 that stopped serving 2 h ago is within a 3 h retention."""
    s = config.load(None, environ={**milvus_world.env, "EMBGUARD_COLLECTIONS": '[{name="gk", index_type="FLAT"}]'})
    m = Milvus.connect(s)
    try:
        spec = s.collection("gk")
        long_ago = {CREATED_PROPERTY: "1", MODEL_ID_PROPERTY: "a@1"}
        for name in ("gk__v1", "gk__v0002", "gk__v0003"):
            m.create_collection(spec, 8, name=name, properties=long_ago)
        m.create_alias("gk__v0003", "gk")
        now = time.time()
        st = SwapState(
            alias="gk",
            source="gk__v0002",
            target="gk__v0003",
            source_model_id="b@2",
            candidate_version="v0003",
            candidate_model_id="c@3",
            phase="done",
        )
        st.history = [
            SwapEvent("switch", now - 7200, "gk__v1", "gk__v0002", "a@1", "b@2"),
            SwapEvent("switch", now - 60, "gk__v0002", "gk__v0003", "b@2", "c@3"),
        ]
        SwapStore(s.state.dir).save(st)
        plan = {p.collection: p for p in gc_plan(s, m, SwapStore(s.state.dir), retention_s=3600, now=now)}
        assert not plan["gk__v0002"].drop and plan["gk__v0002"].reason.startswith("rollback target of gk")
        assert plan["gk__v1"].drop and "stopped serving 2h 0m ago" in plan["gk__v1"].reason
        plan = {p.collection: p for p in gc_plan(s, m, SwapStore(s.state.dir), retention_s=3 * 3600, now=now)}
        assert not plan["gk__v1"].drop and "within swap.retention_s" in plan["gk__v1"].reason
    finally:
        m.close()


# --- 8: backfill progress never passes its total, and reaches it exactly ---------------------------------------


@pytest.mark.integration
def test_backfill_progress_never_exceeds_its_total_while_the_application_inserts(
    backend: Backend, tmp_path: Path, candidate_dir: Path
) -> None:
    from embguard.cli.model_actions import ProgressLines

    with managed_docs(backend, tmp_path, candidate_dir, n=48, EMBGUARD_SWAP__BATCH_SIZE="8") as (w, m, cand):
        seen: list[tuple[str, int, int]] = []
        lines: list[str] = []
        printer = ProgressLines(lines.append, every_s=0.0)
        client = Client(w.settings)
        next_id = [900_000]

        def progress(st: SwapState) -> None:
            seen.append((st.phase, st.done, st.total))
            printer(st)
            if st.phase == "dual_write" and st.total and len(seen) < 6:  # the application inserts meanwhile
                client.insert(
                    "docs", [{"id": next_id[0] + i, "text": f"inserted during the backfill {i}"} for i in range(8)]
                )
                next_id[0] += 8

        try:
            st = Swapper(w.settings, m, say=lambda _: None, progress=progress).approve(
                w.settings.collection("docs"), cand
            )
        finally:
            client.close()
        assert st.phase == "done" and st.verify is not None and st.verify.ok
        backfill = [(d, t) for phase, d, t in seen if phase == "dual_write" and t]
        assert backfill and all(d <= t for d, t in backfill), backfill
        # Inserts the scan read raised the total rather than running past it (the rest came by dual writes), and
        # progress ends at exactly its total: every document the backfill copied.
        assert backfill[0][1] == 48 and backfill[-1][1] > 48, backfill
        assert backfill[-1][0] == backfill[-1][1] == st.total <= m.count(st.source), backfill
        assert st.verify.target_count == m.count(st.source) == 48 + next_id[0] - 900_000
        assert lines[-1].startswith(f"backfill docs -> {st.target}: {st.total}/{st.total} documents (100%"), lines


# --- the CLI: one collection for state changes, -c/--collection everywhere, flags refused outside their mode ------
