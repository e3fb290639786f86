"""The embedded ``stdlib_code`` dataset: docstring -> function retrieval over Python's stdlib.

Built at run time from the standard library of the running interpreter, in the style of
CodeSearchNet: the query is the first sentence of a function's docstring and the relevant
document is the function's source with that docstring removed. No download is needed, so it
is the default dataset of ``hnm train``.

Rules (bump :data:`BUILDER_VERSION` whenever one changes, so caches are rebuilt):

- Files: every ``.py`` file under ``sysconfig.get_paths()["stdlib"]``, walking only folders
  whose names are identifiers (which skips ``site-packages``, ``lib-dynload``, ...) and skipping
  test code: any path part that starts with ``test`` or ends with ``_test`` (``test/``,
  ``tests/``, ``idlelib/idle_test/``, ``test_*.py``). Files that fail to parse are skipped.
- Documents: module-level functions and methods of (nested) classes; functions nested inside
  functions are part of their parent's document. A function is kept when, after removing its
  docstring, its body is not trivial (only ``pass``, ``...``, a constant, a bare ``raise``,
  ``raise NotImplementedError``, or ``return <constant>``) and its source has at least
  :data:`MIN_CODE_LINES` non-blank, non-comment lines (signature included). Every kept
  function is a document, with or without a docstring; the title is ``module.qualname``.
- Queries: the first sentence of the docstring (up to the first blank line or the first
  ``". "``), whitespace collapsed, with at least ``min_query_words`` words. A query text shared
  by several functions (compared ignoring case, spacing and punctuation) is ambiguous, and all of its copies are
  dropped (their documents stay in the corpus as distractors).
- Split: by top-level module (``json`` for ``json.decoder``), so no package leaks between
  splits. A top-level module is in ``test`` when ``md5(name) % 100 < TEST_BUCKETS``; of the
  others, it is in ``dev`` when ``sha1("dev:" + name) % 100 < DEV_BUCKETS`` (a second hash,
  independent of the first), else in ``train``. The rules depend on the name only, so a
  module keeps its split across Python versions. On Python 3.11 the 3,886 pairs split into
  train 2,641 (68%), dev 486 (12.5%, 25 modules) and test 759 (19.5%); the largest packages,
  such as idlelib and tkinter, hash into train. Tune on ``dev``, report ``test``.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import logging
import os
import re
import sys
import sysconfig
import textwrap
import time
import tokenize
import warnings
from collections import Counter
from pathlib import Path

from hnm.data.dataset import RetrievalData
from hnm.errors import check_choice

log = logging.getLogger(__name__)

BUILDER_VERSION = 3
MIN_CODE_LINES = 3
TEST_BUCKETS = 30
DEV_BUCKETS = 25
SPLITS = ("train", "dev", "test")
NAME = "stdlib_code"

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)\.\s")


def load_stdlib_code(cache_dir: str | None = None, rebuild: bool = False,
                     min_query_words: int = 5, corpus: str = "paired") -> RetrievalData:
    """Load the ``stdlib_code`` dataset, building it from the stdlib on first use.

    Args:
        cache_dir: folder for the built dataset; defaults to ``$HNM_CACHE_DIR`` or
            ``~/.cache/hnm``. The cache records the Python version and the builder version
            and is rebuilt when either differs.
        rebuild: ignore an existing cache and build again.
        min_query_words: shortest docstring sentence kept as a query.
        corpus: ``paired`` (default) keeps the documents of all pairs, every split (~3,900
            on Python 3.11: the dev and test queries search among every paired function,
            train ones included); ``all`` keeps every non-trivial function (~11,500), which
            triples the cost of each evaluation on a CPU.

    Returns:
        :class:`RetrievalData` named ``stdlib_code`` with ``train``, ``dev`` and ``test``
        qrels.
    """
    check_choice("data.source.corpus", corpus, ("paired", "all"))
    data = _load_full(cache_dir, rebuild, min_query_words)
    if corpus == "paired":
        keep = {d for split in data.qrels.values() for docs in split.values() for d in docs}
        data.corpus = {d: doc for d, doc in data.corpus.items() if d in keep}
    return data


def _load_full(cache_dir: str | None, rebuild: bool, min_query_words: int) -> RetrievalData:
    py = ".".join(map(str, sys.version_info[:3]))
    folder = Path(cache_dir or os.environ.get("HNM_CACHE_DIR") or "~/.cache/hnm").expanduser()
    path = folder / f"{NAME}-py{py}-b{BUILDER_VERSION}-w{min_query_words}.json.gz"
    stamp = {"python": py, "builder": BUILDER_VERSION, "min_query_words": min_query_words}
    if not rebuild:
        cached = _read_cache(path, stamp)
        if cached is not None:
            return cached
    start = time.perf_counter()
    data = build_stdlib_code(min_query_words)
    log.info(
        "%s: %d docstring->function pairs (train %d, dev %d, test %d), corpus of %d "
        "functions, built from the Python %s stdlib in %.1fs",
        NAME, sum(map(len, data.qrels.values())), *(len(data.qrels[s]) for s in SPLITS),
        len(data.corpus), py, time.perf_counter() - start,
    )
    _write_cache(path, stamp, data)
    return data


def build_stdlib_code(min_query_words: int = 5, root: str | None = None) -> RetrievalData:
    """Build the dataset from the stdlib folder ``root`` (the running interpreter's by default)."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    corpus: dict[str, dict[str, str]] = {}
    candidates: list[tuple[str, str, str]] = []  # (doc id, top-level module, query)
    for file in _source_files(base):
        module = ".".join(file.relative_to(base).with_suffix("").parts).removesuffix(".__init__")
        for qualname, code, docstring in _functions(file):
            doc_id = title = f"{module}.{qualname}"
            n = 2
            while doc_id in corpus:  # same name defined twice (if/else branches)
                doc_id, n = f"{title}#{n}", n + 1
            corpus[doc_id] = {"title": title, "text": code}
            query = first_sentence(docstring) if docstring else ""
            if len(query.split()) >= min_query_words:
                candidates.append((doc_id, module.split(".")[0], query))
    counts = Counter(_query_key(q) for _, _, q in candidates)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {s: {} for s in SPLITS}
    for doc_id, top, query in candidates:  # ambiguity is judged across all splits at once
        if counts[_query_key(query)] == 1:
            qid = f"q:{doc_id}"
            queries[qid] = query
            qrels[module_split(top)][qid] = {doc_id: 1}
    return RetrievalData(NAME, corpus, queries, qrels)


def _query_key(query: str) -> str:
    """Queries equal up to case, spacing and punctuation are the same query."""
    return " ".join(re.sub(r"[^\w\s]", " ", query.casefold()).split())


def is_test_module(top: str) -> bool:
    """Whether the top-level module ``top`` belongs to the test split (a stable hash rule)."""
    return int(hashlib.md5(top.encode()).hexdigest(), 16) % 100 < TEST_BUCKETS


def is_dev_module(top: str) -> bool:
    """Whether ``top`` belongs to the dev split: a second stable hash among non-test modules."""
    if is_test_module(top):
        return False
    return int(hashlib.sha1(f"dev:{top}".encode()).hexdigest(), 16) % 100 < DEV_BUCKETS


def module_split(top: str) -> str:
    """The split (``train``, ``dev`` or ``test``) of the top-level module ``top``."""
    if is_test_module(top):
        return "test"
    return "dev" if is_dev_module(top) else "train"


def first_sentence(docstring: str) -> str:
    """First sentence of a docstring: up to the first blank line or ``". "``, one line."""
    paragraph = re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0]
    text = " ".join(paragraph.split())
    match = _SENTENCE_END.search(text + " ")
    return text[: match.start() + 1] if match else text


