"""Drift power on real text: Debian package synopses (benchmarks/debian.py), the shipped model, the shipped alpha.

    .venv/bin/python benchmarks/bench_drift_real.py [--quick] [--sections power,clusters,cost]

Each section replaces its own block in the results file, so one can be re-run alone (power takes ~17 min on 2
cores, clusters ~3, cost ~1).

Reference: ``n`` queries drawn from every section but one (a mix in proportion to the sections' sizes). Windows:
``n`` fresh queries of which a share ``k`` comes from the held-out section (5, 10, 20, 50%); a known section's
share moving (one known section at 25% of the window); and null windows: plain, with a burst (one query repeated
25 times, windows deduplicated as ``drift.dedup_queries`` does) and with a daily cycle (every section's share
moved by up to +-30%, the reference a full-day mix). Each query's top-10 hits come from a corpus of the other
half of the packages (names, synopses and debtags). One window against one reference, no two-in-a-row rule.

Decisions compared at alpha = 0.01 (the shipped ``drift.alpha``):
- each member on its own (its permutation or KS p-value);
- the page before (Holm over mmd, retrieval, ood, top1 run on their own);
- the shared-permutation page over every member that can join it (mmd, retrieval, neighbours, top1);
- the shipped page: monitors.Page over ``drift.page`` (retrieval, neighbours).

Clusters: the precision of the new-query clusters on the held-out label. Cost: one page check at 10k x 10k.

Writes benchmarks/results/drift_real.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from debian import load_packages

import monitors
from embguard.config.settings import PAGE_MONITORS, DriftSettings
from monitors.combine import combine
from monitors.page import Page

ALPHA = DriftSettings().alpha
PAGE = DriftSettings().page  # the shipped page's members
TOP_K = 10
OUT = ROOT / "benchmarks" / "results" / "drift_real.md"
NEW_MIN = 300  # a held-out section needs this many queries (50% of 500 with room to draw)


class World:
    def __init__(self) -> None:
        pk = load_packages()
        self.pk = pk
        self.sections = sorted(set(pk.sections.tolist()))
        self.rows = {s: np.flatnonzero(pk.sections == s) for s in self.sections}
        sims = pk.query_vectors @ pk.doc_vectors.T
        self.top = np.argsort(-sims, axis=1)[:, :TOP_K]
        self.top1 = np.take_along_axis(sims, self.top[:, :1], axis=1)[:, 0].astype(np.float64)
        self.eligible = [s for s in self.sections if len(self.rows[s]) >= NEW_MIN]
        self._labels: dict[int, np.ndarray] = {}

    def labels(self, n: int) -> np.ndarray:
        k = monitors.clusters_for_window(n, TOP_K, len(self.pk.documents))
        if k not in self._labels:
            self._labels[k] = monitors.cluster_corpus(self.pk.doc_vectors, n_clusters=k, seed=0)
        return self._labels[k]

    def inputs(self, rows: np.ndarray) -> dict[str, object]:
        return {"vectors": self.pk.query_vectors[rows], "top_ids": self.top[rows], "similarities": self.top1[rows]}


def draw(world: World, rng: np.random.Generator, n: int, new: str, kind: str, share: float) -> tuple:
    known = [s for s in world.sections if s != new]
    pool = np.concatenate([world.rows[s] for s in known])
    perm = rng.permutation(pool)
    ref, rest = perm[:n], perm[n:]
    if kind == "new":
        m = int(round(share * n))
        cur = np.concatenate([rest[: n - m], rng.choice(world.rows[new], m, replace=False)])
    elif kind == "share":  # one known section (a large one) at `share` of the window
        big = max(known, key=lambda s: len(world.rows[s]) if s != "utils" else 0)
        inside = np.setdiff1d(world.rows[big], ref)
        others = rest[~np.isin(rest, world.rows[big])]
        m = int(round(share * n))
        cur = np.concatenate([others[: n - m], rng.choice(inside, m, replace=False)])
    elif kind == "burst":
        cur = np.concatenate([rest[: n - 1], np.repeat(rest[n - 1], 25)])
        _, first = np.unique(cur, return_index=True)  # dedup_queries: each distinct query once
        cur = cur[np.sort(first)]
    elif kind == "cycle":  # sections' shares at a random hour of a +-30% daily cycle; the reference is the day
        w = np.array([len(world.rows[s]) for s in known], dtype=float)
        w *= 1 + 0.3 * np.sin(rng.uniform(0, 2 * np.pi) + rng.uniform(0, 2 * np.pi, len(known)))
        counts = rng.multinomial(n, w / w.sum())
        restset = [rest[np.isin(rest, world.rows[s])] for s in known]
        cur = np.concatenate([r[:c] for r, c in zip(restset, counts, strict=True)])
    else:
        cur = rest[:n]
    return ref, cur


def decisions(world: World, ref: np.ndarray, cur: np.ndarray, seed: int) -> dict[str, float]:
    """Every decision's p-value for one (reference, window) pair."""
    n = len(ref)
    labels = world.labels(n)
    doc_ids = np.arange(len(world.pk.documents))
    ri, ci = world.inputs(ref), world.inputs(cur)

    def retrieval() -> monitors.RetrievalClusterDetector:
        return monitors.RetrievalClusterDetector(
            doc_ids, labels, alpha=ALPHA, top_k=TOP_K, n_permutations=999, seed=seed
        )

    own = {
        "mmd": monitors.MMDDetector(alpha=ALPHA, n_permutations=999, seed=seed).fit(ri["vectors"]).check(ci["vectors"]),
        "retrieval": retrieval().fit(ri["top_ids"]).check(ci["top_ids"]),
        "ood": monitors.KNNOODDetector(alpha=ALPHA, seed=seed).fit(ri["vectors"]).check(ci["vectors"]),
        "top1": monitors.Top1SimilarityDetector(alpha=ALPHA).fit(ri["similarities"]).check(ci["similarities"]),
        "neighbours": monitors.NeighbourDetector(alpha=ALPHA, n_permutations=999, seed=seed)
        .fit(ri["vectors"])
        .check(ci["vectors"]),
    }
    out = {name: float(r.p_value) for name, r in own.items()}  # type: ignore[arg-type]
    holm = {k: own[k] for k in ("mmd", "retrieval", "ood", "top1")}
    out["page (Holm, before)"] = float(combine(holm, alpha=ALPHA, method="holm").p_value)  # type: ignore[arg-type]

    def members(names: tuple[str, ...]) -> dict[str, object]:
        make = {
            "mmd": lambda: monitors.MMDDetector(alpha=ALPHA, seed=seed),
            "retrieval": retrieval,
            "neighbours": lambda: monitors.NeighbourDetector(alpha=ALPHA, seed=seed),
            "top1": lambda: monitors.Top1SimilarityDetector(alpha=ALPHA),
        }
        return {name: make[name]() for name in names}

    out["page (shared null)"] = float(Page(members(PAGE), alpha=ALPHA, seed=seed).fit(ri).check(ci).p_value)  # type: ignore[arg-type]
    every = Page(members(PAGE_MONITORS), alpha=ALPHA, seed=seed).fit(ri).check(ci)
    out["shared null, all four"] = float(every.p_value)  # type: ignore[arg-type]
    return out


