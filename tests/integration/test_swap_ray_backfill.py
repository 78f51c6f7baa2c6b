"""The swap's backfill on Ray (``swap.engine = "ray"``) keeps the local engine's guarantees.

Real Milvus Lite, real models, a real local Ray with 2 CPUs: an application keeps searching and inserting
through the swap with no failed search; the target ends with exactly the source's ids and texts; a driver
killed with -9 mid-backfill resumes from its per-range checkpoints when the same command is run again.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from builders import wait_until
from swap_world import World, edit_while_down, load_app

from embguard.models import loading as models
from embguard.swap.state import SwapStore

pytest.importorskip("ray", reason="the Ray engine is an optional extra: pip install 'embguard[ray]'")
pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
APPROVE = [sys.executable, "-m", "embguard.cli", "retrain", "--approve", "--candidate", "v0001"]


@pytest.fixture(scope="module")
def ray_address():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def text_hashes(w: World, collection: str) -> dict[int, str]:
    return {
        r["id"]: hashlib.sha256(r["text"].encode()).hexdigest()
        for b in w.milvus.iterate(collection, ["id", "text"])
        for r in b
    }


def assert_exact_copy(w: World) -> None:
    w.milvus.flush("kb__v0001")
    src, dst = text_hashes(w, "kb__v1"), text_hashes(w, "kb__v0001")
    assert src == dst  # same ids, same texts
    assert w.milvus.count("kb__v0001") == len(dst)  # and no duplicate rows


def test_ray_is_imported_by_one_embguard_module_only() -> None:
    users = sorted(
        str(p.relative_to(REPO))
        for pkg in ("embguard", "monitors", "retrain")
        for p in (REPO / pkg).rglob("*.py")
        if any(line.lstrip().startswith(("import ray", "from ray")) for line in p.read_text().splitlines())
    )
    assert users == ["embguard/swap/ray_backfill.py"]


@pytest.mark.slow
def test_a_ray_swap_killed_mid_backfill_resumes_while_the_application_keeps_working(
    tmp_path: Path, candidate_dir: Path, ray_address: str
) -> None:
    """One Ray swap under both things production does to it: an application searches and inserts the whole
    time, and the driver is killed with -9 mid-backfill, then the same command is run again. No search fails,
    no insert is lost, the resumed run keeps the range plan, and the target is an exact re-embedded copy."""
    w = World(
        tmp_path,
        candidate_dir,
        docs=160,
        EMBGUARD_SWAP__BATCH_SIZE="8",
        EMBGUARD_SWAP__ENGINE="ray",
        EMBGUARD_SWAP__RAY_ADDRESS=ray_address,
        EMBGUARD_SWAP__RAY_WORKERS="1",
    )
    store = SwapStore(w.settings.state.dir)
    env = {**os.environ, **w.env}
    try:
        # ~10 searches a second: production-like, and the 2 cores stay with the swap.
        with load_app(w, tmp_path, pause_s=0.1) as finish:
            proc = subprocess.Popen(APPROVE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

            def two_ranges_done() -> bool:
                st = store.load("kb")
                return proc.poll() is not None or bool(st and st.ranges and sum(r["done"] for r in st.ranges) >= 2)

            wait_until(two_ranges_done, 300, interval_s=0.02, what="two backfill ranges done (or the driver to exit)")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            st = store.load("kb")
            done_before = [(r["lo"], r["hi"]) for r in st.ranges if r["done"]]
            assert st.phase == "dual_write" and 0 < len(done_before) < len(st.ranges), st
            edited = edit_while_down(w)

            res = subprocess.run(APPROVE, env=env, capture_output=True, text=True, timeout=600)
            assert res.returncode == 0, res.stderr[-3000:]
            assert "resuming the swap of kb to v0001" in res.stdout
            time.sleep(2)  # on purpose: the application keeps searching the switched alias a while
            report = finish()
        st = store.load("kb")
        assert st.phase == "done" and st.verify.ok and all(r["done"] for r in st.ranges)
        assert set(done_before) <= {(r["lo"], r["hi"]) for r in st.ranges}  # the plan was kept, not redone
        assert w.milvus.resolve("kb") == "kb__v0001"
        assert report["failures"] == [], report["failures"][:5]
        assert report["searches"] > 20
        assert set(report["served"]) == {"kb__v1", "kb__v0001"}  # it searched before and after the switch

        assert_exact_copy(w)
        assert 777 in text_hashes(w, "kb__v0001")
        inserted = {int(k): v for k, v in report["inserted"].items()}
        assert len(inserted) > 5
        rows = w.milvus.query("kb__v0001", ids=list(inserted), output_fields=["id"])
        assert {r["id"] for r in rows} == set(inserted)  # zero lost inserts
        # Backfilled and edited rows carry the candidate's vectors of their stored text (computed on Ray actors).
        cand = models.load_by_id(w.candidate.model_id, w.settings.model.store_dir)
        some = [p.id for p in w.passages[20::25]]
        rows = w.milvus.query("kb__v0001", ids=edited + some, output_fields=["text", "vector"])
        assert len(rows) == len(edited) + len(some)
        assert sum(r["text"].startswith("edited text number") for r in rows) == len(edited)
        assert np.allclose([r["vector"] for r in rows], cand.encode([r["text"] for r in rows]), atol=1e-5)
    finally:
        w.close()
