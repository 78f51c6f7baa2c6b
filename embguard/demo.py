"""``embguard demo``: the whole product on the embedded default, with no network.

Today it starts a private Milvus Lite server, indexes real text (the standard library's documentation)
with the default model through the same access layer the daemon uses, runs searches, measures retrieval
quality on queries with a known answer, prints a status summary, and stops everything it started.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import model as models
from .config import CollectionSettings, Settings
from .corpus import Passage, stdlib_corpus
from .lite import LiteServer, free_port
from .milvus import MODEL_ID_PROPERTY, Milvus

DEMO_ALIAS = "embguard_demo_docs"


@dataclass(frozen=True)
class DemoSummary:
    uri: str
    collection: str
    model_id: str
    documents: int
    queries: int
    recall_at_10: float
    mrr_at_10: float
    seconds: float
    server_stopped: bool


def _pick(passages: tuple[Passage, ...], n: int, seed: int) -> list[Passage]:
    rng = random.Random(seed)
    chosen = list(passages)
    rng.shuffle(chosen)
    return sorted(chosen[:n], key=lambda p: p.id)


def run(settings: Settings, docs: int = 600, queries: int = 200, seed: int = 7,
        say: Callable[[str], None] = print) -> DemoSummary:
    t0 = time.monotonic()
    work = settings.state.dir / "demo"
    shutil.rmtree(work, ignore_errors=True)  # a demo always starts clean; it never touches other data
    server = LiteServer(work / "milvus", settings.lite.host, free_port(settings.lite.host), work,
                        settings.lite.start_timeout_s)
    say(f"[1/5] starting Milvus Lite on {server.uri} (data dir {server.data_dir})")
    with server.running():
        milvus = Milvus.connect(settings, uri=server.uri)
        try:
            say(f"      connected: {milvus.server_version}")
            emb = models.load(settings.model.default, settings.model.store_dir, settings.model.device)
            say(f"[2/5] model {emb.model_id} ({emb.dimension}-d) loaded from {emb.path}")

            corpus = _pick(stdlib_corpus(), docs, seed)
            spec = CollectionSettings(name=DEMO_ALIAS, index_type="HNSW")
            collection = milvus.create_collection(
                spec, emb.dimension, name=f"{DEMO_ALIAS}__v1", properties={MODEL_ID_PROPERTY: emb.model_id},
                extra_text_fields={"title": 512})
            milvus.create_alias(collection, DEMO_ALIAS)
            say(f"[3/5] indexing {len(corpus)} passages of the Python standard library's documentation "
                f"into {collection} (alias {DEMO_ALIAS})")
            batch = 64
            t_idx = time.monotonic()
            for start in range(0, len(corpus), batch):
                chunk = corpus[start:start + batch]
                vecs = emb.encode([p.text for p in chunk], batch_size=settings.model.batch_size)
                milvus.insert(DEMO_ALIAS, [{"id": p.id, "vector": v.tolist(), "text": p.text, "title": p.title}
                                           for p, v in zip(chunk, vecs)])
                done = min(start + batch, len(corpus))
                rate = done / max(time.monotonic() - t_idx, 1e-9)
                say(f"      {done}/{len(corpus)} passages ({rate:.0f}/s)")
            milvus.flush(collection)

            say("[4/5] searching")
            examples = ["how do I send an email with an attachment",
                        "run a coroutine until it completes",
                        "compute the median of a list of numbers"]
            for text, hits in zip(examples, milvus.search(DEMO_ALIAS, emb.encode(examples), limit=3,
                                                          output_fields=["title", "text"])):
                say(f"      query: {text!r}")
                for rank, hit in enumerate(hits, 1):
                    ent = hit["entity"]
                    say(f"        {rank}. {hit['distance']:.3f}  {ent['title']}: {ent['text'][:90]}")

            # Each passage's docstring summary line is a query whose right answer is known.
            probe = random.Random(seed + 1).sample(corpus, min(queries, len(corpus)))
            qvecs = emb.encode([p.query for p in probe])
            results = milvus.search(DEMO_ALIAS, qvecs, limit=10)
            ranks = []
            for p, hits in zip(probe, results):
                ids = [h["id"] for h in hits]
                ranks.append(ids.index(p.id) + 1 if p.id in ids else 0)
            r = np.array(ranks)
            recall = float(np.mean(r > 0))
            mrr = float(np.mean(np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)))
            count = milvus.count(collection)
        finally:
            milvus.close()
    stopped = not server.status().running
    summary = DemoSummary(uri=server.uri, collection=collection, model_id=emb.model_id, documents=count,
                          queries=len(probe), recall_at_10=recall, mrr_at_10=mrr,
                          seconds=time.monotonic() - t0, server_stopped=stopped)
    say("[5/5] summary")
    rows = [("Milvus", f"{summary.uri} (Milvus Lite, stopped: {'yes' if stopped else 'NO'})"),
            ("collection", f"{summary.collection} via alias {DEMO_ALIAS}: {summary.documents} documents"),
            ("model", summary.model_id),
            ("retrieval", f"Recall@10 {summary.recall_at_10:.3f}, MRR@10 {summary.mrr_at_10:.3f} "
                          f"on {summary.queries} docstring-summary queries"),
            ("time", f"{summary.seconds:.1f} s"),
            ("state", str(Path(work)))]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        say(f"      {k.ljust(width)}  {v}")
    return summary
