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
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import retrain
from embguard.checks.windows import sample_documents
from embguard.client.retention import Pins
from embguard.client.tap import new_id
from embguard.config.lifecycle import AUTO, RetrainSettings
from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import TrainingError
from embguard.milvus.adopt import require_model
from embguard.milvus.milvus import Milvus
from embguard.models import loading as models
from embguard.models.registry import ModelRegistry
from embguard.models.variant import split_model_id
from embguard.training import autorecipe, recipes
from embguard.training.evalcorpus import MilvusRetriever, doc_texts, guard_set, pool_candidate
from embguard.training.feedback import FeedbackSplit, split_feedback
from embguard.training.gate_report import CandidateReport, held_out_strata

log = logging.getLogger(__name__)

QUERY_TEXT_MAX = 8192  # max_length of the feedback collection's query_text varchar (tap.py)


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


PROGRESS_EVERY_S = 5.0


def progress_lines(say: Callable[[str], None], every_s: float = PROGRESS_EVERY_S) -> Callable[[dict[str, Any]], None]:
    """Training (and gate) progress events as ``[retrain]`` lines through ``say``: the first of each stage, then at
    most one every ``every_s`` seconds, and the last one (step == total)."""
    last: dict[str, float] = {}

    def progress(ev: dict[str, Any]) -> None:
        stage = str(ev.get("stage", "train"))
        now = time.monotonic()
        if stage in last and now - last[stage] < every_s and ev.get("step") != ev.get("total_steps"):
            return
        last[stage] = now
        loss = ev.get("loss")
        if stage == "validation":  # the worker reports each epoch's validation nDCG@10 in the loss field
            epoch, most = ev.get("step"), ev.get("total_steps")
            say(f"[retrain] validation nDCG@10 after epoch {epoch} (of at most {most}): {loss:.4f}")
            return
        say(
            f"[retrain] {stage}: step {ev.get('step')}/{ev.get('total_steps')}"
            + (f", loss {loss:.4f}" if isinstance(loss, float) else "")
        )

    return progress


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
    require_model(milvus, spec.name, "retrain")
    rs = settings.retrain
    fs = split_feedback(settings, milvus, spec, since_ms=since_ms)
    served, base = fs.served, fs.base
    train_pairs = fs.train_pairs
    say(
        f"[retrain] {spec.name}: {len(train_pairs)} training pairs, {len(fs.held_rel)} held-out queries "
        f"(from {len(fs.records)} feedback events; base {fs.base_id})"
    )
    corpus_text = dict(zip(fs.corpus[0], fs.corpus[1], strict=True))

    def doc_text(i: Any) -> str | None:
        return corpus_text[i] if i in corpus_text else doc_texts(milvus, served, spec, [i]).get(i)

    if rs.hard_negatives and rs.recipe != "adapter":
        mined = retrain.mine_hard_negatives(
            train_pairs, base, MilvusRetriever(milvus, served, spec), doc_text, fs.positives
        )
        say(f"[retrain] mined {sum(p.negative is not None for p in mined)} hard negatives (relative margin 5%)")
        train_pairs = tuple(mined)

    work = settings.model.store_dir / ".work"
    tag = new_id()[:8]
    used = set(rs.auto_recipes) if rs.recipe == AUTO else {rs.recipe}
    documents: list[str] = []
    if "domain_adapt" in used:
        docs = sample_documents(milvus, spec, rs.domain_documents, seed=0, with_text=True)
        documents = [t for t in docs.texts if t]
        say(f"[retrain] domain adaptation (TSDAE) on {len(documents)} of {spec.name}'s documents first")
    progress = progress_lines(say)
    extra = pseudo_queries(rs, fs, train_pairs, say)

    def train_one(
        recipe: str,
        pairs: Sequence[retrain.Pair],
        out: Path,
        *,
        epochs: float | None = None,
        validation: retrain.ValidationSet | None = None,
    ) -> recipes.Trained:
        say(f"[retrain] training a {recipe} candidate on {len(pairs)} pairs")
        try:
            return recipes.train(
                rs,
                recipe,
                base,
                pairs,
                out,
                # One per stage (auto-<recipe>, final-<recipe>, <recipe>), stable across runs: a rerun after a crash
                # resumes its stage, and the final run never resumes from the choosing run's weights.
                checkpoint_dir=str(work / f"checkpoints-{spec.name}-{out.name}"),
                documents=documents,
                max_steps=max_steps,
                device="cuda" if settings.model.device.startswith("cuda") else "cpu",
                progress=progress,
                epochs=epochs,
                validation=validation,
            )
        except TrainingError as exc:
            raise TrainingError(
                f"training a candidate for {spec.name} failed; the active model and the registry are untouched: {exc}"
            ) from None

    auto: autorecipe.AutoChoice | None = None
    try:
        if AUTO in (rs.recipe, rs.epochs):
            auto = autorecipe.choose(
                rs, base, train_pairs, fs.held_rel, fs.corpus, work / f"candidate-{tag}", train_one, say, extra
            )
            trained = auto.chosen
            say(f"[retrain] {auto.summary()}")
        else:
            pairs = [*train_pairs, *extra] if rs.recipe != "adapter" else train_pairs
            trained = train_one(rs.recipe, pairs, work / f"candidate-{tag}" / rs.recipe)
        return gate_candidate(
            settings,
            milvus,
            spec,
            fs,
            trained.path,
            say=say,
            manifest={
                **_manifest(train_pairs, sorted(fs.held_rel), fs.records, fs.feedback_ids),
                "pseudo_query_pairs": len(extra) if trained.recipe != "adapter" else 0,
            },
            extra={
                "alias": spec.name,
                "recipe": trained.recipe,
                "train_result": trained.result,
                "train_seconds": trained.seconds,
                "documents_as": trained.documents_as,
                "served_dim": trained.served_dim,
                **({"auto": auto.to_dict()} if auto else {}),
            },
            n_train_pairs=(auto.refit_pairs or auto.n_fit_pairs) if auto else len(train_pairs),
            train_seconds=auto.total_seconds if auto else trained.seconds,
            move=True,
            recipe=trained.recipe,
            notes=(auto.summary(),) if auto else (),
            reindex=trained.reindex,
        )
    finally:
        shutil.rmtree(work / f"candidate-{tag}", ignore_errors=True)


