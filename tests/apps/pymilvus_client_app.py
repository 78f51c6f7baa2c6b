"""An application as users write it with pymilvus' MilvusClient: it embeds elsewhere and searches Milvus.

The tests run it unchanged except for its URI (directly at Milvus, then through `embguard proxy`) and compare
what it prints. Usage: pymilvus_client_app.py URI DB COLLECTION OUT.json [--docs D.npy --queries Q.npy] [--keep]
"""

import argparse
import json

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

p = argparse.ArgumentParser()
p.add_argument("uri")
p.add_argument("db")
p.add_argument("collection")
p.add_argument("out")
p.add_argument("--docs", help="an (n, d) float32 .npy of document vectors (default: 300 random 384-d ones)")
p.add_argument("--queries", help="an (m, d) float32 .npy of query vectors (default: 5 random ones)")
p.add_argument("--texts", help="a JSON list of the documents' texts (default: 'document <i>')")
p.add_argument("--keep", action="store_true", help="keep the collection (default: drop it at the end)")
p.add_argument("--search-only", action="store_true", help="the collection exists: only search it")
a = p.parse_args()

rng = np.random.default_rng(7)
docs = np.load(a.docs) if a.docs else rng.standard_normal((300, 384)).astype(np.float32)
queries = np.load(a.queries) if a.queries else rng.standard_normal((5, docs.shape[1])).astype(np.float32)
client = MilvusClient(uri=a.uri, db_name=a.db)
if not a.search_only:
    if client.has_collection(a.collection):
        client.drop_collection(a.collection)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=docs.shape[1])
    schema.add_field("text", DataType.VARCHAR, max_length=2048)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(a.collection, schema=schema, index_params=index)
    texts = json.load(open(a.texts)) if a.texts else [f"document {i}" for i in range(len(docs))]
    rows = [{"id": i, "vector": v.tolist(), "text": t[:500]} for i, (v, t) in enumerate(zip(docs, texts, strict=True))]
    for start in range(0, len(rows), 500):
        client.insert(a.collection, rows[start : start + 500])
    client.flush(a.collection)
    client.load_collection(a.collection)

res = client.search(a.collection, data=[q.tolist() for q in queries], limit=5, output_fields=["text"])
hits = [[[h["id"], h["distance"], h["entity"]["text"]] for h in r] for r in res]


def error(call):
    try:
        call()
    except MilvusException as e:
        return f"{e.code}: {e.message}"
    return "no error"


errors = {
    "unknown_collection": error(lambda: client.search("no_such_collection", data=[queries[0].tolist()], limit=3)),
    "wrong_dimension": error(lambda: client.search(a.collection, data=[[0.1, 0.2, 0.3]], limit=3)),
}
if not a.keep and not a.search_only:
    client.drop_collection(a.collection)
client.close()
with open(a.out, "w") as f:
    json.dump({"hits": hits, "errors": errors, "queries": queries.tolist()}, f)
