"""Read articles from files: .txt/.md (one article a file) and .jsonl (one a line).

Readers never raise for a bad file: they yield a ``SkippedFile`` with the
reason, so one broken file cannot stop an ingest of thousands.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from .errors import CorpusError
from .models import Article, SkippedFile
from .splitter import normalize_text, segment_spans, title_of

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
JSONL_SUFFIXES = {".jsonl"}
SUFFIXES = TEXT_SUFFIXES | JSONL_SUFFIXES
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ID_CHARS = 200
#: Article ids: letters and digits of any script (Python's ``\w``, so a file
#: named 新闻1.txt keeps its name as id), '_', '-' and '.', not starting with '.'
#: (no '.', '..', hidden names, separators, spaces, controls or bidi overrides).
ID_PATTERN = r"^[\w-][\w.-]*$"
ID_RULE = f"1-{MAX_ID_CHARS} letters, digits, '_', '-' or '.', not starting with '.'"
_ID = re.compile(ID_PATTERN)
URL_SCHEMES = ("http", "https")
# What a reader cannot see: spaces and separators (Z*), controls (Cc) and
# format characters (Cf: zero-width spaces and joiners, bidi overrides, BOM).
_INVISIBLE = ("Zs", "Zl", "Zp", "Cc", "Cf")


class DecodeError(Exception):
    """A file's bytes are not text wenda can read."""


def _plausible(text: str) -> bool:
    """GB18030 maps most byte pairs to some character, so a successful decode
    is not proof; require that almost everything is CJK, ASCII or common
    punctuation."""
    if not text:
        return True
    good = sum(
        1 for ch in text
        if ch.isascii() or "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f"
        or "\uff00" <= ch <= "\uffef" or "\u2000" <= ch <= "\u206f"
    )
    return good / len(text) >= 0.9


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode file bytes: UTF-8 first, then UTF-16 with a BOM, then GB18030
    (a superset of GBK and GB2312).

    Returns:
        ``(text, encoding)``.

    Raises:
        DecodeError: empty, binary, or in no supported encoding.
    """
    if not data.strip():
        raise DecodeError("empty file")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise DecodeError(f"bad UTF-16 ({exc.reason} at byte {exc.start})") from exc
    if b"\x00" in data[:8192]:
        raise DecodeError("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as utf8_exc:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise DecodeError(
                f"not UTF-8 (invalid byte at offset {utf8_exc.start}) and not GB18030/GBK; "
                "re-save it as UTF-8"
            ) from None
        if not _plausible(text):
            raise DecodeError("not UTF-8, and as GB18030 it decodes to implausible text; re-save it as UTF-8")
        return text, "gb18030"


def _shown(value: str, limit: int = 40) -> str:
    """A value for a message: escaped by ``repr`` (controls and bidi overrides
    show as ``\\x00``, ``\\u202e``), cut to ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def check_article_id(article_id: str) -> str | None:
    """Return why an article id is unusable (with the rule), or None if it is fine."""
    if not article_id or len(article_id) > MAX_ID_CHARS:
        return f"article id has {len(article_id)} characters; it must be {ID_RULE}"
    if not _ID.fullmatch(article_id):
        return f"article id {_shown(article_id)} must be {ID_RULE}"
    return None


def check_text(what: str, text: str) -> str | None:
    """Return why a text field is unusable, or None: a NUL anywhere, or no
    character a reader could see (only spaces, controls, zero-width marks)."""
    nul = text.find("\x00")
    if nul >= 0:
        return f"{what} has a NUL character (U+0000) at position {nul}; send it without NUL characters"
    if all(unicodedata.category(ch) in _INVISIBLE for ch in text):
        return f"{what} has no visible characters (only spaces, control or zero-width characters); send real text"
    return None


