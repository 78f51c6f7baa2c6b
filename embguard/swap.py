"""Approve and hot-swap: build a new versioned collection with the candidate's vectors while the old one
serves, verify it, switch the alias, keep rollback one command away.

The swap is a resumable state machine persisted in ``state/swaps/<alias>.json`` (atomic writes)::

    planned -> created -> dual_write -> backfilled -> reconciled -> verified -> switched -> done

- **dual_write**: the serving collection gets ``embguard.dual_write_to = <new>``; from then on every
  ``embguard.Client`` write goes to both collections, each embedded with its own model.
- **backfill**: the source's documents are streamed in primary-key order, re-embedded from their stored
  text and upserted, with a durable checkpoint after every batch. Killed anywhere (``kill -9`` included)
  and restarted, it resumes after the checkpoint; re-upserting a batch is harmless.
- **reconcile**: the backfill read each document once, so an edit or delete that raced with it could be
  overwritten by a stale copy. Reconcile compares every id and text hash of source and target and
  re-embeds, adds or deletes until the target holds exactly the source's documents.
- **verify**: count parity, every id present, index built and loaded, and a shadow check of sample
  queries against both collections with their own models. A failure stops the swap before the switch.
- **switch**: ``alter_alias``. Clients resolve the alias on every call and embed with the model recorded
  on the collection they then search, so no query meets the other model's vectors. The new collection
  then dual-writes back into the old one, so ``embguard rollback`` loses nothing; ``embguard gc`` ends
  that when it drops the old collection.

One swap per alias at a time: ``state/locks/swap-<alias>.lock`` names the process that holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import model as models
from .client import DUAL_WRITE_PROPERTY
from .config import CollectionSettings, Settings
from .errors import EmbguardError, SwapError, SwapLocked
from .milvus import MODEL_ID_PROPERTY, Milvus, literal
from .registry import ModelRegistry, ModelVersion
from .retention import Pins

PHASES = ("planned", "created", "dual_write", "backfilled", "reconciled", "verified", "switched", "done")
CREATED_PROPERTY = "embguard.created_at"
SOURCE_PROPERTY = "embguard.reindexed_from"


@dataclass
class SwapState:
    alias: str
    source: str
    target: str
    source_model_id: str
    candidate_version: str
    candidate_model_id: str
    phase: str = "planned"
    cursor: Any = None
    ranges: list[dict[str, Any]] = field(default_factory=list)  # swap.engine = "ray": per-range checkpoints
    done: int = 0
    total: int = 0
    rate: float = 0.0
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    verify: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    def reached(self, phase: str) -> bool:
        return self.phase in PHASES and PHASES.index(self.phase) >= PHASES.index(phase)


class SwapStore:
    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "swaps"
        self.locks = Path(state_dir) / "locks"

    def path(self, alias: str) -> Path:
        return self.dir / f"{alias}.json"

    def load(self, alias: str) -> SwapState | None:
        p = self.path(alias)
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text())
            state = SwapState(**data)
            if not isinstance(state.phase, str) or not isinstance(state.history, list):
                raise TypeError("phase or history has the wrong type")
            return state
        except (OSError, ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
            raise SwapError(f"swap state {p} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); restore it "
                            "from a backup, or remove it if no swap of this alias is in progress (check "
                            "`embguard status` for what the alias serves)") from None

    def save(self, state: SwapState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state.updated_at = time.time()
        p = self.path(state.alias)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump(asdict(state), fh, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(p)

    def all(self) -> list[SwapState]:
        return [s for p in sorted(self.dir.glob("*.json")) if (s := self.load(p.stem))]

    @contextlib.contextmanager
    def lock(self, alias: str, what: str) -> Iterator[None]:
        """Hold ``state/locks/swap-<alias>.lock`` for the block, or raise ``SwapLocked`` naming its holder.

        The lock is an ``flock`` on the file, held for the whole block: the kernel drops it when its holder
        exits (``kill -9`` included), so there is no stale lock to take over and no takeover to race. The file
        is never removed (removing it would let two processes lock two different inodes); the pid/what the
        holder writes inside (and leaves after release) only words the refusal.
        """
        self.locks.mkdir(parents=True, exist_ok=True)
        path = self.locks / f"swap-{alias}.lock"
        me = {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": time.time()}
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(path)
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0) or 0))
                raise SwapLocked(
                    f"a swap of {alias!r} is already running: pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} ({holder.get('what', '?')}) since {since}; wait for it to finish "
                    f"(the lock {path} is released the moment that process exits)") from None
            # Overwrite, then cut: a reader never sees an empty file, at worst a moment of trailing bytes.
            data = json.dumps(me).encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _lock_holder(path: Path) -> dict[str, Any]:
    """What the holder of a swap lock wrote (it writes right after locking, so retry a torn read briefly)."""
    for _ in range(20):
        try:
            holder = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}
        if isinstance(holder, dict) and holder:
            return holder
        time.sleep(0.005)
    return {}


def _hash(text: Any) -> str:
    return hashlib.blake2b(str(text).encode(), digest_size=12).hexdigest()


def _prefetch(it: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run ``it`` in a background thread, ``depth`` items ahead; its exceptions surface here."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()

    def run() -> None:
        try:
            for item in it:
                q.put(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put(exc)
        q.put(done)

    threading.Thread(target=run, name="embguard-backfill-read", daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _pk_filter(field_name: str, cursor: Any) -> str:
    if cursor is None:
        return ""
    return f"{field_name} > {literal(cursor)}" if isinstance(cursor, str) else f"{field_name} > {int(cursor)}"


def collection_name(alias: str, version: str) -> str:
    return f"{alias}__{version}"


class Swapper:
    """Runs approve / rollback / gc for the watched aliases of ``settings``."""

    def __init__(self, settings: Settings, milvus: Milvus, *, say: Callable[[str], None] = print,
                 progress: Callable[[SwapState], None] | None = None):
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
            raise SwapError(f"{spec.name!r} is a collection, not an alias, so it cannot be switched atomically; "
                            f"rename it (e.g. to {spec.name}__v1), create the alias {spec.name!r} pointing at it, and "
                            "let the application search the alias. Nothing was changed")
        fields = {f["name"] for f in self.milvus.schema_fields(source)}
        if not spec.text_field or spec.text_field not in fields:
            raise SwapError(
                f"collection {source!r} (alias {spec.name!r}) has no text field {spec.text_field!r} "
                f"(fields: {', '.join(sorted(fields))}); embguard re-embeds documents from their stored text, so "
                "it cannot be reindexed. Nothing was changed. Store the text (collections[].text_field) to enable swaps")
        return source

    def approve(self, spec: CollectionSettings, candidate: ModelVersion, *, force: bool = False) -> SwapState:
        """Build, verify and switch to ``candidate`` for alias ``spec.name``; resumes an interrupted swap."""
        if candidate.status not in ("awaiting_approval", "approved", "rolled_back") and not force:
            raise SwapError(f"model {candidate.version} is {candidate.status!r}, not awaiting approval; only a "
                            "candidate that passed the gate can be approved (--force overrides)")
        with self.store.lock(spec.name, f"retrain --approve --candidate {candidate.version}"):
            state = self.store.load(spec.name)
            if state is None or state.phase == "done" or state.candidate_version != candidate.version:
                if state is not None and state.phase not in ("done", "planned"):
                    raise SwapError(f"alias {spec.name!r} has an unfinished swap to {state.candidate_version} "
                                    f"(phase {state.phase}); finish it with `embguard retrain --approve --candidate "
                                    f"{state.candidate_version}` or roll it back first")
                source = self.preflight(spec)
                source_model = self.milvus.properties(source).get(MODEL_ID_PROPERTY, "")
                if source_model == candidate.model_id:
                    raise SwapError(f"alias {spec.name!r} is already served by {candidate.model_id}")
                history = state.history if state else []
                state = SwapState(alias=spec.name, source=source, target=collection_name(spec.name, candidate.version),
                                  source_model_id=source_model, candidate_version=candidate.version,
                                  candidate_model_id=candidate.model_id, history=history)
                self.store.save(state)
            else:
                self.say(f"resuming the swap of {spec.name} to {candidate.version} at phase {state.phase} "
                         f"({state.done}/{state.total} documents)")
            model = models.load_by_id(candidate.model_id, self.settings.model.store_dir, self.settings.model.device)
            try:
                self._advance(spec, state, model)
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

    def _advance(self, spec: CollectionSettings, st: SwapState, model: models.EmbeddingModel) -> None:
        m = self.milvus
        if not st.reached("created"):
            if not m.has_collection(st.target):
                props = {k: v for k, v in m.properties(st.source).items()
                         if not k.startswith("embguard.") or k == "embguard.kind"}
                props.update({MODEL_ID_PROPERTY: st.candidate_model_id, CREATED_PROPERTY: str(int(time.time())),
                              SOURCE_PROPERTY: st.source})
                m.clone_collection(st.source, st.target, props, index_params=spec.index_params,
                                   dimension=model.dimension)
            self._phase(st, "created")
        if not st.reached("dual_write"):
            m.set_properties(st.source, {DUAL_WRITE_PROPERTY: st.target})
            self._phase(st, "dual_write")
            self.say(f"dual writes on: {st.source} -> {st.target}")
        if not st.reached("backfilled"):
            self._backfill(spec, st, model)
            self._phase(st, "backfilled")
        if not st.reached("reconciled"):
            fixed = self._reconcile(spec, st, model)
            self.say(f"reconciled {st.target} with {st.source}: {fixed} document(s) fixed")
            self._phase(st, "reconciled")
        if not st.reached("verified"):
            st.verify = self._verify(spec, st, model)
            if not st.verify["ok"]:
                self.store.save(st)
                raise SwapError(f"verification of {st.target} failed, the alias still serves {st.source}: "
                                f"{'; '.join(st.verify['problems'])}")
            self._phase(st, "verified")
        if not st.reached("switched"):
            # Mark first: the instant the alias moves, writers resolving to the target also feed the old one.
            m.set_properties(st.target, {DUAL_WRITE_PROPERTY: st.source})
            m.alter_alias(st.target, st.alias)
            st.history.append({"from": st.source, "to": st.target, "from_model": st.source_model_id,
                               "to_model": st.candidate_model_id, "at": time.time(), "action": "switch"})
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

    def _embed_rows(self, spec: CollectionSettings, rows: list[dict[str, Any]],
                    model: models.EmbeddingModel) -> list[dict[str, Any]]:
        vecs = model.encode([str(r[spec.text_field]) for r in rows], batch_size=self.settings.model.batch_size)
        return [{**r, spec.vector_field: v.tolist()} for r, v in zip(rows, vecs)]

    def _scalar_fields(self, st: SwapState, spec: CollectionSettings) -> list[str]:
        return [f["name"] for f in self.milvus.schema_fields(st.source) if f["name"] != spec.vector_field]

    def _backfill(self, spec: CollectionSettings, st: SwapState, model: models.EmbeddingModel) -> None:
        """Re-embed the source into the target in primary-key order; encoding overlaps reading and writing.

        A reader thread prefetches the next batch and a writer thread upserts the previous one while this
        thread encodes, so the encoder (the expensive part) rarely waits. The checkpoint advances only after
        a batch's write has returned.
        """
        m = self.milvus
        fields = self._scalar_fields(st, spec)
        if self.settings.swap.engine == "ray":
            from . import raybackfill

            def checkpoint() -> None:
                self.store.save(st)
                if self.progress:
                    self.progress(st)

            return raybackfill.backfill(self.settings, m, spec, st, fields, checkpoint)
        st.total = m.count(st.source)
        self.store.save(st)
        t0, done0 = time.monotonic(), st.done
        batches = _prefetch(m.iterate(st.source, fields, filter=_pk_filter(spec.id_field, st.cursor),
                                      batch_size=self.settings.swap.batch_size))

        def commit(batch: list[dict[str, Any]]) -> None:
            st.cursor = max(r[spec.id_field] for r in batch)
            st.done += len(batch)
            st.rate = (st.done - done0) / max(time.monotonic() - t0, 1e-9)
            self.store.save(st)  # the checkpoint: a restart continues after st.cursor
            if self.progress:
                self.progress(st)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embguard-backfill-write") as writer:
            pending: tuple[Future[int], list[dict[str, Any]]] | None = None
            for batch in batches:
                rows = self._embed_rows(spec, batch, model)
                if pending is not None:
                    pending[0].result()
                    commit(pending[1])
                pending = (writer.submit(m.upsert, st.target, rows), batch)
            if pending is not None:
                pending[0].result()
                commit(pending[1])

    def _hashes(self, collection: str, spec: CollectionSettings) -> dict[Any, str]:
        rows = [(r[spec.id_field], _hash(r[spec.text_field]))
                for b in self.milvus.iterate(collection, [spec.id_field, spec.text_field]) for r in b]
        self._last_rows = len(rows)  # rows seen, to tell duplicates from distinct ids in the same pass
        return dict(rows)

    def _hashes_of(self, collection: str, spec: CollectionSettings, ids: set[Any]) -> dict[Any, str]:
        rows = self.milvus.query(collection, ids=sorted(ids), output_fields=[spec.id_field, spec.text_field])
        return {r[spec.id_field]: _hash(r[spec.text_field]) for r in rows}

    def _diff(self, st: SwapState, spec: CollectionSettings) -> tuple[list[Any], list[Any]]:
        """Ids whose target copy is missing or differs from the source, and ids only the target has."""
        self.milvus.flush(st.target)
        src, dst = self._hashes(st.source, spec), self._hashes(st.target, spec)
        return [i for i, h in src.items() if dst.get(i) != h], [i for i in dst if i not in src]

    def _reconcile(self, spec: CollectionSettings, st: SwapState, model: models.EmbeddingModel) -> int:
        """Make the target hold exactly the source's documents, re-embedded from the source's current text.

        Writers keep running meanwhile (the source first, then its dual-write copy), so what looks extra in
        the target may be an insert whose source write is still in flight: an id is deleted from the target
        only when the source still lacks it a moment later.
        """
        m = self.milvus
        fields = self._scalar_fields(st, spec)
        fixed = 0
        for _ in range(3):
            stale, extra = self._diff(st, spec)
            for i in range(0, len(stale), self.settings.swap.batch_size):
                rows = m.query(st.source, ids=stale[i:i + self.settings.swap.batch_size], output_fields=fields)
                if rows:
                    m.upsert(st.target, self._embed_rows(spec, rows, model))
            gone: list[Any] = []
            if extra:
                time.sleep(1.0)
                present = {r[spec.id_field] for r in m.query(st.source, ids=extra, output_fields=[spec.id_field])}
                gone = [i for i in extra if i not in present]
                if gone:
                    m.delete(st.target, ids=gone)
            fixed += len(stale) + len(gone)
            if not stale and not gone:
                break
        m.flush(st.target)
        return fixed

    def _shadow_texts(self, spec: CollectionSettings, n: int) -> list[str]:
        from .sampling import sample_documents
        from .tap import FEEDBACK_COLLECTION, TAP_COLLECTION

        m = self.milvus
        texts: list[str] = []
        for coll, field_name in ((TAP_COLLECTION, "text"), (FEEDBACK_COLLECTION, "query_text")):
            if len(texts) < n and m.has_collection(coll):
                rows = m.query(coll, filter=f'alias == {literal(spec.name)} and {field_name} != ""',
                               output_fields=[field_name], limit=n)
                texts += [r[field_name] for r in rows]
        if len(texts) < n:  # no stored query text: the opening words of sampled documents stand in
            docs = sample_documents(m, spec, n - len(texts), seed=0)
            texts += [" ".join(t.split()[:12]) for t in docs.texts if t.strip()]
        return list(dict.fromkeys(texts))[:n]

    def _verify(self, spec: CollectionSettings, st: SwapState, model: models.EmbeddingModel) -> dict[str, Any]:
        m = self.milvus
        problems: list[str] = []
        m.flush(st.target)
        m.wait_index(st.target, spec.vector_field)
        m.ensure_loaded(st.target)
        # Writers keep going (source first, then the target): an id can be in flight between the reads. Each
        # difference is re-checked by id after a pause, so only a gap that stays is a problem.
        src = self._hashes(st.source, spec)
        dst = self._hashes(st.target, spec)
        dst_rows, dst_ids = self._last_rows, len(dst)  # more rows than ids in one read: duplicates
        suspects = {i for i in src if dst.get(i) != src[i]} | {i for i in dst if i not in src}
        for attempt in range(4):
            if not suspects:
                break
            time.sleep(0.5 * (attempt + 1))
            now_src, now_dst = self._hashes_of(st.source, spec, suspects), self._hashes_of(st.target, spec, suspects)
            src.update(now_src)
            dst.update(now_dst)
            for i in suspects - set(now_src):
                src.pop(i, None)
            for i in suspects - set(now_dst):
                dst.pop(i, None)
            suspects = {i for i in suspects if src.get(i) != dst.get(i)}
        missing = [i for i in src if i not in dst]
        extra = [i for i in dst if i not in src]
        changed = [i for i, h in src.items() if i in dst and dst[i] != h]
        n_src, n_dst = len(src), len(dst)
        if n_src != n_dst:
            problems.append(f"count mismatch: {st.source} has {n_src} documents, {st.target} has {n_dst}")
        if missing:
            problems.append(f"{len(missing)} id(s) missing from {st.target}, e.g. {missing[:5]}")
        if extra:
            problems.append(f"{len(extra)} id(s) in {st.target} that {st.source} lacks, e.g. {extra[:5]}")
        if changed:
            problems.append(f"{len(changed)} document(s) differ from the source, e.g. {changed[:5]}")
        if dst_rows != dst_ids:
            problems.append(f"{st.target} holds duplicate ids ({dst_rows} rows for {dst_ids} ids)")
        old = models.load_by_id(st.source_model_id, self.settings.model.store_dir, self.settings.model.device)
        texts = self._shadow_texts(spec, self.settings.swap.shadow_queries)
        overlap = top1_old = top1_new = float("nan")
        if texts:
            a = m.search(st.source, old.encode(texts), limit=10, anns_field=spec.vector_field,
                         output_fields=[spec.id_field])
            b = m.search(st.target, model.encode(texts), limit=10, anns_field=spec.vector_field,
                         output_fields=[spec.id_field])
            overlap = float(np.mean([len({h["id"] for h in x} & {h["id"] for h in y}) / 10 for x, y in zip(a, b)]))
            top1_old = float(np.mean([x[0]["distance"] for x in a if x]))
            top1_new = float(np.mean([y[0]["distance"] for y in b if y]))
            if overlap < self.settings.swap.min_overlap:
                problems.append(f"shadow check: mean top-10 overlap {overlap:.2f} is below swap.min_overlap="
                                f"{self.settings.swap.min_overlap}; the candidate retrieves very different documents")
        return {"ok": not problems, "problems": problems, "source_count": n_src, "target_count": n_dst,
                "shadow_queries": len(texts), "top10_overlap": overlap, "source_top1": top1_old,
                "candidate_top1": top1_new}

    def abort(self, spec: CollectionSettings) -> SwapState:
        """Abandon an unfinished swap before its switch: stop dual writes, drop the half-built collection."""
        with self.store.lock(spec.name, "retrain --abort"):
            st = self.store.load(spec.name)
            if st is None or st.phase == "done":
                raise SwapError(f"alias {spec.name!r} has no unfinished swap to abort")
            if st.reached("switched"):
                raise SwapError(f"the swap of {spec.name!r} already switched the alias to {st.target}; use "
                                "`embguard rollback` instead")
            if self.milvus.properties(st.source).get(DUAL_WRITE_PROPERTY) == st.target:
                self.milvus.drop_properties(st.source, [DUAL_WRITE_PROPERTY])
            if self.milvus.has_collection(st.target) and self.milvus.resolve(spec.name) != st.target:
                self.milvus.drop_collection(st.target)
            st.history.append({"action": "abort", "target": st.target, "at": time.time(), "phase": st.phase})
            st.phase, st.error = "done", ""
            self.store.save(st)
            return st

    # --- rollback and gc ---------------------------------------------------------------------------------------

    def rollback(self, spec: CollectionSettings) -> dict[str, Any]:
        """Point the alias back at the collection (and so the model) it served before the last switch."""
        with self.store.lock(spec.name, "rollback"):
            st = self.store.load(spec.name)
            switches = [h for h in (st.history if st else []) if h.get("action") in ("switch", "rollback")]
            if not switches:
                raise SwapError(f"alias {spec.name!r} has no recorded switch to roll back")
            last = switches[-1]
            current = self.milvus.resolve(spec.name)
            if current != last["to"]:
                raise SwapError(f"alias {spec.name!r} serves {current!r}, not {last['to']!r} as the last switch "
                                "left it; resolve by hand (embguard status) before rolling back")
            back = last["from"]
            if not self.milvus.has_collection(back):
                raise SwapError(f"collection {back!r} to roll back to no longer exists (dropped by gc?)")
            # The old collection has kept receiving dual writes since the switch, so it is current.
            self.milvus.set_properties(back, {DUAL_WRITE_PROPERTY: current})
            self.milvus.alter_alias(back, spec.name)
            with contextlib.suppress(EmbguardError):
                self.milvus.drop_properties(current, [DUAL_WRITE_PROPERTY])
            entry = {"from": current, "to": back, "from_model": last["to_model"], "to_model": last["from_model"],
                     "at": time.time(), "action": "rollback"}
            assert st is not None
            st.history.append(entry)
            self.store.save(st)
            rolled = self.registry.by_model_id(last["to_model"])
            if rolled is not None:
                self.registry.set_status(rolled.version, "rolled_back")
                Pins(self.settings.state.dir).release(rolled.version)
            restored = self.registry.by_model_id(last["from_model"])
            if restored is not None:
                self.registry.set_status(restored.version, "active")
            return entry

    def gc(self, retention_s: int | None = None, dry_run: bool = False) -> list[str]:
        """Drop versioned collections of watched aliases that no alias serves and that are past retention.

        gc holds every watched alias's swap lock while it runs (a running swap makes it refuse, naming the
        holder) and never drops a collection an unfinished swap names: a crashed swap resumes into its target.
        """
        with contextlib.ExitStack() as locks:
            for c in self.settings.collections:
                locks.enter_context(self.store.lock(c.name, "gc"))
            return self._gc(retention_s, dry_run)

    def _gc(self, retention_s: int | None, dry_run: bool) -> list[str]:
        retention_s = self.settings.swap.retention_s if retention_s is None else retention_s
        m = self.milvus
        served = {m.resolve(c.name) for c in self.settings.collections}
        in_swap = {n for st in self.store.all() if st.phase != "done" for n in (st.source, st.target)}
        dropped = []
        for name in m.list_collections():
            if not any(name.startswith(f"{c.name}__") or name == c.name for c in self.settings.collections):
                continue
            if name in served or name in in_swap or m.aliases_of(name):
                continue
            props = m.properties(name)
            created = float(props.get(CREATED_PROPERTY, 0) or 0)
            if time.time() - created < retention_s:
                continue
            dropped.append(name)
            if dry_run:
                continue
            for other in served:  # nothing may dual-write into a collection about to go
                if m.properties(other).get(DUAL_WRITE_PROPERTY) == name:
                    m.drop_properties(other, [DUAL_WRITE_PROPERTY])
            m.drop_collection(name)
        return dropped
