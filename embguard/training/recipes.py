"""Training recipes: which ``retrain.TrainConfig`` and ``TrainData`` a candidate is built with (``[retrain] recipe``).

Every recipe produces a full sentence-transformers model directory that goes through the same gate and the same
swap; they differ in what is trained:

- ``finetune``: contrastive fine-tune on the feedback pairs (MNRL, or cached MNRL for large batches), with hard
  negatives mined from the live index unless ``hard_negatives = false``. The default, and the measured one
  (benchmarks/results/retrain.md).
- ``adapter``: a query-side linear map on the serving model (``retrain.train_adapter``), trained in-process in
  well under a second. Saved as a ``Router`` model whose document route *is* the serving model, so the swap copies
  the serving collection's vectors instead of re-embedding them (``Trained.documents_as``).
- ``matryoshka``: the same loss over nested dimensions (the model's own and ``matryoshka_dims``), so a smaller
  prefix of each vector keeps working; with ``matryoshka_serve_dim`` the saved model outputs that prefix
  (re-normalised), so the swap builds the new collection at that dimension. The manifest records both.
- ``distill``: MarginMSE from a local teacher (``teacher_model``, e.g. a cross-encoder) on hard-negative triplets.
- ``domain_adapt``: TSDAE on ``domain_documents`` of the collection's own documents, then the contrastive step; for
  a collection whose text is far from the base model's and whose feedback is still thin.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import retrain
from embguard.config.lifecycle import RetrainSettings
from embguard.errors import TrainingError
from embguard.models import loading as models
from retrain.config import LossName

__all__ = ["Trained", "encode_in_chunks", "train", "train_config", "train_data"]


@dataclass(frozen=True)
class Trained:
    """A candidate model directory and what it cost."""

    recipe: str
    path: Path
    seconds: float
    result: dict[str, Any] = field(default_factory=dict)
    # The model id whose document vectors this model reproduces exactly ("" when they differ): the swap copies
    # the serving collection's vectors instead of re-embedding when it is the serving model.
    documents_as: str = ""
    served_dim: int = 0

    @property
    def reindex(self) -> bool:
        return not self.documents_as


def train(
    rs: RetrainSettings,
    recipe: str,
    base: models.EmbeddingModel,
    pairs: Sequence[retrain.Pair],
    out: Path,
    *,
    checkpoint_dir: str,
    documents: Sequence[str] = (),
    max_steps: int = -1,
    device: str = "cpu",
    progress: Callable[[dict[str, Any]], None] | None = None,
    epochs: float | None = None,
    validation: retrain.ValidationSet | None = None,
) -> Trained:
    """Train one candidate with ``recipe`` from ``base`` (the serving model) into ``out``: for ``epochs``
    (default ``rs.epochs``, or ``rs.adapter_epochs`` for the adapter), scored on ``validation`` after each one
    (a fine-tune then keeps its best epoch's weights)."""
    update: dict[str, Any] = {"recipe": recipe}
    if epochs is not None:
        update["adapter_epochs" if recipe == "adapter" else "epochs"] = int(epochs) if recipe == "adapter" else epochs
    rs = rs.model_copy(update=update)
    t0 = time.time()
    if recipe == "adapter":
        return _adapter(rs, base, pairs, out, t0, progress)
    data = train_data(rs, pairs, documents, validation)
    with tempfile.TemporaryDirectory(prefix="embguard-base-") as tmp:
        start = _trainable(base, Path(tmp))
        config = train_config(
            rs,
            base_model=str(start),
            base_dim=base.dimension,
            checkpoint_dir=checkpoint_dir,
            max_steps=max_steps,
            device=device,
        )
        if validation is not None:  # choosing the epochs: no further epoch starts past the retrain's time budget
            config = replace(config, time_budget_s=float(rs.budget_s), early_stopping_patience=rs.patience)
        try:
            result = retrain.run_training_subprocess(config, data, out, timeout_s=rs.timeout_s, progress=progress)
        except retrain.RetrainError as exc:
            raise TrainingError(f"the {recipe} training run failed: {exc}") from None
    served = 0
    if recipe == "matryoshka" and rs.matryoshka_serve_dim and rs.matryoshka_serve_dim < base.dimension:
        models.truncate_saved(out, rs.matryoshka_serve_dim)
        served = rs.matryoshka_serve_dim
    return Trained(recipe, out, time.time() - t0, result.to_dict(), served_dim=served)


def _trainable(base: models.EmbeddingModel, tmp: Path) -> Path:
    """A directory the fine-tune can start from: the base itself, or a query-adapter model's document route
    (the full fine-tune replaces the adapter: its document vectors change anyway, so the swap re-embeds)."""
    doc_route = models.document_route(base)
    if doc_route is None:
        return base.path
    return models.save_modules(doc_route, tmp / "base")


ENCODE_CHUNK = 256  # texts encoded between two progress events


def encode_in_chunks(
    encode: Callable[[list[str]], Any],
    texts: Sequence[str],
    stage: str,
    progress: Callable[[dict[str, Any]], None] | None,
) -> Any:
    """``encode(texts)`` in chunks, reporting ``{"stage", "step", "total_steps"}`` after each (texts done)."""
    import numpy as np

    parts = []
    for i in range(0, len(texts), ENCODE_CHUNK):
        parts.append(encode(list(texts[i : i + ENCODE_CHUNK])))
        if progress is not None:
            progress({"stage": stage, "step": min(i + ENCODE_CHUNK, len(texts)), "total_steps": len(texts)})
    return np.concatenate(parts) if parts else encode([])


def _adapter(
    rs: RetrainSettings,
    base: models.EmbeddingModel,
    pairs: Sequence[retrain.Pair],
    out: Path,
    t0: float,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> Trained:
    # Mined triplets repeat their (query, positive); in-batch negatives need each pair once.
    pairs = list({(p.query, p.positive): p for p in pairs}.values())
    if len(pairs) < 2:
        raise TrainingError(f"retrain.recipe = 'adapter' needs at least 2 training pairs, found {len(pairs)}")
    # Encoding the pairs with the serving model is most of an adapter's time: it reports progress.
    queries = encode_in_chunks(base.encode_queries, [p.query for p in pairs], "adapter: encoding queries", progress)
    positives = encode_in_chunks(base.encode, [p.positive for p in pairs], "adapter: encoding positives", progress)
    config = retrain.AdapterConfig(epochs=rs.adapter_epochs, batch_size=rs.batch_size, seed=0)
    if progress is not None:
        progress({"stage": "adapter: fitting", "step": 0, "total_steps": rs.adapter_epochs})
    adapter = retrain.train_adapter(queries, positives, config, base_model_id=base.model_id)
    if progress is not None:
        last = float(adapter.losses[-1]) if len(adapter.losses) else None
        progress(
            {"stage": "adapter: fitting", "step": rs.adapter_epochs, "total_steps": rs.adapter_epochs, "loss": last}
        )
    models.save_query_adapter(base, adapter.weight, out)
    result = {
        "pairs": len(pairs),
        "epochs": rs.adapter_epochs,
        "losses": list(adapter.losses),
        "fit_seconds": adapter.seconds,
    }
    return Trained("adapter", out, time.time() - t0, result, documents_as=base.model_id)


def train_config(
    rs: RetrainSettings,
    *,
    base_model: str,
    base_dim: int,
    checkpoint_dir: str,
    max_steps: int = -1,
    device: str = "cpu",
) -> retrain.TrainConfig:
    """The fine-tune ``rs.recipe`` runs on ``base_model`` (``base_dim``-dimensional vectors)."""
    loss: LossName = "margin_mse" if rs.recipe == "distill" else rs.loss
    config = retrain.TrainConfig(
        base_model=base_model,
        loss=loss,
        epochs=float(rs.max_epochs) if isinstance(rs.epochs, str) else rs.epochs,
        batch_size=rs.batch_size,
        learning_rate=rs.learning_rate,
        max_seq_length=rs.max_seq_length,
        max_steps=max_steps,
        checkpoint_dir=checkpoint_dir,
        processes=rs.processes,
        mini_batch_size=rs.mini_batch_size,
        device=device,
        teacher_model=rs.teacher_model if rs.recipe == "distill" else None,
        tsdae_epochs=rs.tsdae_epochs if rs.recipe == "domain_adapt" else 0.0,
    )
    if rs.recipe == "matryoshka":
        smaller = sorted({d for d in rs.matryoshka_dims if d < base_dim}, reverse=True)
        config = replace(config, matryoshka_dims=(base_dim, *smaller))
    return config


def train_data(
    rs: RetrainSettings,
    pairs: Sequence[retrain.Pair],
    documents: Sequence[str] = (),
    validation: retrain.ValidationSet | None = None,
) -> retrain.TrainData:
    """The examples for ``rs.recipe``: distillation keeps only triplets; domain adaptation needs documents."""
    data = _examples(rs, pairs, documents)
    return replace(data, validation=validation) if validation is not None else data


def _examples(rs: RetrainSettings, pairs: Sequence[retrain.Pair], documents: Sequence[str]) -> retrain.TrainData:
    if rs.recipe == "distill":
        triplets = tuple(p for p in pairs if p.negative is not None)
        if not triplets:
            raise TrainingError(
                "retrain.recipe = 'distill' found no hard-negative triplets in the feedback; mine them "
                "(retrain.hard_negatives = true) or use recipe 'finetune'"
            )
        return retrain.TrainData(pairs=triplets)
    if rs.recipe == "domain_adapt":
        if not documents:
            raise TrainingError("retrain.recipe = 'domain_adapt' found no documents with text in the collection")
        return retrain.TrainData(pairs=tuple(pairs), documents=tuple(documents))
    return retrain.TrainData(pairs=tuple(pairs))