def check_url(url: str) -> str | None:
    """Return why a source URL cannot be stored (it is shown as a link), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = urlsplit("")
    if (parts.scheme.lower() not in URL_SCHEMES or not parts.netloc
            or any(unicodedata.category(ch) in _INVISIBLE for ch in url)):
        return f"url {_shown(url, 80)} must be an http:// or https:// address"
    return None


def _article_problem(article_id: str, text: str, *, title: str | None, date: str | None, source: str | None,
                     url: str | None) -> str | None:
    """The first reason an article cannot be stored, or None."""
    problems = [check_article_id(article_id), check_text("the article text", text)]
    if title and title.strip():
        problems.append(check_text("the title", title))
    for name, value in (("date", date), ("source", source)):
        if value and "\x00" in value:
            problems.append(f"{name} has a NUL character (U+0000); send it without NUL characters")
    if url:
        problems.append(check_url(url))
    return next((p for p in problems if p), None)


def article_from_text(article_id: str, text: str, *, path: str | None = None, title: str | None = None,
                      date: str | None = None, source: str | None = None, url: str | None = None) -> Article:
    """Build an Article from raw text; with no ``title`` the first segment is the title.

    Raises:
        CorpusError: bad id, url or text (a NUL, nothing visible), or no paragraph of text.
    """
    problem = _article_problem(article_id, text, title=title, date=date, source=source, url=url)
    if problem:
        raise CorpusError(problem)
    text = normalize_text(text)
    spans = segment_spans(text)
    if not spans:
        raise CorpusError("no text")
    first = title_of(text[spans[0][0]:spans[0][1]])
    if title is None or not title.strip():
        title = first
        if len(spans) < 2:
            raise CorpusError("no paragraphs after the title")
    title = title.strip()
    if len(spans) < 2 and first == title:
        raise CorpusError("no paragraphs after the title")
    return Article(article_id, title, text, date=date, source=source, url=url or None, path=path)


def _read_text_file(path: Path, article_id: str) -> Article:
    data = path.read_bytes()
    text, _ = decode_bytes(data)
    return article_from_text(article_id, text, path=str(path))


def _opt_str(obj: dict, key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, (str, int, float)):
        raise CorpusError(f"field {key!r} must be a string")
    return str(value)


def article_from_record(obj: object, *, path: str | None = None) -> Article:
    """Build an Article from a JSON object with ``text`` and optional ``id``,
    ``title``, ``date``, ``source``, ``url``. A missing id is the text's hash.

    Raises:
        CorpusError: not an object, or no usable ``text``.
    """
    if not isinstance(obj, dict):
        raise CorpusError("expected a JSON object with a 'text' field")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise CorpusError("missing or empty 'text'")
    article_id = _opt_str(obj, "id") or hashlib.sha256(text.encode()).hexdigest()[:16]
    return article_from_text(
        article_id, text, path=path, title=_opt_str(obj, "title"),
        date=_opt_str(obj, "date"), source=_opt_str(obj, "source"), url=_opt_str(obj, "url"),
    )


def _read_jsonl(path: Path) -> Iterator[Article | SkippedFile]:
    try:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                where = f"{path}:{lineno}"
                if not raw.strip():
                    continue
                try:
                    line, _ = decode_bytes(raw)
                    obj = json.loads(line)
                    yield article_from_record(obj, path=where)
                except json.JSONDecodeError as exc:
                    yield SkippedFile(where, f"invalid JSON ({exc.msg} at column {exc.colno})")
                except (DecodeError, CorpusError) as exc:
                    yield SkippedFile(where, str(exc))
    except OSError as exc:
        yield SkippedFile(str(path), f"cannot read: {exc.strerror or exc}")


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def count_articles(paths: Iterable[str | os.PathLike]) -> int:
    """How many items ``iter_articles(paths)`` will yield, counted without
    decoding anything (a file, or a non-blank line of a .jsonl file), so that a
    long ingest can say how far it is. Missing paths count 0."""
    n = 0
    for root in map(Path, paths):
        if not root.exists():
            continue
        for path in (_walk(root) if root.is_dir() else iter([root])):
            if path.suffix.lower() not in JSONL_SUFFIXES:
                n += 1
                continue
            try:
                with path.open("rb") as fh:
                    n += sum(1 for line in fh if line.strip())
            except OSError:
                n += 1
    return n


def iter_articles(paths: Iterable[str | os.PathLike]) -> Iterator[Article | SkippedFile]:
    """Yield every article under ``paths`` (files or directory trees), or a
    ``SkippedFile`` for each file or line that cannot be ingested.

    The article id of a .txt/.md file is its file name without the suffix.

    Raises:
        CorpusError: a path does not exist.
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise CorpusError(f"No such file or directory: {root}")
    for root in roots:
        files = _walk(root) if root.is_dir() else iter([root])
        for path in files:
            suffix = path.suffix.lower()
            if suffix not in SUFFIXES:
                yield SkippedFile(str(path), f"unsupported file type {suffix or '(none)'}; use .txt, .md or .jsonl")
                continue
            if suffix in JSONL_SUFFIXES:
                yield from _read_jsonl(path)
                continue
            try:
                if path.stat().st_size > MAX_FILE_BYTES:
                    yield SkippedFile(str(path), f"larger than {MAX_FILE_BYTES // 2**20} MiB")
                    continue
                yield _read_text_file(path, path.stem)
            except (DecodeError, CorpusError) as exc:
                yield SkippedFile(str(path), str(exc))
            except OSError as exc:
                yield SkippedFile(str(path), f"cannot read: {exc.strerror or exc}")
