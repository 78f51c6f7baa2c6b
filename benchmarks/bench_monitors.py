"""Benchmark of the monitors package against Evidently, in one process on the same data.

    .venv/bin/python benchmarks/bench_monitors.py [--quick]

Writes benchmarks/results/monitors.md: time per check at n = 2,000 and 10,000 (d = 384) for embguard's calibrated
checks, Evidently's embedding drift methods called directly, and Evidently's Report; then detection rate versus
shift size (share of the window from a new topic) and the no-drift false-alarm rate of every method, on synthetic
unit vectors and on real all-MiniLM-L6-v2 embeddings of the stdlib corpus.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # appended: tests/ must not shadow the real packages

from monitors import (
    ClassifierDetector,
    EvidentlyDetector,
    ExactMMDDetector,
    KNNOODDetector,
    MMDDetector,
    RetrievalClusterDetector,
    SequentialDetector,
    cluster_corpus,
    top1_similarity,
)
from monitors.report import build_report

D = 384
REPORT_TIMEOUT_S = 150
torch.set_num_threads(min(2, os.cpu_count() or 1))


def unit_mixture(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float = 0.35) -> np.ndarray:
    which = rng.integers(0, len(centres), n)
    x = centres[which] + spread * rng.standard_normal((n, centres.shape[1])) / np.sqrt(centres.shape[1])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _centres() -> np.ndarray:
    c = np.random.default_rng(1234).standard_normal((33, D))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _report_child(n: int, queue: Any) -> None:
    torch.set_num_threads(2)
    rng = np.random.default_rng(5)
    c = _centres()
    ref, cur = unit_mixture(rng, n, c[:30]), unit_mixture(rng, n, c[:30])
    t = time.perf_counter()
    build_report(ref, cur)
    queue.put(time.perf_counter() - t)


def time_report(n: int) -> float | None:
    """Evidently's Report in a child process, stopped after REPORT_TIMEOUT_S (None = did not finish)."""
    # spawn, not fork: a forked child deadlocks in torch/OpenMP thread pools the parent already started.
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_report_child, args=(n, queue))
    proc.start()
    proc.join(REPORT_TIMEOUT_S)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return None
    return float(queue.get()) if not queue.empty() else None


def timing(sizes: list[int], quick: bool) -> list[tuple[int, str, float | None]]:
    rng = np.random.default_rng(0)
    c = _centres()
    rows: list[tuple[int, str, float | None]] = []
    for n in sizes:
        ref, cur = unit_mixture(rng, n, c[:30]), unit_mixture(rng, n, c[:30])
        corpus = unit_mixture(rng, 5000, c)
        labels = cluster_corpus(corpus, 20)
        _, ref_top = top1_similarity(ref, corpus)
        _, cur_top = top1_similarity(cur, corpus)
        reps = 1 if n > 5000 or quick else 3
        dets: dict[str, Any] = {
            "embguard mmd (RFF, 500 perms)": (MMDDetector().fit(ref), cur),
            "embguard classifier AUC": (ClassifierDetector().fit(ref), cur),
            "embguard kNN OOD (k=10)": (KNNOODDetector().fit(ref), cur),
            "embguard retrieval clusters (chi-square)": (
                RetrievalClusterDetector(np.arange(5000), labels).fit(ref_top),
                cur_top,
            ),
        }
        if n <= 4000:
            dets["embguard mmd exact (500 perms)"] = (ExactMMDDetector().fit(ref), cur)
        for m in ("model", "mmd", "ratio", "distance"):
            dets[f"Evidently {m} (direct)"] = (EvidentlyDetector(m).fit(ref), cur)  # type: ignore[arg-type]
        for name, (det, x) in dets.items():
            det.check(x)  # warm-up: first-call allocations and lazy imports
            t = _timed(lambda det=det, x=x: det.check(x), reps)
            rows.append((n, name, t))
            print(f"n={n} {name}: {t:.3f} s", flush=True)
        t_rep = time_report(n)
        rows.append((n, "Evidently Report (EmbeddingsDriftMetric)", t_rep))
        print(f"n={n} Evidently Report: {t_rep}", flush=True)
    return rows


