"""False pages per simulated week and detection delay on realistic query traffic, at the daemon's defaults.

    .venv/bin/python benchmarks/traffic.py [--quick] [--days N]

Traffic: real queries (docstring summaries of the stdlib corpus, all-MiniLM-L6-v2, top-10 hits and scores from
the full corpus, as the tap records them). Topics are grouped into families (k-means of topic centroids); one
family is held out as the "new topic". The known families' mix follows a daily cycle; a Zipf-weighted head of
popular queries takes a share of the traffic, and bursts repeat one query many times within an hour (a bot, a
retry loop). Shifts: a new family at 5-50% of traffic, sudden or ramped over hours.

Schedule: the daemon's defaults (a window of the last ``sampling.window_s`` of tapped queries, a check every
``schedule.check_interval_s``, ``drift.alpha``, ``drift.consecutive``, ``drift.monitors``), through the real
``embguard.checks.monitor.CollectionMonitor``. A page is a rising edge of a sustained alarm (Alertmanager fires once per
episode). Reference variants: one hour (what `baseline capture` takes by default), a full day, a full day with
duplicate queries removed from every window, and a full day plus an empirical null: a second reference day
checked at the daemon's cadence sets the combined p-value threshold. Evidently's methods run on the same windows
against the day reference with the same consecutive rule (their own fixed thresholds).

Writes benchmarks/results/traffic.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # appended: tests/ must not shadow the real packages

from embguard.checks.monitor import CollectionMonitor
from embguard.checks.reports import COMBINED
from embguard.checks.windows import Window
from embguard.config.settings import DriftSettings, SamplingSettings, ScheduleSettings

HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class Corpus:
    """Real query/passage embeddings with each query's top-10 hits, grouped into topic families."""

    ids: np.ndarray
    query: np.ndarray
    text: np.ndarray
    top: np.ndarray  # (queries, 10) row indices of the best passages
    scores: np.ndarray  # (queries, 10) their cosine similarities
    family: np.ndarray  # family of each query


def load_corpus(n_families: int = 12) -> Corpus:
    from monitors_data import load_real_embeddings
    from sklearn.cluster import KMeans

    real = load_real_embeddings()
    topics = np.array(sorted(set(real.topics.tolist())))
    cent = np.stack([real.query[real.topics == t].mean(0) for t in topics])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    families = KMeans(n_families, n_init=5, random_state=0).fit_predict(cent).tolist()
    fam_of_topic = dict(zip(topics.tolist(), families, strict=True))
    sims = real.query @ real.text.T
    top = np.argsort(-sims, axis=1)[:, :10]
    return Corpus(
        real.ids,
        real.query,
        real.text,
        top,
        np.take_along_axis(sims, top, axis=1),
        np.array([fam_of_topic[t] for t in real.topics.tolist()]),
    )


