"""The answerer on the real model, reader and index: answers, citations,
refusals, and the questions issue 10 listed (over the bundled corpus)."""

from __future__ import annotations

import pytest

from ingest.errors import BadQueryError
from retriever.answer import NOT_FOUND_MESSAGE, ExtractiveAnswerer
from retriever.index import IndexReader
from retriever.question import CODE_MESSAGE, NO_CONTENT_MESSAGE

HUBEI = "000_0ff65538257d4705"
FOUR = "004_ef22c67862e0d2cc"


@pytest.fixture(scope="module")
def seeds(seed_index, e5):
    return ExtractiveAnswerer(IndexReader(seed_index, e5))


@pytest.fixture(scope="module")
def mini(mini_index, e5):
    return ExtractiveAnswerer(IndexReader(mini_index, e5))


def _check_citation(answerer, answer):
    """The quote is the article text at its offsets; the shown answer sits
    inside it, at its own offsets; a short answer is what is shown."""
    assert answer.short_answer is None or answer.short_answer == answer.answer
    for c in answer.citations:
        article, _ = answerer.index.article(c.article_id)
        assert article.text[c.start:c.end] == c.quote
        assert c.start <= c.answer_start < c.answer_end <= c.end
        assert article.text[c.answer_start:c.answer_end] == answer.answer


def test_done_means_4777(seeds):
    a = seeds.ask("湖北为基层配备了多少名大学生乡村医生？")
    assert (a.answerable, a.answer, a.short_answer, a.kind) == (True, "大学生乡村医生4777人", "大学生乡村医生4777人",
                                                                "count")
    c = a.citations[0]
    assert (c.article_id, c.paragraph, c.passage_id) == (HUBEI, 4, f"{HUBEI}:4")
    assert c.section == "湖北：落实“十大惠民、四项关爱”实事项目"
    assert "为基层配备大学生乡村医生4777人" in c.quote
    _check_citation(seeds, a)


FUJIAN_CLAUSE = "全省12345热线共受理群众诉求537.2万件，按时办结率99.9%，反馈回复率100%，群众满意率99.89%"
WUGUANAI = ("江西把关爱留守儿童纳入“我为群众办实事”实践活动重要内容，实施思想关爱、情感关爱、健康关爱、行为关爱、安全关爱"
            "“五关爱行动”，基层党员干部用“多跑路”切实打通关爱服务“最后一公里”")

# Issue 10's examples over the bundled corpus that wenda now gets right:
# (question, what is shown, short answer or None when the sentence is shown,
# cited paragraph). Each shown text holds the answer the issue names.
ISSUE_EXAMPLES = [
    ("福建12345热线的群众满意率是多少？", FUJIAN_CLAUSE, FUJIAN_CLAUSE, (FOUR, 15)),
    ("What was the satisfaction rate of Fujian's 12345 hotline?", FUJIAN_CLAUSE, FUJIAN_CLAUSE, (FOUR, 15)),
    ("吉林把失业登记的办结时限缩短到了多久？", "3个工作日", "3个工作日", (FOUR, 7)),
    ("福建的党史学习教育学习点接待了多少人次参访？", "1211个，接待参访52万余批次、1310万余人次",
     "1211个，接待参访52万余批次、1310万余人次", (FOUR, 17)),
    ("江西完成加装电梯多少台？", "617台", "617台", (FOUR, 21)),   # not 2176台 (审批)
    ("江西的五关爱行动是为哪类群体开展的？", WUGUANAI, None, (FOUR, 20)),  # the sentence: 留守儿童
    ("哪个省的12345热线满意率最高？", FUJIAN_CLAUSE, None, (FOUR, 15)),
]


@pytest.mark.parametrize("question, shown, short, where", ISSUE_EXAMPLES)
def test_issue_examples(seeds, question, shown, short, where):
    a = seeds.ask(question)
    assert (a.answer, a.short_answer) == (shown, short)
    assert (a.citations[0].article_id, a.citations[0].paragraph) == where
    _check_citation(seeds, a)


