"""Readers: every bad file is skipped with its exact reason, good ones are
decoded and normalised, ids are checked."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import DATA
from ingest import readers
from ingest.errors import CorpusError
from ingest.models import Article, SkippedFile
from ingest.readers import DecodeError, decode_bytes, iter_articles
from ingest.splitter import split_paragraphs

BAD = DATA / "bad"
GBK_TITLE = "GBK编码：临河县文化广场建成开放"


def _one(path) -> Article | SkippedFile:
    (item,) = list(iter_articles([path]))
    return item


def _write_jsonl(path, *records) -> None:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- the bad/ folder


@pytest.fixture(scope="module")
def bad_items() -> list:
    return list(iter_articles([BAD]))


def test_bad_folder_yields_articles_and_skips_in_file_order(bad_items):
    summary = [
        (type(x).__name__, x.article_id if isinstance(x, Article) else x.path)
        for x in bad_items
    ]
    assert summary == [
        ("Article", "j01"),
        ("SkippedFile", f"{BAD / 'articles.jsonl'}:2"),
        ("Article", "j02"),
        ("SkippedFile", str(BAD / "bad_utf8.txt")),
        ("SkippedFile", str(BAD / "binary.txt")),
        ("SkippedFile", str(BAD / "empty.txt")),
        ("Article", "gbk"),
        ("Article", "notes"),
    ]


def test_bad_folder_skip_reasons(bad_items):
    reasons = {x.path: x.reason for x in bad_items if isinstance(x, SkippedFile)}
    assert reasons[str(BAD / "empty.txt")] == "empty file"
    assert reasons[str(BAD / "binary.txt")] == "binary file (contains NUL bytes)"
    assert reasons[str(BAD / "bad_utf8.txt")] == (
        "not UTF-8 (invalid byte at offset 8) and not GB18030/GBK; re-save it as UTF-8"
    )
    assert reasons[str(BAD / "bad_utf8.txt")].startswith("not UTF-8")
    bad_json = reasons[f"{BAD / 'articles.jsonl'}:2"]
    assert bad_json.startswith("invalid JSON (")
    assert bad_json.endswith(" at column 56)")


def test_gbk_file_is_decoded(bad_items):
    (gbk,) = [x for x in bad_items if isinstance(x, Article) and x.article_id == "gbk"]
    assert gbk.title == GBK_TITLE
    assert gbk.title.startswith("GBK编码")
    assert gbk.text == (BAD / "gbk.txt").read_bytes().decode("gbk")
    assert gbk.path == str(BAD / "gbk.txt")
    paras = split_paragraphs(gbk)
    assert len(paras) == 2
    assert paras[0].text.startswith("2月12日，临河县文化广场正式建成开放。")
    assert paras[1].text.endswith("进一步丰富群众精神文化生活。")


def test_markdown_title_loses_its_hash(bad_items):
    (notes,) = [x for x in bad_items if isinstance(x, Article) and x.article_id == "notes"]
    assert notes.title == "海岛小学开通远程直播课堂"
    assert notes.text.startswith("# 海岛小学开通远程直播课堂\n\n3月6日")
    assert [p.paragraph for p in split_paragraphs(notes)] == [1, 2]


def test_jsonl_records_keep_their_metadata(bad_items):
    records = {x.article_id: x for x in bad_items if isinstance(x, Article) and x.article_id.startswith("j")}
    assert sorted(records) == ["j01", "j02"]
    j01, j02 = records["j01"], records["j02"]
    assert (j01.title, j01.date, j01.source, j01.url, j01.path) == (
        "苍南县海水淡化厂投产供水", "2024-08-08", "测试数据", "https://example.com/news/j01",
        f"{BAD / 'articles.jsonl'}:1",
    )
    assert (j02.title, j02.date, j02.source, j02.url, j02.path) == (
        "北川羌族刺绣非遗工坊带动妇女增收", "2024-05-16", "测试数据", "https://example.com/news/j02",
        f"{BAD / 'articles.jsonl'}:3",
    )
    assert j01.text.startswith("8月8日，苍南县海水淡化厂正式投产")
    # the title field is not the first segment, so both segments are paragraphs
    assert [p.text[:5] for p in split_paragraphs(j01)] == ["8月8日，", "厂长何建平"]


# --------------------------------------------------------------------------- paths and files


def test_missing_path_raises_corpus_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CorpusError) as exc:
        list(iter_articles([missing]))
    assert str(exc.value) == f"No such file or directory: {missing}"


def test_missing_path_raises_before_any_article_is_read(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("标题\n\n正文。", encoding="utf-8")
    gen = iter_articles([good, tmp_path / "nope.txt"])
    with pytest.raises(CorpusError) as exc:
        next(gen)
    assert str(exc.value) == f"No such file or directory: {tmp_path / 'nope.txt'}"


@pytest.mark.parametrize(("name", "reason"), [
    ("report.pdf", "unsupported file type .pdf; use .txt, .md or .jsonl"),
    ("README", "unsupported file type (none); use .txt, .md or .jsonl"),
])
def test_unsupported_file_is_skipped(tmp_path, name, reason):
    path = tmp_path / name
    path.write_bytes(b"%PDF-1.4 whatever")
    assert _one(path) == SkippedFile(str(path), reason)


def test_hidden_files_and_folders_are_ignored(tmp_path):
    (tmp_path / ".hidden.txt").write_text("标题\n\n正文。", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("标题\n\n正文。", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# 乙\n\n正文。", encoding="utf-8")
    (tmp_path / "a.txt").write_text("甲\n\n正文。", encoding="utf-8")
    assert [x.article_id for x in iter_articles([tmp_path])] == ["a", "b"]


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff标题\n\n正文第一段。".encode("utf-8"))
    art = _one(path)
    assert (art.article_id, art.title, art.text) == ("bom", "标题", "标题\n\n正文第一段。")


def test_crlf_line_ends_are_normalised(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes("标题\r\n\r\n第一段。\r\n第二段。\r".encode("utf-8"))
    art = _one(path)
    assert art.text == "标题\n\n第一段。\n第二段。\n"
    assert [(p.paragraph, p.text) for p in split_paragraphs(art)] == [(1, "第一段。"), (2, "第二段。")]


@pytest.mark.parametrize("content", ["只有标题", "只有标题\n\n\u3000\u3000", "# 只有标题\n"])
def test_title_only_file_is_skipped(tmp_path, content):
    path = tmp_path / "t.txt"
    path.write_text(content, encoding="utf-8")
    assert _one(path) == SkippedFile(str(path), "no paragraphs after the title")


def test_whitespace_only_file_is_empty(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text(" \n\t\n", encoding="utf-8")
    assert _one(path) == SkippedFile(str(path), "empty file")


def test_file_id_with_space_is_skipped(tmp_path):
    path = tmp_path / "my file.txt"
    path.write_text("标题\n\n正文。", encoding="utf-8")
    assert _one(path) == SkippedFile(
        str(path), "article id 'my file' must be 1-200 letters, digits, '_', '-' or '.', not starting with '.'"
    )


def test_file_names_in_any_script_are_ids(tmp_path):
    for name in ("新闻-2024.v1.txt", "Ünïcode_2.md"):
        (tmp_path / name).write_text("标题\n\n正文。", encoding="utf-8")
    assert sorted(x.article_id for x in iter_articles([tmp_path])) == ["Ünïcode_2", "新闻-2024.v1"]


def test_oversized_file_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 2**20)
    path = tmp_path / "big.txt"
    path.write_bytes(b"a" * (2**20 + 1))
    assert _one(path) == SkippedFile(str(path), "larger than 1 MiB")


# --------------------------------------------------------------------------- jsonl records


def test_jsonl_record_without_id_gets_text_hash(tmp_path):
    text = "标题\n\n正文。"
    path = tmp_path / "x.jsonl"
    _write_jsonl(path, {"text": text})
    art = _one(path)
    assert art.article_id == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert len(art.article_id) == 16 and all(c in "0123456789abcdef" for c in art.article_id)
    assert (art.title, art.path) == ("标题", f"{path}:1")


def test_jsonl_bad_id_is_skipped(tmp_path):
    path = tmp_path / "x.jsonl"
    _write_jsonl(path, {"id": "a:b", "text": "标题\n\n正文。"}, {"id": "ok", "text": "标题\n\n正文。"})
    items = list(iter_articles([path]))
    assert items[0] == SkippedFile(
        f"{path}:1", "article id 'a:b' must be 1-200 letters, digits, '_', '-' or '.', not starting with '.'"
    )
    assert isinstance(items[1], Article) and items[1].article_id == "ok"


@pytest.mark.parametrize(("line", "reason"), [
    ('[1, 2]', "expected a JSON object with a 'text' field"),
    ('{"id": "x"}', "missing or empty 'text'"),
    ('{"id": "x", "text": "  "}', "missing or empty 'text'"),
    ('{"id": "x", "text": "标题\\n\\n正文。", "title": {"a": 1}}', "field 'title' must be a string"),
    ('{"id": "x", "text": "只有标题"}', "no paragraphs after the title"),
    ('{"id": "", "text": "标题\\n\\n正文。", "date": [2024]}', "field 'date' must be a string"),
    # The same rules as POST /v1/articles (tests/test_api.py).
    ('{"id": "x", "text": "标题\\n\\n正文\\u0000。"}',
     "the article text has a NUL character (U+0000) at position 6; send it without NUL characters"),
    ('{"id": "x", "text": "\\u200b\\u202e\\n\\u3000\\u0001"}',
     "the article text has no visible characters (only spaces, control or zero-width characters); send real text"),
    ('{"id": "..", "text": "标题\\n\\n正文。"}',
     "article id '..' must be 1-200 letters, digits, '_', '-' or '.', not starting with '.'"),
    ('{"id": "x", "text": "标题\\n\\n正文。", "url": "javascript:alert(1)"}',
     "url 'javascript:alert(1)' must be an http:// or https:// address"),
])
def test_jsonl_bad_records_are_skipped(tmp_path, line, reason):
    path = tmp_path / "x.jsonl"
    path.write_text("\n" + line + "\n\n", encoding="utf-8")  # blank lines are ignored
    assert list(iter_articles([path])) == [SkippedFile(f"{path}:2", reason)]


def test_jsonl_title_field_is_not_the_first_segment_unless_equal(tmp_path):
    path = tmp_path / "x.jsonl"
    _write_jsonl(
        path,
        {"id": "other", "title": "另一个标题", "text": "第一段。\n\n第二段。"},
        {"id": "same", "title": "标题", "text": "标题\n\n第一段。\n\n第二段。"},
        {"id": "md", "title": " 标题 ", "text": "# 标题\u3000\u3000第一段。"},
        {"id": "one", "title": "标题", "text": "唯一一段。"},
    )
    arts = {a.article_id: a for a in iter_articles([path])}
    assert {k: a.title for k, a in arts.items()} == {"other": "另一个标题", "same": "标题", "md": "标题", "one": "标题"}
    texts = {k: [p.text for p in split_paragraphs(a)] for k, a in arts.items()}
    assert texts == {
        "other": ["第一段。", "第二段。"],
        "same": ["第一段。", "第二段。"],
        "md": ["第一段。"],
        "one": ["唯一一段。"],
    }


# --------------------------------------------------------------------------- decode_bytes


def test_decode_gb18030():
    text = "临河县文化广场建成开放。广场占地面积3.4万平方米。"
    assert decode_bytes(text.encode("gb18030")) == (text, "gb18030")


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_decode_utf16_with_bom(codec):
    text = "标题\n\n正文，含NUL字节的编码。"
    data = text.encode(codec)
    if codec != "utf-16":  # add the BOM by hand
        data = ("\ufeff" + text).encode(codec)
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    assert decode_bytes(data) == (text, "utf-16")


def test_decode_utf8_with_bom():
    assert decode_bytes("\ufeff标题".encode("utf-8")) == ("标题", "utf-8")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty file"),
    (b" \r\n\t", "empty file"),
    (b"abc\x00def", "binary file (contains NUL bytes)"),
    (b"\xff\xfe\x00\xd8", "bad UTF-16 (unexpected end of data at byte 2)"),
    (b"\x81\x30\x81\x30" * 20, "not UTF-8, and as GB18030 it decodes to implausible text; re-save it as UTF-8"),
    (b"ok \xff\xff", "not UTF-8 (invalid byte at offset 3) and not GB18030/GBK; re-save it as UTF-8"),
])
def test_decode_errors(data, message):
    with pytest.raises(DecodeError) as exc:
        decode_bytes(data)
    assert str(exc.value) == message
