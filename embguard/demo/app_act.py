"""``embguard demo --app langchain``: the whole loop for an application nobody rewrote.

The same corpus and users as ``embguard demo``, but the application is a LangChain one (:class:`LangChainApp`) that
knows nothing of embguard: its Milvus URI points at ``embguard proxy`` and its embeddings' base URL at ``embguard
endpoint``. The proxy taps its searches; its users' clicks arrive over HTTP (``/v1/feedback``) and are joined to
those searches; the daemon pages on the shift; a candidate is trained from the clicks and gated; on-call approves
while the application keeps searching and adding documents (the proxy routes each search to the collection of the
model that made its vector, and repeats the application's writes on the other collection); rollback restores both.
"""

from __future__ import annotations

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
from embguard.checks.windows import query_window
from embguard.client.client import Client
from embguard.config.settings import Settings
from embguard.daemon.service import Daemon
from embguard.demo.apps import Doors, LangChainApp
from embguard.demo.report import Steps, describe
from embguard.demo.settings import ALIAS, BASE_TOPICS, CLICK_RATE, SHIFT_TOPICS, demo_settings
from embguard.demo.simulate import index, passages_for, traffic
from embguard.milvus.lite import LiteServer, free_port
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import DUAL_WRITE_PROPERTY
from embguard.swap.swapper import Swapper
from embguard.training.candidates import build_candidate
from embguard.training.stdlib_corpus import Passage


@dataclass(frozen=True)
class AppActSummary:
    drift_after_shift: bool
    feedback_clicks: int
    candidate: str
    gate_passed: bool
    swap_completed: bool
    calls_during_swap: int
    failed_calls: int
    routed_searches: int
    repeated_rows: int
    inserted_in_both: bool
    ndcg_before_swap: float
    ndcg_after_swap: float
    rollback_restored: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return (
            self.drift_after_shift
            and self.swap_completed
            and not self.failed_calls
            and self.inserted_in_both
            and self.rollback_restored
        )


def act_settings(settings: Settings, fast: bool) -> Settings:
    """The demo's settings, with the two doors on free loopback ports and the proxy routing by the endpoint."""
    s = demo_settings(settings, fast)
    endpoint_port = free_port()
    return s.model_copy(
        update={
            "proxy": s.proxy.model_copy(
                update={
                    "host": "127.0.0.1",
                    "port": free_port(),
                    "metrics_port": free_port(),
                    "endpoint_url": f"http://127.0.0.1:{endpoint_port}",
                }
            ),
            "endpoint": s.endpoint.model_copy(
                update={"host": "127.0.0.1", "port": endpoint_port, "token_env": None, "default_model": ALIAS}
            ),
        }
    )