@dataclass
class Traffic:
    """A seeded query stream: ``queries(t0, t1)`` returns (timestamps, query rows) tapped in ``[t0, t1)``."""

    corpus: Corpus
    seed: int
    rate_per_hour: float = 200.0  # tapped queries an hour (sampling.query_rate x searches)
    head_share: float = 0.3
    head_size: int = 40
    season_amplitude: float = 0.7
    burst_per_hour: float = 0.1
    burst_size: int = 25
    new_family: int = -1
    shift_start: float = float("inf")
    shift_share: float = 0.0
    ramp_s: float = 0.0
    _cache: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        sizes = np.bincount(self.corpus.family)
        if self.new_family < 0:
            eligible = [f for f in range(len(sizes)) if 0.03 <= sizes[f] / sizes.sum() <= 0.2]
            self.new_family = int(eligible[self.seed % len(eligible)])
        self.known = [f for f in range(len(sizes)) if f != self.new_family and sizes[f] > 0]
        self.pools = {f: np.flatnonzero(self.corpus.family == f) for f in range(len(sizes))}
        self.phase = rng.uniform(0, 2 * np.pi, len(sizes))
        known_rows = np.concatenate([self.pools[f] for f in self.known])
        self.head = rng.choice(known_rows, self.head_size, replace=False)
        w = 1.0 / np.arange(1, self.head_size + 1) ** 1.1
        self.head_w = w / w.sum()

    def share_new(self, t: float) -> float:
        if t < self.shift_start:
            return 0.0
        if self.ramp_s > 0:
            return self.shift_share * min(1.0, (t - self.shift_start) / self.ramp_s)
        return self.shift_share

    def _hour(self, h: int) -> tuple[np.ndarray, np.ndarray]:
        if h in self._cache:
            return self._cache[h]
        rng = np.random.default_rng([self.seed, h])
        n = rng.poisson(self.rate_per_hour)
        ts = np.sort(h * HOUR + rng.uniform(0, HOUR, n))
        hour_of_day = (h % 24) / 24
        sizes = np.array([len(self.pools[f]) for f in self.known], dtype=float)
        mix = sizes * (1 + self.season_amplitude * np.sin(2 * np.pi * hour_of_day + self.phase[self.known]))
        mix /= mix.sum()
        rows = np.empty(n, dtype=np.int64)
        for i, t in enumerate(ts):
            u = rng.uniform()
            if u < self.share_new(t):
                rows[i] = rng.choice(self.pools[self.new_family])
            elif rng.uniform() < self.head_share:
                rows[i] = self.head[rng.choice(self.head_size, p=self.head_w)]
            else:
                rows[i] = rng.choice(self.pools[self.known[rng.choice(len(self.known), p=mix)]])
        if rng.uniform() < self.burst_per_hour:
            start = rng.uniform(0, HOUR - 600)
            burst_ts = h * HOUR + start + np.sort(rng.uniform(0, 600, self.burst_size))
            burst_row = rows[rng.integers(n)] if n else self.head[0]
            ts = np.concatenate([ts, burst_ts])
            rows = np.concatenate([rows, np.full(self.burst_size, burst_row)])
            order = np.argsort(ts, kind="stable")
            ts, rows = ts[order], rows[order]
        self._cache[h] = (ts, rows)
        return ts, rows

    def queries(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        parts = [self._hour(h) for h in range(int(t0 // HOUR), int(np.ceil(t1 / HOUR)))]
        ts = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        keep = (ts >= t0) & (ts < t1)
        return ts[keep], rows[keep]


def window(
    corpus: Corpus,
    rows: np.ndarray,
    dedup: bool = False,
    cap: int | None = None,
    seed: int = 0,
    ts: np.ndarray | None = None,
) -> Window:
    ts = np.zeros(len(rows)) if ts is None else ts
    if dedup:
        rows, first = np.unique(rows, return_index=True)  # one row per distinct query text in the window
        ts = ts[first]
    if cap is not None and len(rows) > cap:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), cap, replace=False))
        rows, ts = rows[pick], ts[pick]
    ids = corpus.ids
    return Window(
        kind="queries",
        collection="docs",
        model_id="m",
        start_ms=0,
        end_ms=1,
        ids=tuple(range(len(rows))),
        vectors=corpus.query[rows],
        timestamps_ms=(np.asarray(ts) * 1000).astype(np.int64),
        top_ids=tuple(tuple(int(ids[j]) for j in corpus.top[r]) for r in rows),
        top_scores=corpus.scores[rows],
    )


def dedup_by_window(traffic: Traffic, t0: float, t1: float, window_s: int) -> np.ndarray:
    """The reference span cut into window-long pieces, each deduplicated as a checked window is.

    Deduplicating the whole span instead would leave each head query once a day in the reference but once an
    hour in every window, a guaranteed false alarm.
    """
    parts = [np.unique(traffic.queries(t, t + window_s)[1]) for t in np.arange(t0, t1, window_s)]
    return np.concatenate(parts)


def make_monitor(
    corpus: Corpus, drift: DriftSettings, reference: Window, doc_sample: int, window_s: int = HOUR
) -> CollectionMonitor:
    sample = np.random.default_rng(0).choice(len(corpus.ids), min(doc_sample, len(corpus.ids)), replace=False)
    docs = Window(
        kind="documents",
        collection="docs",
        model_id="m",
        start_ms=0,
        end_ms=1,
        ids=tuple(int(i) for i in corpus.ids[sample]),
        vectors=corpus.text[sample],
        timestamps_ms=np.zeros(len(sample)),
    )
    by_id = dict(zip(corpus.ids.tolist(), corpus.text, strict=True))
    return CollectionMonitor(
        "docs", drift, reference, 1, corpus=docs, lookup=lambda ids: {i: by_id[i] for i in ids}, window_s=window_s
    )


def run_checks(
    mon: CollectionMonitor, traffic: Traffic, t0: float, t1: float, window_s: int, interval_s: int, dedup: bool = False
) -> list[dict[str, float | None]]:
    """p-values and sustained flags of every check in ``[t0, t1)``: one dict per check."""
    out = []
    for t in np.arange(t0, t1, interval_s):
        _, rows = traffic.queries(t - window_s, t)
        report = mon.check(window(traffic.corpus, rows, dedup), "docs")
        row: dict[str, float | None] = {"t": float(t), "n": float(len(rows))}
        for o in report.outcomes:
            row[f"p:{o.monitor}"] = o.p_value
            row[f"s:{o.monitor}"] = float(o.sustained)
            row[f"d:{o.monitor}"] = float(o.drift)
        out.append(row)
    return out


def pages(flags: list[bool]) -> int:
    """Rising edges: Alertmanager sends one page per alarm episode."""
    return sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))


