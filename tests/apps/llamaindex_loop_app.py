"""A LlamaIndex application whose users keep searching and adding notes: its embeddings come from an OpenAI-like
endpoint (``OpenAILikeEmbedding``), its searches go through ``MilvusVectorStore``, its writes through the store's
pymilvus client (the managed collection's ids are integers; LlamaIndex's nodes have string ids). Only the two URLs
are embguard's.

Usage: llamaindex_loop_app.py JOB.json. Runs until JOB["stop_file"] exists, then writes JOB["out"]: each search's
query, vector, top hit id and similarity; the documents it inserted; every failure it saw.
"""

import json
import sys
import time
from pathlib import Path

from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.embeddings.openai_like import OpenAILikeEmbedding
from llama_index.vector_stores.milvus import MilvusVectorStore

job = json.loads(Path(sys.argv[1]).read_text())
embed = OpenAILikeEmbedding(model_name=job["collection"], api_base=job["endpoint"] + "/v1", api_key=job["token"])
store = MilvusVectorStore(
    uri=job["proxy"],
    db_name=job["db"],
    collection_name=job["collection"],
    dim=job["dim"],
    overwrite=False,
    doc_id_field="id",
    embedding_field="vector",
    text_key="text",
    similarity_metric="COSINE",
)
records, inserted, failures = [], {}, []
next_id, i = job["first_id"], 0
Path(job["ready_file"]).write_text("ready")
while not Path(job["stop_file"]).exists():
    query = job["queries"][i % len(job["queries"])]
    i += 1
    try:
        vector = embed.get_query_embedding(query)
        time.sleep(job["think_s"])  # the user reads the question back; a switch may fall here
        found = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=5))
        records.append([query, vector, int(found.ids[0]), float(found.similarities[0])])
    except Exception as exc:  # what the application would see; the test requires none
        failures.append(f"search {query!r}: {exc!r}")
    if i % 3 == 0:
        text = f"release note {next_id}: the LlamaIndex build adds a setting and fixes a leak"
        try:
            vector = embed.get_text_embedding(text)
            store.client.insert(job["collection"], [{"id": next_id, "text": text, "vector": vector}])
            inserted[next_id] = text
        except Exception as exc:
            failures.append(f"insert {next_id}: {exc!r}")
        next_id += 1
Path(job["out"]).write_text(json.dumps({"records": records, "inserted": inserted, "failures": failures}))
