"""Alert delivery runs off the check path: a webhook host that never answers delays neither ``update`` nor the
other targets, and a full queue drops an edge only to offer it again. Real HTTP receivers on loopback."""

from __future__ import annotations

import socket
import threading

from alert_hooks import Hook, drift_alert
from builders import wait_until
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


def test_a_host_that_never_answers_delays_neither_update_nor_the_other_targets(hook: Hook) -> None:
    silent = Silent()
    # The dead host's request must still hang while the live target is paged, even on a loaded machine.
    dead = AlertTarget(name="dead", kind="webhook", url=SecretStr(silent.url), secret=SecretStr("k"), timeout_s=8.0)
    live = AlertTarget(name="live", kind="webhook", url=SecretStr(hook.url), secret=SecretStr("k"))
    n = Notifier([dead, live], background=True, max_attempts=1, backoff_s=0.0)
    try:
        assert n.update([drift_alert()]) == []  # queued, not delivered here
        assert silent.accepted.wait(5), "the hung host was never contacted"
        wait_until(lambda: hook.of("drift:hk") == ["trigger"], 5, what="the live target's trigger")
        # update() returned and the live target was paged while the dead target's request is still hanging
        # (the live worker settles its delivery a moment after the hook has received it).
        wait_until(lambda: n.pending == 1, 5, what="the live delivery to settle while the dead one hangs")
        n.update([drift_alert()])  # the next check neither waits nor queues a second copy of the in-flight edge
        assert n.pending == 1
        done = n.drain(timeout_s=20)
    finally:
        n.close()
        silent.close()
    by_target = {d.target: d for d in done}
    assert by_target["live"].ok and by_target["live"].action == "trigger"
    assert not by_target["dead"].ok and "timed out" in by_target["dead"].error
    assert hook.of("drift:hk") == ["trigger"]


# -- item 8: no resolve before the first check ---------------------------------------------------------------------


# -- item 3: MilvusDown pages from the watch, once per outage -------------------------------------------------------