def sustained_at(p: list[float | None], threshold: float, k: int) -> list[bool]:
    run, out = 0, []
    for v in p:
        run = run + 1 if v is not None and v <= threshold else 0
        out.append(run >= k)
    return out


PEERS = ("model", "mmd", "ratio", "distance")


class Peers:
    """Evidently's embedding drift methods against one reference, each with the consecutive rule on its flags."""

    def __init__(self, reference: Window, consecutive: int, methods: tuple[str, ...] = PEERS) -> None:
        import monitors

        self.detectors = {
            m: monitors.SequentialDetector(
                monitors.EvidentlyDetector(m), consecutive=consecutive, fixed_threshold=True
            ).fit(reference.vectors)
            for m in methods
        }

    def check(self, w: Window) -> dict[str, bool]:
        return {f"evidently_{m}": bool(d.check(w.vectors).drift) for m, d in self.detectors.items()}


def run_peers(
    peers: Peers, traffic: Traffic, t0: float, t1: float, window_s: int, interval_s: int, dedup: bool = False
) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {}
    for t in np.arange(t0, t1, interval_s):
        _, rows = traffic.queries(t - window_s, t)
        for name, flag in peers.check(window(traffic.corpus, rows, dedup)).items():
            out.setdefault(name, []).append(flag)
    return out


def empirical_threshold(null_p: list[float | None], alpha: float) -> float:
    """The combined p-value threshold whose per-check rejection rate on the reference's own windows is alpha."""
    p = np.sort([v for v in null_p if v is not None])
    return float(min(alpha, np.quantile(p, alpha))) if len(p) else alpha


def delay(flags: list[bool], onset_index: int) -> int | None:
    """Checks from the shift's onset to the first page (None: never paged in the run)."""
    for i in range(onset_index, len(flags)):
        if flags[i]:
            return i - onset_index
    return None


VARIANTS = (
    "hour reference",
    "day reference",
    "day reference, deduplicated windows",
    "day reference + empirical null",
    "day reference, deduplicated + empirical null",
)


