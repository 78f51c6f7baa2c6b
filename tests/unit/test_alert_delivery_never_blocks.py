"""Alert delivery runs off the check path: a webhook host that never answers delays neither ``update`` nor the
other targets, and a full queue drops an edge only to offer it again. Real HTTP receivers on loopback."""

from __future__ import annotations

import socket
import threading

from alert_hooks import Hook, drift_alert
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from embguard.alerts.notifier import Notifier
from embguard.config.alert_targets import AlertTarget


class Silent:
    """A TCP listener that accepts connections and never answers (a hung webhook host)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


# -- item 9: delivery off the check path ---------------------------------------------------------------------------


def test_a_full_queue_drops_the_edge_and_offers_it_again_on_the_next_update(hook: Hook) -> None:
    silent = Silent()
    dead = AlertTarget(name="dead", kind="webhook", url=SecretStr(silent.url), secret=SecretStr("k"), timeout_s=0.5)
    registry = CollectorRegistry()
    n = Notifier([dead], background=True, max_attempts=1, backoff_s=0.0, queue_size=1, registry=registry)
    try:
        n.update([drift_alert("a")])
        assert silent.accepted.wait(5)  # "a" is in flight, the queue is empty again
        n.update([drift_alert("a"), drift_alert("b"), drift_alert("c")])  # "b" fills the queue of 1, "c" is dropped
        dropped = registry.get_sample_value(
            "embguard_alerts_sent_total", {"target": "dead", "action": "trigger", "outcome": "dropped"}
        )
        assert dropped == 1.0
        done = n.drain(timeout_s=10)
        assert sorted(d.key for d in done) == ["a", "b"] and not any(d.ok for d in done)
        n.update(
            [drift_alert("a"), drift_alert("b"), drift_alert("c")]
        )  # failed and dropped edges are all offered again
        assert {d.key for d in n.drain(timeout_s=10)} <= {"a", "b", "c"}
    finally:
        n.close()
        silent.close()


# -- item 8: no resolve before the first check ---------------------------------------------------------------------


# -- item 3: MilvusDown pages from the watch, once per outage -------------------------------------------------------