def detection(kind: str, trials: int, far_trials: int, shares: list[float], n: int) -> dict[str, list[tuple[int, int]]]:
    """Per method: (detections, trials) at each share of new-topic rows; share 0 is the false-alarm rate."""
    rng = np.random.default_rng(11)
    if kind == "synthetic":
        c = _centres()
        corpus = unit_mixture(rng, 5000, c)
        corpus_ids = np.arange(5000)

        def sample(m: int, share: float) -> np.ndarray:
            k = int(round(m * share))
            return np.concatenate([unit_mixture(rng, m - k, c[:30]), unit_mixture(rng, k, c[30:])])
    else:
        from monitors_data import load_real_embeddings

        real = load_real_embeddings()
        new = np.isin(real.topics, ["tkinter", "turtle"])
        pool_a, pool_b = np.flatnonzero(~new), np.flatnonzero(new)
        corpus, corpus_ids = real.text, np.arange(len(real.text))

        def sample(m: int, share: float) -> np.ndarray:
            k = int(round(m * share))
            # Resampling with replacement from a fixed pool makes no-drift windows exactly same-distribution.
            return real.query[np.concatenate([rng.choice(pool_a, m - k), rng.choice(pool_b, k)])]

    labels = cluster_corpus(corpus, 20)
    methods: dict[str, Callable[[int], Any]] = {
        "embguard mmd (RFF)": lambda s: MMDDetector(seed=s),
        "embguard classifier AUC": lambda s: ClassifierDetector(seed=s),
        "embguard retrieval clusters": lambda s: RetrievalClusterDetector(corpus_ids, labels),
        "embguard kNN OOD rate": lambda s: KNNOODDetector(seed=s),
        "Evidently model": lambda s: EvidentlyDetector("model"),
        "Evidently mmd": lambda s: EvidentlyDetector("mmd"),
        "Evidently ratio": lambda s: EvidentlyDetector("ratio"),
        "Evidently distance": lambda s: EvidentlyDetector("distance"),
    }
    out: dict[str, list[tuple[int, int]]] = {m: [] for m in methods}
    for share in shares:
        hits = dict.fromkeys(methods, 0)
        n_trials = far_trials if share == 0 else trials
        for t in range(n_trials):
            ref, cur = sample(n, 0.0), sample(n, share)
            _, ref_top = top1_similarity(ref, corpus, corpus_ids)
            _, cur_top = top1_similarity(cur, corpus, corpus_ids)
            for name, make in methods.items():
                det = make(t)
                if "retrieval" in name:
                    hits[name] += det.fit(ref_top).check(cur_top).drift
                else:
                    hits[name] += det.fit(ref).check(cur).drift
        for name in methods:
            out[name].append((hits[name], n_trials))
        print(kind, share, hits, flush=True)
    return out


def sequential_far(references: int, windows: int, n: int) -> dict[str, tuple[float, float]]:
    """False alarms per check with a fixed reference over many consecutive no-drift windows (the daemon's case).

    Repeated for several independent references: returns (mean over references, worst reference) per rule.
    """
    rng = np.random.default_rng(21)
    c = _centres()
    names = ("single check (k=1)", "3 in a row (k=3)", f"Bonferroni over {windows} checks")
    rates: dict[str, list[float]] = {k: [] for k in names}
    for r in range(references):
        ref = unit_mixture(rng, n, c[:30])
        dets = (
            SequentialDetector(MMDDetector(n_permutations=200, seed=r), consecutive=1).fit(ref),
            SequentialDetector(MMDDetector(n_permutations=200, seed=r), consecutive=3).fit(ref),
            # Bonferroni needs p-values below 0.05 / windows: enough permutations to get there.
            SequentialDetector.bonferroni(
                MMDDetector(n_permutations=int(np.ceil(windows / 0.05)), seed=r), 0.05, windows
            ).fit(ref),
        )
        counts = [0, 0, 0]
        for _ in range(windows):
            cur = unit_mixture(rng, n, c[:30])
            for i, det in enumerate(dets):
                counts[i] += det.check(cur).drift
        for name, k in zip(names, counts, strict=True):
            rates[name].append(k / windows)
    return {k: (float(np.mean(v)), float(np.max(v))) for k, v in rates.items()}