def no_drift(
    corpus: Corpus,
    drift: DriftSettings,
    window_s: int,
    interval_s: int,
    days: float,
    ref_cap: int,
    doc_sample: int,
    seed: int,
    with_peers: bool,
) -> dict[str, Any]:
    """Day 0: reference; day 1: the reference's own null windows; days 2..: evaluation. Pages per variant."""
    traffic = Traffic(corpus, seed)
    t_eval, t_end = 2 * DAY, 2 * DAY + days * DAY
    ts0, day0 = traffic.queries(0, DAY)
    _, hour0 = traffic.queries(10 * HOUR, 11 * HOUR)
    refs = {
        "hour reference": window(corpus, hour0),
        "day reference": window(corpus, day0, cap=ref_cap, seed=seed),
        # The daemon's drift.dedup_queries: the day is deduplicated window-long piece by piece.
        "day reference, deduplicated windows": window(corpus, day0, seed=seed, ts=ts0),
    }
    runs: dict[str, list[dict[str, float | None]]] = {}
    taus: dict[str, float] = {}
    for name, ref in refs.items():
        dedup = "deduplicated" in name
        settings = drift.model_copy(update={"dedup_queries": dedup})
        mon = make_monitor(corpus, settings, ref, doc_sample, window_s)
        if name != "hour reference":
            null = run_checks(mon, traffic, DAY, 2 * DAY, window_s, interval_s)
            taus[name] = empirical_threshold([r[f"p:{COMBINED}"] for r in null], drift.alpha)
        runs[name] = run_checks(mon, traffic, t_eval, t_end, window_s, interval_s)
    tau = taus["day reference"]
    k = drift.consecutive
    per_week = 7 / days
    out: dict[str, Any] = {
        "tau": tau,
        "checks": len(runs["day reference"]),
        "per_week": per_week,
        "mean_window": float(np.mean([r["n"] for r in runs["day reference"]])),
        "rows": {},
    }
    monitors_ = [m for m in (*drift.monitors, COMBINED) if f"s:{m}" in runs["day reference"][0]]
    for name, rows in runs.items():
        out["rows"][name] = {m: pages([bool(r[f"s:{m}"]) for r in rows]) * per_week for m in monitors_}
        out["rows"][name]["window rejections"] = float(np.mean([bool(r[f"d:{COMBINED}"]) for r in rows]))
    for base, name in (
        ("day reference", "day reference + empirical null"),
        ("day reference, deduplicated windows", "day reference, deduplicated + empirical null"),
    ):
        rows, t = runs[base], taus[base]
        emp = sustained_at([r[f"p:{COMBINED}"] for r in rows], t, k)
        out["rows"][name] = {
            COMBINED: pages(emp) * per_week,
            "window rejections": float(np.mean([(r[f"p:{COMBINED}"] or 1) <= t for r in rows])),
        }
    out["tau_dedup"] = taus["day reference, deduplicated windows"]
    if with_peers:
        peers = Peers(refs["day reference"], k)
        flags = run_peers(peers, traffic, t_eval, t_end, window_s, interval_s)
        out["peers"] = {m: pages(f) * per_week for m, f in flags.items()}
    return out


def shifts(
    corpus: Corpus,
    drift: DriftSettings,
    window_s: int,
    interval_s: int,
    sizes: list[float],
    seeds: int,
    ref_cap: int,
    doc_sample: int,
    tau: float,
    before: int,
    after: int,
    ramp_s: float,
    peers: tuple[str, ...],
) -> dict[tuple[str, float], list[int | None]]:
    """Delay (checks after onset) to the first page, per (method, share), over seeds (one family held out each)."""
    k = drift.consecutive
    out: dict[tuple[str, float], list[int | None]] = {}
    for seed in range(seeds):
        base = Traffic(corpus, 100 + seed)
        ts0, day0 = base.queries(0, DAY)
        # The daemon deduplicates (drift.dedup_queries); the peers get the same deduplicated inputs.
        mon = make_monitor(
            corpus, drift.model_copy(update={"dedup_queries": True}), window(corpus, day0, ts=ts0), doc_sample, window_s
        )
        peer_ref = window(corpus, dedup_by_window(base, 0, DAY, window_s), cap=ref_cap, seed=seed)
        peer = Peers(peer_ref, k, peers) if peers else None
        for share in sizes:
            onset = 2 * DAY + (7 + 5 * seed) * HOUR
            traffic = Traffic(corpus, 100 + seed, shift_start=onset, shift_share=share, ramp_s=ramp_s)
            mon.reset()  # fresh consecutive counters for each run
            t0 = onset - before * interval_s
            rows = run_checks(mon, traffic, t0, onset + after * interval_s, window_s, interval_s)
            p = [r[f"p:{COMBINED}"] for r in rows]
            out.setdefault(("combined (alpha)", share), []).append(delay(sustained_at(p, drift.alpha, k), before))
            out.setdefault(("combined (empirical null)", share), []).append(delay(sustained_at(p, tau, k), before))
            for m in drift.monitors:
                if f"s:{m}" in rows[0]:
                    out.setdefault((m, share), []).append(delay([bool(r[f"s:{m}"]) for r in rows], before))
            if peer is not None:
                for d in peer.detectors.values():
                    d.reset()
                for name, f in run_peers(
                    peer, traffic, t0, onset + after * interval_s, window_s, interval_s, dedup=True
                ).items():
                    out.setdefault((name, share), []).append(delay(f, before))
    return out


