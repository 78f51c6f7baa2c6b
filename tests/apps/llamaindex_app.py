"""An application as users write it with LlamaIndex (`llama-index-vector-stores-milvus` MilvusVectorStore).

It runs in its own virtualenv (LlamaIndex's Milvus store needs pymilvus 2.6, embguard uses 3.0): run unchanged
except for its URI. Usage: llamaindex_app.py URI DB COLLECTION OUT.json [--keep]
"""

import argparse
import json

import numpy as np
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.milvus import MilvusVectorStore

p = argparse.ArgumentParser()
p.add_argument("uri")
p.add_argument("db")
p.add_argument("collection")
p.add_argument("out")
p.add_argument("--keep", action="store_true")
a = p.parse_args()

rng = np.random.default_rng(11)
docs = rng.standard_normal((300, 384)).astype(np.float32)
queries = rng.standard_normal((5, 384)).astype(np.float32)
index = {"index_type": "FLAT", "metric_type": "COSINE", "params": {}}
store = MilvusVectorStore(
    uri=a.uri,
    db_name=a.db,
    collection_name=a.collection,
    dim=384,
    overwrite=True,
    similarity_metric="COSINE",
    index_config=index,
)
store.add([TextNode(id_=f"n{i}", text=f"document {i}", embedding=v.tolist()) for i, v in enumerate(docs)])
store.client.flush(a.collection)
hits = []
for q in queries:
    r = store.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=5))
    hits.append([[i, s, n.get_content()] for i, s, n in zip(r.ids, r.similarities, r.nodes, strict=True)])


def error(call):
    try:
        return f"result: {call()!r}"
    except Exception as e:  # what the application would see
        return f"{type(e).__name__}: {e}"


errors = {
    "unknown_collection": error(lambda: store.client.search("no_such_collection", data=[queries[0].tolist()], limit=3)),
    "wrong_dimension": error(
        lambda: store.query(VectorStoreQuery(query_embedding=[0.1, 0.2, 0.3], similarity_top_k=3)).ids
    ),
}
if not a.keep:
    store.client.drop_collection(a.collection)
with open(a.out, "w") as f:
    json.dump({"hits": hits, "errors": errors, "queries": queries.tolist()}, f)
