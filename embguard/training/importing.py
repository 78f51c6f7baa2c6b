"""``embguard models import``: a model trained elsewhere (or another base model) as a candidate.

Any local sentence-transformers directory, of any dimension, goes through exactly what a candidate trained by
``embguard retrain`` goes through: the same held-out queries (the same seeded split of the collection's
labelled feedback), the same gate and guard set, the same registry entry, and the same
``embguard retrain --approve`` swap (which builds the new collection at the model's own dimension). The only
difference the report states: embguard cannot know whether an imported model was trained on those queries.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from embguard.config.settings import CollectionSettings, Settings
from embguard.milvus.milvus import Milvus
from embguard.models import loading as models
from embguard.training.candidates import gate_candidate
from embguard.training.feedback import split_feedback
from embguard.training.gate_report import CandidateReport


def import_candidate(
    settings: Settings,
    milvus: Milvus,
    spec: CollectionSettings,
    model_spec: str,
    *,
    say: Callable[[str], None] = print,
) -> CandidateReport:
    """Gate the model at ``model_spec`` (a directory, or ``default``) for ``spec.name`` and register it."""
    _, path = models.resolve(model_spec, None)
    candidate = models.load(str(path), None, settings.model.device)  # a directory that does not load fails here
    fs = split_feedback(settings, milvus, spec)
    say(
        f"[import] {spec.name}: gating {path} ({candidate.dimension}-d) against {fs.base_id} on "
        f"{len(fs.held_rel)} held-out queries"
    )
    manifest = {
        "imported_from": str(path),
        "imported_at": time.time(),
        "held_out_queries": len(fs.held_rel),
        "feedback_records": len(fs.records),
    }
    return gate_candidate(
        settings,
        milvus,
        spec,
        fs,
        path,
        say=say,
        manifest=manifest,
        extra={"alias": spec.name, "imported_from": str(path)},
        n_train_pairs=0,
        train_seconds=0.0,
        move=False,
        source=str(path),
    )
