"""An application as users write it with LangChain (`langchain-milvus` Milvus store, a local Embeddings).

Run unchanged except for its URI. Usage: langchain_app.py URI DB COLLECTION OUT.json [flags of app_inputs.py]
"""

import json

from app_inputs import parse
from langchain_core.embeddings import Embeddings
from langchain_milvus import Milvus

a, docs, texts, queries = parse(seed=13)


class LocalEmbeddings(Embeddings):
    """The application's own embedding model, here a table of the vectors the test gave it (the model is not the
    point): each document text has its vector, and query i is the text "query <i>"."""

    def __init__(self) -> None:
        self.table = {t: v for t, v in zip(texts, docs, strict=True)}
        self.table.update({f"query {i}": q for i, q in enumerate(queries)})
        self.seen: list[list[float]] = []

    def embed_documents(self, texts):
        return [self.table[t].tolist() for t in texts]

    def embed_query(self, text):
        v = self.table[text].tolist() if text in self.table else [0.0] * docs.shape[1]
        self.seen.append(v)
        return v


emb = LocalEmbeddings()
args = {"uri": a.uri, "db_name": a.db}
index = {"index_type": "FLAT", "metric_type": "COSINE", "params": {}}
store = Milvus(
    emb,
    collection_name=a.collection,
    connection_args=args,
    index_params=index,
    drop_old=not a.search_only,
    auto_id=False,
)
if not a.search_only:
    store.add_texts(texts, ids=[str(i) for i in range(len(texts))])
hits = [
    [[d.metadata["pk"], s, d.page_content] for d, s in store.similarity_search_with_score(f"query {i}", k=5)]
    for i in range(len(queries))
]


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
if not a.keep and not a.search_only:
    store.client.drop_collection(a.collection)
with open(a.out, "w") as f:
    json.dump({"hits": hits, "errors": errors, "queries": emb.seen[: len(queries)]}, f)