def _source_files(base: Path) -> list[Path]:
    """Stdlib ``.py`` files in sorted order, without test code or non-package folders."""
    files = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d.isidentifier() and not _is_test(d))
        files += [Path(dirpath, f) for f in sorted(filenames)
                  if f.endswith(".py") and f[:-3].isidentifier() and not _is_test(f[:-3])]
    return files


def _is_test(part: str) -> bool:
    return part.startswith("test") or part.endswith("_test")


def _functions(file: Path) -> list[tuple[str, str, str | None]]:
    """``(qualname, source without docstring, docstring)`` of the kept functions of a file."""
    try:
        with tokenize.open(file) as fh:
            source = fh.read()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=str(file))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        log.debug("stdlib_code: skipping %s (does not parse)", file)
        return []
    lines = source.splitlines(keepends=True)
    out: list[tuple[str, str, str | None]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _FUNCS):
                docstring = ast.get_docstring(child, clean=True)
                body = child.body[1:] if docstring is not None else child.body
                if not _trivial(body):
                    code = _without_docstring(child, lines, docstring is not None)
                    if _code_lines(code) >= MIN_CODE_LINES:
                        out.append((prefix + child.name, code, docstring))
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif not isinstance(child, ast.expr):
                visit(child, prefix)  # if/try/with blocks at module or class level

    visit(tree, "")
    return out


def _trivial(body: list[ast.stmt]) -> bool:
    """Whether a function body (docstring excluded) does nothing worth retrieving."""
    if len(body) != 1:
        return not body
    stmt = body[0]
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, ast.Constant)
    if isinstance(stmt, ast.Return):
        return stmt.value is None or isinstance(stmt.value, ast.Constant)
    if isinstance(stmt, ast.Raise):
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return exc is None or (isinstance(exc, ast.Name) and exc.id == "NotImplementedError")
    return False


def _without_docstring(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str],
                       has_docstring: bool) -> str:
    """Dedented source of ``fn`` (decorators included) with its docstring cut out."""
    first = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
    seg = lines[first - 1: fn.end_lineno]
    if has_docstring:
        ds = fn.body[0]
        a, b = ds.lineno - first, (ds.end_lineno or ds.lineno) - first
        # ast column offsets count UTF-8 bytes
        rest = (seg[a].encode()[: ds.col_offset] + seg[b].encode()[ds.end_col_offset or 0:])
        rest_text = rest.decode()
        keep = [rest_text] if rest_text.strip().strip(";").strip() else []
        seg = seg[:a] + keep + seg[b + 1:]
    return textwrap.dedent("".join(seg)).rstrip() + "\n"


def _code_lines(code: str) -> int:
    return sum(1 for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def _read_cache(path: Path, stamp: dict) -> RetrievalData | None:
    """The cached dataset when ``path`` exists and its stamp matches, else ``None``."""
    if not path.is_file():
        return None
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            blob = json.load(fh)
        if any(blob.get(k) != v for k, v in stamp.items()):
            log.info("%s: cache %s was built for %s; rebuilding", NAME, path,
                     {k: blob.get(k) for k in stamp})
            return None
        return RetrievalData(NAME, blob["corpus"], blob["queries"], blob["qrels"])
    except (OSError, ValueError, KeyError, EOFError) as err:
        log.warning("%s: cache %s is unreadable (%s); rebuilding", NAME, path, err)
        return None


def _write_cache(path: Path, stamp: dict, data: RetrievalData) -> None:
    """Write the cache atomically (temporary file, then ``os.replace``); warn on failure."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {**stamp, "corpus": data.corpus, "queries": data.queries, "qrels": data.qrels}
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
            json.dump(blob, fh)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        log.warning("%s: could not write the cache %s (%s); it will be rebuilt next time",
                    NAME, path, err)
