"""The swap lock is atomic: racing takeovers of a stale lock never give two holders (threads), and a second
approve is refused naming the holder until a killed holder frees the lock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from embguard.errors import SwapLocked
from embguard.swap.state import SwapStore


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stale_lock(store: SwapStore, alias: str, pid: int) -> None:
    """What a swap killed with -9 leaves behind: a lock file naming a dead pid (rewritten before every trial,
    so each trial races a takeover; the old O_EXCL+unlink takeover gave 37 double holders in 1,000 here)."""
    store.locks.mkdir(parents=True, exist_ok=True)
    (store.locks / f"swap-{alias}.lock").write_text(
        f'{{"pid": {pid}, "host": "{socket.gethostname()}", "what": "killed", "since": 0}}'
    )


def test_racing_takeovers_of_a_stale_lock_never_give_two_holders_threads(tmp_path: Path) -> None:
    store = SwapStore(tmp_path)
    dead = _dead_pid()
    trials, doubles, nobody = 1000, 0, 0
    for i in range(trials):
        _stale_lock(store, "kb", dead)
        barrier = threading.Barrier(2)
        guard = threading.Lock()
        holders = [0, 0]  # now, most at once
        got = [0]

        def rerun(
            barrier: threading.Barrier, i: int, guard: threading.Lock, holders: list[int], got: list[int]
        ) -> None:
            barrier.wait()
            try:
                with store.lock("kb", f"rerun {i}"):
                    with guard:
                        holders[0] += 1
                        holders[1] = max(holders[1], holders[0])
                        got[0] += 1
                    time.sleep(0.0002)  # on purpose: hold the lock a moment, widening the race
                    with guard:
                        holders[0] -= 1
            except SwapLocked:
                pass

        threads = [threading.Thread(target=rerun, args=(barrier, i, guard, holders, got)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        doubles += holders[1] > 1
        nobody += got[0] == 0
    assert (doubles, nobody) == (0, 0)


def test_a_second_approve_is_refused_naming_the_holder_and_a_killed_holder_frees_the_lock(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from embguard.swap.state import SwapStore\n"
            f"with SwapStore({str(tmp_path)!r}).lock('kb', 'retrain --approve --candidate v0002'):\n"
            "    print('held', flush=True); time.sleep(60)",  # on purpose: the holder holds until killed
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        store = SwapStore(tmp_path)
        with pytest.raises(SwapLocked, match=rf"pid {holder.pid} on .*retrain --approve --candidate v0002"):
            with store.lock("kb", "retrain --approve --candidate v0002"):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        with store.lock("kb", "rerun after kill -9"):  # the kernel released it with the process
            assert (store.locks / "swap-kb.lock").read_text().count(str(os.getpid())) == 1
    finally:
        holder.kill()
        holder.wait()
