"""Active learning aimed at drift: does labelling the drifted queries beat random labelling once drift is found?

    .venv/bin/python benchmarks/bench_active.py                  # full run, writes benchmarks/results/active.md
    .venv/bin/python benchmarks/bench_active.py --seeds 2 --out /tmp/active.md   # smoke run (~10 s)

Setup (per seed; everything below is re-drawn per seed, and strategies are compared paired within a seed):
the stdlib corpus (``embguard.training.stdlib_corpus.stdlib_corpus()``, all passages are always searched; the
``language-reference`` prose is never a query, as in bench_retrain). A *new topic family* (``gui``: tkinter +
turtle, a drift the OOD detector sees; ``internet``: protocol/email/web modules, one it mostly misses) never
appears in the reference traffic. Reference traffic = base-topic
queries only. Shifted traffic = every new-family query plus base-topic queries (disjoint from the reference)
so that the family makes up ``--new-share`` of it. The shifted traffic is split 60/40 into the pool to label
and the held-out set (disjoint, asserted). Drift signals, all computed the way the daemon would: the
``monitors.KNNOODDetector`` fitted on the reference query embeddings (flags + scores), k-means clusters of the
flagged pool queries (the ``monitors.explain_ood`` recipe), the base model's top-1 cosine (floor = the reference
traffic's 5% quantile) and simulated clicks (click probability by the base rank of the relevant passage:
0.9 at rank 1, 0.5 at 2-3, 0.2 at 4-10, 0 below). Each strategy picks ``budget`` pool queries; a query adapter
(``retrain.train_adapter``, 5 epochs, as bench_retrain) is trained on the picks; reported: Δ nDCG@10 vs the
base model on the held-out set, and on its new-family and base-topic subsets.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_retrain import GUARD_TOPIC, cached_encode, log

import retrain
from retrain import (
    AdapterConfig,
    DriftSelection,
    DriftSignals,
    MarginSelection,
    MissSelection,
    NoveltySelection,
    Pool,
    RandomSelection,
    evaluate_embeddings,
    train_adapter,
)
from retrain.drift_selection import NO_CLUSTER

RESULTS = REPO / "benchmarks" / "results" / "active.md"
FAMILIES: dict[str, frozenset[str]] = {
    "internet": frozenset(
        {
            "email",
            "http",
            "imaplib",
            "smtplib",
            "smtpd",
            "xmlrpc",
            "urllib",
            "ftplib",
            "poplib",
            "telnetlib",
            "nntplib",
            "socket",
            "socketserver",
            "ssl",
            "wsgiref",
            "cgi",
            "cgitb",
            "mimetypes",
            "base64",
            "mailbox",
            "mailcap",
            "quopri",
            "html",
            "webbrowser",
        }
    ),
    "gui": frozenset({"tkinter", "turtle"}),
}
BUDGETS = (50, 100, 300)


def click_prob(rank: np.ndarray) -> np.ndarray:
    return np.select([rank == 1, rank <= 3, rank <= 10], [0.9, 0.5, 0.2], default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--families",
        nargs="+",
        choices=sorted(FAMILIES),
        default=["gui", "internet"],
        help="new topic families, one section each (the first is the headline)",
    )
    ap.add_argument("--new-share", type=float, default=0.3, help="share of shifted traffic from the new family")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument(
        "--first-seed",
        type=int,
        default=100,
        help="seeds 0-19 were used to choose DriftSelection's defaults; the reported run uses fresh ones",
    )
    ap.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    wall0 = time.perf_counter()
    load0 = os.getloadavg()

    from sklearn.cluster import KMeans

    from embguard.models.loading import load
    from embguard.training.stdlib_corpus import stdlib_corpus
    from monitors import KNNOODDetector

    corpus = list(stdlib_corpus())
    model = load()
    doc_ids = [p.id for p in corpus]
    base_docs = cached_encode("docs", model.model_id, [p.text for p in corpus], model.encode)
    base_q = cached_encode("queries", model.model_id, [p.query for p in corpus], model.encode)
    # Base retrieval once for every query: rank of the relevant passage, top-1 and top-2 cosine.
    sims = base_q @ base_docs.T
    own = sims[np.arange(len(corpus)), np.arange(len(corpus))]
    rank_all = 1 + (sims > own[:, None]).sum(axis=1)
    top2 = np.sort(np.partition(sims, -2, axis=1)[:, -2:], axis=1)
    top1_all, margin_all = top2[:, 1], top2[:, 1] - top2[:, 0]
    del sims

    sections: list[str] = []
    for fam_name in args.families:
        family = FAMILIES[fam_name]
        traffic = [i for i, p in enumerate(corpus) if p.topic != GUARD_TOPIC]
        new_rows = np.array([i for i in traffic if corpus[i].topic in family])
        base_rows = np.array([i for i in traffic if corpus[i].topic not in family])
        n_shift_base = int(round(len(new_rows) * (1 - args.new_share) / args.new_share))
        if n_shift_base >= len(base_rows) - 100:
            raise SystemExit(f"--new-share {args.new_share} leaves too few base queries for the reference")
        log(
            f"corpus {len(corpus)} passages; family {fam_name!r}: {len(new_rows)} queries; base topics: "
            f"{len(base_rows)} queries ({n_shift_base} go to shifted traffic)"
        )

        strategies = [
            "random",
            "misses",
            "drift",
            "drift, random within cluster",
            "drift, share 1.0",
            "drift, widened clusters",
            "novelty",
            "margin",
            "oracle (not deployable)",
        ]
        al_cfg = AdapterConfig(epochs=5, batch_size=32)
        # gains[budget][strategy][subset] -> list over seeds
        gains: dict[int, dict[str, dict[str, list[float]]]] = {
            b: {s: {"all": [], "new": [], "base": [], "picked_new": []} for s in strategies} for b in args.budgets
        }
        diag: list[dict[str, float]] = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rng = np.random.default_rng(1000 + seed)
            perm = rng.permutation(base_rows)
            ref_rows, shift_base = perm[n_shift_base:], perm[:n_shift_base]
            shifted = rng.permutation(np.concatenate([new_rows, shift_base]))
            n_pool = int(round(0.6 * len(shifted)))
            pool_rows, held_rows = shifted[:n_pool], shifted[n_pool:]
            retrain.assert_disjoint([corpus[i].query for i in pool_rows], [corpus[i].query for i in held_rows])
            retrain.assert_disjoint(
                [corpus[i].query for i in ref_rows], [corpus[i].query for i in np.concatenate([pool_rows, held_rows])]
            )
            is_new_pool = np.isin(pool_rows, new_rows)
            is_new_held = np.isin(held_rows, new_rows)

            det = KNNOODDetector(k=10, quantile=0.95, seed=seed).fit(base_q[ref_rows])
            res = det.evaluate(base_q[pool_rows])
            flags = np.asarray(res.flags)
            cluster = np.full(len(pool_rows), NO_CLUSTER, dtype=np.int64)
            flagged = np.flatnonzero(flags)
            k = max(1, min(5, flagged.size // 5))
            if flagged.size:
                unit = base_q[pool_rows[flagged]]
                cluster[flagged] = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(unit) if k > 1 else 0
            # Widened clusters: an unflagged pool query joins the drifted cluster whose centroid it is closest
            # to when it sits inside that cluster's radius (the 10th-percentile member-to-centroid cosine).
            wide = cluster.copy()
            if flagged.size:
                ids = np.unique(cluster[flagged])
                cent = np.stack([base_q[pool_rows[cluster == c]].mean(axis=0) for c in ids])
                cent /= np.linalg.norm(cent, axis=1, keepdims=True)
                cs = base_q[pool_rows] @ cent.T
                radius = np.array([np.quantile(cs[cluster == c, j], 0.1) for j, c in enumerate(ids)])
                best = cs.argmax(axis=1)
                join = (cluster == NO_CLUSTER) & (cs[np.arange(len(cs)), best] >= radius[best])
                wide[join] = ids[best[join]]
            ref_top1 = top1_all[ref_rows]
            floor = float(np.quantile(ref_top1, 0.05))
            clicked = rng.random(len(pool_rows)) < click_prob(rank_all[pool_rows])
            signals = DriftSignals(
                ood_score=np.asarray(res.scores),
                ood_flag=flags,
                cluster=cluster,
                top1=top1_all[pool_rows],
                top1_floor=floor,
                clicked=clicked,
            )
            pool = Pool(
                embeddings=base_q[pool_rows],
                novelty=np.asarray(res.scores),
                margin=margin_all[pool_rows],
                click_rank=np.where(clicked, rank_all[pool_rows], 0),
                top1=top1_all[pool_rows],
            )
            wide_signals = DriftSignals(
                ood_score=np.asarray(res.scores),
                ood_flag=flags,
                cluster=wide,
                top1=top1_all[pool_rows],
                top1_floor=floor,
                clicked=clicked,
            )
            targeted = signals.targeted()
            diag.append(
                {
                    "pool": len(pool_rows),
                    "held": len(held_rows),
                    "pool_new": int(is_new_pool.sum()),
                    "held_new": int(is_new_held.sum()),
                    "ref": len(ref_rows),
                    "flagged": int(flags.sum()),
                    "flag_p": res.p_value,
                    "flag_precision": float(is_new_pool[flags].mean()) if flags.any() else 0.0,
                    "flag_recall": float(flags[is_new_pool].mean()),
                    "clusters": k,
                    "targeted": int(targeted.sum()),
                    "target_precision": float(is_new_pool[targeted].mean()),
                    "target_recall": float(targeted[is_new_pool].mean()),
                    "top1_low": int((top1_all[pool_rows] < floor).sum()),
                    "click_new": float(clicked[is_new_pool].mean()),
                    "click_base": float(clicked[~is_new_pool].mean()),
                    "drift": float(res.drift),
                    "wide": int(wide_signals.targeted().sum()),
                    "wide_precision": float(is_new_pool[wide_signals.targeted()].mean()),
                    "wide_recall": float(wide_signals.targeted()[is_new_pool].mean()),
                }
            )
            picker = {
                "random": RandomSelection(),
                # The live model's misses first (no click, least sure first; then clicks at rank 4+): what
                # `label export` picks without sustained drift (#28).
                "misses": MissSelection(),
                "drift": DriftSelection(signals),
                "drift, random within cluster": DriftSelection(signals, prefer_failures=False),
                "drift, share 1.0": DriftSelection(signals, drift_share=1.0),
                "drift, widened clusters": DriftSelection(wide_signals),
                "novelty": NoveltySelection(),
                "margin": MarginSelection(),
                # Ground truth in place of the monitors' signals: what perfect drift detection would buy.
                "oracle (not deployable)": DriftSelection(DriftSignals(ood_flag=is_new_pool)),
            }

            held_q = base_q[held_rows]
            held_rel = [{doc_ids[i]} for i in held_rows]
            base_sc = evaluate_embeddings(held_q, base_docs, doc_ids, held_rel).scores["ndcg@10"]
            for b in args.budgets:
                for name in strategies:
                    idx = picker[name].select(pool, b, np.random.default_rng(seed))
                    assert len(set(idx.tolist())) == len(idx) == min(b, len(pool_rows)), name
                    rows = pool_rows[idx]
                    cfg = AdapterConfig(**{**al_cfg.__dict__, "seed": seed})
                    ad = train_adapter(base_q[rows], base_docs[rows], cfg)
                    sc = evaluate_embeddings(ad.apply(held_q), base_docs, doc_ids, held_rel).scores["ndcg@10"]
                    d = 100 * (sc - base_sc)
                    g = gains[b][name]
                    g["all"].append(float(d.mean()))
                    g["new"].append(float(d[is_new_held].mean()))
                    g["base"].append(float(d[~is_new_held].mean()))
                    g["picked_new"].append(float(is_new_pool[idx].mean()))
            log(
                f"seed {seed}: pool {len(pool_rows)} ({int(is_new_pool.sum())} new), flagged {int(flags.sum())} "
                f"(p={res.p_value:.1e}), targeted {int(targeted.sum())}; "
                + ", ".join(f"{s} {gains[args.budgets[-1]][s]['all'][-1]:+.2f}" for s in strategies)
            )

        dm = {k: float(np.mean([d[k] for d in diag])) for k in diag[0]}
        section = [
            f"## New topic family `{fam_name}`",
            "",
            f"Modules ({len(new_rows)} queries): {', '.join(sorted(family))}. Per seed: reference traffic = "
            f"{dm['ref']:.0f} base-topic queries; shifted traffic = all {len(new_rows)} family queries + "
            f"{n_shift_base} other base-topic queries ({100 * args.new_share:.0f}% new); pool {dm['pool']:.0f} "
            f"({dm['pool_new']:.0f} new), held-out {dm['held']:.0f} ({dm['held_new']:.0f} new).",
            "",
            f"Signal quality (mean over seeds): the OOD window test fired (p ≤ 0.05) in {100 * dm['drift']:.0f}% of "
            f"seeds; {dm['flagged']:.0f} pool queries flagged, {100 * dm['flag_precision']:.0f}% of them new-family, "
            f"catching {100 * dm['flag_recall']:.0f}% of the new-family pool queries; {dm['clusters']:.1f} clusters; "
            f"{dm['top1_low']:.0f} queries under the top-1 floor; targeted (flag ∪ cluster ∪ low top-1) = "
            f"{dm['targeted']:.0f}, precision {100 * dm['target_precision']:.0f}%, recall "
            f"{100 * dm['target_recall']:.0f}%; with widened clusters {dm['wide']:.0f}, precision "
            f"{100 * dm['wide_precision']:.0f}%, recall {100 * dm['wide_recall']:.0f}%. "
            f"Click rate: new-family {100 * dm['click_new']:.0f}%, base "
            f"{100 * dm['click_base']:.0f}%.",
            "",
        ]
        for b in args.budgets:
            rnd = {k: np.array(v) for k, v in gains[b]["random"].items()}
            section += [
                f"### `{fam_name}`, budget {b}",
                "",
                "| strategy | picks new-family | Δ nDCG@10 all held-out (mean ± sd) | − random (mean ± sd) "
                "| won | Δ new-family subset | − random (mean ± sd) | won | Δ base-topic subset "
                "| − random (mean ± sd) |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for name in strategies:
                g = {k: np.array(v) for k, v in gains[b][name].items()}
                da, dn, db = g["all"] - rnd["all"], g["new"] - rnd["new"], g["base"] - rnd["base"]
                section.append(
                    f"| {name} | {100 * g['picked_new'].mean():.0f}% | {g['all'].mean():+.2f} ± "
                    f"{g['all'].std(ddof=1):.2f} | {da.mean():+.2f} ± {da.std(ddof=1):.2f} | "
                    f"{int((da > 0).sum())}/{len(da)} | {g['new'].mean():+.2f} ± {g['new'].std(ddof=1):.2f} | "
                    f"{dn.mean():+.2f} ± {dn.std(ddof=1):.2f} | {int((dn > 0).sum())}/{len(dn)} | "
                    f"{g['base'].mean():+.2f} ± {g['base'].std(ddof=1):.2f} | "
                    f"{db.mean():+.2f} ± {db.std(ddof=1):.2f} |"
                )
            section.append("")
        sections += section

    # --- write results --------------------------------------------------------------------------------
    wall = time.perf_counter() - wall0
    load1 = os.getloadavg()
    cmd = "`.venv/bin/python benchmarks/bench_active.py" + "".join(f" {a}" for a in sys.argv[1:]) + "`"
    lines = [
        "# Drift-targeted active learning benchmark",
        "",
        f"Command: {cmd}",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPU cores (shared with other "
        f"jobs), no GPU; wall time {wall:.0f} s (corpus encodings from the bench_retrain cache); load average "
        f"{load0[0]:.1f} at start, {load1[0]:.1f} at end.",
        "",
        "## Setup",
        "",
        f"- Corpus: `embguard.training.stdlib_corpus.stdlib_corpus()`, {len(corpus)} passages, all searched "
        "(exact cosine). Base "
        f"model `{model.model_id}`. Query = docstring summary, one relevant passage. `{GUARD_TOPIC}` is never a "
        "query.",
        "- Drift: a *new topic family* of stdlib modules never appears in the reference traffic and makes up "
        f"{100 * args.new_share:.0f}% of the shifted traffic; the rest of the shifted traffic is base-topic queries "
        "disjoint from the reference. Per seed everything is re-drawn; shifted traffic is split 60/40 into the "
        "pool to label and the held-out set; pool, held-out and reference are pairwise disjoint (asserted).",
        "- Drift signals, as the daemon would compute them: `monitors.KNNOODDetector(k=10, quantile=0.95)` fitted "
        "on the reference query embeddings → per-query flags and scores on the pool; k-means (k = min(5, "
        "flagged // 5)) over the flagged queries → drifted-cluster ids (the `monitors.explain_ood` recipe); base "
        "top-1 cosine with floor = the reference traffic's 5% quantile; simulated clicks (P(click) = 0.9 / 0.5 / "
        "0.2 / 0 when the relevant passage is at base rank 1 / 2-3 / 4-10 / lower).",
        "- Strategies: `random`; `misses` = `retrain.MissSelection()` (what `label export` picks without sustained "
        "drift: unclicked queries first, lowest base top-1 cosine first; then clicks at base rank 4 or deeper, "
        "deepest first; then the rest at random); `drift` = `retrain.DriftSelection(signals)` with its defaults "
        "(80% of the budget "
        "on targeted queries = OOD-flagged ∪ in a drifted cluster ∪ top-1 under the floor, round-robin over the "
        "drifted clusters, unclicked then lowest top-1 first inside each; 20% random over the rest); `drift, random "
        "within cluster` = `prefer_failures=False`; `drift, share 1.0` = `drift_share=1.0`; `drift, widened "
        "clusters` = defaults, but an unflagged pool query also joins the drifted cluster whose centroid it is "
        "closest to when inside that cluster's radius (10th-percentile member cosine) — a daemon-side choice of "
        "what to pass as `cluster`; `novelty` = highest kNN OOD score first; `margin` = smallest base "
        "top-1 − top-2 cosine first; `oracle` = `DriftSelection` fed the ground-truth new-family mask instead of "
        "the monitors' signals (not deployable: the ceiling perfect drift detection would give).",
        "- Training: a query adapter (`retrain.train_adapter`, `AdapterConfig(epochs=5, batch_size=32, seed=seed)`) "
        "on (query, relevant passage) embeddings of the picks. Δ = adapter − base nDCG@10 ×100 on the same "
        'held-out queries. "− random" is the paired per-seed difference (its standard error is sd/√'
        f'{args.seeds} ≈ {1 / np.sqrt(args.seeds):.2f}·sd); "won" counts seeds (of {args.seeds}) where the '
        "strategy's gain beat random's.",
        f"- Seeds {args.first_seed}-{args.first_seed + args.seeds - 1}. Seeds 0-19 were used while choosing "
        "DriftSelection's defaults (failures first inside a cluster, share 0.8), so the reported seeds are fresh.",
        "",
        *sections,
    ]
    args.out.write_text("\n".join(lines) + "\n")
    log(f"wrote {args.out} in {wall:.0f}s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
