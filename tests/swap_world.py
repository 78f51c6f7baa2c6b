"""The swap tests' world: a served collection ``kb`` -> ``kb__v1`` with a registered candidate (``World``), the
application edits made while no swap runs (``edit_while_down``), and the load application searching and inserting
through the alias (``load_app``); used by the local and the Ray swap tests."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from backends import Backend
from builders import wait_until

from embguard.client.client import Client
from embguard.demo.simulate import index, passages_for
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.models import loading as models
from embguard.models.registry import ModelRegistry

APP = Path(__file__).resolve().parent / "apps" / "app_swap_load.py"


class World:
    """A served collection ``kb`` -> ``kb__v1`` and a registered candidate, on ``backend`` (Lite by default)."""

    def __init__(self, tmp: Path, candidate_dir: Path, docs: int = 160, backend: Backend | None = None, **env: str):
        self._stack = contextlib.ExitStack()
        backend = backend or Backend("lite", tmp)
        self.world = self._stack.enter_context(
            backend.world(
                tmp,
                **{"EMBGUARD_COLLECTIONS": '[{name="kb", index_type="HNSW"}]', "EMBGUARD_SWAP__GRACE_S": "1.0", **env},
            )
        )
        self.env = self.world.env
        self.settings = self.world.settings
        self.milvus = Milvus.connect(self.settings)
        em = models.load()
        self.milvus.create_collection(
            self.settings.collection("kb"), 384, name="kb__v1", properties={MODEL_ID_PROPERTY: em.model_id}
        )
        self.milvus.create_alias("kb__v1", "kb")
        self.registry = ModelRegistry(self.settings.model.store_dir)
        self.candidate = self.registry.register(candidate_dir, status="awaiting_approval", base_model_id=em.model_id)
        self.passages = passages_for(["email", "json", "logging"])[:docs]
        self.client = Client(self.settings)
        index(self.client, "kb", self.passages)

    def ids(self, collection: str) -> list:
        return [r["id"] for b in self.milvus.iterate(collection, ["id"]) for r in b]

    def close(self) -> None:
        self.client.close()
        self.milvus.close()
        self._stack.close()


def edit_while_down(w: World) -> list[int]:
    """While nobody backfills, the application edits and deletes documents already copied, and inserts one."""
    edited = [p.id for p in w.passages[:10]]
    w.client.upsert("kb", [{"id": i, "text": f"edited text number {i} about sqlite"} for i in edited])
    w.client.delete("kb", [p.id for p in w.passages[10:15]])
    w.client.insert("kb", [{"id": 777, "text": "inserted while the swap was down"}])
    return edited


@contextlib.contextmanager
def load_app(w: World, tmp: Path, pause_s: float) -> Iterator[Callable[[], dict[str, Any]]]:
    """apps/app_swap_load.py searching and inserting through ``w``'s alias ``kb`` (ids from 10,000), started and
    ready; yields ``finish()``, which stops it and returns its report. Never left running."""
    stop, ready = tmp / "stop", tmp / "ready"
    job = {
        "env": w.env,
        "alias": "kb",
        "stop_file": str(stop),
        "ready_file": str(ready),
        "first_id": 10_000,
        "queries": [p.query for p in w.passages[:50]],
        "pause_s": pause_s,
    }
    app = subprocess.Popen(
        [sys.executable, str(APP), json.dumps(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def finish() -> dict[str, Any]:
        stop.write_text("stop")
        out, _ = app.communicate(timeout=120)
        return json.loads(out.strip().splitlines()[-1])

    def started() -> bool:
        assert app.poll() is None, app.stderr.read() if app.stderr else ""
        return ready.exists()

    try:
        wait_until(started, timeout_s=300, interval_s=0.1, what="the load app to be ready")
        yield finish
    finally:
        stop.write_text("stop")
        if app.poll() is None:  # a failed assertion must not leave the app running
            app.kill()
            app.wait()
