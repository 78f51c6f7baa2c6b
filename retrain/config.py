"""Training configuration and inputs, serialisable to JSON so a child process can run them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .evaluate import evaluate_embeddings
from .pairs import Pair

LossName = Literal["mnrl", "cached_mnrl", "margin_mse"]
LOSSES: tuple[str, ...] = ("mnrl", "cached_mnrl", "margin_mse")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a fine-tune. ``base_model`` is a local sentence-transformers directory."""

    base_model: str
    loss: LossName = "mnrl"
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup: float = 0.1  # fraction of steps (transformers 5 takes a float warmup_steps)
    max_seq_length: int | None = 128
    seed: int = 42
    mini_batch_size: int = 32  # CachedMNRL: memory is set by this, quality by batch_size
    matryoshka_dims: tuple[int, ...] = ()  # non-empty: wrap the loss in MatryoshkaLoss over these dims
    teacher_model: str | None = None  # margin_mse: local directory of the teacher bi-/cross-encoder
    anchor_weight: float = 0.0  # multi-task: loss weight of the general-domain anchor set
    task_weight: float = 1.0
    tsdae_epochs: float = 0.0  # >0: TSDAE domain adaptation on documents before the contrastive step
    tsdae_batch_size: int = 8
    checkpoint_dir: str | None = None  # where checkpoints live (must survive a crash: not the output dir)
    save_steps: int = 0  # 0: no intermediate checkpoints
    resume: bool = True  # resume from the latest checkpoint in checkpoint_dir if present
    max_steps: int = -1  # >0 caps the run (tests, smoke runs)
    # Data-parallel training: one process per device (torchrun); each takes batch_size pairs per step, and
    # MNRL's in-batch negatives are gathered across processes, so the effective batch is processes*batch_size.
    processes: int = 1
    device: str = "cpu"  # "cpu" (processes talk over gloo) or "cuda" (one GPU per process, nccl)
    # With TrainData.validation: stop once this many epochs in a row did not raise validation nDCG@10, and keep
    # the weights of the best epoch (0: train every epoch, still keep the best).
    early_stopping_patience: int = 1
    # With TrainData.validation: also stop at an epoch's end when one more epoch (at the pace so far) would end past
    # this many seconds of training; the best epoch so far is kept (0: no limit).
    time_budget_s: float = 0.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"TrainConfig.loss={self.loss!r}; use one of {', '.join(LOSSES)}")
        if self.batch_size < 2:
            raise ConfigError(
                f"TrainConfig.batch_size={self.batch_size}: in-batch negatives need >= 2 (32 or more is typical)"
            )
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError(f"TrainConfig.epochs={self.epochs}: train for > 0 epochs or set max_steps")
        if self.loss == "margin_mse" and not self.teacher_model:
            raise ConfigError(
                "TrainConfig.loss='margin_mse' distils from a teacher: set teacher_model to a local model directory"
            )
        if self.anchor_weight < 0 or self.task_weight <= 0:
            raise ConfigError(
                f"TrainConfig task_weight={self.task_weight}, anchor_weight={self.anchor_weight}: "
                "task_weight must be > 0 and anchor_weight >= 0"
            )
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"TrainConfig.warmup={self.warmup} is a fraction of steps in [0, 1), e.g. 0.1")
        if self.processes < 1:
            raise ConfigError(
                f"TrainConfig.processes={self.processes}: use 1 (one process) or the number of "
                "devices to train on in parallel"
            )
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"TrainConfig.device={self.device!r}; use 'cpu' or 'cuda'")
        if self.early_stopping_patience < 0:
            raise ConfigError(
                f"TrainConfig.early_stopping_patience={self.early_stopping_patience}: use 0 (never stop early) "
                "or the number of epochs without a better validation score to stop after (1 is typical)"
            )
        if not self.time_budget_s >= 0:
            raise ConfigError(
                f"TrainConfig.time_budget_s={self.time_budget_s}: use 0 (no limit) or the seconds of training after "
                "which no further epoch starts"
            )
        if any(d <= 0 for d in self.matryoshka_dims):
            raise ConfigError(f"TrainConfig.matryoshka_dims={self.matryoshka_dims}: dimensions must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"TrainConfig got unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        if "matryoshka_dims" in data:
            data["matryoshka_dims"] = tuple(data["matryoshka_dims"])
        return cls(**data)


@dataclass(frozen=True)
class ValidationSet:
    """Queries never trained on, each with the indices of its relevant ``documents``: scored (nDCG@10 over those
    documents) after every epoch to choose how long to train."""

    queries: tuple[str, ...]
    documents: tuple[str, ...]
    relevant: tuple[tuple[int, ...], ...]  # per query, indices into documents

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.relevant):
            raise ConfigError(f"ValidationSet: {len(self.queries)} queries but {len(self.relevant)} relevance rows")
        if not self.queries or any(not r for r in self.relevant):
            raise ConfigError("ValidationSet needs at least one query, each with at least one relevant document")
        if any(i < 0 or i >= len(self.documents) for r in self.relevant for i in r):
            raise ConfigError(f"ValidationSet.relevant names a document index outside 0..{len(self.documents) - 1}")

    def ndcg(self, query_vecs: Any, doc_vecs: Any) -> float:
        """Mean nDCG@10 of the queries over the documents, given their vectors (in this set's order)."""
        rel: list[set[Any]] = [set(r) for r in self.relevant]
        scores = evaluate_embeddings(query_vecs, doc_vecs, list(range(len(self.documents))), rel)
        return float(sum(scores.scores["ndcg@10"]) / len(rel))

    def to_dict(self) -> dict[str, Any]:
        return {"queries": list(self.queries), "documents": list(self.documents), "relevant": list(self.relevant)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationSet:
        return cls(
            tuple(data["queries"]), tuple(data["documents"]), tuple(tuple(int(i) for i in r) for r in data["relevant"])
        )


@dataclass(frozen=True)
class TrainData:
    """The examples: task pairs (feedback), optional anchor pairs (general domain) and domain documents."""

    pairs: tuple[Pair, ...]
    anchor_pairs: tuple[Pair, ...] = ()
    documents: tuple[str, ...] = ()  # for TSDAE domain adaptation
    validation: ValidationSet | None = None  # scored after every epoch: early stopping, best epoch kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": [asdict(p) for p in self.pairs],
            "anchor_pairs": [asdict(p) for p in self.anchor_pairs],
            "documents": list(self.documents),
            "validation": self.validation.to_dict() if self.validation else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainData:
        val = data.get("validation")
        return cls(
            pairs=tuple(Pair(**p) for p in data.get("pairs", ())),
            anchor_pairs=tuple(Pair(**p) for p in data.get("anchor_pairs", ())),
            documents=tuple(data.get("documents", ())),
            validation=ValidationSet.from_dict(val) if val else None,
        )


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports; also written as ``train_result.json`` into the model directory."""

    model_dir: str
    base_model: str
    steps: int
    epochs: float
    seconds: float
    final_loss: float | None
    losses: tuple[float, ...]
    n_pairs: int
    n_anchor_pairs: int
    tsdae_steps: int
    resumed_from: str | None
    config: TrainConfig | None = field(repr=False, default=None)
    processes: int = 1  # data-parallel processes that trained it
    # With a validation set: nDCG@10 after each epoch (index 0 is epoch 1), and the epoch whose weights were saved.
    validation_ndcg: tuple[float, ...] = ()
    best_epoch: int = 0
    stopped_by: str = ""  # with a validation set: "patience", "time_budget" or "" (ran every epoch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        data = dict(data)
        data["losses"] = tuple(data.get("losses", ()))
        data["validation_ndcg"] = tuple(data.get("validation_ndcg", ()))
        data["config"] = TrainConfig.from_dict(data["config"]) if data.get("config") else None
        return cls(**data)


RESULT_FILE = "train_result.json"


def write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str))
