"""An application as users write it with LangChain (`langchain-milvus` Milvus store, a local Embeddings).

Run unchanged except for its URI. Usage: langchain_app.py URI DB COLLECTION OUT.json [--keep]
"""

import argparse
import json

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_milvus import Milvus

p = argparse.ArgumentParser()
p.add_argument("uri")
p.add_argument("db")
p.add_argument("collection")
p.add_argument("out")
p.add_argument("--keep", action="store_true")
a = p.parse_args()


class LocalEmbeddings(Embeddings):
    """The application's own embedding: a fixed random vector per text (the model is not the point here)."""

    def __init__(self, dim: int = 384):
        self.dim = dim
        self.seen: list[list[float]] = []

    def _one(self, text: str) -> list[float]:
        seed = int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little") ^ len(text)
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32).tolist()

    def embed_documents(self, texts):
        return [self._one(t) for t in texts]

    def embed_query(self, text):
        v = self._one(text)
        self.seen.append(v)
        return v


texts = [f"document number {i} about topic {i % 7}" for i in range(300)]
queries = [f"question {i} on topic {i}" for i in range(5)]
emb = LocalEmbeddings()
args = {"uri": a.uri, "db_name": a.db}
index = {"index_type": "FLAT", "metric_type": "COSINE", "params": {}}
store = Milvus(
    emb, collection_name=a.collection, connection_args=args, index_params=index, drop_old=True, auto_id=False
)
store.add_texts(texts, ids=[str(i) for i in range(len(texts))])
hits = [[[d.metadata["pk"], s, d.page_content] for d, s in store.similarity_search_with_score(q, k=5)] for q in queries]


def error(call):
    try:
        return f"result: {call()!r}"
    except Exception as e:  # what the application would see
        return f"{type(e).__name__}: {e}"


other = Milvus(emb, collection_name="no_such_collection", connection_args=args, index_params=index)
errors = {
    "unknown_collection": error(lambda: other.similarity_search("anything", k=3)),
    "wrong_dimension": error(lambda: store.similarity_search_by_vector([0.1, 0.2, 0.3], k=3)),
}
if not a.keep:
    store.client.drop_collection(a.collection)
with open(a.out, "w") as f:
    json.dump({"hits": hits, "errors": errors, "queries": emb.seen[: len(queries)]}, f)
