"""Fine-tuning with ``SentenceTransformerTrainer``. The ONE module of ``retrain`` that imports
sentence-transformers, ``datasets`` and ``transformers`` (the architecture test enforces it).

Stages of ``train()``:
  1. optional TSDAE domain adaptation on raw documents (``DenoisingAutoEncoderLoss``; the noise function
     is a seeded whitespace word-deletion, so nltk and its downloads are not needed);
  2. the contrastive step: MultipleNegativesRankingLoss with ``BatchSamplers.NO_DUPLICATES`` (default),
     CachedMNRL for batches larger than memory allows, or MarginMSE distillation from a local teacher;
     optionally wrapped in MatryoshkaLoss; optionally mixed with a general-domain anchor set.
Multi-task weighting: each batch is drawn from ONE dataset (``task`` or ``anchor``, proportional to their
sizes); that batch's loss is multiplied by the dataset's weight (``task_weight`` / ``anchor_weight``).
So a weight scales the gradient of that dataset's batches; the sampling frequency stays proportional.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from typing import Any

import numpy as np
import torch

try:
    from datasets import Dataset
except ModuleNotFoundError as exc:  # the training stack is optional for the sidecar (embguard[train])
    raise ModuleNotFoundError(
        "fine-tuning needs the 'datasets' package, which is not installed; run: pip install "
        "'embguard[train]' (or 'datasets>=4' 'accelerate>=1.10')",
        name=exc.name,
    ) from exc
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    DenoisingAutoEncoderLoss,
    MarginMSELoss,
    MatryoshkaLoss,
    MultipleNegativesRankingLoss,
)
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import (
    SentenceTransformerTrainingArguments,
)
from transformers import TrainerCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging as hf_logging

from .config import RESULT_FILE, TrainConfig, TrainData, TrainResult, ValidationSet, write_json
from .errors import ConfigError, DataError, ModelDirError
from .pairs import Pair


@dataclass(frozen=True)
class Progress:
    stage: str  # "tsdae" | "train" | "validation" (step = epochs scored)
    step: int
    total_steps: int
    loss: float | None
    epoch: float | None


ProgressFn = Callable[[Progress], None]


def load_model(path: str | Path, max_seq_length: int | None = None) -> SentenceTransformer:
    p = Path(path)
    if not ((p / "modules.json").is_file() or (p / "config.json").is_file()):
        raise ModelDirError(
            f"model directory {str(p)!r} does not exist or holds no sentence-transformers "
            "model (no modules.json/config.json); pass a local model directory"
        )
    # transformers draws a "Loading weights" bar on every load; training logs want progress lines, not that bar.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model = SentenceTransformer(str(p), device="cpu", local_files_only=True)
    except Exception as exc:
        raise ModelDirError(f"could not load model directory {str(p)!r}: {exc}") from exc
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


class WeightedLoss(torch.nn.Module):
    """Scales a loss by a constant: how multi-task weights enter the gradient."""

    def __init__(self, loss: torch.nn.Module, weight: float) -> None:
        super().__init__()
        self.loss = loss
        self.weight = float(weight)

    def forward(self, features, labels):  # type: ignore[no-untyped-def]
        return self.weight * self.loss(features, labels)


class _ProgressCallback(TrainerCallback):
    def __init__(self, stage: str, progress: ProgressFn | None, losses: list[float]) -> None:
        self.stage, self.progress, self.losses = stage, progress, losses

    def on_log(self, args, state, control, logs=None, **kw):  # type: ignore[no-untyped-def]
        # logging_steps=1, so every optimiser step logs its loss; report progress from here.
        if logs and "loss" in logs:
            loss = float(logs["loss"])
            self.losses.append(loss)
            if self.progress is not None:
                self.progress(
                    Progress(
                        self.stage,
                        int(state.global_step),
                        int(state.max_steps),
                        loss,
                        float(state.epoch) if state.epoch is not None else None,
                    )
                )


class _EpochValidation(TrainerCallback):
    """Scores the validation set after every epoch, keeps the best epoch's weights (in memory) and stops once
    ``patience`` epochs in a row did not beat it, or once one more epoch would end past ``budget_s`` seconds of
    training. Every data-parallel process computes the same score on the same weights; the time check is made
    by the first process and shared, so all of them stop at the same epoch."""

    def __init__(
        self,
        model: SentenceTransformer,
        val: ValidationSet,
        patience: int,
        progress: ProgressFn | None,
        length: int,
        every: int = 0,
        budget_s: float = 0.0,
    ) -> None:
        self.model, self.val, self.patience, self.progress = model, val, patience, progress
        self.budget_s, self.started = budget_s, time.monotonic()
        self.stopped_by = ""
        self.length = length  # scored at the serving length, as the gate and the parent score a model
        # Steps per epoch when weights added copies (step_budget): an epoch is then that many steps, not one pass
        # over the copies, so the epoch chosen here is the epoch a rerun for that many epochs trains. 0: passes.
        self.every = every
        self.scores: list[float] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.first_epoch = 1  # a run resumed from a checkpoint scores the epochs after it

    def on_train_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
        done = state.global_step // self.every if self.every else int(state.epoch or 0)
        self.first_epoch = done + 1
        self.started = time.monotonic()
        return control

    def score(self) -> float:
        was_training, train_length = self.model.training, self.model.max_seq_length
        self.model.eval()
        self.model.max_seq_length = self.length
        try:
            with torch.no_grad():
                enc = self.model.encode
                q = enc(list(self.val.queries), normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
                d = enc(list(self.val.documents), normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
        finally:
            self.model.max_seq_length = train_length
            self.model.train(was_training)
        return self.val.ndcg(q, d)

    @property
    def best_epoch(self) -> int:
        return self.first_epoch + int(np.argmax(self.scores)) if self.scores else 0

    @property
    def last_epoch(self) -> int:
        return self.first_epoch + len(self.scores) - 1

    def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
        if self.every and (state.global_step % self.every == 0 or state.global_step >= state.max_steps):
            return self._scored(args, state, control)
        return control

    def on_epoch_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
        return control if self.every else self._scored(args, state, control)

    def _scored(self, args: Any, state: Any, control: Any) -> Any:
        self.scores.append(self.score())
        if self.best_epoch == self.last_epoch:
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.progress is not None:
            total = math.ceil(state.max_steps / self.every) if self.every else math.ceil(args.num_train_epochs)
            self.progress(Progress("validation", self.last_epoch, total, self.scores[-1], state.epoch))
        if self.patience and self.last_epoch - self.best_epoch >= self.patience:
            control.should_training_stop, self.stopped_by = True, "patience"
        elif self._over_budget() and state.global_step < state.max_steps:
            control.should_training_stop, self.stopped_by = True, "time_budget"
        return control

    def _over_budget(self) -> bool:
        """Whether one more epoch, at the pace of the epochs so far, would end past the budget (decided by the
        first process: the clocks of data-parallel processes differ, and they must stop together)."""
        if not self.budget_s:
            return False
        elapsed = time.monotonic() - self.started
        over = elapsed + elapsed / len(self.scores) > self.budget_s
        if _world_size() > 1 and torch.distributed.is_initialized():
            flag = torch.tensor([float(over)], device=next(self.model.parameters()).device)
            torch.distributed.broadcast(flag, src=0)
            over = bool(flag.item())
        return over

    def restore_best(self) -> None:
        if self.best_state is not None and self.best_epoch != self.last_epoch:
            self.model.load_state_dict(self.best_state)


def _seed_all(seed: int) -> None:
    set_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _args(config: TrainConfig, output_dir: str, **overrides: object) -> SentenceTransformerTrainingArguments:
    kw: dict[str, object] = dict(
        output_dir=output_dir,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup,
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        save_strategy="steps" if config.save_steps > 0 else "no",
        save_steps=config.save_steps if config.save_steps > 0 else 500,
        save_total_limit=2,
        logging_steps=1,
        report_to="none",
        use_cpu=config.device == "cpu",
        # Set by torchrun in each process; the Trainer then wraps the model in DDP over this backend.
        ddp_backend=("gloo" if config.device == "cpu" else "nccl") if _world_size() > 1 else None,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    kw.update(overrides)
    return SentenceTransformerTrainingArguments(**kw)  # type: ignore[arg-type]


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _noise(text: str, rng: random.Random, keep: float = 0.4) -> str:
    # TSDAE's default: delete 60% of the words; at least one survives.
    words = text.split()
    kept = [w for w in words if rng.random() < keep]
    return " ".join(kept) if kept else (rng.choice(words) if words else text)


def _tsdae(
    model: SentenceTransformer, docs: Sequence[str], config: TrainConfig, workdir: str, progress: ProgressFn | None
) -> int:
    rng = random.Random(config.seed)
    docs = [d for d in docs if d.strip()]
    if len(docs) < 2:
        raise DataError(f"TSDAE needs documents, got {len(docs)}; pass TrainData.documents or set tsdae_epochs=0")
    ds = Dataset.from_dict({"noisy": [_noise(d, rng) for d in docs], "text": docs})
    loss = DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)
    args = _args(
        config,
        workdir,
        num_train_epochs=config.tsdae_epochs,
        max_steps=-1,
        per_device_train_batch_size=config.tsdae_batch_size,
        learning_rate=3e-5,
        batch_sampler=BatchSamplers.BATCH_SAMPLER,
        save_strategy="no",
    )
    losses: list[float] = []
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=ds, loss=loss, callbacks=[_ProgressCallback("tsdae", progress, losses)]
    )
    out = trainer.train()
    return int(out.global_step)


# A pair's weight enters training as extra copies of it; more than a few would let one pair crowd its batches out.
MAX_COPIES = 3


def repeat_by_weight(pairs: Sequence[Pair], max_copies: int = MAX_COPIES) -> list[Pair]:
    """Each pair ``weight`` times rounded half up, at least once and at most ``max_copies``, in the given order.

    MNRL has no per-example weight, so a heavier pair (a click deep in the list, repeated clicks) is
    trained on more often instead. The NO_DUPLICATES batch sampler puts copies in different batches, where
    each is an ordinary in-batch example; with every weight below 1.5 the pairs come back unchanged.
    """
    if max_copies < 1:
        raise ConfigError(f"max_copies={max_copies!r} must be >= 1")
    out: list[Pair] = []
    for p in pairs:
        out.extend([p] * min(max(math.floor(p.weight + 0.5), 1), max_copies))
    return out


def step_budget(config: TrainConfig, data: TrainData, train_ds: Any) -> int:
    """``config.max_steps``, or when weights added copies, the steps ``config.epochs`` take over the rows without
    them: weights change which examples the steps see, not what an epoch costs (a feedback set of deep clicks
    would otherwise train up to ``MAX_COPIES`` times longer)."""
    if config.max_steps > 0:
        return config.max_steps
    rows = sum(len(d) for d in train_ds.values()) if isinstance(train_ds, dict) else len(train_ds)
    copies = len(repeat_by_weight(data.pairs)) - len(data.pairs)
    if config.loss == "margin_mse":
        triplets = [p for p in data.pairs if p.negative]
        copies = len(repeat_by_weight(triplets)) - len(triplets)
    if copies <= 0:
        return -1
    per_step = config.batch_size * _world_size()
    return max(1, math.ceil((rows - copies) * config.epochs / per_step))


def _pair_dataset(pairs: Sequence[Pair], with_negative: bool) -> Dataset:
    cols: dict[str, list[str]] = {"anchor": [p.query for p in pairs], "positive": [p.positive for p in pairs]}
    if with_negative:
        cols["negative"] = [p.negative or "" for p in pairs]
    return Dataset.from_dict(cols)


def _teacher_margins(teacher_dir: str, pairs: Sequence[Pair]) -> list[float]:
    teacher = load_model(teacher_dir)

    def enc(xs: Iterable[str]) -> np.ndarray:
        out: np.ndarray = teacher.encode(
            list(xs), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False, batch_size=64
        )
        return out

    q, p, n = enc(x.query for x in pairs), enc(x.positive for x in pairs), enc(x.negative or "" for x in pairs)
    return list(map(float, np.einsum("ij,ij->i", q, p) - np.einsum("ij,ij->i", q, n)))


def _base_loss(model: SentenceTransformer, config: TrainConfig) -> torch.nn.Module:
    if config.loss == "cached_mnrl":
        loss: torch.nn.Module = CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=config.mini_batch_size, gather_across_devices=_world_size() > 1
        )
    elif config.loss == "margin_mse":
        loss = MarginMSELoss(model)
    else:
        # Across processes, every process's pairs are negatives for every other's: the batch grows with them.
        loss = MultipleNegativesRankingLoss(model, gather_across_devices=_world_size() > 1)
    if config.matryoshka_dims:
        dim = model.get_embedding_dimension()
        if dim and max(config.matryoshka_dims) > dim:
            raise ConfigError(
                f"TrainConfig.matryoshka_dims={config.matryoshka_dims} exceed the model's "
                f"dimension {dim}; use dims <= {dim}"
            )
        loss = MatryoshkaLoss(model, loss, list(config.matryoshka_dims))
    return loss


def _datasets(model: SentenceTransformer, config: TrainConfig, data: TrainData):  # type: ignore[no-untyped-def]
    pairs = list(data.pairs)
    if not pairs:
        raise DataError("TrainData.pairs is empty; build pairs from feedback (retrain.build_pairs) first")
    if config.loss == "margin_mse":
        pairs = [p for p in pairs if p.negative]
        if not pairs:
            raise DataError(
                "margin_mse needs (query, positive, negative) triplets; mine negatives first "
                "(retrain.mine_hard_negatives)"
            )
        pairs = repeat_by_weight(pairs)
        ds = _pair_dataset(pairs, True).add_column("label", _teacher_margins(config.teacher_model or "", pairs))
        task = {"task": ds}
    else:
        pairs = repeat_by_weight(pairs)
        with_neg = [p for p in pairs if p.negative]
        without = [p for p in pairs if not p.negative]
        # Mixed rows cannot share one dataset (columns differ): triplets and pairs become two datasets.
        task = {}
        if without:
            task["task"] = _pair_dataset(without, False)
        if with_neg:
            task["task_hard"] = _pair_dataset(with_neg, True)
    losses: dict[str, torch.nn.Module] = {}
    base = _base_loss(model, config)
    for name in task:
        losses[name] = WeightedLoss(base, config.task_weight) if config.task_weight != 1.0 else base
    if data.anchor_pairs and config.anchor_weight > 0:
        task["anchor"] = _pair_dataset([p for p in data.anchor_pairs], False)
        anchor_loss = MultipleNegativesRankingLoss(model) if config.loss == "margin_mse" else base
        losses["anchor"] = WeightedLoss(anchor_loss, config.anchor_weight)
    if len(task) == 1:
        ((name, ds),) = task.items()
        return ds, losses[name]
    return task, losses


def train(config: TrainConfig, data: TrainData, out_dir: str | Path, progress: ProgressFn | None = None) -> TrainResult:
    """Train in this process and save the model to ``out_dir`` (created). Prefer
    ``retrain.run_training_subprocess`` from long-lived services: it isolates crashes and writes atomically."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    _seed_all(config.seed)
    model = load_model(config.base_model)
    # Train with the (shorter, cheaper) config length, but save with the base model's own length so the
    # candidate encodes documents exactly as the base does at serving time.
    serving_max_len = model.max_seq_length
    if config.max_seq_length:
        model.max_seq_length = config.max_seq_length
    own_ckpt = config.checkpoint_dir is None
    ckpt_dir = tempfile.mkdtemp(prefix="retrain-ckpt-") if own_ckpt else str(config.checkpoint_dir)
    try:
        tsdae_steps = 0
        # transformers leaves get_last_checkpoint unannotated
        last = (
            get_last_checkpoint(ckpt_dir)  # type: ignore[no-untyped-call]
            if (config.resume and os.path.isdir(ckpt_dir))
            else None
        )
        # A checkpoint holds the weights after TSDAE as well, so a resumed run skips that stage.
        if config.tsdae_epochs > 0 and last is None:
            tsdae_steps = _tsdae(model, data.documents, config, os.path.join(ckpt_dir, "tsdae"), progress)
            _seed_all(config.seed)
        train_ds, loss = _datasets(model, config, data)
        losses: list[float] = []
        callbacks: list[TrainerCallback] = [_ProgressCallback("train", progress, losses)]
        budget = step_budget(config, data, train_ds)
        validation = None
        if data.validation is not None:
            every = math.ceil(budget / config.epochs) if budget > 0 and config.max_steps <= 0 else 0
            validation = _EpochValidation(
                model,
                data.validation,
                config.early_stopping_patience,
                progress,
                int(serving_max_len or 512),
                every,
                config.time_budget_s,
            )
            callbacks.append(validation)
        trainer = SentenceTransformerTrainer(
            model=model,
            args=_args(config, ckpt_dir, max_steps=budget),
            train_dataset=train_ds,
            loss=loss,
            callbacks=callbacks,
        )
        result = trainer.train(resume_from_checkpoint=last)
        if validation is not None:
            validation.restore_best()
        res = TrainResult(
            model_dir=str(out),
            base_model=config.base_model,
            steps=int(result.global_step),
            epochs=float(trainer.state.epoch or 0.0),
            seconds=time.perf_counter() - t0,
            final_loss=losses[-1] if losses else None,
            losses=tuple(losses),
            n_pairs=len(data.pairs),
            n_anchor_pairs=len(data.anchor_pairs),
            tsdae_steps=tsdae_steps,
            resumed_from=last,
            config=replace(config),
            processes=_world_size(),
            validation_ndcg=tuple(validation.scores) if validation else (),
            best_epoch=validation.best_epoch if validation else 0,
            stopped_by=validation.stopped_by if validation else "",
        )
        if not trainer.is_world_process_zero():
            return res  # data-parallel: every process holds the same weights; the first one saves them
        out.mkdir(parents=True, exist_ok=True)
        model.max_seq_length = serving_max_len
        model.save_pretrained(str(out))
        write_json(out / RESULT_FILE, res.to_dict())
        return res
    finally:
        if own_ckpt:
            shutil.rmtree(ckpt_dir, ignore_errors=True)


def encode(model_dir: str | Path, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings from a model directory (for evaluation of a trained candidate)."""
    model = load_model(model_dir)
    return np.asarray(
        model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ),
        dtype=np.float32,
    )
