"""embguard's own alert notifier, for teams without Alertmanager: Slack, PagerDuty and signed generic webhooks.

The daemon calls :meth:`Notifier.update` after every check with the alerts that are active *now*; the notifier
turns that level signal into edge events per ``(alert key, target)``:

* a key no target has heard of -> ``trigger`` to every target;
* a key still active -> nothing, unless the target's ``cooldown_s`` has passed since it was last told -> ``repeat``;
* a key that is no longer active -> ``resolve`` to every target that was told about it (and only those: a
  resolve for a page that never arrived would only confuse).

The daemon calls it after every check *and* every Milvus watch tick (so MilvusDown pages within one watch
period), with ``settled``: a remembered key whose condition has not been evaluated since start (a drift alert
before the first check after a restart) is neither resolved nor repeated. The daemon's notifier is built with
``background=True``: ``update`` only queues, and one thread per target delivers from a bounded queue with the
target's own ``timeout_s``, so a host that never answers delays neither checks nor the other targets; an
edge that finds the queue full is dropped (counted) and offered again by the next ``update``.

A target counts as *told* only once a delivery succeeded, so a failed trigger or resolve is simply tried again
on the next ``update``. Nothing raised by a delivery escapes ``update``: alerting must never take the daemon
down. Secrets never appear in an error, a :class:`Delivery` or a log record. The parts: the :class:`Alert` model
and who was told what (:mod:`embguard.alerts.incidents`), the Slack/PagerDuty/generic payloads and HMAC signing
(:mod:`embguard.alerts.webhooks`), one delivery with retries and redaction (:mod:`embguard.alerts.sender`, the only
module that imports httpx), and the wording helpers (:mod:`embguard.alerts.wording`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from embguard.alerts import incidents
from embguard.alerts.incidents import Alert, Told
from embguard.alerts.metrics import AlertMetrics
from embguard.alerts.sender import Delivery, Sender, Transport
from embguard.config.alert_targets import AlertTarget
from embguard.errors import AlertConfigError

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Turns "alerts active now" into trigger/repeat/resolve deliveries to the configured targets.

    Collaborators are injected so behaviour is deterministic in tests: ``clock`` (seconds), ``sleep`` (backoff
    waits), ``transport`` (httpx transport) and ``registry`` (Prometheus metrics; none registered without it).
    """

    def __init__(
        self,
        targets: Sequence[AlertTarget],
        *,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 4,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        transport: Transport | None = None,
        registry: CollectorRegistry | None = None,
        background: bool = False,
        queue_size: int = 100,
    ) -> None:
        if queue_size < 1:
            raise AlertConfigError(f"queue_size={queue_size} must be at least 1")
        self._sender = Sender(
            targets,
            sleep=sleep,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            timeout_s=timeout_s,
            transport=transport,
        )
        self._targets: tuple[AlertTarget, ...] = tuple(targets)
        self._state_path = state_path
        self._clock = clock
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending: set[tuple[str, str]] = set()  # (key, target) queued or in flight
        self._finished: list[Delivery] = []
        self._current: set[str] = set()
        self._closing = threading.Event()
        self._metrics = AlertMetrics(registry) if registry is not None else None
        # What each target was told survives restarts, so a restart neither re-pages nor forgets a resolve.
        self._alerts, self._told = incidents.load(state_path)
        # Background delivery: one bounded queue and one thread per target, so a target that never answers
        # delays neither the checks that call update() nor the other targets.
        self._queues: dict[str, queue.Queue[Any]] = {}
        self._workers: list[threading.Thread] = []
        if background:
            for target in self._targets:
                q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
                self._queues[target.name] = q
                worker = threading.Thread(
                    target=self._worker, args=(target, q), daemon=True, name=f"embguard-alerts-{target.name}"
                )
                worker.start()
                self._workers.append(worker)

    # -- public -------------------------------------------------------------------------------------------------

    def update(self, active: Sequence[Alert], settled: Callable[[str], bool] | None = None) -> list[Delivery]:
        """Turn the alerts active NOW into trigger/repeat/resolve edges (see the module docstring).

        ``settled(key)`` says whether the condition behind a remembered key has been evaluated since start;
        a key that is neither active nor settled is left open. Without it every key counts as settled.
        Synchronous notifiers deliver here and return what was sent; background ones queue and return ``[]``
        at once (:meth:`drain` collects the outcomes)."""
        with self._lock:
            now = self._clock()
            current: dict[str, Alert] = {}
            for alert in active:
                current[alert.key] = alert  # the last one of a duplicated key carries the freshest numbers
            self._current = set(current)
            if self._metrics is not None:
                self._metrics.active.set(len(current))
            deliveries: list[Delivery] = []
            changed = self._trigger_or_repeat(current, now, deliveries)
            changed = self._resolve_cleared(current, settled, now, deliveries) or changed
            if changed:
                incidents.save(self._state_path, self._alerts, self._told)
            return deliveries

    def drain(self, timeout_s: float = 30.0) -> list[Delivery]:
        """Wait until no delivery is queued or in flight (or ``timeout_s`` passed); return the outcomes of the
        background deliveries finished since the last call (for tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._pending and time.monotonic() < deadline:
                self._idle.wait(min(0.05, max(deadline - time.monotonic(), 0.001)))
            done, self._finished = self._finished, []
        return done

    @property
    def pending(self) -> int:
        """Deliveries queued or in flight (always 0 for a synchronous notifier)."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        self._closing.set()
        for q in self._queues.values():
            with contextlib.suppress(queue.Full):
                q.put_nowait(None)
        for worker in self._workers:
            worker.join(timeout=1.0)  # one stuck on a host that never answers is abandoned (a daemon thread)
        self._sender.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- edges --------------------------------------------------------------------------------------------------

    def _trigger_or_repeat(self, current: dict[str, Alert], now: float, deliveries: list[Delivery]) -> bool:
        """Tell every target about the active alerts it has not heard of, or not within its cooldown (caller
        holds the lock). Returns whether the state changed."""
        changed = False
        for key, alert in current.items():
            previous = self._alerts.get(key)
            # Compared as plain JSON: numpy arrays in details make dataclass equality ambiguous.
            if previous is None or previous.as_dict() != alert.as_dict():
                changed = True
            self._alerts[key] = alert
            told = self._told.setdefault(key, {})
            for target in self._targets:
                if (key, target.name) in self._pending:
                    continue  # a delivery for this key is in flight; its outcome decides what comes next
                seen = told.get(target.name)
                if seen is None:
                    action = "trigger"
                elif now - seen.last_sent >= target.cooldown_s:
                    action = "repeat"
                else:
                    continue
                delivery = self._send(target, action, alert, seen, now)
                if delivery is not None:
                    deliveries.append(delivery)
                    changed = self._apply(target, action, alert, seen, delivery, now) or changed
        return changed

    def _resolve_cleared(
        self, current: dict[str, Alert], settled: Callable[[str], bool] | None, now: float, deliveries: list[Delivery]
    ) -> bool:
        """Resolve remembered alerts that are no longer active with every target that was told (caller holds
        the lock). Returns whether the state changed."""
        changed = False
        by_name = {t.name: t for t in self._targets}
        for key in [k for k in self._alerts if k not in current]:
            if settled is not None and not settled(key):
                continue  # not looked at since start: neither resolved nor repeated until it is
            alert = self._alerts[key]
            told = self._told.get(key, {})
            for name in list(told):
                if (key, name) in self._pending:
                    continue
                target = by_name.get(name)
                if target is None:
                    # Removed from the config while the alert was open: nothing left to send the resolve to.
                    log.warning(
                        "alert %r: target %r is no longer configured; its open alert cannot be "
                        "resolved by embguard, resolve it by hand",
                        key,
                        name,
                    )
                    del told[name]
                    changed = True
                    continue
                delivery = self._send(target, "resolve", alert, told[name], now)
                if delivery is not None:
                    deliveries.append(delivery)
                    changed = self._apply(target, "resolve", alert, told.get(name), delivery, now) or changed
            changed = self._forget_if_done(key) or changed
        return changed

    # -- background delivery ------------------------------------------------------------------------------------

    def _send(self, target: AlertTarget, action: str, alert: Alert, told: Told | None, now: float) -> Delivery | None:
        """Deliver now (synchronous) or queue for the target's thread (background; None is returned)."""
        q = self._queues.get(target.name)
        if q is None:
            return self._deliver(target, action, alert, told, now)
        try:
            q.put_nowait((action, alert, told, now))
        except queue.Full:
            # The target is far behind; this edge is not lost, the next update offers it again.
            if self._metrics is not None:
                self._metrics.sent.labels(target=target.name, action=action, outcome="dropped").inc()
            log.warning(
                "alert %r: %s to target %r not queued, its queue of %d is full (the target is slow or "
                "down); it is offered again on the next check",
                alert.key,
                action,
                target.name,
                q.maxsize,
            )
            return None
        self._pending.add((alert.key, target.name))
        return None

    def _apply(
        self, target: AlertTarget, action: str, alert: Alert, told: Told | None, delivery: Delivery, now: float
    ) -> bool:
        """Record a finished delivery (caller holds the lock). Returns whether the state changed."""
        if not delivery.ok:
            return False
        if action == "resolve":
            self._told.get(alert.key, {}).pop(target.name, None)
        else:
            self._alerts.setdefault(alert.key, alert)
            self._told.setdefault(alert.key, {})[target.name] = Told(told.first_sent if told else now, now)
        return True

    def _forget_if_done(self, key: str) -> bool:
        """Forget a key that is not active, that nobody must still hear about and that has nothing in flight."""
        if key in self._current or self._told.get(key) or any(k == key for k, _ in self._pending):
            return False
        had = key in self._alerts or key in self._told
        self._alerts.pop(key, None)
        self._told.pop(key, None)
        return had

    def _worker(self, target: AlertTarget, q: queue.Queue[Any]) -> None:
        while not self._closing.is_set():
            item = q.get()
            if item is None:
                return
            action, alert, told, now = item
            try:
                delivery = self._deliver(target, action, alert, told, now)
            except Exception as exc:  # the thread must outlive any bug in one delivery
                delivery = Delivery(
                    target=target.name,
                    key=alert.key,
                    action=action,
                    ok=False,
                    attempts=0,
                    status=None,
                    error=self._sender.redact(f"{type(exc).__name__}: {exc}"),
                )
            with self._idle:
                self._pending.discard((alert.key, target.name))
                changed = self._apply(target, action, alert, told, delivery, now)
                changed = self._forget_if_done(alert.key) or changed
                if changed:
                    incidents.save(self._state_path, self._alerts, self._told)
                self._finished.append(delivery)
                del self._finished[:-1000]  # nobody draining (the daemon) must not grow this forever
                self._idle.notify_all()

    # -- delivery -----------------------------------------------------------------------------------------------

    def _deliver(self, target: AlertTarget, action: str, alert: Alert, told: Told | None, now: float) -> Delivery:
        delivery = self._sender.deliver(target, action, alert, told, now)
        if self._metrics is not None:
            self._metrics.sent.labels(target.name, action, "ok" if delivery.ok else "failed").inc()
        return delivery