COLUMNS = (
    "mmd",
    "retrieval",
    "ood",
    "top1",
    "neighbours",
    "page (Holm, before)",
    "shared null, all four",
    "page (shared null)",
)


def power_section(world: World, quick: bool) -> str:
    splits = 10 if quick else 30
    sizes = (200,) if quick else (100, 200, 500, 1000)
    cells: list[tuple[str, int, str, float, int]] = []
    for n in sizes:
        for share in (0.05, 0.1, 0.2, 0.5):
            if share * n <= NEW_MIN:
                cells.append((f"new section {share:.0%}", n, "new", share, splits))
        cells.append(("a known section at 25%", n, "share", 0.25, splits))
        nulls = (100 if quick else 1000) if n == 200 else splits  # false pages per 1,000 null windows at n = 200
        cells += [("null", n, "null", 0.0, nulls), ("null, burst", n, "burst", 0.0, splits)]
        cells.append(("null, daily cycle", n, "cycle", 0.0, splits))
    head = "| window | n | windows | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for label, n, kind, share, count in cells:
        hits = dict.fromkeys(COLUMNS, 0)
        c0 = time.perf_counter()
        for i in range(count):
            rng = np.random.default_rng([n, i, int(share * 100), len(kind)])
            new = world.eligible[i % len(world.eligible)]
            ref, cur = draw(world, rng, n, new, kind, share)
            p = decisions(world, ref, cur, seed=i)
            for c in COLUMNS:
                hits[c] += p[c] <= ALPHA
        print(f"{label} n={n}: {hits} ({time.perf_counter() - c0:.0f} s)", file=sys.stderr, flush=True)
        row = [f"{hits[c]}/{count}" for c in COLUMNS]
        best = max(hits[c] for c in COLUMNS[:5])
        if not label.startswith("null") and hits["page (shared null)"] < best:
            row[-1] += " (below best)"
        lines.append(f"| {label} | {n} | {count} | " + " | ".join(row) + " |")
    return (
        "## Power and false alarms\n\n"
        f"{len(world.pk.queries)} queries in {len(world.sections)} sections, {len(world.pk.documents)} documents; "
        f"all-MiniLM-L6-v2; alpha = {ALPHA} (the shipped drift.alpha); one window, no two-in-a-row rule. Windows "
        "alarmed per decision (for null rows: false alarms). Held-out sections rotate over "
        f"{', '.join(world.eligible)}.\n\n" + "\n".join(lines)
    )


