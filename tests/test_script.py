"""Script folding: a question in one script finds, and is answered from,
articles in the other; offsets found in folded text hold in the original."""

from __future__ import annotations

import dataclasses

import opencc
import pytest
from conftest import MINI, SEEDS, fresh_index_dir

from ingest.build import update_index
from ingest.readers import iter_articles
from ingest.script import fold_script, fold_table
from ingest.tokenize import tokenize
from retriever.answer import ExtractiveAnswerer
from retriever.question import analyse, read_question
from retriever.index import IndexReader
from retriever.search import make_retriever

to_taiwan = opencc.OpenCC("s2tw").convert


def test_fold_maps_traditional_to_simplified_one_character_for_one():
    assert fold_script("臺灣的學者發現這個現象") == "台湾的学者发现这个现象"
    mixed = "DRCD 資料集（2018年）𠀋 😀 abc 湖北"
    folded = fold_script(mixed)
    assert len(folded) == len(mixed)
    assert folded == "DRCD 资料集（2018年）𠀋 😀 abc 湖北"


def test_fold_is_a_fixed_point():
    # Chains such as 薴 -> 苧 -> 苎 are followed to the end.
    table = fold_table()
    assert all(ord(v) not in table for v in table.values())
    assert fold_script(fold_script("薴麻與苧麻")) == fold_script("薴麻與苧麻") == "苎麻与苎麻"


def test_fold_leaves_simplified_text_as_it_is():
    for a in iter_articles([SEEDS, MINI]):
        assert fold_script(a.text) == a.text, a.article_id


def test_bm25_terms_are_nearly_the_same_in_both_scripts():
    for a in iter_articles([MINI]):
        simplified, traditional = set(tokenize(a.text)), set(tokenize(to_taiwan(a.text)))
        # Not all: Taiwan writes 着 as 著, itself a Simplified character (著名).
        assert len(simplified & traditional) / len(simplified | traditional) >= 0.9, a.article_id
        assert {"图书馆", "高铁", "茶园"} & traditional or a.article_id not in ("a01", "a02", "a03")


@pytest.fixture(scope="module")
def mixed_index(tmp_path_factory, warm_cache, e5):
    """The mini corpus with a01 and a02 in Taiwan script, the rest Simplified."""
    articles = []
    for a in iter_articles([MINI]):
        if a.article_id in ("a01", "a02"):
            a = dataclasses.replace(a, title=to_taiwan(a.title), text=to_taiwan(a.text))
        articles.append(a)
    path = fresh_index_dir(tmp_path_factory.mktemp("mixed") / "index", warm_cache)
    update_index(path, e5, upserts=articles)
    return IndexReader(path, e5)


def test_simplified_question_finds_the_traditional_paragraph_by_its_words(mixed_index):
    hits = make_retriever(mixed_index, "bm25").search_passages("江州市新图书馆首批上架图书多少册？", 3)
    assert hits[0][1].passage_id.startswith("a01:1")
    assert "圖書館" in hits[0][1].text



def test_simplified_question_is_answered_from_traditional_text_with_exact_offsets(mixed_index):
    answer = ExtractiveAnswerer(mixed_index).ask("黔桂高铁线路全长多少公里？")
    assert answer.answerable and answer.answer == "486公里"
    c = answer.citations[0]
    assert c.article_id == "a02" and c.paragraph == 1
    text = mixed_index.store.article("a02").text
    assert text[c.start:c.end] == c.quote and "線路" in c.quote
    assert text[c.answer_start:c.answer_end] == answer.answer


def test_traditional_question_words_are_read():
    # 幾/誰/甚麼 fold into the forms the answer kinds are written in.
    assert analyse("他是甚麼時候出生的？").kind == "date"
    assert analyse("這座橋有幾公里長？").kind == "count"
    assert analyse("誰設計了這座教堂？").kind == "person"
    assert len(read_question("他是甚麼時候出生的？")) == len("他是甚麼時候出生的？")
