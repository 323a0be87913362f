"""The index dir's keyword side: tantivy over our own jieba terms.

Terms are cut once, in our code (``contract.terms_for``), joined by single
spaces, and split back unchanged by tantivy's ``whitespace`` tokenizer; the
query is built from ``TermQuery``s, so user text never reaches tantivy's
query parser. tantivy's BM25 is Lucene's with K1=1.2, B=0.75
(``contract.BM25``); its IDF and average length are summed over all
segments, so scores do not depend on segment layout (measured: identical
scores with 1 and 5 segments). Ids are i64 fields: tantivy-py 0.27 turns a
Python int into an i64 term, and deleting by term on a u64 field deletes
nothing (measured, scratch/scale/tantivy_u64_delete.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

#: Writer heap: tantivy flushes a segment when it is full. 32 MB bounds a
#: writer's memory whatever the corpus size (tantivy needs at least 15 MB a thread).
WRITER_HEAP = 32_000_000


def _tantivy():
    try:
        import tantivy
    except ImportError as exc:  # pragma: no cover - a dependency of wenda
        from ..errors import ModelUnavailableError

        raise ModelUnavailableError("tantivy is not installed; pip install tantivy") from exc
    return tantivy


@lru_cache(maxsize=1)
def schema():
    tantivy = _tantivy()
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("rowid", stored=False, indexed=True, fast=True)
    sb.add_integer_field("gen", stored=False, indexed=True, fast=False)  # recovery deletes a failed write's adds by it
    # BM25 needs term frequencies, not positions.
    sb.add_text_field("terms", stored=False, tokenizer_name="whitespace", index_option="freq")
    return sb.build()


def open_index(path: Path, *, create: bool = False):
    """The tantivy index at ``path`` (created when asked), reloaded only on request."""
    tantivy = _tantivy()
    if create:
        path.mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(schema(), path=str(path), reuse=True)
    else:
        index = tantivy.Index.open(str(path))
    # Manual reloads: the default reload is asynchronous with commit() and
    # starts a watcher thread per index (quickwit-oss/tantivy#3057).
    index.config_reader("Manual")
    return index


def _doc(rowid: int, gen: int, terms: Sequence[str]):
    d = _tantivy().Document()
    d.add_integer("rowid", int(rowid))
    d.add_integer("gen", int(gen))
    d.add_text("terms", " ".join(terms))
    return d


class KeywordWriter:
    """A tantivy writer for one write: adds, deletes, commit.

    Writes wait for tantivy's merges after each commit: a writer dropped right
    after ``commit()`` never merges (31 segments after 60 writes, search x2).
    """

    def __init__(self, index) -> None:
        self._w = index.writer(heap_size=WRITER_HEAP, num_threads=1)

    def add(self, rows: Iterable[int], terms: Iterable[Sequence[str]], gen: int) -> None:
        for r, t in zip(rows, terms):
            self._w.add_document(_doc(r, gen, t))

    def delete_rows(self, rows: Iterable[int]) -> None:
        for r in rows:
            self._w.delete_documents_by_term("rowid", int(r))

    def delete_gen(self, gen: int) -> None:
        self._w.delete_documents_by_term("gen", int(gen))

    def commit(self) -> int:
        opstamp = self._w.commit()
        self._w.wait_merging_threads()
        self._w = None
        return int(opstamp)

    def rollback(self) -> None:
        if self._w is not None:
            self._w.rollback()
            self._w.wait_merging_threads()
            self._w = None


def search(searcher, terms: Sequence[str], k: int) -> list[tuple[int, float]]:
    """Top ``k`` (row id, BM25 score), ties cut by row id so that every
    segment layout gives the same order."""
    tantivy = _tantivy()
    if not terms or k <= 0:
        return []
    sch = schema()
    # A repeated term counts once per occurrence, as bm25s did.
    query = tantivy.Query.boolean_query([(tantivy.Occur.Should, tantivy.Query.term_query(sch, "terms", t))
                                         for t in terms])
    result = searcher.search(query, k, count=False)
    if not result.hits:
        return []
    rows = searcher.fast_field_values("rowid", [addr for _, addr in result.hits])
    return [(int(r), float(s)) for (s, _), r in zip(result.hits, rows)]


def has_gen(searcher, gen: int) -> bool:
    """Whether any document was added by generation ``gen``."""
    tantivy = _tantivy()
    return bool(searcher.search(tantivy.Query.term_query(schema(), "gen", int(gen)), 1, count=False).hits)


def doc_freq(searcher, term: str) -> int:
    return int(searcher.doc_freq("terms", term))