def clusters_section(world: World, quick: bool) -> str:
    """Precision of the new-query clusters (monitors.new_clusters, what the daemon shows) on the held-out label,
    against the OOD detector's clusters (monitors.explain_ood, what it showed before), top 3 clusters each."""
    lines = [
        "| window | n | windows | windows showing clusters (new) | precision (new) | topic recall (new) | "
        "windows showing clusters (OOD) | precision (OOD) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    examples: list[str] = []
    for n, share, kind in (
        (200, 0.2, "new"),
        (1000, 0.2, "new"),
        (200, 0.5, "new"),
        (200, 0, "null"),
        (1000, 0, "null"),
    ):
        shown = [0, 0]
        precision: list[list[float]] = [[], []]
        recall: list[float] = []
        count = 10 if quick else 30
        for i in range(count):
            rng = np.random.default_rng([n, i, int(share * 100), len(kind)])
            new = world.eligible[i % len(world.eligible)]
            ref, cur = draw(world, rng, n, new, kind, share)
            vec = world.pk.query_vectors
            found = monitors.new_clusters(vec[ref], vec[cur], texts=[world.pk.queries[r] for r in cur], alpha=ALPHA)
            rows = [r for c in found[:3] for r in c.rows]
            ood = monitors.KNNOODDetector(alpha=ALPHA, seed=i).fit(vec[ref])
            old = [
                r for e in monitors.explain_ood(ood, vec[cur], list(range(len(cur))))[:3] for r in e.representative_ids
            ]
            for j, picked in enumerate((rows, old)):
                if picked:
                    shown[j] += 1
                    precision[j].append(float(np.mean(world.pk.sections[cur[picked]] == new)))
            if rows and kind == "new":
                recall.append(float(np.sum(world.pk.sections[cur[rows]] == new) / round(share * n)))
            if kind == "new" and n == 200 and share == 0.2 and i < 4 and found:
                c = found[0]
                examples.append(
                    f"- held-out `{new}`: {c.size} queries about *{', '.join(c.terms)}*, e.g. "
                    + "; ".join(repr(world.pk.queries[cur[r]]) for r in c.rows[:2])
                )

        def pct(v: list[float]) -> str:
            return f"{100 * np.mean(v):.0f}%" if v else "-"

        label = f"new section {share:.0%}" if kind == "new" else "null"
        lines.append(
            f"| {label} | {n} | {count} | {shown[0]} | {pct(precision[0])} | {pct(recall)} | {shown[1]} | "
            f"{pct(precision[1])} |"
        )
    return (
        "## New-query clusters: do they show the new topic?\n\n"
        "Precision = share of the shown queries (top 3 clusters) that come from the held-out section; topic recall = "
        'share of the held-out section\'s queries in the window that the clusters show. "new" is '
        '`monitors.new_clusters` (what the daemon shows now), "OOD" is `monitors.explain_ood` over the kNN OOD '
        "flags (what it showed before).\n\n"
        + "\n".join(lines)
        + "\n\nThe largest cluster of each of the first four 20% windows (n = 200) that showed one:\n\n"
        + "\n".join(examples)
    )


def cost_worker(n: int, what: str) -> None:
    """One check after a warm-up (random data: the cost does not depend on the text); prints seconds and MB."""
    import resource

    rng = np.random.default_rng(0)
    inputs = [
        {
            "vectors": rng.standard_normal((n, 384)).astype(np.float32),
            "top_ids": rng.integers(0, 20_000, (n, TOP_K)),
            "similarities": rng.random(n),
        }
        for _ in range(2)
    ]
    labels = rng.integers(0, 100, 20_000)
    make = {
        "mmd": lambda: monitors.MMDDetector(alpha=ALPHA),
        "retrieval": lambda: monitors.RetrievalClusterDetector(
            np.arange(20_000), labels, alpha=ALPHA, n_permutations=999
        ),
        "neighbours": lambda: monitors.NeighbourDetector(alpha=ALPHA),
        "top1": lambda: monitors.Top1SimilarityDetector(alpha=ALPHA),
    }
    names = what.split(",")
    if len(names) == 1:  # a monitor alone, on its own permutations
        det = make[names[0]]()
        kind = det.input_kind
        det.fit(inputs[0][kind])
        run = lambda: det.check(inputs[1][kind])  # noqa: E731
    else:
        page = Page({m: make[m]() for m in names}, alpha=ALPHA).fit(inputs[0])
        run = lambda: page.check(inputs[1])  # noqa: E731
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    t = time.perf_counter()
    run()
    took = time.perf_counter() - t
    print(took, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def cost_section() -> str:
    """Each check in a fresh process, so one's memory does not hide another's."""
    import subprocess

    rows = []
    for n, what, label in (
        (10_000, ",".join(PAGE), f"shipped page ({', '.join(PAGE)}), 999 shared splits"),
        (10_000, ",".join(PAGE_MONITORS), "every member (mmd, retrieval, neighbours, top1), 999 shared splits"),
        (10_000, "mmd", "MMD alone (its own 500 splits, as before)"),
        (20_000, "retrieval", "retrieval permutation test alone, 20k + 20k, 999 splits"),
    ):
        cmd = [sys.executable, __file__, "--cost-worker", str(n), what]
        took, peak = (float(v) for v in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split())
        rows.append(f"| {label} | {n:,} + {n:,} | {took:.2f} s | {peak:.0f} MB |")
    return (
        "## Cost\n\nOne check after a warm-up, each in a fresh process; peak memory is the growth of the process's "
        "maximum resident set during the checks.\n\n| check | rows | time | peak memory added |\n|---|---|---|---|\n"
        + "\n".join(rows)
    )


SECTIONS = {"power": power_section, "clusters": clusters_section}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sections", default="power,clusters,cost", help="comma-separated: power, clusters, cost")
    ap.add_argument("--cost-worker", nargs=2, metavar=("ROWS", "MONITORS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cost_worker:
        return cost_worker(int(args.cost_worker[0]), args.cost_worker[1])
    t0 = time.perf_counter()
    text = OUT.read_text() if OUT.exists() else ""
    world = None
    for name in args.sections.split(","):
        if name == "cost":
            body = cost_section()
        else:
            world = world or World()
            body = SECTIONS[name](world, args.quick)
        begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
        block = f"{begin}\n{body}\n{end}"
        text = (
            text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
            if begin in text
            else text + "\n\n" + block
        )
    head = "# Drift power on real text (Debian package synopses)\n\n"
    body = text.split("<!--", 1)[1] if "<!--" in text else ""
    OUT.write_text(
        head + f"Written by `benchmarks/bench_drift_real.py{' --quick' if args.quick else ''}` (last: --sections "
        f"{args.sections}, wall {time.perf_counter() - t0:.0f} s; {platform.machine()}, {os.cpu_count()} cores).\n\n"
        + "<!--"
        + body
        + "\n"
    )


if __name__ == "__main__":
    main()
