"""An application as users write it with the pymilvus ORM (connections.connect, Collection.search).

Run unchanged except for its URI. Usage: pymilvus_orm_app.py URI DB COLLECTION OUT.json [flags of app_inputs.py]
"""

import json

from app_inputs import parse
from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, MilvusException, connections, utility

a, docs, texts, queries = parse(seed=7)
connections.connect(alias="default", uri=a.uri, db_name=a.db)
if a.search_only:
    coll = Collection(a.collection)
else:
    if utility.has_collection(a.collection):
        utility.drop_collection(a.collection)
    schema = CollectionSchema(
        [
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vector", DataType.FLOAT_VECTOR, dim=docs.shape[1]),
            FieldSchema("text", DataType.VARCHAR, max_length=2048),
        ]
    )
    coll = Collection(a.collection, schema)
    coll.insert([list(range(len(docs))), docs.tolist(), texts])
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
if not a.keep and not a.search_only:
    utility.drop_collection(a.collection)
connections.disconnect("default")
with open(a.out, "w") as f:
    json.dump({"hits": hits, "errors": errors, "queries": queries.tolist()}, f)
