"""A real-text retrieval corpus from what Debian installed on this machine (no download).

Two local sources, each giving :class:`embguard.training.stdlib_corpus.Passage` records:

1. ``/var/lib/dpkg/status``: every installed package with a multi-line ``Description``. The query is the synopsis
   (its first line), the text the long description (the continuation lines as prose, `` .`` paragraph breaks
   dropped), the topic the archive ``Section`` (the part after any ``/``), the title the package name. The dpkg
   status file is used because the available package lists here (``apt-cache dumpavail``) carry synopses only:
   there are no ``Translation-en`` files, hence no long descriptions. ``-dev``/``-dbg``/``-doc`` packages are dropped.
2. Man pages in ``/usr/share/man/man1`` and ``man8`` (symlinks, ``.so`` redirects and the pages of packages from
   outside Debian's archive, ``FOREIGN_PACKAGES``, skipped), parsed from the roff
   source with regexes: the query is the NAME line's description (``cmd \\- description``), the title the command,
   the text the DESCRIPTION section as plain prose (first ~1000 characters), the topic the ``Section`` of the package
   that owns the page (from ``/var/lib/dpkg/info/*.list``), ``"man"`` when unknown.

The query reads like what a user types (a one-line summary); the text is the longer description a search should
return, and never contains the query verbatim, so retrieval is non-trivial. Boilerplate queries (transitional,
dummy, debug symbols, ...) are dropped, and each query and each text is kept once. Inputs are sorted, so the order and
the ids (``0..n-1``, dpkg packages first, then man pages) are stable across runs.

    python benchmarks/debian_docs.py  # counts per source and topic, and a few examples
"""

from __future__ import annotations

import functools
import gzip
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embguard.training.stdlib_corpus import Passage

STATUS = Path("/var/lib/dpkg/status")
INFO = Path("/var/lib/dpkg/info")
MAN_DIRS = (Path("/usr/share/man/man1"), Path("/usr/share/man/man8"))
MAX_TEXT = 1000
_BOILERPLATE = (
    "transitional", "dummy package", "metapackage", "meta-package", "debug symbols", "debugging symbols",
    "development files", "documentation for", "empty package",
)  # fmt: skip
_FONT_MACROS = {".B", ".I", ".BR", ".IR", ".BI", ".IB", ".RB", ".RI", ".SM", ".SB"}
_NAMED = {"aq": "'", "dq": '"', "em": "-", "en": "-", "hy": "-", "lq": '"', "rq": '"', "oq": "'", "cq": "'"}
_NAMED |= {"co": "(c)", "rg": "(R)", "tm": "(TM)", "mi": "-", "pl": "+", "eq": "=", "ga": "`", "ti": "~", "ha": "^"}
_STRINGS = {'L"': '"', 'R"': '"', "--": "-", "C`": '"', "C'": '"', "Aq": "'", "lq": '"', "rq": '"'}
_CHARS = {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "'": "'", "`": "`", ".": "."}
_ESCAPE = re.compile(
    r"\\(?:f(?:\[[^\]]*\]|\(..|.)"  # font changes
    r"|\((..)|\[([^\]]*)\]|\*(?:\((..)|\[([^\]]*)\]|(.))"  # special characters and strings
    r"|s[-+]?\d|[hvwlLDNo]'[^']*'|[kn](?:\(..|\[[^\]]*\]|.)|[,/&%:|^c!]|(.))"
)
_NAME_DASH = re.compile(r"\s*\\-\s+|\s+(?:\\-|\\\(em|\\\(en|\\\[em\]|-{1,2})(?:\s+|$)")
_MDOC_DROP = {"Pp", "Lp", "Bl", "El", "Bd", "Ed", "Sm", "Os", "Dd", "Dt", "Tg", "Ss", "Sh", "Rs", "Re", "Ek", "Bk"}
_MDOC_MACROS = set(
    "Ac Ad An Ao Aq Ar At Bc Bo Bq Brc Bro Brq Bsx Bx Cd Cm D1 Dc Dl Do Dq Dv Ec Em Eo Er Ev Fa Fc Fl Fn Fo Ft Fx Ic "
    "It Li Lk Ms Mt Nm No Ns Nx Oc Oo Op Ox Pa Pc Pf Po Pq Qc Ql Qo Qq Sc So Sq Sx Sy Ta Tn Ux Va Vt Xc Xo Xr".split()
)


