"""A swap's target before the alias moves: reconciled to hold exactly the source's documents, then verified
(the same documents, an index that serves, and a shadow check that the candidate retrieves comparable
documents). Plain functions over Milvus and a model.

Writers keep going during a swap (the source first, then its dual-write copy), so an id can be in flight
between two reads: every difference is re-checked by id after a pause, and only a gap that stays counts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from embguard.config.settings import CollectionSettings, Settings
from embguard.milvus.filters import literal
from embguard.milvus.milvus import Milvus
from embguard.models import loading as models
from embguard.swap.state import SwapState, Verification

RECHECKS = 6  # 0.5 + 1 + ... + 3 s: a write repeated by the proxy (embguard.proxy.dualwrite) lands within it
PROGRESS_EVERY_S = 5.0
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def doc_digest(text: Any) -> str:
    return hashlib.blake2b(str(text).encode(), digest_size=12).hexdigest()


def text_hashes(
    milvus: Milvus, collection: str, spec: CollectionSettings, say: Say = _quiet, what: str = "verify"
) -> tuple[dict[Any, str], int]:
    """Every document's text hash by id, and the number of rows read (more rows than ids: duplicate ids).
    A long read says how far it got, at most every few seconds."""
    text = spec.require_text_field()
    rows: list[tuple[Any, str]] = []
    last = time.monotonic()
    for b in milvus.iterate(collection, [spec.id_field, text]):
        rows += [(r[spec.id_field], doc_digest(r[text])) for r in b]
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            say(f"{what}: read {len(rows)} documents of {collection}")
    return dict(rows), len(rows)


def hashes_of(milvus: Milvus, collection: str, spec: CollectionSettings, ids: set[Any]) -> dict[Any, str]:
    text = spec.require_text_field()
    rows = milvus.query(collection, ids=sorted(ids), output_fields=[spec.id_field, text])
    return {r[spec.id_field]: doc_digest(r[text]) for r in rows}


def shadow_texts(milvus: Milvus, spec: CollectionSettings, n: int) -> list[str]:
    """Up to ``n`` real query texts for the shadow check (tapped queries, then feedback queries)."""
    from embguard.checks.windows import sample_documents
    from embguard.milvus.names import FEEDBACK_COLLECTION, TAP_COLLECTION

    texts: list[str] = []
    for coll, field_name in ((TAP_COLLECTION, "text"), (FEEDBACK_COLLECTION, "query_text")):
        if len(texts) < n and milvus.has_collection(coll):
            rows = milvus.query(
                coll,
                filter=f'alias == {literal(spec.name)} and {field_name} != ""',
                output_fields=[field_name],
                limit=n,
            )
            texts += [r[field_name] for r in rows]
    if len(texts) < n:  # no stored query text: the opening words of sampled documents stand in
        docs = sample_documents(milvus, spec, n - len(texts), seed=0)
        texts += [" ".join(t.split()[:12]) for t in docs.texts if t.strip()]
    return list(dict.fromkeys(texts))[:n]


def _settled_diff(
    milvus: Milvus, st: SwapState, spec: CollectionSettings, src: dict[Any, str], dst: dict[Any, str]
) -> None:
    """Re-read every differing id by id, a little later each time, until the two sides agree or it is clear
    they do not (updates ``src`` and ``dst`` in place)."""
    suspects = {i for i in src if dst.get(i) != src[i]} | {i for i in dst if i not in src}
    for attempt in range(RECHECKS):
        if not suspects:
            return
        time.sleep(0.5 * (attempt + 1))
        now_src, now_dst = hashes_of(milvus, st.source, spec, suspects), hashes_of(milvus, st.target, spec, suspects)
        src.update(now_src)
        dst.update(now_dst)
        for i in suspects - set(now_src):
            src.pop(i, None)
        for i in suspects - set(now_dst):
            dst.pop(i, None)
        suspects = {i for i in suspects if src.get(i) != dst.get(i)}


def verify(
    settings: Settings,
    milvus: Milvus,
    spec: CollectionSettings,
    st: SwapState,
    model: models.EmbeddingModel,
    say: Say = _quiet,
) -> Verification:
    say(f"verify {st.target}: waiting for its index to be built and loaded")
    milvus.flush(st.target)
    milvus.wait_index(st.target, spec.vector_field)
    milvus.ensure_loaded(st.target)
    say(f"verify {st.target}: comparing every id and text with {st.source}")
    src, _ = text_hashes(milvus, st.source, spec, say)
    dst, dst_rows = text_hashes(milvus, st.target, spec, say)
    dst_ids = len(dst)
    _settled_diff(milvus, st, spec, src, dst)
    missing = [i for i in src if i not in dst]
    extra = [i for i in dst if i not in src]
    changed = [i for i, h in src.items() if i in dst and dst[i] != h]
    problems: list[str] = []
    if len(src) != len(dst):
        problems.append(f"count mismatch: {st.source} has {len(src)} documents, {st.target} has {len(dst)}")
    if missing:
        problems.append(f"{len(missing)} id(s) missing from {st.target}, e.g. {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} id(s) in {st.target} that {st.source} lacks, e.g. {extra[:5]}")
    if changed:
        problems.append(f"{len(changed)} document(s) differ from the source, e.g. {changed[:5]}")
    if dst_rows != dst_ids:
        problems.append(f"{st.target} holds duplicate ids ({dst_rows} rows for {dst_ids} ids)")
    old = models.load_by_id(st.source_model_id, settings.model.store_dir, settings.model.device)
    texts = shadow_texts(milvus, spec, settings.swap.shadow_queries)
    say(f"verify {st.target}: {len(src)} documents compared; shadow check on {len(texts)} queries")
    overlap = top1_old = top1_new = float("nan")
    if texts:
        ids_only = [spec.id_field]
        a = milvus.search(
            st.source, old.encode_queries(texts), limit=10, anns_field=spec.vector_field, output_fields=ids_only
        )
        b = milvus.search(
            st.target, model.encode_queries(texts), limit=10, anns_field=spec.vector_field, output_fields=ids_only
        )
        overlap = float(
            np.mean([len({h["id"] for h in x} & {h["id"] for h in y}) / 10 for x, y in zip(a, b, strict=True)])
        )
        top1_old = float(np.mean([x[0]["distance"] for x in a if x]))
        top1_new = float(np.mean([y[0]["distance"] for y in b if y]))
        if overlap < settings.swap.min_overlap:
            problems.append(
                f"shadow check: mean top-10 overlap {overlap:.2f} is below swap.min_overlap="
                f"{settings.swap.min_overlap}; the candidate retrieves very different documents"
            )
    return Verification(
        ok=not problems,
        problems=tuple(problems),
        source_count=len(src),
        target_count=len(dst),
        shadow_queries=len(texts),
        top10_overlap=overlap,
        source_top1=top1_old,
        candidate_top1=top1_new,
    )


def _diff(milvus: Milvus, st: SwapState, spec: CollectionSettings, say: Say = _quiet) -> tuple[list[Any], list[Any]]:
    """Ids whose target copy is missing or differs from the source, and ids only the target has."""
    milvus.flush(st.target)
    src, _ = text_hashes(milvus, st.source, spec, say, "reconcile")
    dst, _ = text_hashes(milvus, st.target, spec, say, "reconcile")
    return [i for i, h in src.items() if dst.get(i) != h], [i for i in dst if i not in src]


def reconcile(
    milvus: Milvus,
    spec: CollectionSettings,
    st: SwapState,
    fields: list[str],
    embed: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    batch_size: int,
    say: Say = _quiet,
) -> int:
    """Make the target hold exactly the source's documents, re-embedded from the source's current text.

    Writers keep running meanwhile (the source first, then its dual-write copy), so what looks extra in
    the target may be an insert whose source write is still in flight: an id is deleted from the target
    only when the source still lacks it a moment later.
    """
    fixed = 0
    for _ in range(3):
        say(f"reconcile {st.target}: comparing every id and text with {st.source}")
        stale, extra = _diff(milvus, st, spec, say)
        for i in range(0, len(stale), batch_size):
            rows = milvus.query(st.source, ids=stale[i : i + batch_size], output_fields=fields)
            if rows:
                milvus.upsert(st.target, embed(rows))
        gone: list[Any] = []
        if extra:
            time.sleep(1.0)
            present = {r[spec.id_field] for r in milvus.query(st.source, ids=extra, output_fields=[spec.id_field])}
            gone = [i for i in extra if i not in present]
            if gone:
                milvus.delete(st.target, ids=gone)
        fixed += len(stale) + len(gone)
        if not stale and not gone:
            break
    milvus.flush(st.target)
    return fixed
