"""Query-side linear adapter: improves retrieval without re-encoding a single document.

``q' = normalize(q @ W)``, ``W`` initialised to the identity (so an untrained adapter is a no-op) and trained
with in-batch cross-entropy on precomputed (query, positive passage) embeddings, plus an L2 pull toward the
identity because with ~1k pairs a free d×d matrix overfits within a few epochs. Documents stay as indexed.
Saved as ``adapter.npy`` (float32, d×d) + ``adapter.json`` (metadata) in a directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ConfigError, DataError, ModelDirError
from .retrieval import normalize

if TYPE_CHECKING:
    import torch

ADAPTER_FILE = "adapter.npy"
ADAPTER_META = "adapter.json"


@dataclass(frozen=True)
class AdapterConfig:
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    temperature: float = 0.05
    identity_l2: float = 1e-2
    seed: int = 0
    # d×d matmuls on a few dozen rows: thread hand-off costs more than it saves, and on a busy machine
    # spinning OpenMP workers made a 0.1 s fit take 20 s. 0 = leave torch's setting alone.
    num_threads: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError(
                f"AdapterConfig epochs={self.epochs}, batch_size={self.batch_size}: need "
                "epochs >= 1 and batch_size >= 2 (in-batch negatives need a batch)"
            )
        if self.temperature <= 0:
            raise ConfigError(f"AdapterConfig.temperature={self.temperature} must be > 0, e.g. 0.05")


@dataclass(frozen=True)
class Adapter:
    weight: np.ndarray  # (d, d), applied as q @ weight
    base_model_id: str = ""
    config: AdapterConfig = field(default_factory=AdapterConfig)
    losses: tuple[float, ...] = ()
    seconds: float = 0.0

    def apply(self, query_vecs: np.ndarray) -> np.ndarray:
        return apply_adapter(query_vecs, self)

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / ADAPTER_FILE, self.weight.astype(np.float32))
        meta = {
            "dimension": int(self.weight.shape[0]),
            "base_model_id": self.base_model_id,
            "config": asdict(self.config),
            "losses": list(self.losses),
            "seconds": self.seconds,
        }
        (d / ADAPTER_META).write_text(json.dumps(meta, indent=2))
        return d


def load_adapter(directory: str | Path) -> Adapter:
    d = Path(directory)
    if not (d / ADAPTER_FILE).is_file():
        raise ModelDirError(f"adapter directory {str(d)!r} has no {ADAPTER_FILE}; save one with Adapter.save()")
    w = np.load(d / ADAPTER_FILE)
    meta = json.loads((d / ADAPTER_META).read_text()) if (d / ADAPTER_META).is_file() else {}
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ModelDirError(f"{str(d / ADAPTER_FILE)!r} holds shape {w.shape}; an adapter is a square matrix")
    return Adapter(
        weight=w.astype(np.float32),
        base_model_id=meta.get("base_model_id", ""),
        config=AdapterConfig(**meta["config"]) if "config" in meta else AdapterConfig(),
        losses=tuple(meta.get("losses", ())),
        seconds=float(meta.get("seconds", 0.0)),
    )


def apply_adapter(query_vecs: np.ndarray, adapter: Adapter | np.ndarray) -> np.ndarray:
    """Map query embeddings through the adapter; rows come back L2-normalised float32."""
    w = adapter.weight if isinstance(adapter, Adapter) else np.asarray(adapter, dtype=np.float32)
    q = np.asarray(query_vecs, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != w.shape[0]:
        raise DataError(
            f"query vectors of shape {q.shape} do not fit a {w.shape[0]}-d adapter; "
            "encode queries with the adapter's base model"
        )
    return normalize(q @ w)


def train_adapter(
    query_vecs: np.ndarray, positive_vecs: np.ndarray, config: AdapterConfig = AdapterConfig(), base_model_id: str = ""
) -> Adapter:
    """Train ``W`` so that normalize(q W) ranks its own positive above the other positives in the batch."""
    import torch  # here, not at import: `import retrain` stays cheap (no torch) for the sidecar's other paths

    q = torch.from_numpy(normalize(query_vecs))
    p = torch.from_numpy(normalize(positive_vecs))
    if q.shape != p.shape or len(q) < 2:
        raise DataError(
            f"train_adapter needs matching (n, d) query and positive arrays with n >= 2, got "
            f"{tuple(q.shape)} and {tuple(p.shape)}"
        )
    saved_threads = torch.get_num_threads()
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    try:
        return _fit(q, p, config, base_model_id)
    finally:
        torch.set_num_threads(saved_threads)


def _fit(q: torch.Tensor, p: torch.Tensor, config: AdapterConfig, base_model_id: str) -> Adapter:
    import torch

    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(config.seed)
    eye = torch.eye(q.shape[1])
    w = torch.nn.Parameter(eye.clone())
    opt = torch.optim.Adam([w], lr=config.lr)
    losses: list[float] = []
    for _ in range(config.epochs):
        perm = torch.randperm(len(q), generator=gen)
        total, batches = 0.0, 0
        for s in range(0, len(q), config.batch_size):
            idx = perm[s : s + config.batch_size]
            if len(idx) < 2:
                continue
            qa = torch.nn.functional.normalize(q[idx] @ w, dim=1)
            logits = qa @ p[idx].T / config.temperature
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(idx)))
            loss = loss + config.identity_l2 * ((w - eye) ** 2).sum()
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            opt.step()
            total += float(loss.detach())
            batches += 1
        losses.append(total / max(batches, 1))
    return Adapter(
        weight=w.detach().numpy().astype(np.float32),
        base_model_id=base_model_id,
        config=config,
        losses=tuple(losses),
        seconds=time.perf_counter() - t0,
    )
