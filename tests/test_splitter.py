"""Splitter: property tests over generated articles, plus exact examples on
the bundled People's Daily seed article."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SEEDS
from ingest.models import Article
from ingest.readers import iter_articles
from ingest.splitter import (
    SplitterSettings,
    is_heading,
    normalize_text,
    segment_spans,
    sentence_spans,
    split_article,
    split_paragraphs,
    title_of,
)

SEED_FILE = SEEDS / "000_0ff65538257d4705.txt"
SEED_ID = "000_0ff65538257d4705"

# Whitespace the splitter must never leave at a span edge.
EDGE = " \t\u3000\u00a0\n"
WORD_CHARS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
    "湖北广西云南西藏民生福祉实事项目群众医生学校乡村"
    "abcdefghijklmnopqrstuvwxyzABCDEFGXYZ0123456789"
)
CLAUSE_MARKS = "，、：,"
INNER_SPACE = " \t\u3000\u00a0"
END_MARKS = ["。", "！", "？", "；", "。”", "！”", "？”"]
SEPARATORS = ["\u3000\u3000", "\u3000\u3000\u3000", "\n", "\n\n", "\r\n", "\n\n\n", " \n\u3000\u3000", "\u3000\u3000\n"]
MAX_CHARS = [20, 23, 30, 45, 60, 120, 400]


# --------------------------------------------------------------------------- generators


@dataclass(frozen=True)
class Generated:
    """A generated article and what the splitter should find in it."""

    article: Article
    settings: SplitterSettings
    title_segment: str            # the raw first segment
    title_dropped: bool           # article.title equals the first segment
    expected_paragraphs: list     # expected paragraph texts, in order
    known_heading: list           # True / False / None (not pinned) per paragraph


def _collapse(text: str) -> str:
    """Keep a paragraph a single segment: no run of 2+ U+3000, no edge spaces."""
    text = re.sub("\u3000{2,}", "\u3000", text).strip(EDGE)
    return text or "字"


def _no_space_in_long_sentences(para: str, max_chars: int) -> str:
    """Remove whitespace from any sentence longer than ``max_chars``."""
    pieces = re.findall(r"[^。！？；]+(?:[。！？；]+”*)?|[。！？；]+”*", para)
    assert "".join(pieces) == para
    out = [re.sub(r"[ \t\u3000\u00a0]", "", p) if len(p) > max_chars else p for p in pieces]
    return _collapse("".join(out))


@st.composite
def _sentence(draw, max_chars: int, spaces: bool) -> str:
    alphabet = WORD_CHARS + CLAUSE_MARKS + (INNER_SPACE if spaces else "")
    kind = draw(st.sampled_from(["normal", "normal", "normal", "runon", "long"]))
    if kind == "long":
        # longer than max_chars, no sentence punctuation at all
        body_alpha = WORD_CHARS + (INNER_SPACE if spaces else "") + draw(st.sampled_from(["", CLAUSE_MARKS]))
        body = draw(st.text(body_alpha, min_size=max_chars + 1, max_size=3 * max_chars + 5))
        return body + draw(st.sampled_from(["", "。"]))
    body = draw(st.text(alphabet, min_size=1, max_size=40))
    if kind == "runon":
        return body
    return body + draw(st.sampled_from(END_MARKS))


@st.composite
def _paragraph(draw, max_chars: int, spaces: bool) -> tuple[str, bool | None, str]:
    """(raw segment, known heading-ness, expected paragraph text)."""
    kind = draw(st.sampled_from(["para", "para", "para", "long", "heading", "markdown"]))
    if kind == "heading":
        left = draw(st.text(WORD_CHARS, min_size=2, max_size=6))
        right = draw(st.text(WORD_CHARS + "“”、" + (" " if spaces else ""), min_size=1, max_size=18))
        text = _collapse(f"{left}：{right}")
        return text, True, text
    if kind == "markdown":
        hashes = "#" * draw(st.integers(1, 6))
        content = draw(st.text(WORD_CHARS, min_size=1, max_size=12))
        return f"{hashes} {content}", True, content
    n = draw(st.integers(1, 4)) if kind == "para" else draw(st.integers(8, 30))
    joiner = draw(st.sampled_from(["", "", " "]))
    sentences = [draw(_sentence(max_chars, spaces)) for _ in range(n)]
    text = _collapse(joiner.join(sentences))
    if not spaces:
        text = _no_space_in_long_sentences(text, max_chars)
    ends_final = bool(re.search(r"[。！？；]”*$", text))
    return text, (False if ends_final else None), text


@st.composite
def articles(draw, spaces_in_long_sentences: bool = True) -> Generated:
    max_chars = draw(st.sampled_from(MAX_CHARS))
    splitter = SplitterSettings(max_chars=max_chars, overlap_sentences=draw(st.integers(0, 2)))
    title_kind = draw(st.sampled_from(["plain", "plain", "markdown", "sentence"]))
    title_alpha = WORD_CHARS + "：" + (" " if spaces_in_long_sentences else "")
    title = _collapse(draw(st.text(title_alpha, min_size=1, max_size=50)))
    if title_kind == "markdown":
        title_seg = "# " + title
    elif title_kind == "sentence":
        title_seg = title + "。"
    else:
        title_seg = title
    paras = draw(st.lists(_paragraph(max_chars, spaces_in_long_sentences), min_size=0, max_size=8))

    parts = [draw(st.sampled_from(["", "", "\n", "\u3000\u3000", " ", "\ufeff"])), title_seg]
    for raw, _, _ in paras:
        parts.append(draw(st.sampled_from(SEPARATORS)))
        parts.append(raw)
    parts.append(draw(st.sampled_from(["", "", "\n", "\u3000\u3000", " \n"])))
    text = normalize_text("".join(parts))

    title_dropped = draw(st.booleans()) or not paras
    if title_dropped:
        article_title = title_of(title_seg)
        expected = [p[2] for p in paras]
        known = [p[1] for p in paras]
    else:
        article_title = "另一个标题"
        if title_of(title_seg) == article_title:
            article_title += "二"
        md = re.match(r"#{1,6} ", title_seg)
        expected = [title_seg[md.end():] if md else title_seg] + [p[2] for p in paras]
        known = [True if md else None] + [p[1] for p in paras]
    aid = draw(st.sampled_from(["a1", "000_0ff6", "rmrb-2021-11-15"]))
    return Generated(Article(aid, article_title, text), splitter, title_seg, title_dropped, expected, known)


# --------------------------------------------------------------------------- checks


def _check_paragraphs(g: Generated) -> list:
    art = g.article
    paras = split_paragraphs(art, heading_max_chars=g.settings.heading_max_chars)
    assert [p.text for p in paras] == g.expected_paragraphs
    assert [p.paragraph for p in paras] == list(range(1, len(paras) + 1))
    prev_end = -1
    section = None
    for p, known in zip(paras, g.known_heading):
        assert art.text[p.start:p.end] == p.text
        assert p.text and p.text[0] not in EDGE and p.text[-1] not in EDGE
        assert p.start > prev_end  # starts increase, no overlap
        prev_end = p.end
        assert p.article_id == art.article_id
        if known is not None:
            assert p.is_heading is known, p.text
        if p.is_heading:
            section = p.text
        assert p.section == section
    # Nothing lost or doubled: title segment + paragraphs == text without
    # separators, whitespace runs and Markdown heading marks.
    head = title_of(g.title_segment) if g.title_dropped else ""
    joined = head + "".join(p.text for p in paras)
    assert re.sub(r"[\s\u3000#]+", "", joined) == re.sub(r"[\s\u3000#]+", "", art.text)
    return paras


def _check_passages(g: Generated, *, strict_edges: bool) -> None:
    art, cfg = g.article, g.settings
    paras = _check_paragraphs(g)
    passages = split_article(art, cfg)
    ids = [p.passage_id for p in passages]
    assert len(ids) == len(set(ids))
    assert sorted({p.paragraph for p in passages}) == [p.paragraph for p in paras]
    for p in passages:
        assert art.text[p.start:p.end] == p.text
        assert p.text.strip(EDGE), repr(p.text)
        if strict_edges:
            assert p.text[0] not in EDGE and p.text[-1] not in EDGE, repr(p.text)
        assert len(p.text) <= cfg.max_chars
        assert (p.article_id, p.title) == (art.article_id, art.title)

    pos = 0
    for para in paras:
        parts = [p for p in passages[pos:] if p.paragraph == para.paragraph]
        assert passages[pos:pos + len(parts)] == parts  # reading order
        pos += len(parts)
        assert parts[0].start == para.start and parts[-1].end == para.end
        assert [p.part for p in parts] == list(range(1, len(parts) + 1))
        assert all(p.section == para.section for p in parts)
        if len(parts) == 1:
            assert parts[0].passage_id == f"{art.article_id}:{para.paragraph}"
            assert para.end - para.start <= cfg.max_chars
        else:
            assert para.end - para.start > cfg.max_chars
            assert [p.passage_id for p in parts] == [
                f"{art.article_id}:{para.paragraph}.{k}" for k in range(1, len(parts) + 1)
            ]
        for prev, nxt in zip(parts, parts[1:]):
            assert nxt.start > prev.start
            assert nxt.end > prev.end
            # overlap allowed; a gap may only hold whitespace between sentences
            if nxt.start > prev.end:
                assert art.text[prev.end:nxt.start].strip(EDGE) == ""
    assert pos == len(passages)


# --------------------------------------------------------------------------- properties


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(articles(spaces_in_long_sentences=False))
def test_paragraphs_and_passages_are_exact_bounded_trimmed_slices(g):
    _check_passages(g, strict_edges=True)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(articles(spaces_in_long_sentences=True))
def test_passages_stay_exact_slices_when_long_sentences_hold_spaces(g):
    _check_passages(g, strict_edges=True)


@settings(max_examples=200, deadline=None)
@given(st.text(" \t\r\n\u3000\u00a0", max_size=60))
def test_whitespace_only_text_has_no_segments(text):
    assert segment_spans(text) == []
    assert split_article(Article("w", "标题", text)) == []


def test_empty_text_gives_nothing():
    assert segment_spans("") == []
    assert sentence_spans("") == []
    assert split_paragraphs(Article("e", "标题", "")) == []
    assert split_article(Article("e", "标题", "")) == []


@pytest.mark.parametrize(
    "para",
    [
        "一二三四五六七八九十，\u3000甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥",  # clause cut, then U+3000
        "abcdefghijklmnopqrs tuvwxyzabcdefghijklmnopqrstuvwxyz",  # hard cut right after a space
    ],
    ids=["clause-cut-then-U+3000", "hard-cut-after-space"],
)
def test_cut_inside_long_sentence_leaves_no_edge_whitespace(para):
    art = Article("x", "标题", "标题\n\n" + para)
    texts = [p.text for p in split_article(art, SplitterSettings(max_chars=20))]
    assert all(t[0] not in EDGE and t[-1] not in EDGE for t in texts), texts


# --------------------------------------------------------------------------- small examples


def test_segment_spans_split_on_double_ideographic_space_and_newlines():
    text = "标题\u3000\u3000甲\u3000乙。\n\n  丙。\u3000\u3000\u3000丁\n"
    assert [text[s:e] for s, e in segment_spans(text)] == ["标题", "甲\u3000乙。", "丙。", "丁"]
    assert segment_spans(text) == [(0, 2), (4, 8), (12, 14), (17, 18)]


def test_sentence_spans_keep_closing_quote_with_its_sentence():
    text = "第一句。第二句！“第三句？”尾巴"
    spans = sentence_spans(text)
    assert spans == [(0, 4), (4, 8), (8, 14), (14, 16)]
    assert [text[s:e] for s, e in spans] == ["第一句。", "第二句！", "“第三句？”", "尾巴"]


def test_sentence_spans_inside_a_range_are_trimmed():
    text = "xx  Hello world. Next one!  yy"
    assert [text[s:e] for s, e in sentence_spans(text, 2, 28)] == ["Hello world.", "Next one!"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("## 小节", True),
        ("# 海岛小学开通远程直播课堂", True),
        ("湖北：落实“十大惠民、四项关爱”实事项目", True),
        ("西藏：立足高原实际 解决民生实事", True),
        ("他说：“好。”", False),
        ("他说：“好！”", False),
        ("（本报记者某某）", False),
        ("（本报记者吴君、李纵、叶传增、徐驭尧、琼达卓嘎）", False),
        ("这是一个没有句末标点的很长的行" * 4, False),  # 60 characters
        ("短句。", False),
    ],
)
def test_is_heading(line, expected):
    assert is_heading(line) is expected


def test_sixty_char_line_is_not_heading_but_is_with_a_larger_limit():
    line = "这是一个没有句末标点的很长的行" * 4
    assert len(line) == 60
    assert is_heading(line) is False
    assert is_heading(line, max_chars=60) is True


def test_title_of_removes_markdown_marks():
    assert title_of("## 海岛小学 ") == "海岛小学"
    assert title_of("普通标题") == "普通标题"


def test_markdown_heading_span_excludes_the_hash_marks():
    art = Article("m", "标题", "# 标题\n\n## 小节\n\n正文第一句。")
    paras = split_paragraphs(art)
    assert [(p.paragraph, p.text, p.is_heading, p.section) for p in paras] == [
        (1, "小节", True, "小节"),
        (2, "正文第一句。", False, "小节"),
    ]
    assert art.text[paras[0].start:paras[0].end] == "小节"


def test_first_segment_is_a_paragraph_when_it_is_not_the_title():
    art = Article("t", "别的标题", "第一段。\n\n第二段。")
    assert [(p.paragraph, p.text) for p in split_paragraphs(art)] == [(1, "第一段。"), (2, "第二段。")]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_chars": 19}, "max_chars must be >= 20 (got 19)"),
    ({"overlap_sentences": -1}, "overlap_sentences must be >= 0 (got -1)"),
])
def test_settings_are_validated(kwargs, message):
    with pytest.raises(ValueError) as exc:
        SplitterSettings(**kwargs)
    assert str(exc.value) == message


def test_long_paragraph_is_split_with_one_sentence_overlap():
    para = "甲" * 9 + "。" + "乙" * 9 + "。" + "丙" * 9 + "。" + "丁" * 9 + "。"
    art = Article("o", "标题", "标题\n\n" + para)
    got = [(p.passage_id, p.text) for p in split_article(art, SplitterSettings(max_chars=20))]
    assert got == [
        ("o:1.1", "甲" * 9 + "。" + "乙" * 9 + "。"),
        ("o:1.2", "乙" * 9 + "。" + "丙" * 9 + "。"),
        ("o:1.3", "丙" * 9 + "。" + "丁" * 9 + "。"),
    ]
    no_overlap = split_article(art, SplitterSettings(max_chars=20, overlap_sentences=0))
    assert [p.passage_id for p in no_overlap] == ["o:1.1", "o:1.2"]
    assert [p.text for p in no_overlap] == ["甲" * 9 + "。" + "乙" * 9 + "。", "丙" * 9 + "。" + "丁" * 9 + "。"]


def test_sentence_without_punctuation_is_cut_at_clause_marks_then_hard():
    para = "一二三四五，六七八九十一二三四五六七八九十一二三四五六七八"
    art = Article("c", "标题", "标题\n\n" + para)
    got = [p.text for p in split_article(art, SplitterSettings(max_chars=20, overlap_sentences=0))]
    assert got == ["一二三四五，", "六七八九十一二三四五六七八九十一二三四五", "六七八"]


# --------------------------------------------------------------------------- seed article


@pytest.fixture(scope="module")
def seed() -> Article:
    (art,) = list(iter_articles([SEED_FILE]))
    return art


def test_seed_title_and_paragraph_count(seed):
    assert seed.article_id == SEED_ID
    assert seed.title == "湖北、广西、云南、西藏——在推进高质量发展中增进民生福祉（奋斗百年路 启航新征程·学党史 悟思想 办实事 开新局）"
    paras = split_paragraphs(seed)
    assert len(paras) == 20
    assert [p.paragraph for p in paras] == list(range(1, 21))
    assert [p.paragraph for p in paras if p.is_heading] == [2, 6, 10, 15]


def test_seed_heading_is_the_section_of_the_following_paragraphs(seed):
    paras = {p.paragraph: p for p in split_paragraphs(seed)}
    heading = "湖北：落实“十大惠民、四项关爱”实事项目"
    assert paras[2].text == heading and paras[2].is_heading is True
    assert paras[1].section is None
    assert [paras[n].section for n in (2, 3, 4, 5)] == [heading] * 4
    assert paras[6].section == "广西：把学习成果转化为攻坚克难实效"


def test_seed_byline_is_not_a_heading(seed):
    last = split_paragraphs(seed)[-1]
    assert last.paragraph == 20
    assert last.text == "（本报记者吴君、李纵、叶传增、徐驭尧、琼达卓嘎）"
    assert last.is_heading is False
    assert last.section == "西藏：立足高原实际\u00a0解决民生实事"  # NBSP in the source


def test_seed_default_passage_for_paragraph_four(seed):
    passages = split_article(seed)
    assert [p.passage_id for p in passages] == [f"{SEED_ID}:{n}" for n in range(1, 21)]
    (p4,) = [p for p in passages if p.paragraph == 4]
    assert p4.passage_id == f"{SEED_ID}:4" and p4.part == 1
    assert "4777人" in p4.text
    assert p4.section == "湖北：落实“十大惠民、四项关爱”实事项目"
    assert seed.text[p4.start:p4.end] == p4.text


def test_seed_paragraph_four_split_at_120_chars(seed):
    para4 = split_paragraphs(seed)[3]
    parts = [p for p in split_article(seed, SplitterSettings(max_chars=120)) if p.paragraph == 4]
    assert [p.passage_id for p in parts] == [f"{SEED_ID}:4.{k}" for k in (1, 2, 3, 4)]
    assert all(p.paragraph == 4 and p.section == para4.section for p in parts)
    assert all(len(p.text) <= 120 and seed.text[p.start:p.end] == p.text for p in parts)
    assert parts[0].start == para4.start and parts[-1].end == para4.end
    assert "4777人" in parts[0].text
    assert parts[0].text.endswith("并从高中毕业生中录取1538人作为大学生村医进行定向培养；")
    assert parts[1].text == "建成5家县（市）三甲医院，将村卫生室运行经费补助标准由3650元/年提高至5000元/年。"


def test_hashtag_paragraph_is_not_a_markdown_heading():
    art = Article("h", "T", "T\n\n#我为群众办实事#活动在全省展开，各地积极响应。\n\n下一段。")
    first, second = split_paragraphs(art)
    assert first.text == "#我为群众办实事#活动在全省展开，各地积极响应。"
    assert first.is_heading is False
    assert second.section is None