def run(settings: Settings, *, fast: bool = False, seed: int = 7, say: Callable[[str], None] = print) -> AppActSummary:
    t0 = time.monotonic()
    s = act_settings(settings, fast)
    shutil.rmtree(settings.state.dir / "demo", ignore_errors=True)
    per_topic = 40 if fast else 80
    base = [p for t in BASE_TOPICS for p in passages_for([t])[:per_topic]]
    shift = [p for t in SHIFT_TOPICS for p in passages_for([t])[:per_topic]]
    n_ref, n_win = (250, 130) if fast else (400, 200)
    rng = random.Random(seed)
    step = Steps(say)
    server = LiteServer.from_settings(s)
    step(f"starting Milvus Lite on {server.uri}")
    server.start()
    daemon: Daemon | None = None
    try:
        milvus = Milvus.connect(s)
        with Client(s, seed=seed) as ops:  # the operators' side: the collection and its corpus exist first
            first = ops.create_collection(ALIAS, s.model.default)
            index(ops, ALIAS, base + shift)
        first_model = milvus.properties(first)[MODEL_ID_PROPERTY]
        daemon = Daemon(s, registry=CollectorRegistry())
        daemon.start()
        with Doors(s) as doors:
            step(
                f"a LangChain application, unchanged but for two URLs: Milvus at {doors.proxy_uri} (embguard proxy), "
                f"embeddings at {doors.endpoint_url}/v1 (embguard endpoint, model={ALIAS!r})"
            )
            app = LangChainApp(doors.proxy_uri, doors.endpoint_url, ALIAS)

            def window(shifted: Sequence[Passage], share: float) -> Any:
                a = int(time.time() * 1000)
                stats = traffic(
                    app, ALIAS, base, n_win, shifted=shifted, shift_share=share, seed=rng.randint(0, 10**6),
                    click_rate=CLICK_RATE,
                )  # fmt: skip
                doors.proxy.tap.flush()
                if stats.failures:
                    raise RuntimeError(f"{stats.failures} of the application's searches failed")
                return daemon.check_window(ALIAS, a, int(time.time() * 1000) + 1) if daemon else None

            step(f"its users search {n_ref} times about {', '.join(BASE_TOPICS[:4])}, ...; clicks go to /v1/feedback")
            a = int(time.time() * 1000)
            ref_stats = traffic(app, ALIAS, base, n_ref, seed=rng.randint(0, 10**6), click_rate=CLICK_RATE)
            doors.proxy.tap.flush()
            ref = ReferenceStore(s.state.dir).capture(
                ALIAS, query_window(milvus, ALIAS, a, int(time.time() * 1000) + 1), min_size=s.drift.min_window
            )
            say(f"      the proxy tapped its searches: reference v{ref.version:04d}, {ref.size} queries")
            step(f"their interests shift: half the traffic asks about {', '.join(SHIFT_TOPICS[:4])}, ...")
            shifted = window(shift, 0.5)
            say(f"      {describe(shifted)}")
            shifted = window(shift, 0.5)
            say(f"      {describe(shifted)}")

            step("retraining from the application's clicks (joined to its tapped searches), gated on held-out queries")
            report = build_candidate(s, milvus, s.collection(ALIAS), say=lambda x: say(f"      {x}"))
            for line in str(report).splitlines():
                say(f"      {line}")
            ndcg_before = _ndcg10(app, report.held_out)

            gate = "passed" if report.promoted else "rejected; on-call approves it anyway with --force"
            step(
                f"on-call approves {report.version.version} (gate {gate}) while the application keeps searching "
                "and adding documents"
            )
            calls, inserted = _approve_under_load(s, milvus, app, base + shift, report, rng, say)
            swap_ok = milvus.resolve(ALIAS) != first
            routed = int(doors.metric("embguard_proxy_routed_searches_total", outcome="routed"))
            doors.proxy.dual.flush()
            repeated = int(doors.metric("embguard_proxy_dual_write_rows_total", outcome="written"))
            ndcg_after = _ndcg10(app, report.held_out)
            say(
                f"      {calls['searches']} searches and {len(inserted)} inserts during the swap, {calls['failed']} "
                f"failed; {routed} searches routed by the model that made their vector; {repeated} rows repeated "
                "on the other collection"
            )
            say(f"      nDCG@10 through the application: {ndcg_before:.4f} -> {ndcg_after:.4f}")

            step("rollback is one command away: embguard rollback")
            Swapper(s, milvus, say=lambda x: say(f"      {x}")).rollback(s.collection(ALIAS))
            time.sleep(s.milvus.alias_cache_s + 0.5)
            served = app.embeddings.client.with_raw_response.create(model=ALIAS, input=["which model?"])
            restored = milvus.resolve(ALIAS) == first and served.headers["x-embguard-model-id"] == first_model
            say(f"      {ALIAS} serves {milvus.resolve(ALIAS)} again, and the endpoint embeds with {first_model}")
            doors.proxy.dual.flush()
            in_both = _inserted_everywhere(milvus, [first, _other(milvus, first)], inserted)
            say(f"      the application's {len(inserted)} new documents are in both collections: {in_both}")
            app.close()
        milvus.close()
    finally:
        if daemon is not None:
            daemon.stop()
        server.stop()
    summary = AppActSummary(
        drift_after_shift=bool(shifted.sustained or shifted.drift),
        feedback_clicks=ref_stats.clicks,
        candidate=report.version.version,
        gate_passed=report.promoted,
        swap_completed=swap_ok,
        calls_during_swap=calls["searches"] + len(inserted),
        failed_calls=calls["failed"],
        routed_searches=routed,
        repeated_rows=repeated,
        inserted_in_both=in_both,
        ndcg_before_swap=ndcg_before,
        ndcg_after_swap=ndcg_after,
        rollback_restored=restored,
        seconds=time.monotonic() - t0,
    )
    _table(summary, server.status().running, say)
    return summary