def _ci(k: int, n: int) -> str:
    from scipy.stats import binomtest

    lo, hi = binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def write(
    path: Path,
    rows: list[tuple[int, str, float | None]],
    det: dict[str, dict[str, list[tuple[int, int]]]],
    shares: list[float],
    n_det: int,
    seq: dict[str, tuple[float, float]],
    seq_shape: tuple[int, int],
    seconds: float,
    quick: bool,
    load: tuple[float, float],
) -> None:
    lines = [
        "# monitors benchmark",
        "",
        f"Generated by `benchmarks/bench_monitors.py{' --quick' if quick else ''}` in {seconds:.0f} s; "
        f"{platform.processor() or platform.machine()}, torch threads = {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs visible, d = {D}. Evidently's Report runs in a child process and is stopped "
        f"after {REPORT_TIMEOUT_S} s. 1-minute load average at start/end: {load[0]:.1f}/{load[1]:.1f} (the "
        "machine was shared with other work, so absolute times carry noise; ratios within one run are fairer).",
        "",
        "## Time per check (median, seconds; reference already fitted)",
        "",
    ]
    sizes = sorted({r[0] for r in rows})
    lines.append(
        "| method | "
        + " | ".join(f"n = {n:,}" for n in sizes)
        + " | "
        + " | ".join(f"Report time / this (n = {n:,})" for n in sizes)
        + " |"
    )
    lines.append("|---|" + "---|" * (2 * len(sizes)))
    times = {(n, m): t for n, m, t in rows}
    report = "Evidently Report (EmbeddingsDriftMetric)"
    for m in dict.fromkeys(r[1] for r in rows):
        cells, ratios = [], []
        for n in sizes:
            t = times.get((n, m), "n/a")
            cells.append("n/a" if t == "n/a" else (f"> {REPORT_TIMEOUT_S} (stopped)" if t is None else f"{t:.3f}"))
            rep, own = times.get((n, report)), times.get((n, m))
            ratios.append(f"{rep / own:,.0f}x" if rep and own else "-")
        lines.append(f"| {m} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    lines += ["", "Ratios of embguard's calibrated MMD check to Evidently's direct methods (their time / ours):", ""]
    for n in sizes:
        ours = times.get((n, "embguard mmd (RFF, 500 perms)"))
        parts = []
        for m in ("model", "mmd", "ratio", "distance"):
            t = times.get((n, f"Evidently {m} (direct)"))
            if ours and t:
                parts.append(f"{m} {t / ours:.2f}")
        rep = times.get((n, "Evidently Report (EmbeddingsDriftMetric)"))
        parts.append(f"Report {rep / ours:,.0f}" if rep and ours else "Report n/a (stopped)")
        lines.append(f"- n = {n:,}: " + ", ".join(parts))
    for kind, table in det.items():
        lines += [
            "",
            f"## Detection rate vs shift ({kind}, n = {n_det:,} per window, fresh reference per trial)",
            "",
            "Share = fraction of the current window drawn from a topic absent from the reference "
            f"({'3 held-out synthetic topics' if kind == 'synthetic' else 'tkinter + turtle queries'}). "
            "Share 0 is the false-alarm rate (calibrated tests at alpha = 0.05; Evidently at its fixed "
            "thresholds). "
            "Cells: rate [95% Clopper-Pearson interval].",
            "",
        ]
        lines.append("| method | " + " | ".join(f"share {s:g}" for s in shares) + " |")
        lines.append("|---|" + "---|" * len(shares))
        for m, cells in table.items():
            lines.append(f"| {m} | " + " | ".join(_ci(k, t) for k, t in cells) + " |")
    refs, wins = seq_shape
    lines += [
        "",
        f"## Sequential alarms: {refs} fixed references x {wins} consecutive no-drift windows each "
        "(synthetic, n = 500, MMD at alpha = 0.05)",
        "",
        "| rule | false alarms per check, mean over references | worst reference |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {m:.4f} | {w:.4f} |" for k, (m, w) in seq.items()]
    lines += [
        "",
        "Averaged over references, a single check false-alarms at about alpha; for one given reference the "
        "rate can be well above or below alpha, because every window is compared with the same sample. "
        "'3 in a row' is bounded by alpha on average over references (alpha^3 = 0.000125 only for independent "
        "windows); Bonferroni bounds P(any false alarm within the horizon) by 0.05 for any dependence.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


MMD_SECTION = "## RFF-MMD at 10,000 x 10,000 (time and memory)"


def _mmd_child(n: int, repeats: int, queue: Any) -> None:
    import resource

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rng = np.random.default_rng(0)
    c = _centres()
    ref, cur = unit_mixture(rng, n, c[:30]), unit_mixture(rng, n, c[:30])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    det = MMDDetector().fit(ref)
    det.check(cur)  # warm-up
    t = _timed(lambda: det.check(cur), repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((t, (peak - base) / 1024, peak / 1024))


def mmd_scaling(path: Path, n: int = 10_000, repeats: int = 5) -> str:
    """Median check time and peak memory of the default MMD at n x n, in a fresh process; replaces its section."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_mmd_child, args=(n, repeats, queue))
    load = os.getloadavg()[0]
    proc.start()
    t, grow_mb, peak_mb = queue.get()
    proc.join()
    lines = [
        MMD_SECTION,
        "",
        f"`benchmarks/bench_monitors.py --mmd-only`: `MMDDetector()` (1,024 random features, 500 permutations), "
        f"reference already fitted, d = {D}, torch threads = {min(2, os.cpu_count() or 1)}, median of "
        f"{repeats} checks; 1-minute load {load:.1f} at start (shared machine). The features are quantised to "
        "int8 and all permutations are one exact integer product (int8 x int8 -> int32), so the p-value is exact.",
        "",
        "| n | time per check (s) | peak RSS growth over the process before fit (MB) | peak RSS (MB) |",
        "|---|---|---|---|",
        f"| {n:,} | {t:.3f} | {grow_mb:.0f} | {peak_mb:.0f} |",
        "",
    ]
    section = "\n".join(lines)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if MMD_SECTION in text:
        head, _, rest = text.partition(MMD_SECTION)
        tail = rest.split("\n## ", 1)
        text = head + section + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
    return section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials and n = 2,000 timing only")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "monitors.md")
    ap.add_argument("--mmd-only", action="store_true", help="only the RFF-MMD 10k x 10k time/memory section")
    args = ap.parse_args()
    if args.mmd_only:
        print(mmd_scaling(args.out))
        return
    start = time.perf_counter()
    load_start = os.getloadavg()[0]
    rows = timing([2000] if args.quick else [2000, 10000], args.quick)
    trials, far_trials = (8, 20) if args.quick else (25, 100)
    shares = [0.0, 0.02, 0.05, 0.1, 0.2]
    n_det = 1000
    det = {kind: detection(kind, trials, far_trials, shares, n_det) for kind in ("synthetic", "real text")}
    seq_shape = (3, 30) if args.quick else (10, 100)
    seq = sequential_far(*seq_shape, 500)
    load = (load_start, os.getloadavg()[0])
    write(args.out, rows, det, shares, n_det, seq, seq_shape, time.perf_counter() - start, args.quick, load)
    if not args.quick:
        mmd_scaling(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
