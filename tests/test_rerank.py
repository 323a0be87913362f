"""Evidence rerank: bigram coverage worked by hand, and the rerank inside
hybrid retrieval on the real mini index."""

from __future__ import annotations

import pytest

from ingest.errors import BadQueryError
from ingest.models import Passage
from retriever.index import IndexReader
from retriever.rerank import evidence_coverage, question_bigrams, rerank
from retriever.search import HybridSettings, make_retriever


@pytest.fixture(scope="module")
def reader(mini_index, e5):
    r = IndexReader(mini_index, e5)
    yield r
    r.close()


def _p(pid: str, text: str, title: str = "标题", section: str | None = None) -> Passage:
    return Passage(pid, pid.split(":")[0], title, section, 1, 0, 0, len(text), text)


def test_question_words_and_punctuation_cut_the_question():
    # 谁 and ？ cut it; no bigram straddles a question word.
    assert question_bigrams("馆长是谁？") == {"馆长", "长是"}
    assert question_bigrams("张三是谁的学生") == {"张三", "三是", "的学", "学生"}
    # Latin words and numbers are one unit each; spaces cut.
    assert question_bigrams("2019年GDP增长多少") == {"2019年", "年gdp", "gdp增", "增长"}
    assert question_bigrams("What is the GDP?") == frozenset()
    # Traditional script is folded to Simplified first, question words too.
    assert question_bigrams("誰是館長") == {"是馆", "馆长"}


def test_coverage_is_the_best_window_share():
    q = question_bigrams("大桥主桥合龙日期")  # 大桥 桥主 主桥 桥合 合龙 龙日 日期: 7
    assert len(q) == 7
    text = "大桥位于江边。主桥于5月合龙。日期未定。其他内容。"
    # width 0: one sentence at a time; "主桥于5月合龙" holds 主桥, 合龙 → 2/7.
    assert evidence_coverage(q, text, 0) == pytest.approx(2 / 7)
    # width 1: sentence 2 with its neighbours holds 大桥, 主桥, 合龙, 日期 → 4/7
    # (no bigram across a sentence end: 龙。日 is not 龙日).
    assert evidence_coverage(q, text, 1) == pytest.approx(4 / 7)
    # The title counts as found in every window: 大桥 桥主 主桥 from it, with
    # sentence 2's 合龙 → 4/7.
    assert evidence_coverage(q, text, 0, context="大桥主桥") == pytest.approx(4 / 7)
    assert evidence_coverage(frozenset(), text) == 0.0


def test_same_score_across_scripts():
    """Both sides are folded to Simplified script: the same question and text
    cover the same share in either script, and a question in one script is
    covered by a passage in the other."""
    qs, qt = question_bigrams("湖北为基层配备了多少名乡村医生"), question_bigrams("湖北為基層配備了多少名鄉村醫生")
    assert qs == qt
    s = evidence_coverage(qs, "湖北为基层配备乡村医生4777人。")
    assert s > 0.5
    assert evidence_coverage(qs, "湖北為基層配備鄉村醫生4777人。") == s
    assert evidence_coverage(qs, "其他內容。", context="湖北為基層配備鄉村醫生") == s


def test_rerank_moves_the_evidence_paragraph_up_and_keeps_others():
    passages = {
        1: _p("a:1", "江州市新图书馆今天开馆，江州市新图书馆藏书百万册。", title="江州市新图书馆开馆"),
        2: _p("a:2", "馆长李明介绍了借阅规则。", title="江州市新图书馆开馆"),
    }
    # Question bigrams: 江州 州市 市新 新图 图书 书馆 馆的 的馆 馆长 长是 (10).
    # The title gives both passages the first six; only a:2 adds 馆长:
    # a:1 = 1.0 + 6/10, a:2 = 0.95 + 7/10.
    scored = [(1, 1.0), (2, 0.95), (3, 0.5)]  # row 3 has no passage: keeps its score
    out = rerank(question_bigrams("江州市新图书馆的馆长是谁？"), scored, passages, weight=1.0)
    assert out[0] == (2, pytest.approx(1.65)) and out[1] == (1, pytest.approx(1.6))
    assert [r for r, _ in out] == [2, 1, 3]
    assert dict(out)[3] == 0.5
    # Weight 0, or a question with no bigrams, leaves the order alone.
    assert rerank(question_bigrams("江州市新图书馆的馆长是谁？"), scored, passages, weight=0.0) == scored
    assert rerank(question_bigrams("Who is the curator?"), scored, passages, weight=1.0) == scored


def test_hybrid_rerank_changes_top1_on_the_real_index(reader, mini_questions):
    """On the mini index the rerank fixes a sibling confusion that fusion
    alone makes, and breaks none of the other top-1 answers."""
    zh = [q for q in mini_questions if q["article_id"] and not q["question"].isascii()]
    on = make_retriever(reader, "hybrid", HybridSettings())
    off = make_retriever(reader, "hybrid", HybridSettings(rerank_weight=0))
    expected = [f"{q['article_id']}:{q['paragraph']}" for q in zh]
    got_on = [on.search(q["question"], 1)[0].passage_id for q in zh]
    got_off = [off.search(q["question"], 1)[0].passage_id for q in zh]
    right_on = {e for e, g in zip(expected, got_on) if e == g}
    right_off = {e for e, g in zip(expected, got_off) if e == g}
    assert right_off < right_on  # strictly more right, nothing lost
    assert "a01:2" in right_on - right_off


def test_rerank_settings_are_validated():
    with pytest.raises(BadQueryError, match="rerank_weight"):
        HybridSettings(rerank_weight=-1)
    with pytest.raises(BadQueryError, match="rerank_depth"):
        HybridSettings(rerank_depth=0)


@pytest.mark.parametrize("fusion", ["convex", "rrf"])
def test_scores_stay_on_one_scale_past_the_rerank_depth(reader, fusion):
    """Hits below the reranked top keep a score under every reranked one, and
    every score is on the 0..1 + weight scale whichever fusion ran."""
    settings = HybridSettings(fusion=fusion, rerank_depth=5)
    hits = make_retriever(reader, "hybrid", settings).search("江州市新图书馆的馆长是谁？", 20)
    scores = [h.score for h in hits]
    assert len(hits) == 20
    assert scores == sorted(scores, reverse=True)
    assert 0 <= scores[-1] and scores[0] <= 1 + settings.rerank_weight
    assert scores[5] <= 1.0  # past the depth: the fused score alone