def _table(r: AppActSummary, left_running: bool, say: Callable[[str], None]) -> None:
    gate = "gate PASSED" if r.gate_passed else "gate rejected, approved with --force"
    rows = [
        ("drift after the shift", "yes" if r.drift_after_shift else "no"),
        ("clicks over HTTP", f"{r.feedback_clicks} in the reference traffic, joined to the tapped searches"),
        ("candidate", f"{r.candidate}: {gate}"),
        (
            "swap",
            f"{'completed' if r.swap_completed else 'NOT completed'}; {r.calls_during_swap} calls during it, "
            f"{r.failed_calls} failed; {r.routed_searches} searches routed by their vector's model; "
            f"{r.repeated_rows} rows repeated",
        ),
        ("new documents", "in both collections" if r.inserted_in_both else "MISSING from a collection"),
        ("nDCG@10 via the app", f"{r.ndcg_before_swap:.4f} before -> {r.ndcg_after_swap:.4f} after"),
        ("rollback", "restored the previous collection and model" if r.rollback_restored else "NOT restored"),
        ("time", f"{r.seconds:.0f} s; left running: {'Milvus Lite' if left_running else 'nothing'}"),
    ]
    say("\nsummary")
    for name, value in rows:
        say(f"  {name:<24}{value}")


def _approve_under_load(
    s: Settings,
    milvus: Milvus,
    app: LangChainApp,
    passages: Sequence[Passage],
    report: Any,
    rng: random.Random,
    say: Callable[[str], None],
) -> tuple[dict[str, int], dict[int, str]]:
    stop = threading.Event()
    calls = {"searches": 0, "failed": 0}
    inserted: dict[int, str] = {}

    def users() -> None:
        next_id = 10_000_000
        while not stop.is_set():
            p = rng.choice(passages)
            try:
                app.search(p.query, 5)
                calls["searches"] += 1
                if calls["searches"] % 3 == 0:  # release notes: new documents that answer none of the users' queries
                    text = f"release note {next_id}: this build updates translations and fixes a crash on start-up"
                    app.insert(next_id, text)
                    inserted[next_id] = text
                    next_id += 1
            except Exception:  # counted and reported: the demo's claim is that none fail
                calls["failed"] += 1

    thread = threading.Thread(target=users, daemon=True)
    thread.start()
    try:
        Swapper(s, milvus, say=lambda x: say(f"      {x}")).approve(s.collection(ALIAS), report.version, force=True)
        time.sleep(s.swap.grace_s + 1.0)  # the application carries on past the switch
    finally:
        stop.set()
        thread.join(60)
    return calls, inserted


def _other(milvus: Milvus, first: str) -> str:
    return milvus.properties(first).get(DUAL_WRITE_PROPERTY, first)


def _inserted_everywhere(milvus: Milvus, collections: list[str], inserted: dict[int, str]) -> bool:
    ids = sorted(inserted)
    if not ids:
        return True
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [len(milvus.client.query(c, filter=f"id in {ids}", output_fields=["id"])) for c in collections]
        if all(n == len(ids) for n in found):
            return True
        time.sleep(0.5)
    return False


def _ndcg10(app: LangChainApp, held_out: Sequence[tuple[str, frozenset[Any]]]) -> float:
    if not held_out:
        return float("nan")
    scores = [retrain.ndcg_at_k(app.search(q, 10)[0], set(rel)) for q, rel in held_out]
    return sum(scores) / len(scores)