def _unescape(m: re.Match[str]) -> str:
    char, bracket, string2, string_bracket, string1, other = m.groups()
    if char or bracket:
        name = char or bracket
        return _NAMED.get(name, " " if name == "bu" else "")
    if string2 or string_bracket or string1:
        return _STRINGS.get(string2 or string_bracket or string1, "")
    return _CHARS.get(other or "", "")


def _plain(roff: str) -> str:
    """Roff inline text to plain text, whitespace collapsed."""
    return " ".join(_ESCAPE.sub(_unescape, roff).split())


def _prose(lines: list[str], keep_dash: bool = False) -> str:
    """Roff lines to prose: requests dropped, the text argument of font macros kept, escapes stripped."""
    out = []
    for line in lines:
        if line.startswith((".", "'")):
            macro, _, rest = line.partition(" ")
            if macro not in _FONT_MACROS:
                continue
            words = [w.strip('"') for w in re.findall(r'"[^"]*"|\S+', rest)]
            # .BR ls (1) is "ls(1)": the alternating-font macros join their arguments without spaces.
            line = (" " if macro in {".B", ".I", ".SM", ".SB"} else "").join(words)
        out.append(line)
    return " ".join(out) if keep_dash else _plain(" ".join(out))


def _keep(query: str, text: str) -> bool:
    low = query.lower()
    return 10 <= len(query) <= 120 <= len(text) and not any(b in low for b in _BOILERPLATE) and low not in text.lower()


@functools.lru_cache(maxsize=1)
def _stanzas() -> list[dict[str, str]]:
    out = []
    for stanza in STATUS.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            out.append(fields)
    return out


@functools.lru_cache(maxsize=1)
def _sections() -> dict[str, str]:
    return {f["Package"]: f.get("Section", "").rpartition("/")[2] for f in _stanzas() if f.get("Section")}


def _dpkg() -> Iterator[tuple[str, str, str, str]]:
    for f in sorted(_stanzas(), key=lambda f: (f["Package"], f.get("Architecture", ""))):
        name, desc = f["Package"], f.get("Description", "")
        if not f.get("Status", "").endswith(" installed") or name.endswith(("-dev", "-dbg", "-doc", "-dbgsym")):
            continue
        synopsis, _, long = desc.partition("\n")
        text = " ".join(line for line in long.splitlines() if line.strip() != ".")  # " ." is a paragraph break
        yield _sections().get(name) or "misc", name, " ".join(synopsis.split()), " ".join(text.split())


def _owners() -> dict[str, str]:
    owners: dict[str, str] = {}
    for lst in sorted(INFO.glob("*.list")):
        package = lst.stem.partition(":")[0]
        for path in lst.read_text(encoding="utf-8", errors="replace").splitlines():
            if path.startswith("/usr/share/man/man"):
                owners.setdefault(path, package)
    return owners


def _section(src: str, name: str, sh: str = "SH") -> list[str]:
    """The lines of section ``.SH name`` (case-insensitive, quotes allowed) up to the next ``.SH``."""
    m = re.search(rf'^\.{sh}\s+"?{name}"?\s*$', src, re.MULTILINE | re.IGNORECASE)
    if not m:
        return []
    end = re.search(rf"^\.{sh}\b", src[m.end() :], re.MULTILINE)
    body = src[m.end() : m.end() + end.start() if end else len(src)]
    return [line for line in body.splitlines() if line.strip()]


def _mdoc(lines: list[str], title: str) -> str:
    """BSD mdoc lines to prose: structure macros dropped, callable macro names dropped from the lines they start."""
    out = []
    for line in lines:
        if line.startswith("."):
            words = line[1:].split()
            if not words or words[0] in _MDOC_DROP:
                continue
            line, flag = "", False
            for w in words:
                if flag or w not in _MDOC_MACROS:
                    line += (" -" if flag else " ") + w.strip('"')
                flag = w == "Fl"
            line = line or (title if words == ["Nm"] else "")
        out.append(line)
    return re.sub(r" ([.,;:)])(?=\s|$)", r"\1", _plain(" ".join(out)))


