"""A collection whose vectors the application computes (no model embguard can load), watched only through
`embguard proxy` (both backends): the tapped windows, the reference, the check, the page and the clusters work
as for a Client-served collection, and retrain/approve refuse in one line that says what to do.

Real text: stdlib passages embedded by all-MiniLM-L6-v2 (cached), written and searched by the unchanged
pymilvus application of tests/apps; the current window shifts 30% of its queries to a topic the reference
never saw (turtle graphics).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from backends import Backend
from daemon_world import cli_run
from monitors_data import RealEmbeddings
from proxy_world import ProxyProcess, run_app, wait_for_tap

from embguard.milvus.milvus import Milvus
from embguard.training.stdlib_corpus import stdlib_corpus

NEW_TOPIC = "turtle"
WINDOW_S = 20


def test_a_monitor_only_collection_pages_on_a_new_topic_seen_through_the_proxy(
    backend: Backend, real: RealEmbeddings, tmp_path: Path
) -> None:
    texts = {p.id: p.text for p in stdlib_corpus()}
    rng = np.random.default_rng(3)
    base = np.flatnonzero(real.topics != NEW_TOPIC)
    new = np.flatnonzero(real.topics == NEW_TOPIC)
    np.save(tmp_path / "docs.npy", real.text)
    (tmp_path / "texts.json").write_text(json.dumps([texts[int(i)] for i in real.ids]))
    np.save(tmp_path / "reference.npy", real.query[rng.choice(base, 400, replace=False)])
    shifted = np.concatenate([real.query[rng.choice(base, 140, replace=False)], real.query[rng.choice(new, 60)]])
    np.save(tmp_path / "current.npy", shifted[rng.permutation(len(shifted))])

    env = {
        "EMBGUARD_COLLECTIONS": '[{name="kb", text_field="text"}]',
        "EMBGUARD_SAMPLING__QUERY_RATE": "1.0",
        "EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S": "0.2",
        "EMBGUARD_SAMPLING__WINDOW_S": str(WINDOW_S),
        "EMBGUARD_DRIFT__CONSECUTIVE": "1",
    }
    with backend.world(tmp_path, **env) as world:
        proxy = ProxyProcess(world.env, tmp_path / "proxy.log")
        proxy.start()
        m = Milvus.connect(world.settings)
        db = world.settings.milvus.db_name
        try:
            app = ["--docs", str(tmp_path / "docs.npy"), "--texts", str(tmp_path / "texts.json"), "--keep"]
            run_app(
                "pymilvus_client",
                proxy.uri,
                db,
                "kb",
                tmp_path / "ref.json",
                *app,
                "--queries",
                str(tmp_path / "reference.npy"),
            )
            wait_for_tap(m, "kb", 400)
            res = cli_run(world.env, "baseline", "capture", "--collection", "kb", "--window-s", "600")
            assert res.exit_code == 0 and "400 rows, model app:kb" in res.output, res.output
            time.sleep(WINDOW_S)  # the reference's queries leave the current window

            quiet = cli_run(world.env, "check", "--json")
            assert quiet.exit_code == 2, quiet.output  # an empty window is too small to test, not "no drift"

            run_app(
                "pymilvus_client",
                proxy.uri,
                db,
                "kb",
                tmp_path / "cur.json",
                "--search-only",
                "--queries",
                str(tmp_path / "current.npy"),
            )
            wait_for_tap(m, "kb", 600)
            res = cli_run(world.env, "check", "--json")
            assert res.exit_code == 1, res.output
            report = json.loads(res.output)["collections"]["kb"]
            assert json.loads(res.output)["verdict"] == "drift" and report["drift"] and report["sustained"], report
            examples = [e for c in report["clusters"] for e in c["examples"]]
            assert any("turtle" in e.lower() for e in examples[:5]), examples

            for cmd in (["retrain", "--collection", "kb"], ["retrain", "--collection", "kb", "--approve"]):
                res = cli_run(world.env, *cmd)
                assert res.exit_code != 0 and "models import" in res.output and "adopt" in res.output, res.output
                assert len(res.output.strip().splitlines()) == 1, res.output
        finally:
            m.close()
            proxy.stop()
