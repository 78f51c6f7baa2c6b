"""Approve and hot-swap: build a new versioned collection with the candidate's vectors while the old one
serves, verify it, switch the alias, keep rollback one command away.

The swap is a resumable state machine persisted in ``state/swaps/<alias>.json`` (atomic writes)::

    planned -> created -> dual_write -> backfilled -> reconciled -> verified -> switched -> done

- **dual_write**: the serving collection gets ``embguard.dual_write_to = <new>``; from then on every
  ``embguard.Client`` write goes to both collections, each embedded with its own model.
- **backfill**: the source's documents are streamed in primary-key order, re-embedded from their stored
  text and upserted, with a durable checkpoint after every batch. Killed anywhere (``kill -9`` included)
  and restarted, it resumes after the checkpoint; re-upserting a batch is harmless. A candidate that embeds
  documents exactly as the serving model does (a query adapter: its registry entry's ``documents_as`` is the
  source's model id) gets the source's vectors copied instead: the same phases, no encoding.
- **reconcile**: the backfill read each document once, so an edit or delete that raced with it could be
  overwritten by a stale copy. Reconcile compares every id and text hash of source and target and
  re-embeds, adds or deletes until the target holds exactly the source's documents.
- **verify**: count parity, every id present, index built and loaded, and a shadow check of sample
  queries against both collections with their own models. A failure stops the swap before the switch.
- **switch**: routing aliases first (:mod:`embguard.swap.routing`: the proxy pairs each search with its vector's
  model while the alias moves), then ``alter_alias``. Clients resolve the alias on every call and embed with the
  model recorded on the collection they then search, so no query meets the other model's vectors. The new collection
  then dual-writes back into the old one, so ``embguard rollback`` loses nothing; ``embguard gc`` ends
  that when it drops the old collection.

One swap per alias at a time: ``state/locks/swap-<alias>.lock`` names the process that holds it. The record
and the lock live in :mod:`embguard.swap.state`, verification in :mod:`embguard.swap.verify`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from embguard.client.retention import Pins
from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import EmbguardError, SwapError
from embguard.milvus.adopt import require_model
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import (
    BASE_VERSION,
    CREATED_PROPERTY,
    DUAL_WRITE_PROPERTY,
    SWITCHED_PROPERTY,
    collection_name,
)
from embguard.models import loading as models
from embguard.models.registry import ModelRegistry, ModelVersion
from embguard.models.variant import split_model_id, with_variant
from embguard.swap.backfill import backfill_local
from embguard.swap.retire import abort_swap, drop_retired, roll_back
from embguard.swap.routing import open_routes
from embguard.swap.state import SwapEvent, SwapState, SwapStore
from embguard.swap.verify import reconcile, verify

__all__ = ["SOURCE_PROPERTY", "Swapper"]


SOURCE_PROPERTY = "embguard.reindexed_from"


class Swapper:
    """Runs approve / rollback / gc for the watched aliases of ``settings``."""

    def __init__(
        self,
        settings: Settings,
        milvus: Milvus,
        *,
        say: Callable[[str], None] = print,
        progress: Callable[[SwapState], None] | None = None,
    ):
        self.settings = settings
        self.milvus = milvus
        self.store = SwapStore(settings.state.dir)
        self.registry = ModelRegistry(settings.model.store_dir)
        self.say = say
        self.progress = progress

    # --- approve -------------------------------------------------------------------------------------------

    def preflight(self, spec: CollectionSettings) -> str:
        source = self.milvus.resolve(spec.name)
        if source == spec.name:
            raise SwapError(
                f"{spec.name!r} is a collection, not an alias, so it cannot be switched atomically; "
                f"rename it (e.g. to {collection_name(spec.name, BASE_VERSION)}), create the alias {spec.name!r} "
                "pointing at it, and let the application search the alias. Nothing was changed"
            )
        fields = {f["name"] for f in self.milvus.schema_fields(source)}
        if not spec.text_field or spec.text_field not in fields:
            raise SwapError(
                f"collection {source!r} (alias {spec.name!r}) has no text field {spec.text_field!r} "
                f"(fields: {', '.join(sorted(fields))}); embguard re-embeds documents from their stored text, so "
                "it cannot be reindexed. Nothing was changed. Store the text (collections[].text_field) to enable "
                "swaps"
            )
        return source

    def approve(self, spec: CollectionSettings, candidate: ModelVersion, *, force: bool = False) -> SwapState:
        """Build, verify and switch to ``candidate`` for alias ``spec.name``; resumes an interrupted swap."""
        if candidate.status not in ("awaiting_approval", "approved", "rolled_back") and not force:
            raise SwapError(
                f"model {candidate.version} is {candidate.status!r}, not awaiting approval; only a "
                "candidate that passed the gate can be approved (--force overrides)"
            )
        with self.store.lock(spec.name, f"retrain --approve --candidate {candidate.version}"):
            state = self.store.load(spec.name)
            if state is None or state.phase == "done" or state.candidate_version != candidate.version:
                if state is not None and state.phase not in ("done", "planned"):
                    raise SwapError(
                        f"alias {spec.name!r} has an unfinished swap to {state.candidate_version} "
                        f"(phase {state.phase}); finish it with `embguard retrain --approve --candidate "
                        f"{state.candidate_version}` or roll it back first"
                    )
                source_model = require_model(self.milvus, spec.name, "approve a swap for")
                source = self.preflight(spec)
                # The new collection runs the candidate as [model] backend says, unless it serves the source's
                # document vectors (a query adapter): then as the source runs, so its copied vectors stay exact.
                variant = self.settings.model.variant
                if candidate.extra.get("documents_as") == source_model:
                    variant = split_model_id(source_model)[1]
                target_model = with_variant(candidate.model_id, variant)
                if source_model == target_model:
                    raise SwapError(f"alias {spec.name!r} is already served by {target_model}")
                history = state.history if state else []
                state = SwapState(
                    alias=spec.name,
                    source=source,
                    target=collection_name(spec.name, candidate.version),
                    source_model_id=source_model,
                    candidate_version=candidate.version,
                    candidate_model_id=target_model,
                    history=history,
                )
                self.store.save(state)
            else:
                self.say(
                    f"resuming the swap of {spec.name} to {candidate.version} at phase {state.phase} "
                    f"({state.done}/{state.total} documents)"
                )
            target_id = state.candidate_model_id or candidate.model_id
            model = models.load_by_id(target_id, self.settings.model.store_dir, self.settings.model.device)
            copy = bool(state.source_model_id) and candidate.extra.get("documents_as") == state.source_model_id
            if copy and not state.reached("backfilled"):
                self.say(f"{candidate.version} embeds documents as {state.source_model_id} does: copying vectors")
            try:
                self._advance(spec, state, model, copy)
            except Exception as exc:
                state.error = str(exc)
                self.store.save(state)
                raise
            if self.registry.get(candidate.version).status != "active":
                self.registry.set_status(candidate.version, "active")
            # The candidate is decided: its training labels no longer need protecting from pruning.
            Pins(self.settings.state.dir).release(candidate.version)
            prev = self.registry.by_model_id(state.source_model_id)
            if prev is not None and prev.status == "active":
                self.registry.set_status(prev.version, "approved")
            return state

    def _advance(self, spec: CollectionSettings, st: SwapState, model: models.EmbeddingModel, copy: bool) -> None:
        m = self.milvus
        if not st.reached("created"):
            if not m.has_collection(st.target):
                props = {
                    k: v
                    for k, v in m.properties(st.source).items()
                    if not k.startswith("embguard.") or k == "embguard.kind"
                }
                props.update(
                    {
                        MODEL_ID_PROPERTY: st.candidate_model_id,
                        CREATED_PROPERTY: str(int(time.time())),
                        SOURCE_PROPERTY: st.source,
                    }
                )
                m.clone_collection(
                    st.source, st.target, props, index_params=spec.index_params, dimension=model.dimension
                )
            self._phase(st, "created")
        if not st.reached("dual_write"):
            m.set_properties(st.source, {DUAL_WRITE_PROPERTY: st.target})
            self._phase(st, "dual_write")
            self.say(f"dual writes on: {st.source} -> {st.target}")
        if not st.reached("backfilled"):
            self._backfill(spec, st, model, copy)
            self._phase(st, "backfilled")
        if not st.reached("reconciled"):
            fixed = self._reconcile(spec, st, model, copy)
            self.say(f"reconciled {st.target} with {st.source}: {fixed} document(s) fixed")
            self._phase(st, "reconciled")
        if not st.reached("verified"):
            v = st.verify = verify(self.settings, m, spec, st, model, say=self.say)
            if not v.ok:
                self.store.save(st)
                raise SwapError(
                    f"verification of {st.target} failed, the alias still serves {st.source}: {'; '.join(v.problems)}"
                )
            self._phase(st, "verified")
        if not st.reached("switched"):
            routed = open_routes(m, st.alias, [st.source, st.target], self.settings.swap.grace_s, say=self.say)
            if routed:
                self.say(f"routing searches by vector during the switch: {', '.join(sorted(routed.values()))}")
            # Mark first: the instant the alias moves, writers resolving to the target also feed the old one.
            m.set_properties(st.target, {DUAL_WRITE_PROPERTY: st.source, SWITCHED_PROPERTY: str(time.time())})
            m.alter_alias(st.target, st.alias)
            st.history.append(
                SwapEvent("switch", time.time(), st.source, st.target, st.source_model_id, st.candidate_model_id)
            )
            self._phase(st, "switched")
            self.say(f"alias {st.alias} -> {st.target} ({st.candidate_model_id})")
        if not st.reached("done"):
            # Writers that resolved the alias just before the switch still write to the source (and, through
            # its mark, to the target); give them the grace period before that mark goes.
            time.sleep(self.settings.swap.grace_s)
            # No reconcile after the switch: every writer since the dual-write mark wrote both collections,
            # and the target now serves, so copying from the old one could only undo fresh edits.
            with contextlib.suppress(EmbguardError):
                m.drop_properties(st.source, [DUAL_WRITE_PROPERTY])
            self._phase(st, "done")

    def _phase(self, st: SwapState, phase: str) -> None:
        st.phase = phase
        st.error = ""
        self.store.save(st)
        if self.progress:
            self.progress(st)

    def _embed_rows(
        self, spec: CollectionSettings, rows: list[dict[str, Any]], model: models.EmbeddingModel
    ) -> list[dict[str, Any]]:
        return model.embed_rows(rows, spec.require_text_field(), spec.vector_field, self.settings.model.batch_size)

    def _rows_fn(
        self, spec: CollectionSettings, model: models.EmbeddingModel, copy: bool
    ) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
        if not copy:
            return lambda rows: self._embed_rows(spec, rows, model)
        vf = spec.vector_field
        return lambda rows: [{**r, vf: [float(x) for x in r[vf]]} for r in rows]

    def _fields(self, st: SwapState, spec: CollectionSettings, copy: bool) -> list[str]:
        """The fields read from the source: every field but the vector, which is read only to be copied."""
        return [f["name"] for f in self.milvus.schema_fields(st.source) if copy or f["name"] != spec.vector_field]

    def _backfill(self, spec: CollectionSettings, st: SwapState, model: models.EmbeddingModel, copy: bool) -> None:
        fields = self._fields(st, spec, copy)

        def checkpoint() -> None:
            self.store.save(st)
            if self.progress:
                self.progress(st)

        if self.settings.swap.engine == "ray" and not copy:  # copying is I/O: no encoders to spread out
            from embguard.swap import ray_backfill as raybackfill

            return raybackfill.backfill(self.settings, self.milvus, spec, st, fields, checkpoint)
        backfill_local(
            self.milvus,
            spec,
            st,
            fields,
            self._rows_fn(spec, model, copy),
            self.settings.swap.batch_size,
            checkpoint,
        )

    def _reconcile(self, spec: CollectionSettings, st: SwapState, model: models.EmbeddingModel, copy: bool) -> int:
        return reconcile(
            self.milvus,
            spec,
            st,
            self._fields(st, spec, copy),
            self._rows_fn(spec, model, copy),
            self.settings.swap.batch_size,
            say=self.say,
        )

    def abort(self, spec: CollectionSettings) -> SwapState:
        """Abandon an unfinished swap before its switch: stop dual writes, drop the half-built collection."""
        with self.store.lock(spec.name, "retrain --abort"):
            return abort_swap(self.milvus, self.store, spec.name)

    # --- rollback and gc ---------------------------------------------------------------------------------------

    def rollback(self, spec: CollectionSettings) -> SwapEvent:
        """Point the alias back at the collection (and so the model) it served before the last switch."""
        with self.store.lock(spec.name, "rollback"):
            return roll_back(
                self.milvus,
                self.store,
                self.registry,
                Pins(self.settings.state.dir),
                spec.name,
                window_s=self.settings.swap.grace_s,
                say=self.say,
            )

    def gc(self, retention_s: int | None = None, dry_run: bool = False) -> list[str]:
        """Drop versioned collections of watched aliases that no alias serves and that are past retention;
        says its plan (each collection kept or dropped, and why) first. See :mod:`embguard.swap.retire`.

        gc holds every watched alias's swap lock while it runs (a running swap makes it refuse, naming the
        holder) and never drops a collection an unfinished swap names (a crashed swap resumes into its
        target), the rollback target, or a collection embguard did not create.
        """
        with contextlib.ExitStack() as locks:
            for c in self.settings.collections:
                locks.enter_context(self.store.lock(c.name, "gc"))
            retention = self.settings.swap.retention_s if retention_s is None else retention_s
            return drop_retired(self.settings, self.milvus, self.store, retention, dry_run, say=self.say)
