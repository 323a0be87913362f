"""Rule-made answer spans (retriever/spans.py): hand-worked examples for the
slot's head noun, ranges, era years and clauses (real tagger, no mocks). The
sentences are shaped after failure cases seen on the CMRC 2018 trial split
(Cui et al. 2019, CC BY-SA 4.0), the split wenda is tuned on."""

from __future__ import annotations

from retriever.question import analyse, posseg
from retriever.span import clause_at, clauses, head_noun, widen, with_era
from retriever.spans import DATE, figures, rule_spans, slot


def _slot(question: str, text: str) -> str:
    span = slot(question, text)
    assert span is not None
    return text[span[0]:span[1]]


def test_slot_keeps_the_noun_the_question_word_modifies():
    # 哪所小学: the answer is 南昌路小学, not 南昌路.
    assert _slot("渠成就读于哪所小学？", "渠成就读于南昌路小学，四年级进入南京市足球代表队。") == "南昌路小学"
    assert _slot("林务局将铁路以什么模式移交公司经营？", "林务局将铁路以BOT模式移交公司经营。") == "BOT模式"
    # After 的 the noun is the question's own word, not part of the answer.
    assert _slot("刘海波以什么成绩夺冠？", "刘海波以2小时11分36秒的成绩夺冠。") == "2小时11分36秒"


def test_slot_does_not_take_a_verb_after_it():
    # 谁 is not widened, and a verb (even one tagged as a verbal noun) after
    # 什么 is no head noun.
    assert _slot("这座教堂是由谁设计的？", "这座教堂是由建筑师博罗米尼设计的。") == "建筑师博罗米尼"
    assert head_noun("设计的", "设计的。", posseg) == ""


def test_head_noun_only_when_the_sentence_repeats_it():
    assert head_noun("音乐风格的影响", "音乐风格的舞曲。", posseg) == "音乐风格"
    assert head_noun("小学", "中学。", posseg) == ""


def test_widen_joins_a_range_of_figures():
    text = "生长于海拔100米至2,800米的地区。"
    # figures() joins the range itself.
    assert [text[s:e] for s, e in figures(text)] == ["100米至2,800米"]
    # A lone figure stays as it is.
    assert widen("共有84名运动员。", (2, 5), [(2, 5)]) == (2, 5)


def test_widen_joins_dates_by_and_only_for_dates():
    text = "比赛于2008年8月15日及8月16日举行。"
    spans = [m.span() for m in DATE.finditer(text)]
    s, e = widen(text, spans[0], spans, dates=True)
    assert text[s:e] == "2008年8月15日及8月16日"
    assert widen(text, spans[0], spans) == spans[0]  # 及 does not make a range of figures


def test_with_era_takes_the_era_year_before_a_bracketed_year():
    text = "渡川之战发生于天正3年（1575年）。"
    start = text.index("1575年")
    s, e = with_era(text, (start, start + 5))
    assert text[s:e] == "天正3年（1575年）"
    plain = "该银行创立于1957年。"
    assert with_era(plain, (6, 11)) == (6, 11)
    # A count before the bracket is no era: 成立第二年, 历时三年, 在位十年.
    for counted in ("公司成立第二年（1998年）", "历时三年（2019年）", "在位十年（1990年）"):
        start = counted.index("（") + 1
        assert with_era(counted, (start, start + 5)) == (start, start + 5), counted
    # A sentence cut before the closing bracket is not widened past its end.
    cut = "明朝正德五年（1510年"
    assert with_era(cut, (7, 12)) == (7, 12)


def test_clauses_and_clause_at():
    text = "芙蓉洞位于重庆武隆县，距县城20公里。"
    assert [text[s:e] for s, e in clauses(text)] == ["芙蓉洞位于重庆武隆县", "距县城20公里。"]
    s, e = clause_at(text, text.index("20"))
    assert text[s:e] == "距县城20公里。"


def test_rule_spans_of_a_count_question_keep_the_unit():
    q = analyse("福建的党史学习教育学习点接待了多少人次参访？")
    sentence = "接待参访52万余批次、1310万余人次；开辟参观线路509条。"
    spans = {sentence[s:e]: rule for s, e, rule in rule_spans(q, sentence)}
    assert spans["1310万余人次"] == "figure"
    assert spans["52万余批次"] == "figure"
    assert spans["接待参访52万余批次、1310万余人次；开辟参观线路509条"] == "sentence"
    assert "1310万余" not in spans  # a figure is proposed with its unit


def test_rule_spans_of_a_person_question_propose_names():
    q = analyse("黔桂高铁项目的总工程师是谁？")
    sentence = "项目总工程师赵德明介绍，全线共有隧道38座。"
    spans = {sentence[s:e]: rule for s, e, rule in rule_spans(q, sentence)}
    assert spans["赵德明"] == "name"
