"""Real text with real topic families: Debian's package descriptions, from ``apt-cache dumpavail`` (no download).

Each package gives a one-line synopsis, which reads like what a user types, with the archive section as a known
topic label. This machine's apt lists carry no ``Translation-en`` files, so there are no long descriptions: half of
each section's packages are *queries* (the synopsis), the other half *documents* (name, synopsis and debtags, the
passage a search returns). Packages whose synopsis is boilerplate of another
package (``-dev``, ``-dbg``, ``-doc``, transitional and metapackages) are dropped, and each synopsis is kept once,
so a window never repeats the same text by construction. Embeddings (all-MiniLM-L6-v2, the shipped model) are
cached under ``.cache/bench/`` keyed by the model id and the texts' digest.

    from debian import load_packages
    pk = load_packages()  # sections, queries, query_vectors; doc_sections, documents, doc_vectors
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "bench"
# Topic sections (the -dev/-doc/library-only ones left out), at most PER_SECTION packages each, seeded.
SECTIONS = (
    "admin", "database", "devel", "editors", "electronics", "fonts", "games", "gnome", "gnu-r", "golang",
    "graphics", "hamradio", "httpd", "interpreters", "java", "javascript", "kde", "kernel", "mail", "math", "net",
    "perl", "php", "python", "ruby", "rust", "science", "sound", "tex", "text", "utils", "video", "web", "x11",
)  # fmt: skip
PER_SECTION = 2000
_BOILERPLATE = ("transitional", "dummy package", "metapackage", "debug symbols", "development files", "documentation")


@dataclass(frozen=True)
class Packages:
    sections: np.ndarray  # section name per query
    queries: list[str]
    query_vectors: np.ndarray  # (queries, 384) float32, L2-normalised
    doc_sections: np.ndarray  # section name per document
    documents: list[str]
    doc_vectors: np.ndarray


def _records() -> list[tuple[str, str, str, str]]:
    text = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    out, seen = [], set()
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        name, section = fields.get("Package", ""), fields.get("Section", "").rpartition("/")[2]
        synopsis = fields.get("Description", "").partition("\n")[0]
        tags = fields.get("Tag", "").replace("\n", " ")
        body = f"{name}: {synopsis}. {tags}".strip()
        if section not in SECTIONS or name.endswith(("-dev", "-dbg", "-doc", "-data", "-common")):
            continue
        if any(b in synopsis.lower() for b in _BOILERPLATE) or synopsis.lower() in seen:
            continue
        seen.add(synopsis.lower())
        out.append((name, section, synopsis, body))
    return out


def _encode(tag: str, texts: list[str]) -> np.ndarray:
    from embguard.models.loading import load

    model = load()
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"debian-{tag}-{model.model_id.replace('/', '_').replace('@', '_')}-{digest}.npy"
    if path.exists():
        return np.load(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    vecs = np.asarray(model.encode(texts), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    np.save(path, vecs)
    print(f"encoded {len(texts)} Debian {tag} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return vecs


def load_packages(seed: int = 0) -> Packages:
    recs = _records()
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for section in SECTIONS:
        rows = [i for i, r in enumerate(recs) if r[1] == section]
        keep += sorted(rng.permutation(rows)[:PER_SECTION].tolist())
    q, d = [recs[i] for i in keep[0::2]], [recs[i] for i in keep[1::2]]
    queries, documents = [r[2] for r in q], [r[3] for r in d]
    return Packages(
        np.array([r[1] for r in q]),
        queries,
        _encode("synopses", queries),
        np.array([r[1] for r in d]),
        documents,
        _encode("documents", documents),
    )


if __name__ == "__main__":
    pk = load_packages()
    sections, counts = np.unique(pk.sections, return_counts=True)
    print(len(pk.queries), len(pk.documents), dict(zip(sections.tolist(), counts.tolist(), strict=True)))
