"""Training recipes: which ``retrain.TrainConfig`` and ``TrainData`` a candidate is built with (``[retrain] recipe``).

Every recipe produces a full sentence-transformers model that goes through the same gate and the same swap; they
differ in what the fine-tune optimises:

- ``finetune``: contrastive fine-tune on the feedback pairs (MNRL, or cached MNRL for large batches), with hard
  negatives mined from the live index unless ``hard_negatives = false``. The default, and the measured one
  (benchmarks/results/retrain.md).
- ``matryoshka``: the same loss over nested dimensions (the model's own and ``matryoshka_dims``), so a smaller
  prefix of each vector keeps working; the swap still serves the full dimension and the manifest records the dims.
- ``distill``: MarginMSE from a local teacher (``teacher_model``, e.g. a cross-encoder) on hard-negative triplets.
- ``domain_adapt``: TSDAE on ``domain_documents`` of the collection's own documents, then the contrastive step; for
  a collection whose text is far from the base model's and whose feedback is still thin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import retrain
from retrain.config import LossName

from .errors import TrainingError
from .opsettings import RECIPES, RetrainSettings

__all__ = ["RECIPES", "train_config", "train_data"]


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
        epochs=rs.epochs,
        batch_size=rs.batch_size,
        learning_rate=rs.learning_rate,
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


def train_data(rs: RetrainSettings, pairs: Sequence[retrain.Pair], documents: Sequence[str] = ()) -> retrain.TrainData:
    """The examples for ``rs.recipe``: distillation keeps only triplets; domain adaptation needs documents."""
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
