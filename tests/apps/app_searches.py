"""An application process for the integration tests: searches through embguard.Client, leaves feedback.

Usage: python app_searches.py CONFIG_JSON  (settings env + what to do); prints one JSON line of results.
"""

from __future__ import annotations

import json
import sys

from embguard.client.client import Client
from embguard.config import loader as config


def main() -> None:
    job = json.loads(sys.argv[1])
    settings = config.load(None, environ=job["env"])
    out: dict = {"query_ids": [], "feedback": []}
    with Client(settings, seed=job.get("seed", 0)) as client:
        queries = job["queries"]
        for i, q in enumerate(queries):
            res = client.search(job["alias"], [q], limit=5)
            out["query_ids"].append(res.query_ids[0])
            out["model_id"] = res.model_id
            if i % job.get("feedback_every", 10**9) == 0:
                top = res.hits[0][0]
                fid = client.feedback(res.query_ids[0], top.id, signal="click")
                out["feedback"].append({"feedback_id": fid, "query_id": res.query_ids[0], "doc_id": top.id, "query": q})
    out["stats"] = client.tap_stats.snapshot()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
