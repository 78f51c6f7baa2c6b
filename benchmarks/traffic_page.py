"""The shipped page against the previous one on the traffic benchmark, at the shipped schedule and defaults.

    .venv/bin/python benchmarks/traffic_page.py [--quick]

Traffic, reference and schedule as ``traffic_grid.py``'s shipped row (hour windows checked hourly, 2 in a row,
alpha 0.01, a day's reference, deduplicated windows): seasonal, bursty no-drift traffic (seeds 0 and 1, days 2-8
evaluated) and sudden new-topic shifts (seeds 100.., onset at a random minute of a seed's hour on day 2). One run
of the real ``CollectionMonitor`` per check gives both decisions: the shipped page (``drift.page``, one shared
permutation null) and the previous one (Holm over mmd, retrieval, ood and top1, whose p-values the same check
reports). Writes benchmarks/results/traffic_page.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from traffic import COMBINED, DAY, HOUR, DriftSettings, Traffic, load_corpus, pages, sustained_at
from traffic_grid import Monitors, onset_of

from monitors.combine import holm_adjusted

ALPHA, K, INTERVAL = 0.01, 2, 3600
OUT = Path(__file__).resolve().parent / "results" / "traffic_page.md"
HOLM = ("mmd", "retrieval", "ood", "top1")


def decisions(row: dict[str, float | None]) -> dict[str, float]:
    holm = {m: float(row[f"p:{m}"]) for m in HOLM if row.get(f"p:{m}") is not None}  # type: ignore[arg-type]
    return {"shared null": float(row[f"p:{COMBINED}"] or 1.0), "Holm": min(holm_adjusted(holm).values())}


def series(mon: Monitors, corpus, traffic: Traffic, t0: float, t1: float) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    return [decisions(mon.check(corpus, traffic, float(t))) for t in np.arange(t0, t1, INTERVAL)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    drift = DriftSettings(alpha=ALPHA).model_copy(update={"dedup_queries": True})
    corpus = load_corpus()
    days, shift_seeds = (2, 3) if args.quick else (7, 16)
    lines = []
    week: dict[str, list[float]] = {"shared null": [], "Holm": []}
    rejected: dict[str, list[float]] = {"shared null": [], "Holm": []}
    for seed in (0, 1):
        traffic = Traffic(corpus, seed)
        mon = Monitors(corpus, traffic, drift, "day", 3600)
        rows = series(mon, corpus, traffic, 2 * DAY, (2 + days) * DAY)
        for d in week:
            p = [r[d] for r in rows]
            week[d].append(pages(sustained_at(p, ALPHA, K)) * 7 / days)
            rejected[d].append(float(np.mean([v <= ALPHA for v in p])))
        print(f"no-drift seed {seed}: {week} {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    lines.append("## False pages per simulated week (no drift)\n")
    lines.append("| decision | seed 0 | seed 1 | windows rejected |")
    lines.append("|---|---|---|---|")
    for d in week:
        lines.append(f"| {d} | {week[d][0]:.1f} | {week[d][1]:.1f} | {np.mean(rejected[d]):.3f} |")

    lines.append("\n## New topic family, sudden: runs paged within 3 check intervals of the onset\n")
    lines.append("| decision | s = 0.05 | s = 0.2 | s = 0.5 |")
    lines.append("|---|---|---|---|")
    within: dict[str, dict[float, int]] = {d: {} for d in week}
    for seed in range(shift_seeds):
        base, onset = onset_of(seed)
        for share in (0.05, 0.2, 0.5):
            traffic = Traffic(corpus, 100 + seed, shift_start=onset, shift_share=share)
            mon = Monitors(corpus, traffic, drift, "day", 3600)
            times = np.arange(base - HOUR, base + 6 * HOUR, INTERVAL)
            rows = series(mon, corpus, traffic, times[0], times[-1] + 1)
            for d in week:
                flags = sustained_at([r[d] for r in rows], ALPHA, K)
                hit = any(f and t > onset and t - onset <= 3 * INTERVAL for t, f in zip(times, flags, strict=True))
                within[d][share] = within[d].get(share, 0) + hit
        print(f"shift seed {seed}: {within} {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    for d in week:
        lines.append(f"| {d} | " + " | ".join(f"{within[d][s]}/{shift_seeds}" for s in (0.05, 0.2, 0.5)) + " |")
    OUT.write_text(
        "# Traffic benchmark: the shared-null page against Holm at the shipped schedule\n\n"
        f"Written by `benchmarks/traffic_page.py{' --quick' if args.quick else ''}`: hour windows checked hourly, "
        f"{K} in a row, alpha {ALPHA}, a day's reference, deduplicated windows; real stdlib-docs queries "
        f"(traffic.py's simulator: daily topic-mix cycle, Zipf head, bursts). {days} evaluation days per no-drift "
        f"seed, {shift_seeds} shift seeds. The shared null is over drift.page = {', '.join(drift.page)}; Holm over "
        f"{', '.join(HOLM)} (the previous page), both from the same checks.\n\n" + "\n".join(lines) + "\n\n"
        f"Host: {platform.machine()}, {os.cpu_count()} cores; wall {time.perf_counter() - start:.0f} s.\n"
    )


if __name__ == "__main__":
    main()
