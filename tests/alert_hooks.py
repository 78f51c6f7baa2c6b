"""A webhook receiver that records what it is sent (``Hook``; the ``hook`` fixture in conftest.py serves one per
test), the settings of a daemon paging it (``daemon_settings``), a drift alert, and a restart of a killed Milvus
server that retries while its ports are still held (``restart_server``)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from builders import wait_until

from embguard.alerts.incidents import Alert
from embguard.config import loader as config
from embguard.config.settings import Settings


class Hook:
    """A webhook receiver that records every (event, alert key) it is sent."""

    def __init__(self) -> None:
        events = self.events = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                events.append((body["event"], body["alert"]["key"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of(self, key: str) -> list[str]:
        return [e for e, k in self.events if k == key]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def drift_alert(key: str = "drift:hk") -> Alert:
    return Alert(key=key, name="EmbeddingDriftSustained", collection="hk", severity="warning", summary="drift")


def daemon_settings(tmp: Path, base: dict[str, str], url: str, **env: str) -> Settings:
    return config.load(
        None,
        environ={
            **base,
            "EMBGUARD_STATE__DIR": str(tmp / "state"),
            "EMBGUARD_COLLECTIONS": '[{name="hk"}]',
            "HOOK_URL": url,
            "EMBGUARD_ALERTS": '[{name="hook", kind="webhook", url_env="HOOK_URL"}]',
            **env,
        },
    )


def restart_server(world: Any, timeout_s: float = 120.0) -> None:
    """Start a killed server again. Right after a kill -9 the real server's ports can still be held for a while (its
    start refuses with "bind failed"): keep trying every 2 s, as an operator's restart loop would; after
    ``timeout_s`` the last refusal is raised."""
    refusals: list[RuntimeError] = []

    def started() -> bool:
        try:
            world.start()
        except RuntimeError as exc:
            refusals.append(exc)
            return False
        return True

    try:
        wait_until(started, timeout_s, interval_s=2.0, what="the Milvus server to start again")
    except AssertionError:
        raise refusals[-1] from None
