"""Schedule/decision grid for issue #12: false pages per week and minutes-to-page per (window, interval, k, alpha).

    # 1. collect p-values (the expensive part; jobs are independent, run two at a time on two cores)
    .venv/bin/python benchmarks/traffic_grid.py collect nodrift --alpha 0.01 --traffic-seed 1 [--ref day|matched]
    .venv/bin/python benchmarks/traffic_grid.py collect shifts --alpha 0.01 --shift-seeds 6 [--ref day|matched]
    # 2. evaluate one configuration, or the whole grid, from the cached p-values (seconds)
    .venv/bin/python benchmarks/traffic_grid.py report --window-s 3600 --interval-s 3600 --consecutive 2 --alpha 0.01
    .venv/bin/python benchmarks/traffic_grid.py report --grid --out /work/notes/traffic_grid.md

Why a cache: a check's p-values depend only on the window (its length and end time) and the reference, not on
the check interval, the consecutive rule or the threshold (the page is "combined p <= alpha in k checks in a
row", ``monitors.SequentialDetector``). So every check time is computed once through the real
``embguard.checks.monitor.CollectionMonitor`` on the finest cadence any configuration needs, and each configuration
reads the subset of check times that are multiples of its interval. Alpha does change the monitors (permutation counts:
MMD uses max(500, ceil(4/alpha)) permutations), so alpha 0.005 p-values are collected with alpha-0.005 monitors.

No-drift traffic (``traffic.Traffic``, seeds 0 and 1): day 0 is the reference, day 1 the empirical null (tau =
the alpha-quantile of day 1's combined p-values at the configuration's cadence, capped at alpha), days 2.. the
evaluation. Windows are deduplicated (``drift.dedup_queries = true``; the reference piece by piece, window-long).
Cadences collected: window 3600 s every 300 s over days 1-4 (so interval 300 gets 3 evaluation days) and every
1800 s over days 5-8 (intervals 1800 and 3600 get 7 evaluation days); window 1800 s every 1800 s over days 1-8.

References: ``day`` (all of day 0) or ``matched`` (per hour of day h, day 0's hours h-1..h+1, a 3-hour band; a
check uses the band of its window's centre hour), the latter to measure what a reference matched to the hour of
day buys.

Shifts: a new topic family (held out per seed) at share s appears suddenly at a random time within an hour of a
whole hour (so a uniformly random offset within any interval that divides 3600); delays are counted from the onset
in checks (the first check after onset is 1) and in minutes. "Paged within 3 intervals" = page time - onset <=
3 x interval. The empirical-null tau of a shift run comes from its own traffic's day 1 at the configuration's
cadence (1800 s for interval 300, to keep the collection cheap).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from traffic import (
    COMBINED,
    DAY,
    HOUR,
    Corpus,
    DriftSettings,
    SamplingSettings,
    Traffic,
    empirical_threshold,
    load_corpus,
    make_monitor,
    pages,
    sustained_at,
    window,
)

CACHE = Path(os.environ.get("TRAFFIC_GRID_CACHE", Path(__file__).resolve().parents[1] / ".cache" / "traffic_grid"))
MONITORS = ("mmd", "retrieval", "ood", "top1", COMBINED)

# (window_s, cadence_s, t0, t1): check times t0, t0+cadence, ... < t1 (window = [t - window_s, t)).
NODRIFT_PLAN = {
    "day": [(3600, 300, DAY, 5 * DAY), (3600, 1800, 5 * DAY, 9 * DAY), (1800, 1800, DAY, 9 * DAY)],
    "matched": [(3600, 1800, DAY, 9 * DAY), (1800, 1800, DAY, 9 * DAY)],
    # interval 300 over the same 7 evaluation days as the others (days differ a lot: compare on equal days)
    "day+300": [(3600, 300, 5 * DAY, 9 * DAY)],
}


def onset_of(seed: int) -> tuple[float, float]:
    """(whole hour before the onset, onset) of shift seed ``seed``: day 2, a seed-dependent hour, random offset."""
    base = 2 * DAY + ((7 + 5 * seed) % 24) * HOUR
    u = np.random.default_rng([seed, 7]).uniform()
    return base, base + u * HOUR


def shift_plan(ref: str, base: float) -> list[tuple[int, int, float, float]]:
    null = [(3600, 1800, DAY, 2 * DAY), (1800, 1800, DAY, 2 * DAY)]
    after = [(3600, 1800, base - HOUR, base + 6 * HOUR), (1800, 1800, base - HOUR, base + 6 * HOUR)]
    if ref == "day":
        after.insert(0, (3600, 300, base - HOUR, base + 3 * HOUR))
    return null + after


class Monitors:
    """The reference monitor(s) of one traffic seed and window length: one (day) or one per hour of day (matched)."""

    def __init__(self, corpus: Corpus, traffic: Traffic, drift: DriftSettings, ref: str, window_s: int):
        self.ref, self.window_s = ref, window_s
        doc_sample = SamplingSettings().doc_sample_size
        if ref == "day":
            ts0, day0 = traffic.queries(0, DAY)
            self.mons = {None: make_monitor(corpus, drift, window(corpus, day0, ts=ts0), doc_sample, window_s)}
        else:
            self.mons = {}
            for h in range(24):
                parts = [traffic.queries(hh * HOUR, (hh + 1) * HOUR) for hh in ((h - 1) % 24, h, (h + 1) % 24)]
                ts = np.concatenate([p[0] for p in parts])
                rows = np.concatenate([p[1] for p in parts])
                self.mons[h] = make_monitor(corpus, drift, window(corpus, rows, ts=ts), doc_sample, window_s)

    def check(self, corpus: Corpus, traffic: Traffic, t: float) -> dict[str, float | None]:
        key = None if self.ref == "day" else int(((t - self.window_s / 2) % DAY) // HOUR)
        ts, rows = traffic.queries(t - self.window_s, t)
        report = self.mons[key].check(window(corpus, rows, ts=ts), "docs")
        out: dict[str, float | None] = {"n": float(len(rows))}
        for o in report.outcomes:
            out[f"p:{o.monitor}"] = o.p_value
            out[f"s:{o.monitor}"] = float(o.sustained)
        return out


def collect(
    corpus: Corpus,
    traffic: Traffic,
    drift: DriftSettings,
    ref: str,
    plan: list[tuple[int, int, float, float]],
    store: dict[tuple[int, float], dict[str, float | None]],
) -> None:
    mons: dict[int, Monitors] = {}
    for window_s, cadence, t0, t1 in plan:
        if window_s not in mons:
            mons[window_s] = Monitors(corpus, traffic, drift, ref, window_s)
        for t in np.arange(t0, t1, cadence):
            if (window_s, float(t)) not in store:
                store[(window_s, float(t))] = mons[window_s].check(corpus, traffic, float(t))


def cmd_collect(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    CACHE.mkdir(parents=True, exist_ok=True)
    drift = DriftSettings(alpha=args.alpha).model_copy(update={"dedup_queries": True})
    corpus = load_corpus()
    start = time.perf_counter()
    if args.what == "nodrift":
        plan = args.ref + args.plan
        path = CACHE / f"nodrift_a{args.alpha}_{args.ref}_s{args.traffic_seed}{args.plan}.pkl"
        store: dict = {}
        collect(corpus, Traffic(corpus, args.traffic_seed), drift, args.ref, NODRIFT_PLAN[plan], store)
        payload = {"store": store, "seconds": time.perf_counter() - start}
    else:
        suffix = f"_from{args.first_seed}" if args.first_seed else ""
        path = CACHE / f"shifts_a{args.alpha}_{args.ref}_n{args.shift_seeds}{suffix}.pkl"
        runs: dict = {}
        for seed in range(args.first_seed, args.first_seed + args.shift_seeds):
            base, onset = onset_of(seed)
            null: dict = {}
            collect(corpus, Traffic(corpus, 100 + seed), drift, args.ref, shift_plan(args.ref, base)[:2], null)
            for share in args.shares:
                tr = Traffic(corpus, 100 + seed, shift_start=onset, shift_share=share)
                st: dict = {}
                collect(corpus, tr, drift, args.ref, shift_plan(args.ref, base)[2:], st)
                runs[(seed, share)] = {"onset": onset, "base": base, "null": null, "store": st}
            print(f"shift seed {seed} done {time.perf_counter() - start:.0f} s", flush=True)
        payload = {"runs": runs, "seconds": time.perf_counter() - start}
    path.write_bytes(pickle.dumps(payload))
    print(f"{path} {payload['seconds']:.0f} s", flush=True)


# ---------------------------------------------------------------------------------------------------- analysis


def series(store: dict, window_s: int, interval_s: int, t0: float, t1: float, key: str = f"p:{COMBINED}"):
    ts = sorted(t for (w, t) in store if w == window_s and t0 <= t < t1 and t % interval_s == 0)
    if len(ts) < 0.99 * (t1 - t0) / interval_s:
        return [], []  # this cadence was not collected over [t0, t1)
    return ts, [store[(window_s, t)].get(key) for t in ts]


def eval_nodrift(store: dict, w: int, i: int, k: int, alpha: float) -> dict[str, float]:
    _, null = series(store, w, i, DAY, 2 * DAY)
    tau = empirical_threshold(null, alpha)
    ts, p = series(store, w, i, 2 * DAY, 9 * DAY)
    if not ts:
        ts, p = series(store, w, i, 2 * DAY, 5 * DAY)  # interval 300 without the days 5-8 extension
    if not ts:
        return {}
    days = len(ts) * i / DAY
    out = {"days": days, "checks": len(ts), "tau": tau}
    for name, thr in (("alpha", alpha), ("tau", tau)):
        out[f"pages_{name}"] = pages(sustained_at(p, thr, k))
        out[f"week_{name}"] = out[f"pages_{name}"] * 7 / days
        out[f"rej_{name}"] = float(np.mean([v is not None and v <= thr for v in p]))
    return out


def eval_shift(
    run: dict, w: int, i: int, k: int, alpha: float, use_tau: bool
) -> tuple[int | None, float | None] | None:
    """(checks after onset, minutes after onset) of the first page after the onset; (None, None) if none in the
    horizon; None if this cadence was not collected."""
    onset, base, store = run["onset"], run["base"], run["store"]
    thr = alpha
    if use_tau:
        _, null = series(run["null"], w, max(i, 1800), DAY, 2 * DAY)
        thr = empirical_threshold(null, alpha)
    ts, p = series(store, w, i, base - HOUR, base + (3 if i < 1800 else 6) * HOUR)
    if not ts or (i < 1800 and ts[-1] < base + 2 * HOUR):
        return None
    flags = sustained_at(p, thr, k)
    n_after = 0
    for t, f in zip(ts, flags, strict=True):
        if t > onset:
            n_after += 1
            if f:
                return n_after, (t - onset) / 60
    return None, None


def horizon_min(run: dict, i: int) -> float:
    end = run["base"] + (3 if i < 1800 else 6) * HOUR - (300 if i < 1800 else 1800)
    return (end - run["onset"]) / 60


def load(pattern: str) -> list[dict]:
    return [pickle.loads(p.read_bytes()) for p in sorted(CACHE.glob(pattern))]


GRID = [
    # window, interval, consecutive
    (3600, 300, 3),
    (3600, 300, 2),
    (3600, 300, 1),
    (3600, 900, 2),
    (3600, 900, 3),
    (3600, 1200, 2),
    (3600, 3600, 1),
    (3600, 3600, 2),
    (3600, 1800, 1),
    (3600, 1800, 2),
    (1800, 1800, 1),
    (1800, 1800, 2),
    (1800, 1800, 3),
]


def config_row(w: int, i: int, k: int, alpha: float, ref: str, a_src: float) -> dict | None:
    """Evaluate one configuration from the cache (p-values collected with alpha = a_src monitors)."""
    nd = {}
    for seed in (0, 1):
        files = sorted(CACHE.glob(f"nodrift_a{a_src}_{ref}_s{seed}*.pkl"))
        if not files:
            continue
        store = {}
        for f in files:
            store.update(pickle.loads(f.read_bytes())["store"])
        r = eval_nodrift(store, w, i, k, alpha)
        if r:
            nd[seed] = r
    shifts_files = sorted(CACHE.glob(f"shifts_a{a_src}_{ref}_n*.pkl"))
    sh: dict = {}
    if shifts_files:
        runs = {}
        for f in shifts_files:  # all seed ranges collected for this alpha and reference
            runs.update(pickle.loads(f.read_bytes())["runs"])
        for (_seed, share), run in sorted(runs.items()):
            for use_tau in (False, True):
                d = eval_shift(run, w, i, k, alpha, use_tau)
                if d is None:
                    continue  # this configuration's cadence was not collected for this reference
                sh.setdefault((share, use_tau), []).append((d, horizon_min(run, i)))
    if not nd and not sh:
        return None
    return {"nd": nd, "sh": sh}


def fmt_shift(v: list, i: int) -> str:
    if not v:
        return "-"
    within = sum(1 for (c, _), _h in v if c is not None and c <= 3)
    hits = sorted((c, m) for (c, m), _h in v if c is not None)
    n = len(v)
    if not hits:
        return f"{within}/{n} (none in {min(h for _, h in v):.0f}+ min)"
    # median over all runs, a run never paged counts as +inf
    allc = sorted([c for c, _ in hits] + [np.inf] * (n - len(hits)))
    allm = sorted([m for _, m in hits] + [np.inf] * (n - len(hits)))
    medc, medm = allc[(n - 1) // 2], allm[(n - 1) // 2]
    medc_s = "never" if np.isinf(medc) else f"{medc:g}"
    medm_s = "never" if np.isinf(medm) else f"{medm:.0f}"
    return f"{within}/{n}; med {medc_s} chk / {medm_s} min; paged {len(hits)}/{n}"


def cmd_report(args: argparse.Namespace) -> None:
    configs = [(w, i, k) for (w, i, k) in GRID] if args.grid else [(args.window_s, args.interval_s, args.consecutive)]
    alphas = [0.01, 0.005] if args.grid else [args.alpha]
    refs = ["day", "matched"] if args.grid else [args.ref]
    seeds = (0, 1) if args.traffic_seed is None else (args.traffic_seed,)
    lines = []
    header = (
        "| ref | window s | interval s | k | alpha | p from | thr | false pages/wk seed 0 | seed 1 | "
        "window rej. rate s0 / s1 | eval days | 20%: paged <=3 int.; median delay | 5% | 50% |"
    )
    lines += [header, "|" + "---|" * 14]
    for ref in refs:
        for alpha in alphas:
            a_src = alpha
            if not list(CACHE.glob(f"nodrift_a{alpha}_{ref}_s*.pkl")):
                a_src = 0.01  # fall back: alpha-0.01 monitors' p-values thresholded at alpha
            for w, i, k in configs:
                r = config_row(w, i, k, alpha, ref, a_src)
                if r is None:
                    continue
                for thr in ("alpha", "tau"):
                    nd = r["nd"]
                    wk = [f"{nd[s][f'week_{thr}']:.1f} ({nd[s][f'pages_{thr}']})" if s in nd else "-" for s in seeds]
                    rej = " / ".join(f"{nd[s][f'rej_{thr}']:.3f}" if s in nd else "-" for s in seeds)
                    days = "/".join(f"{nd[s]['days']:.0f}" for s in seeds if s in nd)
                    use_tau = thr == "tau"
                    cells = [fmt_shift(r["sh"].get((s, use_tau), []), i) for s in (0.2, 0.05, 0.5)]
                    thr_s = (
                        "alpha"
                        if thr == "alpha"
                        else "tau " + "/".join(f"{nd[s]['tau']:.2g}" for s in seeds if s in nd)
                    )
                    seed_cells = " | ".join(wk) if len(seeds) == 2 else wk[0] + " | -"
                    lines.append(
                        f"| {ref} | {w} | {i} | {k} | {alpha} | {'a=' + str(a_src)} | {thr_s} | {seed_cells} | "
                        f"{rej} | {days} | {cells[0]} | {cells[1]} | {cells[2]} |"
                    )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("what", choices=["nodrift", "shifts"])
    c.add_argument("--alpha", type=float, default=0.01)
    c.add_argument("--ref", choices=["day", "matched"], default="day")
    c.add_argument("--traffic-seed", type=int, default=0)
    c.add_argument("--shift-seeds", type=int, default=6)
    c.add_argument("--first-seed", type=int, default=0, help="shift seeds first-seed .. first-seed+shift-seeds-1")
    c.add_argument("--plan", default="", help="'+300': interval-300 checks of the window-3600 over days 5-8")
    c.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.2, 0.5])
    r = sub.add_parser("report")
    r.add_argument("--grid", action="store_true", help="every configuration in GRID, both alphas and references")
    r.add_argument("--window-s", type=int, default=3600)
    r.add_argument("--interval-s", type=int, default=300)
    r.add_argument("--consecutive", type=int, default=3)
    r.add_argument("--alpha", type=float, default=0.01)
    r.add_argument("--ref", choices=["day", "matched"], default="day")
    r.add_argument("--traffic-seed", type=int, default=None, help="0 or 1 (default both)")
    r.add_argument("--out", default="")
    args = ap.parse_args()
    cmd_collect(args) if args.cmd == "collect" else cmd_report(args)


if __name__ == "__main__":
    main()
