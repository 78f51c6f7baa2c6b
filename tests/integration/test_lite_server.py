"""The Lite server lifecycle, for real: start, refuse a second server, stop, restart with the data intact."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from embguard.errors import LiteServerError, MilvusUnavailable
from embguard.milvus.lite import LiteServer, free_port
from embguard.milvus.milvus import Milvus

pytestmark = pytest.mark.integration


def test_lifecycle_and_data_survives_restart(tmp_path: Path, settings_for) -> None:
    settings = settings_for(EMBGUARD_COLLECTIONS='[{name="docs", index_type="FLAT"}]')
    server = LiteServer.from_settings(settings)
    assert not server.status().running

    status = server.start()
    assert status.running and status.uri == settings.milvus_uri
    assert server.pid_file.is_file()

    with pytest.raises(LiteServerError, match=r"already serves .* use it, or run `embguard lite stop` first"):
        server.start()
    # Another state dir (another config) on the same data dir: refused by the data dir's lock.
    other = LiteServer(settings.lite.data_dir, "127.0.0.1", free_port(), tmp_path / "other-state")
    with pytest.raises(LiteServerError, match="is locked by another process"):
        other.start()

    m = Milvus.connect(settings)
    m.create_collection(settings.collection("docs"), 4)
    m.insert("docs", [{"id": i, "vector": [float(i), 1.0, 0.0, 0.0], "text": f"doc {i}"} for i in range(50)])
    m.close()

    stopped = server.stop()
    assert not stopped.running and not server.pid_file.exists()
    with pytest.raises(MilvusUnavailable, match=rf"cannot reach Milvus at {settings.milvus_uri}.*embguard lite start"):
        Milvus.connect(settings)
    assert server.stop().running is False  # stopping twice is fine

    server.start()
    try:
        m = Milvus.connect(settings)
        assert m.count("docs") == 50
        assert m.query("docs", ids=[7], output_fields=["text"])[0]["text"] == "doc 7"
        m.close()
    finally:
        server.stop()


def test_port_in_use_is_refused(settings_for) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = LiteServer.from_settings(settings_for(port=port))
        with pytest.raises(LiteServerError, match=rf"port {port} on 127.0.0.1 is already in use; set lite.port"):
            server.start()
    assert not server.data_dir.exists() or not server.status().running


def test_stale_pid_file_after_kill_9_is_recovered(settings_for) -> None:
    settings = settings_for(EMBGUARD_COLLECTIONS='[{name="docs", index_type="FLAT"}]')
    server = LiteServer.from_settings(settings)
    pid = server.start().pid
    assert pid is not None
    m = Milvus.connect(settings)
    m.create_collection(settings.collection("docs"), 2)
    m.insert("docs", [{"id": 1, "vector": [1.0, 0.0], "text": "acknowledged before the crash"}])
    m.close()
    os.kill(pid, signal.SIGKILL)
    while server.status().running:  # status() reaps the server: this process started it
        pass
    assert not server.status().running  # pid file still there, server gone
    server.start()
    try:
        m = Milvus.connect(settings)
        assert m.query("docs", ids=[1], output_fields=["text"])[0]["text"] == "acknowledged before the crash"
        m.close()
    finally:
        server.stop()
