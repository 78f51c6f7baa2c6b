"""``embguard retrain``: feedback in Milvus -> a gated candidate model in the registry.

This wires ``retrain``'s pure pieces to the world: feedback and labels come from the feedback collection,
passages and the hard-negative retriever from the serving collection, training runs in a subprocess
(``retrain.run_training_subprocess``, so a crash cannot take the daemon down), and the verdict lands in
the model registry with everything needed to audit it. A candidate that fails the gate is registered
as ``rejected``; one that passes waits for ``embguard retrain --approve``.

The held-out queries are split off *before* training and never trained on; both models are evaluated
on them against the actual corpus (the collection's documents). The guard set is general-domain text
that ships with Python (the language reference's paragraphs), so a candidate that forgets how to
embed ordinary prose is caught even when the domain set improves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import retrain

from . import model as models
from .config import CollectionSettings, Settings
from .errors import NotEnoughFeedback, TrainingError
from .evalcorpus import MilvusRetriever, doc_texts, eval_corpus, guard_set, pool_candidate
from .milvus import MODEL_ID_PROPERTY, Milvus, literal
from .registry import ModelRegistry, ModelVersion
from .retention import Pins
from .tap import FEEDBACK_COLLECTION, SIGNALS, new_id

log = logging.getLogger(__name__)

QUERY_TEXT_MAX = 8192  # max_length of the feedback collection's query_text varchar (tap.py)


@dataclass(frozen=True)
class CandidateReport:
    alias: str
    version: ModelVersion
    verdict: dict[str, Any]
    base_model_id: str
    n_train_pairs: int
    n_held_out: int
    train_seconds: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    held_out: tuple[tuple[str, frozenset[Any]], ...] = ()  # (query, relevant doc ids), never trained on

    @property
    def promoted(self) -> bool:
        return bool(self.verdict.get("promote"))

    def __str__(self) -> str:
        v = self.verdict
        gain = v["gain"]
        lines = [
            f"candidate {self.version.version} ({self.version.model_id}) for {self.alias}, trained on "
            f"{self.n_train_pairs} pairs in {self.train_seconds:.0f} s; gate on {self.n_held_out} held-out "
            "queries never trained on:"
        ]
        for metric in ("ndcg@10", "recall@10", "mrr@10"):
            b, c = self.metrics["base"][metric], self.metrics["candidate"][metric]
            lines.append(f"  {metric:<10} base {b:.4f} -> candidate {c:.4f} ({100 * (c - b):+.2f} points)")
        lines.append(f"  nDCG@10 gain 95% CI [{gain['low']:+.4f}, {gain['high']:+.4f}]")
        if v.get("guard_change"):
            lines.append(f"  guard nDCG@10 {v['guard_base_mean']:.4f} -> {v['guard_candidate_mean']:.4f}")
        for r in v["reasons"]:
            lines.append(f"  - {r}")
        if self.promoted:
            lines.append(f"PASSED: approve with `embguard retrain --approve --candidate {self.version.version}`")
        else:
            lines.append("REJECTED: the active model stays; nothing to approve")
        return "\n".join(lines)


def feedback_records(milvus: Milvus, alias: str, since_ms: int = 0) -> tuple[list[retrain.FeedbackRecord], list[str]]:
    """Click/positive/negative feedback with query text for ``alias`` (and their feedback ids, for pinning)."""
    if not milvus.has_collection(FEEDBACK_COLLECTION):
        return [], []
    rows = [
        r
        for b in milvus.iterate(
            FEEDBACK_COLLECTION,
            ["feedback_id", "query_text", "doc_id", "signal", "weight"],
            filter=f'alias == {literal(alias)} and ts_ms >= {int(since_ms)} and query_text != ""',
        )
        for r in b
    ]
    records, ids, bad = [], [], 0
    for r in rows:
        record = _record(r)
        if record is None:
            bad += 1
            continue
        records.append(record)
        ids.append(r["feedback_id"])
    if bad:  # rows written before validation existed, or by hand: skipped, never fatal
        log.warning(
            "skipped %d malformed feedback row(s) for %s (doc_id not an id, unknown signal or a bad "
            "weight); they stay in %s until pruned",
            bad,
            alias,
            FEEDBACK_COLLECTION,
        )
    return records, ids


def _record(row: dict[str, Any]) -> retrain.FeedbackRecord | None:
    try:
        doc_id = json.loads(row["doc_id"])
        weight = float(row["weight"])
    except (TypeError, ValueError):
        return None
    if isinstance(doc_id, bool) or not isinstance(doc_id, (int, str)) or row["signal"] not in SIGNALS:
        return None
    if not math.isfinite(weight) or weight <= 0:
        return None
    return retrain.FeedbackRecord(query=row["query_text"], doc_id=doc_id, signal=row["signal"], weight=weight)


def _manifest(
    pairs: Sequence[retrain.Pair],
    held_out: Sequence[str],
    records: Sequence[retrain.FeedbackRecord],
    feedback_ids: Sequence[str],
) -> dict[str, Any]:
    h = hashlib.sha256()
    for p in pairs:
        h.update(json.dumps([p.query, p.positive_id, p.negative_id, p.weight], default=str).encode())
    return {
        "train_pairs": len(pairs),
        "train_pairs_sha256": h.hexdigest(),
        "hard_negatives": sum(1 for p in pairs if p.negative is not None),
        "held_out_queries": len(held_out),
        "held_out_sha256": hashlib.sha256("\n".join(sorted(held_out)).encode()).hexdigest(),
        "feedback_records": len(records),
        "feedback_ids_sha256": hashlib.sha256("\n".join(sorted(feedback_ids)).encode()).hexdigest(),
        "built_at": time.time(),
    }


def build_candidate(
    settings: Settings,
    milvus: Milvus,
    spec: CollectionSettings,
    *,
    say: Callable[[str], None] = print,
    since_ms: int = 0,
    max_steps: int = -1,
) -> CandidateReport:
    """Train a candidate from ``spec.name``'s feedback, gate it, register it. Never touches serving."""
    rs = settings.retrain
    served = milvus.resolve(spec.name)
    base_id = milvus.properties(served).get(MODEL_ID_PROPERTY, "")
    base = models.load_by_id(base_id, settings.model.store_dir, settings.model.device)
    records, feedback_ids = feedback_records(milvus, spec.name, since_ms)
    labelled_text = doc_texts(milvus, served, spec, [r.doc_id for r in records])
    tp = retrain.build_pairs(records, labelled_text)
    queries = sorted({p.query for p in tp.pairs})
    need = rs.min_held_out / rs.held_out_fraction
    if len(queries) < need or len(tp.pairs) < rs.min_feedback_pairs:
        raise NotEnoughFeedback(
            f"{spec.name}: {len(tp.pairs)} feedback pairs over {len(queries)} distinct queries; a candidate needs "
            f"at least {rs.min_feedback_pairs} pairs (retrain.min_feedback_pairs) and {need:.0f} queries so that "
            f"{rs.min_held_out} can be held out. Collect more clicks, or import labels with `embguard label import`"
        )
    split = retrain.split_queries(queries, held_out_fraction=rs.held_out_fraction, seed=0)
    train_pairs, held_pairs = retrain.split_pairs(tp.pairs, split)
    retrain.assert_disjoint([p.query for p in train_pairs], split.held_out)
    say(
        f"[retrain] {spec.name}: {len(train_pairs)} training pairs, {len(split.held_out)} held-out queries "
        f"(from {len(records)} feedback events; base {base_id})"
    )
    # The evaluation corpus is read once, before training: the gate needs it, and it also answers the
    # hard-negative miner's text look-ups (one Milvus query per mined id otherwise).
    held_rel: dict[str, set[Any]] = {}
    for p in held_pairs:
        held_rel.setdefault(p.query, set()).add(p.positive_id)
    held_q = sorted(held_rel)
    ids, texts, base_vecs = eval_corpus(
        milvus, served, spec, [i for s in held_rel.values() for i in s], 0, settings, base.encode(held_q)
    )
    corpus_text = dict(zip(ids, texts, strict=True))

    def doc_text(i: Any) -> str | None:
        return corpus_text[i] if i in corpus_text else doc_texts(milvus, served, spec, [i]).get(i)

    if rs.hard_negatives:
        mined = retrain.mine_hard_negatives(
            train_pairs, base, MilvusRetriever(milvus, served, spec), doc_text, tp.positives
        )
        say(f"[retrain] mined {sum(p.negative is not None for p in mined)} hard negatives (relative margin 5%)")
        train_pairs = tuple(mined)

    registry = ModelRegistry(settings.model.store_dir)
    work = settings.model.store_dir / ".work"
    out = work / f"candidate-{new_id()[:8]}"
    config = retrain.TrainConfig(
        base_model=str(base.path),
        epochs=rs.epochs,
        batch_size=rs.batch_size,
        learning_rate=rs.learning_rate,
        max_steps=max_steps,
        checkpoint_dir=str(work / f"checkpoints-{spec.name}"),
        processes=rs.processes,
        loss=rs.loss,
        mini_batch_size=rs.mini_batch_size,
        device="cuda" if settings.model.device.startswith("cuda") else "cpu",
    )
    t0 = time.time()
    last = [0.0]

    def progress(ev: dict[str, Any]) -> None:
        if time.time() - last[0] > 5 or ev.get("step") == ev.get("total_steps"):
            last[0] = time.time()
            loss = ev.get("loss")
            say(
                f"[retrain] {ev.get('stage', 'train')}: step {ev.get('step')}/{ev.get('total_steps')}"
                + (f", loss {loss:.4f}" if isinstance(loss, float) else "")
            )

    try:
        result = retrain.run_training_subprocess(
            config, retrain.TrainData(pairs=tuple(train_pairs)), out, timeout_s=rs.timeout_s, progress=progress
        )
    except retrain.RetrainError as exc:
        raise TrainingError(
            f"training a candidate for {spec.name} failed; the active model and the registry are untouched: {exc}"
        ) from None
    seconds = time.time() - t0

    # Gate: base and candidate on the held-out queries, searched against the actual corpus.
    cand = models.load(str(out), None, settings.model.device)
    rel: list[set[Any]] = [held_rel[q] for q in held_q]
    ids, texts, base_vecs = pool_candidate(milvus, served, spec, settings, cand.encode(held_q), ids, texts, base_vecs)
    base_scores = retrain.evaluate_embeddings(base.encode(held_q), base_vecs, ids, rel)
    say(f"[retrain] re-embedding {len(texts)} corpus passages with the candidate for the gate")
    cand_scores = retrain.evaluate_embeddings(cand.encode(held_q), cand.encode(texts), ids, rel)
    guard = {}
    if rs.guard_queries:
        gq, gdocs, grel = guard_set(rs.guard_queries, 0)
        gids = list(range(len(gdocs)))
        guard = {
            "guard_base": retrain.evaluate_embeddings(base.encode(gq), base.encode(gdocs), gids, grel),
            "guard_candidate": retrain.evaluate_embeddings(cand.encode(gq), cand.encode(gdocs), gids, grel),
        }
    gate = retrain.GateConfig(min_gain=rs.gate_margin, guard_tolerance=rs.guard_tolerance, min_queries=rs.min_held_out)
    verdict = retrain.decide(base_scores, cand_scores, gate, **guard).to_dict()
    status = "awaiting_approval" if verdict["promote"] else "rejected"
    version = registry.register(
        out,
        status=status,
        base_model_id=base_id,
        verdict=verdict,
        manifest=_manifest(train_pairs, split.held_out, records, feedback_ids),
        extra={"alias": spec.name, "train_result": result.to_dict(), "train_seconds": seconds},
        move=True,
    )
    pins = Pins(settings.state.dir)
    if verdict["promote"]:
        pins.pin(version.version, feedback_ids, [])  # keep the labels until the candidate is decided
    shutil.rmtree(out, ignore_errors=True)
    metrics = {
        "base": {k: float(np.mean(v)) for k, v in base_scores.scores.items()},
        "candidate": {k: float(np.mean(v)) for k, v in cand_scores.scores.items()},
    }
    return CandidateReport(
        alias=spec.name,
        version=version,
        verdict=verdict,
        base_model_id=base_id,
        n_train_pairs=len(train_pairs),
        n_held_out=len(held_q),
        train_seconds=seconds,
        metrics=metrics,
        held_out=tuple((q, frozenset(held_rel[q])) for q in held_q),
    )


# --- labels for annotators ------------------------------------------------------------------------------------
