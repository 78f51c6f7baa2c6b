import numpy as np

from retrain import ExactRetriever, MiningConfig, Pair, mine_hard_negatives


class DictEncoder:
    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode(self, texts):  # type: ignore[no-untyped-def]
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def _setup(seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    n_docs, d = 60, 16
    docs = rng.normal(size=(n_docs, d)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    texts = {i: f"doc {i}" for i in range(n_docs)}
    table = {texts[i]: docs[i] for i in range(n_docs)}
    pairs = []
    for qi in range(15):
        pos = qi
        q = docs[pos] + 0.6 * rng.normal(size=d)
        table[f"query {qi}"] = q / np.linalg.norm(q)
        pairs.append(Pair(query=f"query {qi}", positive=texts[pos], positive_id=pos))
    return pairs, DictEncoder(table), ExactRetriever(list(range(n_docs)), docs), texts, docs, table


def test_mined_negatives_are_never_positives_and_respect_the_margin() -> None:
    pairs, enc, retr, texts, docs, table = _setup()
    extra_pos = {"query 0": frozenset({0, 40})}  # a second known positive for query 0
    for margin in (0.0, 0.05, 0.3):
        cfg = MiningConfig(k=30, relative_margin=margin, num_negatives=3)
        out = mine_hard_negatives(pairs, enc, retr, texts, positives=extra_pos, config=cfg)
        assert {p.query for p in out} == {p.query for p in pairs}
        mined = [p for p in out if p.negative is not None]
        assert mined, "expected some negatives"
        for p in mined:
            assert p.negative_id != p.positive_id and p.negative != p.positive
            assert not (p.query == "query 0" and p.negative_id == 40)
            q = table[p.query]
            pos_score = float(q @ docs[p.positive_id])
            assert float(q @ docs[p.negative_id]) <= (1 - margin) * pos_score + 1e-6


def test_a_larger_margin_filters_more_candidates() -> None:
    pairs, enc, retr, texts, *_ = _setup(1)
    n = [
        sum(
            p.negative is not None
            for p in mine_hard_negatives(
                pairs, enc, retr, texts, config=MiningConfig(k=10, relative_margin=m, num_negatives=10)
            )
        )
        for m in (0.0, 0.5, 0.9)
    ]
    assert n[0] >= n[1] >= n[2] and n[0] > n[2]
