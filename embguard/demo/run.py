"""``embguard demo``: the whole loop on the embedded default, offline, in one command.

A private Milvus Lite server; the standard library's documentation as the corpus; a simulated application
searching through ``embguard.Client`` and clicking the right answers; the daemon's checks; then the
traffic shifts to topics the reference never saw. The user watches the baseline being captured, drift
detected with its p-values and the new query clusters named, a candidate trained from the feedback and
gated on held-out queries, the approval's dual-index swap (while the application keeps searching),
retrieval quality after the swap, and a rollback. Everything started is stopped at the end.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

import retrain
from embguard.checks.references import ReferenceStore
from embguard.checks.reports import CheckReport
from embguard.checks.windows import query_window
from embguard.client.client import Client
from embguard.config.settings import CollectionSettings, Settings
from embguard.daemon.service import Daemon
from embguard.demo.report import DemoSummary, Steps, describe, table
from embguard.demo.settings import ALIAS, BASE_TOPICS, CLICK_RATE, SHIFT_TOPICS, demo_settings
from embguard.demo.simulate import index, passages_for, traffic
from embguard.milvus.lite import LiteServer
from embguard.milvus.milvus import Milvus
from embguard.swap.swapper import Swapper
from embguard.training.candidates import build_candidate
from embguard.training.labels import import_labels
from embguard.training.stdlib_corpus import Passage


def _ndcg10(client: Client, alias: str, held_out: Sequence[tuple[str, frozenset[Any]]]) -> float:
    """Mean nDCG@10 of the held-out queries searched through the live alias (the gate's metric)."""
    if not held_out:
        return float("nan")
    res = client.search(alias, [q for q, _ in held_out], limit=10)
    pairs = zip(held_out, res.hits, strict=True)
    return sum(retrain.ndcg_at_k([h.id for h in hits], set(rel)) for (_, rel), hits in pairs) / len(held_out)


@dataclass
class _Run:
    """What the demo's stages share: the settings, the connections, the corpus and the randomness."""

    s: Settings
    milvus: Milvus
    client: Client
    daemon: Daemon
    base: list[Passage]
    shift: list[Passage]
    rng: random.Random
    step: Steps
    say: Callable[[str], None]
    n_ref: int
    n_win: int
    first_model: str = ""  # the model that made the first collection's vectors: rollback must bring it back
    first_collection: str = ""  # what `collection create` made (ALIAS__v0000): rollback must serve it again

    @property
    def spec(self) -> CollectionSettings:
        return self.s.collection(ALIAS)


def run(settings: Settings, *, fast: bool = False, seed: int = 7, say: Callable[[str], None] = print) -> DemoSummary:
    t0 = time.monotonic()
    s = demo_settings(settings, fast)
    shutil.rmtree(settings.state.dir / "demo", ignore_errors=True)  # a demo starts clean; it never touches other data
    per_topic = 40 if fast else 80
    base = [p for t in BASE_TOPICS for p in passages_for([t])[:per_topic]]
    shift = [p for t in SHIFT_TOPICS for p in passages_for([t])[:per_topic]]
    server = LiteServer.from_settings(s)
    step = Steps(say)
    step(f"starting Milvus Lite on {server.uri} (data dir {server.data_dir})")
    server.start()
    client: Client | None = None
    daemon: Daemon | None = None
    try:
        milvus = Milvus.connect(s)
        client = Client(s, seed=seed)
        daemon = Daemon(s, registry=CollectorRegistry())
        r = _Run(
            s,
            milvus,
            client,
            daemon,
            base,
            shift,
            random.Random(seed),
            step,
            say,
            *((250, 130) if fast else (400, 200)),
        )
        fields = _index_and_watch(r)
        fields |= _drift(r)
        report, gate = _retrain(r)
        fields |= gate
        fields |= _swap_and_roll_back(r, report)
        milvus.close()
    finally:
        if client is not None:
            client.close()
        if daemon is not None:
            daemon.stop()
        server.stop()
    summary = DemoSummary(**fields, seconds=time.monotonic() - t0, left_running=server.status().running)
    table(summary, say)
    return summary


def _index_and_watch(r: _Run) -> dict[str, Any]:
    r.first_collection = r.client.create_collection(ALIAS, r.s.model.default)
    em = r.client.model_for(r.first_collection)
    r.first_model = em.model_id
    r.step(
        f"indexing {len(r.base) + len(r.shift)} passages of the Python standard library's documentation with "
        f"{em.model_id} into {r.first_collection} (alias {ALIAS})"
    )
    t = time.monotonic()
    index(r.client, ALIAS, r.base + r.shift)
    r.say(f"      indexed in {time.monotonic() - t:.0f} s")
    r.daemon.start()
    metrics_url = f"http://{r.s.metrics.host}:{r.s.metrics.port}/metrics"
    r.say(f"      embguard daemon running; metrics at {metrics_url}")
    return {"documents": len(r.base) + len(r.shift), "metrics_url": metrics_url, "state_dir": str(r.s.state.dir)}


def _drift(r: _Run) -> dict[str, Any]:
    r.step(f"reference traffic: {r.n_ref} searches about {', '.join(BASE_TOPICS[:4])}, ... with click feedback")
    a = _now()
    traffic(r.client, ALIAS, r.base, r.n_ref, seed=r.rng.randint(0, 10**6), click_rate=CLICK_RATE)
    r.client.flush_tap()
    ref = ReferenceStore(r.s.state.dir).capture(
        ALIAS, query_window(r.milvus, ALIAS, a, _now() + 1), min_size=r.s.drift.min_window
    )
    r.say(f"      baseline captured: reference v{ref.version:04d}, {ref.size} queries, model {ref.model_id}")

    r.step("more traffic like the reference: the daemon checks it")
    steady = _window(r, (), 0.0)
    r.say(f"      {describe(steady)}")

    r.step(f"the users' interests shift: half the traffic now asks about {', '.join(SHIFT_TOPICS[:4])}, ...")
    shifted = steady
    for _ in range(2):
        shifted = _window(r, r.shift, 0.5)
        r.say(f"      {describe(shifted)}")
    clusters = [r.daemon.pager.describe_cluster(r.daemon._collections[ALIAS], c) for c in shifted.clusters[:3]]
    if clusters:
        r.say("      new query clusters (queries whose nearest neighbours are new queries too, largest first):")
        for c in clusters:
            ex = "; ".join(repr(e[:70]) for e in c["examples"][:2])
            about = f"about {', '.join(c['terms'])}, " if c.get("terms") else ""
            r.say(f"        {about}{100 * c['share']:.0f}% of the window, distance {c['distance']:.2f}: {ex}")
    return {
        "drift_before_shift": steady.drift or steady.sustained,
        "drift_after_shift": shifted.sustained,
        "drift_p_values": {o.monitor: o.p_value for o in shifted.outcomes if o.p_value is not None},
        "clusters": tuple(clusters),
    }


def _retrain(r: _Run) -> tuple[Any, dict[str, Any]]:
    r.step(
        "annotators label queries the clicks do not cover (embguard label import), then retraining from "
        "clicks + labels (fine-tune in a subprocess, gate on held-out queries)"
    )
    labels = r.s.state.dir / "labels.jsonl"
    everything = r.base + r.shift
    labels.write_text(
        "".join(
            json.dumps({"query": p.query, "doc_id": p.id, "signal": "positive"}) + "\n"
            for p in r.rng.sample(everything, len(everything) * 3 // 4)
        )
    )
    r.say(f"      imported {import_labels(r.s, r.milvus, r.spec, labels)} labels from {labels}")
    report = build_candidate(r.s, r.milvus, r.spec, say=lambda x: r.say(f"      {x}"))
    for line in str(report).splitlines():
        r.say(f"      {line}")
    return report, {
        "candidate": report.version.version,
        "gate_passed": report.promoted,
        "gate_ndcg_base": report.metrics["base"]["ndcg@10"],
        "gate_ndcg_candidate": report.metrics["candidate"]["ndcg@10"],
    }


def _swap_and_roll_back(r: _Run, report: Any) -> dict[str, Any]:
    ndcg_before = _ndcg10(r.client, ALIAS, report.held_out)
    r.step(f"on-call approves: embguard retrain --approve --candidate {report.version.version}")
    stop = threading.Event()
    counts = {"searches": 0, "failed": 0}
    everything = r.base + r.shift

    def app() -> None:  # the application keeps searching while the swap runs
        while not stop.is_set():
            try:
                r.client.search(ALIAS, [r.rng.choice(everything).query], limit=5)
                counts["searches"] += 1
            except Exception:  # counted and reported: the demo's claim is that none fail
                counts["failed"] += 1
            time.sleep(0.05)

    th = threading.Thread(target=app, daemon=True)
    th.start()
    swapper = Swapper(r.s, r.milvus, say=lambda x: r.say(f"      {x}"), progress=_progress(r.say))
    swap_ok = False
    if report.promoted:
        st = swapper.approve(r.spec, report.version)
        swap_ok = st.phase == "done"
        if st.verify is not None:
            v = st.verify
            r.say(f"      verified: {v.target_count} documents, shadow top-10 overlap {v.top10_overlap:.2f}")
    stop.set()
    th.join()
    ndcg_after = _ndcg10(r.client, ALIAS, report.held_out)
    r.step("retrieval quality on the held-out queries, through the live alias")
    r.say(
        f"      nDCG@10 before the swap {ndcg_before:.4f} -> after {ndcg_after:.4f} "
        f"({100 * (ndcg_after - ndcg_before):+.2f} points)"
    )

    r.step("rollback is one command away: embguard rollback")
    restored = False
    if swap_ok:
        swapper.rollback(r.spec)
        time.sleep(r.s.milvus.alias_cache_s)  # a client reuses its alias lookup for that long
        back = r.client.search(ALIAS, [q for q, _ in report.held_out[:5]], limit=3)
        restored = back.collection == r.first_collection and back.model_id == r.first_model
        r.say(
            f"      {ALIAS} is served by {back.collection} ({back.model_id}) again; "
            f"`embguard retrain --approve --candidate {report.version.version}` swaps forward again"
        )
    return {
        "swap_completed": swap_ok,
        "failed_searches": counts["failed"],
        "searches_during_swap": counts["searches"],
        "ndcg_before_swap": ndcg_before,
        "ndcg_after_swap": ndcg_after,
        "rollback_restored": restored,
    }


def _progress(say: Callable[[str], None]) -> Callable[[Any], None]:
    last = [0.0]

    def progress(st: Any) -> None:
        if st.phase == "dual_write" and st.total and time.monotonic() - last[0] > 3:
            last[0] = time.monotonic()
            eta = (st.total - st.done) / st.rate if st.rate else float("nan")
            say(f"      backfill {st.done}/{st.total} ({st.rate:.0f} docs/s, ETA {eta:.0f} s)")
        elif st.phase != "dual_write":
            if st.phase == "backfilled":  # the last word on the backfill: at exactly its total
                say(f"      backfill {st.done}/{st.total} ({st.rate:.0f} docs/s)")
            say(f"      phase: {st.phase}")

    return progress


def _now() -> int:
    return int(time.time() * 1000)


def _window(r: _Run, shift: Sequence[Passage], share: float) -> CheckReport:
    a = _now()
    stats = traffic(
        r.client,
        ALIAS,
        r.base,
        r.n_win,
        shifted=shift,
        shift_share=share,
        seed=r.rng.randint(0, 10**6),
        click_rate=CLICK_RATE,
    )
    r.client.flush_tap()
    report = r.daemon.check_window(ALIAS, a, _now() + 1)
    if stats.failures:
        raise RuntimeError(f"{stats.failures} searches failed")
    return report