def quiet_dedup(
    corpus: Corpus, drift: DriftSettings, window_s: int, interval_s: int, days: float, doc_sample: int, seed: int
) -> dict[str, float]:
    """A longer no-drift run of the default (deduplicating) daemon only: pages per monitor over ``days``."""
    traffic = Traffic(corpus, seed)
    ts0, day0 = traffic.queries(0, DAY)
    mon = make_monitor(
        corpus, drift.model_copy(update={"dedup_queries": True}), window(corpus, day0, ts=ts0), doc_sample, window_s
    )
    # Day 1 is the reference's own null (its combined p-values set tau); days 2.. are the evaluation.
    null = run_checks(mon, traffic, DAY, 2 * DAY, window_s, interval_s)
    tau = empirical_threshold([r[f"p:{COMBINED}"] for r in null], drift.alpha)
    rows = run_checks(mon, traffic, 2 * DAY, 2 * DAY + days * DAY, window_s, interval_s)
    out = {
        m: float(pages([bool(r[f"s:{m}"]) for r in rows])) for m in (*drift.monitors, COMBINED) if f"s:{m}" in rows[0]
    }
    p = [r[f"p:{COMBINED}"] for r in rows]
    out["combined, empirical null"] = float(pages(sustained_at(p, tau, drift.consecutive)))
    out["tau"] = tau
    out["checks"] = float(len(rows))
    out["window rejections"] = float(np.mean([bool(r[f"d:{COMBINED}"]) for r in rows]))
    out["window rejections at tau"] = float(np.mean([v is not None and v <= tau for v in p]))
    return out