# Issue 10's examples wenda still gets wrong (strict: a fix makes them pass
# and the marker must then go): the right answer, or None for "refuse".
STILL_WRONG = [
    ("How many college-educated village doctors did Hubei assign?", "4777",
     "English: right paragraph, wrong sentence; the models were fitted on Chinese questions only"),
    ("红色小蜜蜂志愿宣讲队获得了什么荣誉称号？", "全国基层理论宣讲先进集体", "a fragment across the title"),
    ("江苏把哪几类常办业务下放到了派出所？", "户籍、车驾管、出入境", "shows the count 三大类219项, not the kinds"),
    ("李建芳是哪个村的村民？", "崇岭村", "shows the county"),
    ("江西既有住宅加装一台电梯补贴多少钱？", None, "answered from the elevator sentence, which names no subsidy"),
    ("How do I bake sourdough bread at home?", None, "English off-topic questions are not refused"),
    ("How many village doctors did Guangdong assign?", None,
     "English near miss answered at confidence 0.001 (the English threshold, 0.0009, is chosen on 12 seed questions)"),
    ("西藏自治区的常住人口有多少？", None, "answered from a Tibet sentence about something else"),
    ("福建完成加装电梯多少台？", None, "answered with Jiangxi's 617台 at confidence 0.12 (threshold 0.05)"),
]


@pytest.mark.parametrize("question, right, why", STILL_WRONG)
def test_still_wrong(seeds, question, right, why):
    a = seeds.ask(question)
    ok = (not a.answerable) if right is None else (a.answerable and right in (a.short_answer or ""))
    if not ok:
        pytest.xfail(why)
    pytest.fail(f"now right, take it out of STILL_WRONG: {question}")


@pytest.mark.parametrize("question", [
    "广东为基层配备了多少名乡村医生？",       # another province: near miss
    "浙江12345热线的群众满意率是多少？",
    "明天北京的天气怎么样？",                 # unrelated
    "广茂铁路全长多少公里？",                 # 广三铁路 is not 广茂铁路
    "江西12345热线的群众满意率是多少？",       # Fujian's paragraph, in an article whose title names 江西
    "江苏的党史学习教育学习点接待了多少人次参访？",
])
def test_refuses_what_the_corpus_does_not_hold(seeds, question):
    a = seeds.ask(question)
    assert (a.answerable, a.answer, a.short_answer, a.citations) == (False, NOT_FOUND_MESSAGE, None, [])
    # The closest passages come back as related, each quoting its passage whole.
    assert len(a.related) == 3
    for c in a.related:
        article, _ = seeds.index.article(c.article_id)
        assert article.text[c.start:c.end] == c.quote and c.answer_start is None


@pytest.mark.parametrize("junk, message", [
    ("😀🎉🤔", NO_CONTENT_MESSAGE.format(what="emoji or symbols")),
    ("？", NO_CONTENT_MESSAGE.format(what="punctuation")),
    ("\u200b\u200b", NO_CONTENT_MESSAGE.format(what="invisible characters")),
    ("'; DROP TABLE articles;--", CODE_MESSAGE.format(what="an SQL statement")),
    ("{{7*7}}", CODE_MESSAGE.format(what="template syntax")),
])
def test_content_free_input_is_refused_before_retrieval(seeds, junk, message):
    with pytest.raises(BadQueryError) as err:
        seeds.ask(junk)
    assert str(err.value) == message


# Mini-corpus questions wenda gets wrong today (each pinned: a fix or a new
# miss both fail the test below, and this set is updated with the reason).
MINI_MISSES = {
    "通渭县那所乡村小学接受采访的教师叫什么名字？",  # answers from the lunch sentence (confidence 0.16)
    "How many visitors did the new Jiangzhou City Library receive on its opening day?",  # English: wrong sentence
    "黔桂高铁贵阳北至南宁东的二等座票价是多少？",  # not in the article; answered at 0.105 (threshold 0.05)
}


def test_mini_corpus_answers(mini, mini_questions):
    """Questions written independently of the answerer's training. Right means:
    refused when the file says there is no answer; otherwise answered from the
    named article with the gold answer inside what is shown."""
    misses = set()
    for q in mini_questions:
        a = mini.ask(q["question"])
        _check_citation(mini, a)
        if q["answer"] is None:
            right = not a.answerable
        else:
            right = (a.answerable and q["answer"] in a.answer
                     and a.citations[0].article_id == q.get("article_id", a.citations[0].article_id))
        if not right:
            misses.add(q["question"])
    assert misses == MINI_MISSES


def test_hits_are_returned_with_the_answer(seeds):
    a = seeds.ask("福建12345热线的群众满意率是多少？", k=3)
    assert len(a.hits) == 3 and a.hits[0].passage_id == f"{FOUR}:15"
