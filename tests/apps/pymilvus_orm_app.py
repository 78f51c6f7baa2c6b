"""An application as users write it with the pymilvus ORM (connections.connect, Collection.search).

Run unchanged except for its URI. Usage: pymilvus_orm_app.py URI DB COLLECTION OUT.json [--keep]
"""

import argparse
import json

import numpy as np
from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, MilvusException, connections, utility

p = argparse.ArgumentParser()
p.add_argument("uri")
p.add_argument("db")
p.add_argument("collection")
p.add_argument("out")
p.add_argument("--keep", action="store_true")
a = p.parse_args()

rng = np.random.default_rng(7)
docs = rng.standard_normal((300, 384)).astype(np.float32)
queries = rng.standard_normal((5, 384)).astype(np.float32)
connections.connect(alias="default", uri=a.uri, db_name=a.db)
if utility.has_collection(a.collection):
    utility.drop_collection(a.collection)
schema = CollectionSchema(
    [
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vector", DataType.FLOAT_VECTOR, dim=384),
        FieldSchema("text", DataType.VARCHAR, max_length=512),
    ]
)
coll = Collection(a.collection, schema)
coll.insert([list(range(len(docs))), docs.tolist(), [f"document {i}" for i in range(len(docs))]])
coll.flush()
coll.create_index("vector", {"index_type": "FLAT", "metric_type": "COSINE", "params": {}})
coll.load()
res = coll.search(queries.tolist(), "vector", {"metric_type": "COSINE"}, limit=5, output_fields=["text"])
hits = [[[h.id, h.distance, h.entity.get("text")] for h in r] for r in res]


def error(call):
    try:
        call()
    except MilvusException as e:
        return f"{e.code}: {e.message}"
    return "no error"


errors = {
    "unknown_collection": error(lambda: Collection("no_such_collection")),
    "wrong_dimension": error(lambda: coll.search([[0.1, 0.2, 0.3]], "vector", {"metric_type": "COSINE"}, limit=3)),
}
if not a.keep:
    utility.drop_collection(a.collection)
connections.disconnect("default")
with open(a.out, "w") as f:
    json.dump({"hits": hits, "errors": errors, "queries": queries.tolist()}, f)
