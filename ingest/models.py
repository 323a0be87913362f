"""The shared vocabulary: Article, Paragraph, Passage, Hit."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Article:
    """One corpus item.

    ``text`` is the article as read (newlines normalised to ``\\n``); every
    offset wenda reports points into it. When ``text`` starts with ``title``
    that first segment is the title and is not a numbered paragraph.
    """

    article_id: str
    title: str
    text: str
    date: str | None = None
    source: str | None = None
    url: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class Paragraph:
    """A numbered paragraph of an article (1-based; the title is not numbered)."""

    article_id: str
    paragraph: int
    section: str | None
    start: int
    end: int
    text: str
    is_heading: bool = False


@dataclass(frozen=True)
class Passage:
    """The unit that is embedded, indexed and cited.

    ``text == article.text[start:end]`` always holds.
    """

    passage_id: str
    article_id: str
    title: str
    section: str | None
    paragraph: int
    part: int
    start: int
    end: int
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """A retrieval result: which passage, how well it scored, which retriever."""

    passage_id: str
    score: float
    source: str


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not ingested, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class IngestReport:
    """What an ingest run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    passages_embedded: int = 0
    passages_recut: int = 0  # BM25 words re-cut for a new tokenizer
    passages_total: int = 0
    articles_total: int = 0
    seconds: float = 0.0
    generation: int = 0  # the generation published (unchanged when nothing changed)
    notes: list[str] = field(default_factory=list)  # one line each: a format conversion, a compaction
