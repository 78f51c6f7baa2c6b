"""An application as users write it with LlamaIndex (`llama-index-vector-stores-milvus` MilvusVectorStore).

It runs in its own virtualenv (LlamaIndex's Milvus store needs pymilvus 2.6, embguard uses 3.0): run unchanged
except for its URI. Usage: llamaindex_app.py URI DB COLLECTION OUT.json [flags of app_inputs.py]
"""

import json

from app_inputs import parse
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.milvus import MilvusVectorStore

a, docs, texts, queries = parse(seed=11)
index = {"index_type": "FLAT", "metric_type": "COSINE", "params": {}}
store = MilvusVectorStore(
    uri=a.uri,
    db_name=a.db,
    collection_name=a.collection,
    dim=docs.shape[1],
    overwrite=not a.search_only,
    similarity_metric="COSINE",
    index_config=index,
)
if not a.search_only:
    pairs = enumerate(zip(docs, texts, strict=True))
    store.add([TextNode(id_=f"n{i}", text=t, embedding=v.tolist()) for i, (v, t) in pairs])
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
if not a.keep and not a.search_only:
    store.client.drop_collection(a.collection)
with open(a.out, "w") as f:
    json.dump({"hits": hits, "errors": errors, "queries": queries.tolist()}, f)
