"""`embguard serve` with a read-only state directory keeps serving, says so on /metrics and /readyz, and recovers
once the directory is writable again.

A real `embguard serve` subprocess, its state directory made immutable (even for root) with chattr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builders import settings_env, wait_until
from daemon_world import daemon_env, http_get, read_only

# --- helpers ---------------------------------------------------------------------------------------------------


# --- item 3: a restart during sustained drift continues the incident ---------------------------------------


# --- item 4: a skipped check is no evidence ----------------------------------------------------------------------


# --- item 9: an unwritable state directory ------------------------------------------------------------------------


def test_serve_with_a_read_only_state_dir_keeps_serving(tmp_path: Path) -> None:
    env = {**os.environ, **settings_env(tmp_path, None, **daemon_env(tmp_path))}
    state = Path(env["EMBGUARD_STATE__DIR"])
    url = f"http://127.0.0.1:{env['EMBGUARD_METRICS__PORT']}"
    log = tmp_path / "serve.log"
    with read_only(state), open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "embguard.cli", "serve"], env=env, stdout=out, stderr=out)
        try:

            def scraped() -> bytes:
                try:
                    return http_get(url + "/metrics", timeout=2)[2]
                except OSError:
                    return b""

            text = wait_until(scraped, 60, interval_s=0.2, what="the daemon's /metrics").decode()
            assert "embguard_state_writable 0.0" in text
            assert json.loads(http_get(url + "/readyz")[2])["status"] == "unavailable"
            assert proc.poll() is None
        except BaseException:
            proc.kill()
            raise
    try:
        wait_until(
            lambda: b"embguard_state_writable 1.0" in http_get(url + "/metrics")[2], 30, interval_s=0.2, what="recovery"
        )
        assert proc.poll() is None
        wait_until(
            lambda: (state / "daemon.pid").exists(), 10, interval_s=0.2, what="the pid file written once writable"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    text = log.read_text()
    assert "Traceback" not in text, text
    assert text.count("is not writable") == 1 and "EPERM" in text, text


# --- item 10: /metrics under a burst of scrapes --------------------------------------------------------------------


# --- series initialised at start, swap events --------------------------------------------------------------------


# --- the reconnect back-off ---------------------------------------------------------------------------------------


# --- embguard check and embguard status -------------------------------------------------------------------------


# -- against Milvus (both backends) ------------------------------------------------------------------------------