def _man_page(path: Path) -> tuple[str, str, str] | None:
    try:
        src = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    except (OSError, EOFError):
        return None
    if re.match(r"\s*\.so\s", src):
        return None
    src = re.sub(r'(?<!\\)\\".*', "", src)  # comments
    src = re.sub(r"^\.(TS|de)\b.*?^\.(TE|\.)\s*$", "", src, flags=re.MULTILINE | re.DOTALL)  # tables, macros
    if re.search(r"^\.Sh\s+NAME", src, re.MULTILINE):  # BSD mdoc (ssh, tmux, dash, ...)
        name = _section(src, "NAME", "Sh")
        title = next((line.split()[1] for line in name if line.startswith(".Nm ")), "")
        query = next((_plain(line[4:]) for line in name if line.startswith(".Nd ")), "")
        return title, query, _clip(_mdoc(_section(src, "DESCRIPTION", "Sh"), title))
    entry: list[str] = []
    for line in _section(src, "NAME"):  # only the first "cmd \- description" entry (hostname, domainname, ...)
        line = _prose([line], keep_dash=True)
        if entry and _NAME_DASH.search(line):
            break
        entry += [line] if line.strip() else []
    parts = _NAME_DASH.split(" ".join(entry), maxsplit=1)
    if len(parts) != 2:
        return None
    title, query = _plain(parts[0]).split(",")[0].strip(), _plain(parts[1]).rstrip(".")
    return title, query, _clip(_prose(_section(src, "DESCRIPTION")))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: text.rfind(" ", 0, MAX_TEXT)]


# Pages of software this machine has from outside Debian's archive: google-cloud-cli's 16,000 generated gcloud
# subcommand pages would otherwise be half the corpus, near-copies of each other.
FOREIGN_PACKAGES = frozenset({"google-cloud-cli"})


def _man() -> Iterator[tuple[str, str, str, str]]:
    owners, sections, seen = _owners(), _sections(), set()
    for path in sorted(p for d in MAN_DIRS for p in d.glob("*.gz")):
        real = os.path.realpath(path)
        if path.is_symlink() or real in seen or owners.get(str(path)) in FOREIGN_PACKAGES:
            continue
        seen.add(real)
        page = _man_page(path)
        if page:
            title, query, text = page
            yield sections.get(owners.get(str(path), ""), "") or "man", title, query, text


@functools.lru_cache(maxsize=1)
def _build() -> tuple[list[Passage], int]:
    out: list[Passage] = []
    queries: set[str] = set()
    texts: set[str] = set()
    n_dpkg = 0
    for source in (_dpkg, _man):
        for topic, title, query, text in source():
            if not _keep(query, text) or query.lower() in queries or text.lower() in texts:
                continue
            queries.add(query.lower())
            texts.add(text.lower())
            out.append(Passage(id=len(out), topic=topic, title=title, query=query, text=text))
        n_dpkg = n_dpkg or len(out)
    return out, n_dpkg


@functools.lru_cache(maxsize=1)
def debian_corpus() -> list[Passage]:
    """All eligible passages: dpkg package descriptions first, then man pages; ids ``0..n-1`` in that order."""
    return _build()[0]


def main() -> None:
    start = time.perf_counter()
    corpus, n_dpkg = debian_corpus(), _build()[1]
    elapsed = time.perf_counter() - start
    topics = Counter(p.topic for p in corpus)
    print(f"{len(corpus)} passages in {elapsed:.1f}s: {n_dpkg} dpkg packages, {len(corpus) - n_dpkg} man pages")
    print(f"{len(topics)} topics; top 20:")
    for topic, n in topics.most_common(20):
        print(f"  {topic:20s} {n}")
    for p in random.Random(0).sample(corpus, min(5, len(corpus))):
        print(f"\n[{p.id}] {p.topic} / {p.title}\n  query: {p.query}\n  text:  {p.text[:200]}")


if __name__ == "__main__":
    main()
