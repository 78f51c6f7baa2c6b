"""An application as users write it with pymilvus' MilvusClient: it embeds elsewhere and searches Milvus.

The tests run it unchanged except for its URI (directly at Milvus, then through `embguard proxy`) and compare
what it prints. Usage: pymilvus_client_app.py URI DB COLLECTION OUT.json [flags of app_inputs.py]
"""

import json

from app_inputs import parse
from pymilvus import DataType, MilvusClient, MilvusException

a, docs, texts, queries = parse(seed=7)
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
    rows = [{"id": i, "vector": v.tolist(), "text": t} for i, (v, t) in enumerate(zip(docs, texts, strict=True))]
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