def pseudo_queries(
    rs: RetrainSettings, fs: FeedbackSplit, train_pairs: Sequence[retrain.Pair], say: Callable[[str], None]
) -> list[retrain.Pair]:
    """Pseudo-query pairs for documents of the gate's corpus that no feedback names (users' answers, annotators'
    and the gate's held-out ones are left out: the gate judges documents the candidate never saw a pseudo-query for,
    so it understates rather than overstates what they add). At most as many as the feedback pairs."""
    limit = min(rs.pseudo_queries, len({(p.query, str(p.positive_id)) for p in train_pairs}))
    if limit <= 0:
        return []
    named = {i for ids in fs.positives.values() for i in ids} | {i for ids in fs.held_rel.values() for i in ids}
    pairs = retrain.pseudo_pairs(fs.corpus[0], fs.corpus[1], exclude=named, limit=limit, seed=0)
    say(f"[retrain] {len(pairs)} pseudo-query pairs from documents nobody searched (retrain.pseudo_queries)")
    return pairs


def gate_candidate(
    settings: Settings,
    milvus: Milvus,
    spec: CollectionSettings,
    fs: FeedbackSplit,
    candidate_dir: Path,
    *,
    say: Callable[[str], None],
    manifest: dict[str, Any],
    extra: dict[str, Any],
    n_train_pairs: int,
    train_seconds: float,
    move: bool,
    source: str = "",
    recipe: str = "",
    notes: tuple[str, ...] = (),
    reindex: bool = True,
) -> CandidateReport:
    """Evaluate base and candidate on the held-out queries against the actual corpus, decide, register."""
    rs = settings.retrain
    base = fs.base
    # Gated as it will serve: the variant the swap will build (a query adapter runs as the base, whose
    # document vectors it keeps).
    variant = split_model_id(base.model_id)[1] if extra.get("documents_as") else settings.model.variant
    cand = models.load(str(candidate_dir), None, settings.model.device, variant)
    held_q = fs.held_queries
    rel: list[set[Any]] = [fs.held_rel[q] for q in held_q]
    progress = progress_lines(say)
    cand_queries = recipes.encode_in_chunks(
        cand.encode_queries, held_q, "gate: encoding held-out queries with the candidate", progress
    )
    ids, texts, base_vecs = pool_candidate(milvus, fs.served, spec, settings, cand_queries, *fs.corpus)
    base_scores = retrain.evaluate_embeddings(fs.base_queries, base_vecs, ids, rel)
    if reindex:
        say(f"[retrain] re-embedding {len(texts)} corpus passages with the candidate for the gate")
    # A candidate that embeds documents as the base does (a query adapter) is judged on the base's vectors.
    cand_docs = (
        recipes.encode_in_chunks(cand.encode, texts, "gate: re-embedding the corpus with the candidate", progress)
        if reindex
        else base_vecs
    )
    cand_scores = retrain.evaluate_embeddings(cand_queries, cand_docs, ids, rel)
    guard = {}
    if rs.guard_queries:
        gq, gdocs, grel = guard_set(rs.guard_queries, 0)
        gids = list(range(len(gdocs)))
        base_gdocs = base.encode(gdocs)
        cand_gdocs = cand.encode(gdocs) if reindex else base_gdocs
        guard = {
            "guard_base": retrain.evaluate_embeddings(base.encode_queries(gq), base_gdocs, gids, grel),
            "guard_candidate": retrain.evaluate_embeddings(cand.encode_queries(gq), cand_gdocs, gids, grel),
        }
    gate = retrain.GateConfig(min_gain=rs.gate_margin, guard_tolerance=rs.guard_tolerance, min_queries=rs.min_held_out)
    verdict = retrain.decide(base_scores, cand_scores, gate, **guard)
    strata = held_out_strata([fs.strata[q] for q in held_q], base_scores, cand_scores)
    status = "awaiting_approval" if verdict.promote else "rejected"
    registry = ModelRegistry(settings.model.store_dir)
    version = registry.register(
        candidate_dir,
        status=status,
        base_model_id=fs.base_id,
        verdict=verdict,
        manifest={**manifest, "held_out_strata": strata},
        extra=extra,
        move=move,
    )
    if verdict.promote:
        Pins(settings.state.dir).pin(version.version, fs.feedback_ids, [])  # keep labels until it is decided
    metrics = {
        "base": {k: float(np.mean(v)) for k, v in base_scores.scores.items()},
        "candidate": {k: float(np.mean(v)) for k, v in cand_scores.scores.items()},
    }
    return CandidateReport(
        alias=spec.name,
        version=version,
        verdict=verdict,
        base_model_id=fs.base_id,
        n_train_pairs=n_train_pairs,
        n_held_out=len(held_q),
        train_seconds=train_seconds,
        metrics=metrics,
        held_out=tuple((q, frozenset(fs.held_rel[q])) for q in held_q),
        source=source,
        strata=strata,
        recipe=recipe,
        notes=notes,
        reindex=reindex,
    )