def _delay_cell(v: list[int | None], interval_s: int) -> str:
    hit = sorted(x for x in v if x is not None)
    if not hit:
        return f"0/{len(v)}"
    med = hit[len(hit) // 2]
    return f"{len(hit)}/{len(v)}, median {med} ({med * interval_s // 60} min)"


def write(
    path: Path,
    nd: dict[str, Any],
    sh: dict[tuple[str, float], list[int | None]],
    ramp: dict[tuple[str, float], list[int | None]],
    args: argparse.Namespace,
    drift: DriftSettings,
    window_s: int,
    interval_s: int,
    elapsed: float,
    load: tuple[float, float],
) -> None:
    lines = [
        "# traffic benchmark: false pages per week and detection delay at the daemon's defaults",
        "",
        f"Generated by `benchmarks/traffic.py{' --quick' if args.quick else ''}` in {elapsed:.0f} s; "
        f"{platform.machine()}, {os.cpu_count()} CPUs visible, 1-minute load {load[0]:.1f}/{load[1]:.1f} "
        "at start/end (shared machine).",
        "",
        f"Defaults: window = last {window_s} s of tapped queries, a check every {interval_s} s, "
        f"alpha = {drift.alpha}, consecutive = {drift.consecutive}, monitors = {', '.join(drift.monitors)}, "
        f"combined = Holm. Traffic: ~{args.rate:.0f} tapped queries an hour (mean window "
        f"{nd['mean_window']:.0f} queries), 30% from a Zipf head of 40 queries, daily topic-mix cycle "
        "(amplitude 0.7), a 25-query burst in 10% of hours; real stdlib-docs queries, 12 topic families. "
        f"Day 0 is the reference (capped at {args.ref_cap} queries; the hour variant takes 10:00-11:00), "
        f"day 1 the empirical null (threshold tau on the combined p-value: {nd['tau']:.2g}, deduplicated "
        f"{nd['tau_dedup']:.2g}), then "
        f"{args.days:g} evaluation day(s) = {nd['checks']} checks. A page is a rising edge of a sustained "
        "alarm; pages per week are scaled from the evaluation days.",
        "",
        "## False pages per simulated week (no drift)",
        "",
    ]
    cols = [*drift.monitors, COMBINED]
    lines += [
        "| reference / calibration | " + " | ".join(cols) + " | combined window rejection rate |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for name in VARIANTS:
        row = nd["rows"].get(name, {})
        cells = [f"{row[c]:.1f}" if c in row else "-" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row.get('window rejections', 0):.3f} |")
    if "peers" in nd:
        lines += [
            "",
            "Evidently's methods (fixed thresholds, day reference without deduplication, same consecutive "
            "rule), false pages per week: " + ", ".join(f"{m} {v:.1f}" for m, v in nd["peers"].items()),
        ]
    ramp_after = int(args.ramp_h * HOUR / interval_s) + 24
    for title, table, after in (
        ("sudden shift", sh, args.after),
        (f"gradual shift (ramped over {args.ramp_h:g} h)", ramp, ramp_after),
    ):
        if not table:
            continue
        sizes = sorted({s for _, s in table})
        lines += [
            "",
            f"## Detection delay, {title}: new topic family at share s (day reference, deduplicated windows)",
            "",
            f"Cells: runs paged within {after} checks of the onset / runs, median delay in checks "
            "(minutes); windows are an hour long, so a sudden shift fills a window over 12 checks.",
            "",
            "| method | " + " | ".join(f"s = {s:g}" for s in sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        for m in dict.fromkeys(name for name, _ in table):
            lines.append(f"| {m} | " + " | ".join(_delay_cell(table.get((m, s), []), interval_s) for s in sizes) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few hours of traffic instead of days")
    ap.add_argument("--days", type=float, default=1.0, help="evaluation days of no-drift traffic")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--ref-cap", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--after", type=int, default=36, help="checks after a shift's onset")
    ap.add_argument("--ramp-h", type=float, default=6.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "traffic.md")
    ap.add_argument(
        "--quiet-days",
        type=float,
        default=0.0,
        help="only run this many more no-drift days of the default daemon (seed 1) and append them",
    )
    args = ap.parse_args()
    if args.quiet_days:
        start = time.perf_counter()
        drift, window_s = DriftSettings(), SamplingSettings().window_s
        q = quiet_dedup(
            load_corpus(),
            drift,
            window_s,
            ScheduleSettings().check_interval_s,
            args.quiet_days,
            SamplingSettings().doc_sample_size,
            1,
        )
        text = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        skip = ("checks", "window rejections", "tau", "window rejections at tau")
        text += (
            f"\n## Longer no-drift run of the defaults (drift.dedup_queries = true; seed 1, day reference)\n\n"
            f"`benchmarks/traffic.py --quiet-days {args.quiet_days:g}` ({time.perf_counter() - start:.0f} s): "
            f"day 0 reference, day 1 empirical null (tau = {q['tau']:.2g}), then {q['checks']:.0f} checks over "
            f"{args.quiet_days:g} days; combined window rejection rate {q['window rejections']:.4f} at alpha, "
            f"{q['window rejections at tau']:.4f} at tau; pages in those {args.quiet_days:g} days (total, not "
            "per week): " + ", ".join(f"{m} {v:.0f}" for m, v in q.items() if m not in skip) + "\n"
        )
        args.out.write_text(text, encoding="utf-8")
        print(text)
        return
    if args.quick:
        args.days, args.seeds, args.after = 0.25, 1, 24
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    drift, window_s, interval_s = DriftSettings(), SamplingSettings().window_s, ScheduleSettings().check_interval_s
    doc_sample = SamplingSettings().doc_sample_size
    corpus = load_corpus()
    nd = no_drift(corpus, drift, window_s, interval_s, args.days, args.ref_cap, doc_sample, 0, not args.quick)
    print("no drift:", nd, flush=True)
    sizes = [0.05, 0.2, 0.5] if not args.quick else [0.2, 0.5]
    peers = () if args.quick else ("model", "distance")
    sh = shifts(
        corpus,
        drift,
        window_s,
        interval_s,
        sizes,
        args.seeds,
        args.ref_cap,
        doc_sample,
        nd["tau_dedup"],
        6,
        args.after,
        0.0,
        peers,
    )
    print("sudden:", sh, flush=True)
    ramp = (
        {}
        if args.quick
        else shifts(
            corpus,
            drift,
            window_s,
            interval_s,
            [0.2],
            1,
            args.ref_cap,
            doc_sample,
            nd["tau_dedup"],
            6,
            int(args.ramp_h * HOUR / interval_s) + 24,
            args.ramp_h * HOUR,
            (),
        )
    )
    write(
        args.out,
        nd,
        sh,
        ramp,
        args,
        drift,
        window_s,
        interval_s,
        time.perf_counter() - start,
        (load0, os.getloadavg()[0]),
    )
    print(args.out.read_text())


if __name__ == "__main__":
    main()
