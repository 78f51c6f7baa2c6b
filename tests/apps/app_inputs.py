"""What every test application takes besides its URI, so a test can give any of them real data.

``URI DB COLLECTION OUT.json [--docs D.npy] [--texts T.json] [--queries Q.npy] [--keep] [--search-only]``:
without files, each application makes its own random 384-d vectors (300 documents, 5 queries) from its seed.
This is the test's side of an application (where its vectors come from), not how it talks to Milvus.
"""

import argparse
import json
from typing import Any

import numpy as np


def parse(seed: int) -> tuple[Any, np.ndarray, list[str], np.ndarray]:
    """The arguments, the document vectors and texts, and the query vectors."""
    p = argparse.ArgumentParser()
    p.add_argument("uri")
    p.add_argument("db")
    p.add_argument("collection")
    p.add_argument("out")
    p.add_argument("--docs", help="an (n, d) float32 .npy of document vectors")
    p.add_argument("--texts", help="a JSON list of the documents' texts (default: 'document <i>')")
    p.add_argument("--queries", help="an (m, d) float32 .npy of query vectors")
    p.add_argument("--keep", action="store_true", help="keep the collection (default: drop it at the end)")
    p.add_argument("--search-only", action="store_true", help="the collection exists: only search it")
    a = p.parse_args()
    rng = np.random.default_rng(seed)
    docs = np.load(a.docs) if a.docs else rng.standard_normal((300, 384)).astype(np.float32)
    queries = np.load(a.queries) if a.queries else rng.standard_normal((5, docs.shape[1])).astype(np.float32)
    texts = [t[:500] for t in json.load(open(a.texts))] if a.texts else [f"document {i}" for i in range(len(docs))]
    return a, docs, texts, queries
