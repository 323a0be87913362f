"""Question analysis: the kind of answer asked for and its unit, names,
figures, language; content-free input; figures read as values."""

from __future__ import annotations

import pytest

from ingest.errors import BadQueryError
from retriever.numbers import numbers_in, parse_number
from retriever.question import CODE_MESSAGE, NO_CONTENT_MESSAGE, analyse, check_content, content_problem


@pytest.mark.parametrize("question, kind, unit", [
    # count, with the measure word the question uses
    ("湖北为基层配备了多少名大学生乡村医生？", "count", "名"),
    ("福建的党史学习教育学习点接待了多少人次参访？", "count", "人次"),
    ("江西完成加装电梯多少台？", "count", "台"),
    ("白沙湾港集装箱吞吐量多少标准箱？", "count", "标准箱"),
    ("这个村有几个合作社？", "count", "个"),
    ("广茂铁路全长多少公里？", "count", "公里"),
    ("這座橋有幾公里長？", "count", "公里"),  # Traditional script
    # money, percent, duration, date
    ("江西既有住宅加装一台电梯补贴多少钱？", "money", "元"),
    ("该项目投资了多少亿元？", "money", "亿元"),
    ("福建12345热线的群众满意率是多少？", "percent", "%"),
    ("福建12345熱線的群眾滿意率是多少？", "percent", "%"),
    ("城镇化率提高了多少个百分点？", "percent", "个百分点"),
    ("吉林把失业登记的办结时限缩短到了多久？", "duration", ""),
    ("大桥建设用了多长时间？", "duration", ""),
    ("荆江长江大桥主桥是哪一天合龙的？", "date", ""),
    ("他是甚麼時候出生的？", "date", ""),
    ("这所学校成立于哪一年？", "date", ""),
    # person, place, org, title, list
    ("黔桂高铁项目的总工程师是谁？", "person", ""),
    ("誰設計了這座教堂？", "person", ""),
    ("哪个省让群众在家门口的派出所就能办户口？", "place", ""),
    ("李建芳是哪个村的村民？", "place", ""),
    ("哪个部门负责审批？", "org", ""),
    ("红色小蜜蜂志愿宣讲队获得了什么荣誉称号？", "title", ""),
    ("江苏把哪几类常办业务下放到了派出所？", "list", ""),
    ("云南推出了哪些便民措施？", "list", ""),
    # yes/no, description, other
    ("湖北是否实施了十大惠民项目？", "yesno", ""),
    ("为什么要开展学习教育？", "description", ""),
    ("江西的五关爱行动是怎样开展的？", "description", ""),
    ("福州团市委开发上线的小程序叫什么名字？", "entity", ""),
    ("那江西呢？", "other", ""),
])
def test_kind_and_unit(question, kind, unit):
    q = analyse(question)
    assert (q.kind, q.unit, q.lang) == (kind, unit, "zh")


@pytest.mark.parametrize("question, kind", [
    ("How many college-educated village doctors did Hubei assign?", "count"),
    ("What was the satisfaction rate of Fujian's 12345 hotline?", "percent"),
    ("How much money did Jiangxi spend on elevators?", "money"),
    ("How long did the construction take?", "duration"),
    ("When did the bridge open?", "date"),
    ("Who is the chief engineer?", "person"),
    ("Which province has the highest satisfaction rate?", "place"),
    ("Which department approves the projects?", "org"),
    ("What award did the team win?", "title"),
    ("What kinds of services were moved to police stations?", "list"),
    ("Why did Jilin shorten the deadline?", "description"),
    ("Is the hotline open at night?", "yesno"),
])
def test_english_kinds(question, kind):
    q = analyse(question)
    assert (q.kind, q.lang, q.crosslingual) == (kind, "en", True)


def test_folded_once_with_its_words_and_names():
    q = analyse("  福建12345熱線的群眾滿意率是多少？ ")
    assert q.text == "福建12345熱線的群眾滿意率是多少？"
    assert q.folded == "福建12345热线的群众满意率是多少？"
    assert len(q.folded) == len(q.text)
    assert q.places == ("福建",)
    assert q.numbers == (12345.0,)
    assert "热线" in q.terms and "满意率" in q.terms
    assert "热线" in q.bigrams and "多少" not in "".join(q.bigrams)


def test_places_entities_and_english_places():
    assert analyse("湖北省为基层配备了多少名医生？").places == ("湖北",)
    assert analyse("How many doctors did Guangdong assign?").places == ("广东",)
    assert analyse("城市里有多少人？").places == ()
    assert analyse("广茂铁路全长多少公里？").entities == ("广茂",)
    assert analyse("《战国无双3》是由哪两个公司合作开发的？").entities[-1] == "战国无双3"


@pytest.mark.parametrize("text, value", [
    ("1310万余", 13_100_000.0), ("13,100,000", 13_100_000.0), ("三千", 3000.0), ("两成", 20.0),
    ("99.89%", 99.89), ("百分之十五", 15.0), ("一万二千三百", 12300.0), ("3.5亿", 350_000_000.0),
    ("二〇二一", 2021.0), ("约537.2万", 5_372_000.0), ("十五", 15.0), ("三亿五千万", 350_000_000.0),
    ("4777人", None), ("", None), ("许多", None),
])
def test_numbers_read_as_values(text, value):
    assert parse_number(text) == value


def test_numbers_in_text():
    found = numbers_in("接待参访1310万余人次，共有1211个学习点，满意率99.89%，三千人")
    assert [(s, e, v) for s, e, v in found] == [(4, 10, 13_100_000.0), (15, 19, 1211.0), (27, 33, 99.89),
                                               (34, 36, 3000.0)]


@pytest.mark.parametrize("junk, what", [
    ("😀🎉🤔", "emoji or symbols"),
    ("？", "punctuation"),
    ("？？？!!!", "punctuation"),
    ("\u200b\u200b\u200b", "invisible characters"),
    ("   ", "spaces"),
    ("什么？", "punctuation and question words"),
    ("吗？呢？", "punctuation and question words"),
])
def test_content_free_input(junk, what):
    assert content_problem(junk) == NO_CONTENT_MESSAGE.format(what=what)


@pytest.mark.parametrize("junk, what", [
    ("'; DROP TABLE articles;--", "an SQL statement"),
    ("1' OR '1'='1", "an SQL statement"),
    ("SELECT * FROM passages", "an SQL statement"),
    ("{{7*7}}", "template syntax"),
    ("${jndi:ldap://x}", "template syntax"),
    ("<script>alert(1)</script>", "HTML or script markup"),
    ("../../etc/passwd", "a shell command, a path or a format string"),
    ("%s%s%s%n", "a shell command, a path or a format string"),
    ("a\x00b", "binary data (it holds a NUL character)"),
])
def test_code_like_input(junk, what):
    assert content_problem(junk) == CODE_MESSAGE.format(what=what)
    with pytest.raises(BadQueryError) as err:
        check_content(junk)
    assert str(err.value) == CODE_MESSAGE.format(what=what)


@pytest.mark.parametrize("question", [
    "福建12345热线的群众满意率是多少？", "Which players did they select from the draft?", "cat breeds in China?",
    "How many people were selected from the villages?", "12345", "GDP", "湖北",
])
def test_real_questions_pass(question):
    assert content_problem(question) is None
