"""An application that keeps searching and inserting through embguard.Client until told to stop.

Usage: python app_swap_load.py JOB_JSON  - runs until the file JOB["stop_file"] exists, then prints one JSON
line: every search's (collection, model_id), failures, and the ids it inserted with their texts. JOB["pause_s"]
(default 0.01) is the pause between searches: a lighter load leaves CPU to a swap that needs it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from embguard.client.client import Client
from embguard.config import loader as config


def main() -> None:
    job = json.loads(sys.argv[1])
    settings = config.load(None, environ=job["env"])
    stop = Path(job["stop_file"])
    served: dict[str, set[str]] = {}
    failures: list[str] = []
    inserted: dict[int, str] = {}
    searches = 0
    next_id = job["first_id"]
    queries = job["queries"]
    pause_s = float(job.get("pause_s", 0.01))
    with Client(settings, query_rate=0.0) as client:
        Path(job["ready_file"]).write_text("ready")
        while not stop.exists():
            q = queries[searches % len(queries)]
            try:
                res = client.search(job["alias"], [q], limit=5)
                served.setdefault(res.collection, set()).add(res.model_id)
                searches += 1
            except Exception as exc:  # the test counts these
                failures.append(f"search: {exc}")
            if searches % 3 == 0:
                text = f"fresh document {next_id} about {q}"
                try:
                    client.insert(job["alias"], [{"id": next_id, "text": text}])
                    inserted[next_id] = text
                except Exception as exc:
                    failures.append(f"insert {next_id}: {exc}")
                next_id += 1
            time.sleep(pause_s)  # on purpose: paces the application's searches
    print(
        json.dumps(
            {
                "searches": searches,
                "failures": failures,
                "inserted": inserted,
                "served": {k: sorted(v) for k, v in served.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
