"""The extractive answerer on the real model: answers, citations, refusals."""

from __future__ import annotations

import pytest

from retriever.answer import NOT_FOUND_MESSAGE, ExtractiveAnswerer, answer_type, question_places
from retriever.index import IndexReader

HUBEI = "000_0ff65538257d4705"
FOUR = "004_ef22c67862e0d2cc"


@pytest.fixture(scope="module")
def seeds(seed_index, e5):
    return ExtractiveAnswerer(IndexReader(seed_index, e5))


@pytest.fixture(scope="module")
def mini(mini_index, e5):
    return ExtractiveAnswerer(IndexReader(mini_index, e5))


def _check_citation(answerer, answer):
    for c in answer.citations:
        article, _ = answerer.index.article(c.article_id)
        assert article.text[c.start:c.end] == c.quote
        assert c.start <= c.answer_start < c.answer_end <= c.end
        assert article.text[c.answer_start:c.answer_end] == answer.answer


@pytest.mark.parametrize("question", [
    "湖北为基层配备了多少名大学生乡村医生？",
    "How many college-educated village doctors did Hubei assign?",
])
def test_done_means_4777(seeds, question):
    a = seeds.ask(question)
    assert a.answerable is True
    assert a.answer == "4777人"
    c = a.citations[0]
    assert (c.article_id, c.paragraph, c.passage_id) == (HUBEI, 4, f"{HUBEI}:4")
    assert c.section == "湖北：落实“十大惠民、四项关爱”实事项目"
    assert "为基层配备大学生乡村医生4777人" in c.quote
    _check_citation(seeds, a)


def test_fujian_hotline_satisfaction(seeds):
    a = seeds.ask("福建12345热线的群众满意率是多少？")
    assert a.answer == "99.89%"
    assert (a.citations[0].article_id, a.citations[0].paragraph) == (FOUR, 15)
    _check_citation(seeds, a)


@pytest.mark.parametrize("question", [
    "广东为基层配备了多少名乡村医生？",       # another province: near miss
    "浙江12345热线的群众满意率是多少？",
    "明天北京的天气怎么样？",                 # unrelated
    "How many village doctors did Guangdong assign?",  # English near miss
])
def test_refuses_what_the_corpus_does_not_hold(seeds, question):
    a = seeds.ask(question)
    assert a.answerable is False
    assert a.answer == NOT_FOUND_MESSAGE
    assert a.citations == []


def test_mini_corpus_answers(mini, mini_questions):
    """Questions written independently of the answerer's tuning; we pin how
    many it gets exactly right and that every citation checks out."""
    right, wrong = 0, []
    for q in mini_questions:
        a = mini.ask(q["question"])
        _check_citation(mini, a)
        if q["answer"] is None:
            ok = not a.answerable
        else:
            ok = a.answer == q["answer"]
            assert a.answerable and a.citations[0].article_id == q["article_id"]
        right += ok
        if not ok:
            wrong.append(q["question"])
    assert right >= 21, wrong


def test_answer_types():
    assert answer_type("湖北为基层配备了多少名大学生乡村医生？") == "number"
    assert answer_type("荆江长江大桥主桥是哪一天合龙的？") == "date"
    assert answer_type("黔桂高铁项目的总工程师是谁？") == "who"
    assert answer_type("哪个省让群众在家门口的派出所就能办户口？") == "place"
    assert answer_type("How many people came?") == "number"
    assert answer_type("请介绍一下") is None


def test_question_places():
    assert question_places("湖北省为基层配备了多少名医生？") == ["湖北"]
    assert question_places("How many doctors did Guangdong assign?") == ["广东"]
    assert question_places("城市里有多少人？") == []


def test_hits_are_returned_with_the_answer(seeds):
    a = seeds.ask("福建12345热线的群众满意率是多少？", k=3)
    assert len(a.hits) == 3 and a.hits[0].passage_id == f"{FOUR}:15"


def test_sentence_score_counts_the_question_bigrams(seeds):
    """Each candidate's score carries w_bigram times the share of the
    question's character bigrams in the sentence or its heading."""
    import dataclasses

    from ingest.script import fold_script
    from retriever.rerank import evidence_coverage, question_bigrams

    question = "福建12345热线的群众满意率是多少？"
    passages = [p for _, p in seeds.retriever.search_passages(question, 4)]
    qvec = seeds.dense.query_vector(question)
    without = ExtractiveAnswerer(seeds.index, settings=dataclasses.replace(seeds.settings, w_bigram=0.0))
    plain = {(c.passage.passage_id, c.start): c.score for c in without.candidates(question, qvec, passages)}
    qb = question_bigrams(question)
    raised = 0
    for c in seeds.candidates(question, qvec, passages):
        before = plain[(c.passage.passage_id, c.start)]
        share = evidence_coverage(qb, c.text, 0, context=fold_script(c.passage.section or c.passage.title))
        assert c.score == pytest.approx(before + seeds.settings.w_bigram * share)
        raised += c.score > before + 1e-9
    assert raised  # the hotline sentences share bigrams with the question: their scores rise
