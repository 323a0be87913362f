"""``wenda migrate --to postgresql://…``: copy an index into PostgreSQL
without embedding anything again (the stored vectors and terms are copied)."""

from __future__ import annotations

from collections.abc import Callable

from ..backend import Backend
from ..errors import IndexMismatchError, IndexNotFoundError
from .backend import PgBackend


def copy_to_pg(source: Backend, target: PgBackend, *, replace: bool = False,
               on_progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Copy the latest snapshot of ``source`` into ``target`` in one transaction.

    Args:
        replace: overwrite an index already in the database.
        on_progress: told the number of articles copied so far.

    Returns:
        (articles, passages) copied.

    Raises:
        IndexNotFoundError: the source holds no index.
        IndexMismatchError: the database already holds an index and not ``replace``.
    """
    snap = source.snapshot()
    if not hasattr(snap, "export"):
        raise IndexNotFoundError(f"{source.location} cannot be exported.")
    existing = target.generation()
    if existing and not replace:
        stats = target.stats() or {"counts": {"articles": 0}}
        raise IndexMismatchError(f"The database at {target.location} already holds an index "
                                 f"({stats['counts']['articles']} articles); pass --replace to overwrite it.")
    articles = passages = 0
    with target.writer(manifest=snap.manifest, wait=0, kind="migrate", total=snap.counts.articles,
                       rebuild=True) as session:
        # Weights computed at the source's average length from the start: no re-weighting pass.
        session.ref_avgdl = snap.average_terms() if hasattr(snap, "average_terms") else session.ref_avgdl
        for item in snap.export():
            session.put(item)
            articles += 1
            passages += len(item.passages)
            target.tell_progress(articles)
            if on_progress is not None:
                on_progress(articles)
        session.bump = True  # an empty source still publishes an (empty) generation
        session.commit()
    return articles, passages
