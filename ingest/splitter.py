"""Split an article into numbered paragraphs and index-sized passages.

Every span is an offset pair into ``article.text``, so a citation can always
be checked against the source: ``article.text[start:end] == passage.text``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .models import Article, Paragraph, Passage

# People's Daily text separates paragraphs with a run of full-width spaces
# (U+3000); other sources use newlines. A single U+3000 inside a line is kept.
_SEGMENT_BREAK = re.compile(r"\u3000{2,}|\n+")
_EDGE_SPACE = " \t\u3000\u00a0\r\n"
# Sentence ends for Chinese and Western text; closing quotes/brackets that
# follow an end mark belong to the sentence they close.
_SENTENCE_END = re.compile(r"[。！？；!?;…]+[”’」』）)\"']*|\.(?=\s)|\.$")
_CLAUSE_END = re.compile(r"[，、,：:]")
_CLOSERS = "”’」』）)\"'"
_FINAL_PUNCT = "。！？；!?;….．"
_MD_HEADING = re.compile(r"^#{1,6}(?:[ \t\u3000]+|$)")

DEFAULT_MAX_CHARS = 400
DEFAULT_HEADING_MAX_CHARS = 30


@dataclass(frozen=True)
class SplitterSettings:
    """Splitter knobs; recorded in the index manifest.

    Args:
        max_chars: longest passage; longer paragraphs are split at sentence ends
            (the bundled model reads about 512 tokens, ~400 Chinese characters).
        overlap_sentences: sentences repeated at the start of the next part.
        heading_max_chars: a line this short with no sentence-final mark is a heading.
    """

    max_chars: int = DEFAULT_MAX_CHARS
    overlap_sentences: int = 1
    heading_max_chars: int = DEFAULT_HEADING_MAX_CHARS

    def __post_init__(self) -> None:
        if self.max_chars < 20:
            raise ValueError(f"max_chars must be >= 20 (got {self.max_chars})")
        if self.overlap_sentences < 0:
            raise ValueError(f"overlap_sentences must be >= 0 (got {self.overlap_sentences})")


def normalize_text(text: str) -> str:
    """Normalise line ends and drop a BOM; offsets are taken after this."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _EDGE_SPACE:
        start += 1
    while end > start and text[end - 1] in _EDGE_SPACE:
        end -= 1
    return start, end


def segment_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the non-empty segments of ``text``, in order, trimmed of spaces."""
    spans = []
    pos = 0
    for m in _SEGMENT_BREAK.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for s, e in spans:
        s, e = _trim(text, s, e)
        if e > s:
            out.append((s, e))
    return out


def title_of(segment: str) -> str:
    """The title a first segment stands for (Markdown '#' marks removed)."""
    return _MD_HEADING.sub("", segment).strip()


def is_heading(segment: str, *, max_chars: int = DEFAULT_HEADING_MAX_CHARS) -> bool:
    """True for a section heading: a Markdown heading, or a short line with no
    sentence-final mark such as ``湖北：落实“十大惠民、四项关爱”实事项目``.
    Bracketed lines such as bylines ``（本报记者…）`` are not headings."""
    if _MD_HEADING.match(segment):
        return True
    if len(segment) > max_chars or "。" in segment:
        return False
    if segment[0] in "（(【[" and segment[-1] in "）)】]":
        return False
    tail = segment.rstrip(_CLOSERS)
    return bool(tail) and tail[-1] not in _FINAL_PUNCT


def split_paragraphs(article: Article, *, heading_max_chars: int = DEFAULT_HEADING_MAX_CHARS) -> list[Paragraph]:
    """Number the paragraphs of an article (from 1; the title is not numbered).

    Headings are paragraphs too, and become the ``section`` of the paragraphs
    below them until the next heading.
    """
    text = article.text
    spans = segment_spans(text)
    if spans and title_of(text[spans[0][0]:spans[0][1]]) == article.title.strip():
        spans = spans[1:]
    paragraphs: list[Paragraph] = []
    section: str | None = None
    for number, (s, e) in enumerate(spans, start=1):
        seg = text[s:e]
        heading = is_heading(seg, max_chars=heading_max_chars)
        if heading:
            m = _MD_HEADING.match(seg)
            if m and m.end() < len(seg):
                s += m.end()
                seg = text[s:e]
            section = seg
        paragraphs.append(Paragraph(article.article_id, number, section, s, e, seg, heading))
    return paragraphs


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans inside ``text[start:end]``, trimmed; they tile the range
    apart from edge whitespace."""
    end = len(text) if end is None else end
    out = []
    pos = start
    for m in _SENTENCE_END.finditer(text, start, end):
        s, e = _trim(text, pos, m.end())
        if e > s:
            out.append((s, e))
        pos = m.end()
    s, e = _trim(text, pos, end)
    if e > s:
        out.append((s, e))
    return out


def _pieces(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Sentences, with any sentence longer than ``max_chars`` cut at clause
    marks (，、：) or, failing that, hard at ``max_chars``."""
    out = []
    for s, e in sentence_spans(text, start, end):
        while e - s > max_chars:
            cut = None
            for m in _CLAUSE_END.finditer(text, s, s + max_chars):
                cut = m.end()
            cut = cut if cut and cut > s else s + max_chars
            ps, pe = _trim(text, s, cut)
            if pe > ps:
                out.append((ps, pe))
            s, e = _trim(text, cut, e)
        if e > s:
            out.append((s, e))
    return out


def _windows(text: str, para: Paragraph, settings: SplitterSettings) -> list[tuple[int, int]]:
    if para.end - para.start <= settings.max_chars:
        return [(para.start, para.end)]
    pieces = _pieces(text, para.start, para.end, settings.max_chars)
    windows = []
    i = 0
    while i < len(pieces):
        j = i
        while j + 1 < len(pieces) and pieces[j + 1][1] - pieces[i][0] <= settings.max_chars:
            j += 1
        windows.append((pieces[i][0], pieces[j][1]))
        if j + 1 >= len(pieces):
            break
        # Step back over up to ``overlap_sentences`` pieces so the next window
        # repeats them, but always advance past ``i`` to guarantee progress.
        nxt = max(i + 1, j + 1 - settings.overlap_sentences)
        while nxt <= j and pieces[j + 1][1] - pieces[nxt][0] > settings.max_chars:
            nxt += 1
        i = nxt
    return windows


def split_article(article: Article, settings: SplitterSettings | None = None) -> list[Passage]:
    """Split an article into passages that cite their paragraph.

    Args:
        article: the article; its ``text`` is already normalised.
        settings: splitter knobs (defaults: 400 characters, 1 sentence overlap).

    Returns:
        Passages in reading order. A paragraph up to ``max_chars`` long is one
        passage ``<article_id>:<paragraph>``; a longer one is split at sentence
        ends into overlapping parts ``<article_id>:<paragraph>.<part>``.
    """
    settings = settings or SplitterSettings()
    passages = []
    for para in split_paragraphs(article, heading_max_chars=settings.heading_max_chars):
        windows = _windows(article.text, para, settings)
        for part, (s, e) in enumerate(windows, start=1):
            pid = f"{article.article_id}:{para.paragraph}"
            if len(windows) > 1:
                pid += f".{part}"
            passages.append(
                Passage(pid, article.article_id, article.title, para.section, para.paragraph,
                        part, s, e, article.text[s:e])
            )
    return passages
