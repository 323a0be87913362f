"""Metrics against hand-worked numbers; the runner end to end on tiny sets."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner
from conftest import SEEDS, fresh_index_dir

from eval import metrics
from eval.datasets import DEFAULT_DATA_DIR, EvalQuestion, EvalSet, load_public, load_seed
from eval.report import check_fail_under, render_table, write_outputs
from eval.runner import run_eval
from service.cli import cli

# The public sets are read from ../shared/data (never copied into the repo).
needs_shared_data = pytest.mark.skipif(not (DEFAULT_DATA_DIR / "cmrc2018").is_dir(),
                                       reason=f"needs the public sets at {DEFAULT_DATA_DIR} (../shared/data)")

# ---- metrics: a 3-query toy set worked by hand -----------------------------------
# q1 ranks [a, b, c] with gold {b}; q2 ranks [d, e] with gold {x}; q3 ranks [g, h] with gold {g, h}.
TOY = [(["a", "b", "c"], {"b"}), (["d", "e"], {"x"}), (["g", "h"], {"g", "h"})]


def test_recall_mrr_ndcg_by_hand():
    assert [metrics.recall_at(r, g, 1) for r, g in TOY] == [0, 0, 1]
    assert [metrics.recall_at(r, g, 2) for r, g in TOY] == [1, 0, 1]
    assert [metrics.mrr_at(r, g) for r, g in TOY] == [0.5, 0, 1]
    # q1: DCG = 1/log2(3), ideal = 1 -> 0.6309; q3: both gold first -> 1.0
    assert metrics.ndcg_at(*TOY[0]) == pytest.approx(1 / math.log2(3))
    assert metrics.ndcg_at(*TOY[1]) == 0.0
    assert metrics.ndcg_at(*TOY[2]) == pytest.approx(1.0)
    assert metrics.ndcg_at(["z", "g"], {"g", "h"}) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_cmrc_style_em_and_f1_by_hand():
    assert metrics.segment("4777人，ABC 12.5%") == ["4777", "人", "abc", "12.5", "%"]
    assert metrics.exact_match("“4777人”。", ["4777人"]) == 1.0
    assert metrics.exact_match("4777", ["4777人"]) == 0.0
    # prediction 为基层配备4777人 vs gold 4777人: tokens 为 基 层 配 备 4777 人 (7) vs 4777 人 (2);
    # LCS 2 -> P 2/7, R 1 -> F1 = 2*(2/7)/(2/7+1) = 4/9
    assert metrics.char_f1("为基层配备4777人", ["4777人"]) == pytest.approx(4 / 9)
    assert metrics.char_f1("北京", ["上海", "北京市"]) == pytest.approx(0.8)
    assert metrics.char_f1("", ["北京"]) == 0.0
    assert metrics.contains_gold("为基层配备4777人", ["4777人"]) == 1.0


def test_abstention_and_threshold_by_hand():
    # refused:    T  T  F  F ; answerable: F  T  F  T
    got = metrics.abstention([True, True, False, False], [False, True, False, True])
    assert got["refusal_precision"] == 0.5 and got["refusal_recall"] == 0.5
    assert got["wrongly_refused"] == 1 and got["missed_refusals"] == 1
    t, fit = metrics.best_threshold([0.9, 0.6, 0.8, 0.5], [True, False, True, False], [False] * 4)
    assert t == 0.8 and fit["accuracy"] == 1.0


def test_percentile_matches_numpy_linear():
    assert metrics.percentile([1, 2, 3, 4], 50) == 2.5
    assert metrics.percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48.0)


# ---- runner ------------------------------------------------------------------------
def test_runner_end_to_end_on_a_tiny_set(seed_index, e5, tmp_path):
    questions = [
        EvalQuestion("t1", "湖北为基层配备了多少名大学生乡村医生？", True, ("000_0ff65538257d4705:4",), ("4777人",)),
        EvalQuestion("t2", "福建12345热线的群众满意率是多少？", True, ("004_ef22c67862e0d2cc:15",), ("99.89%",)),
        EvalQuestion("t3", "广东为基层配备了多少名乡村医生？", False, (), ()),
    ]
    result = run_eval(EvalSet("tiny", questions), seed_index, e5, modes=("hybrid", "bm25"), progress=False)
    h = result["modes"]["hybrid"]
    assert (h["questions"], h["answerable"]) == (3, 2)
    # Shown: 大学生乡村医生4777人 (F1 4/11 against 4777人) and the clause ending
    # in 99.89% (F1 2/19): both hold the gold, neither is it exactly.
    assert h["recall@1"] == 1.0 and h["exact_match"] == 0.0 and h["contains_gold"] == 1.0
    assert h["f1"] == pytest.approx((4 / 11 + 2 / 19) / 2, abs=1e-3)
    assert h["citation_correct"] == 1.0 and h["quote_matches"] == 1.0
    assert (h["refusal_precision"], h["refusal_recall"], h["wrongly_refused"]) == (1.0, 1.0, 0)
    per_q = [r for r in result["results"] if r["mode"] == "hybrid"]
    assert [r["answer"] for r in per_q] == ["大学生乡村医生4777人", "全省12345热线共受理群众诉求537.2万件，按时办结率99.9%，反馈回复率100%，群众满意率99.89%", ""]
    assert per_q[0]["ranked"][0] == "000_0ff65538257d4705:4"
    paths = write_outputs(result, tmp_path, "tiny")
    assert json.loads(paths["json"].read_text())["modes"]["bm25"]["questions"] == 3
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| R@1 | 1.000 | " in paths["markdown"].read_text()
    assert "R@1" in render_table(result)
    assert check_fail_under(result, ["recall@1=0.9"]) == []
    assert check_fail_under(result, ["bm25.recall@1=1.1"]) == ["bm25.recall@1 = 1.0000 is under 1.1000"]
    # Only the hybrid mode's answers are scored; other modes are retrieval only.
    with pytest.raises(ValueError, match="no metric 'f1' for mode 'bm25'"):
        check_fail_under(result, ["bm25.f1=0.5"])


def test_seed_set_is_well_formed():
    s = load_seed()
    assert len(s.questions) >= 60
    kinds = {q.kind for q in s.questions}
    assert {"fact", "paraphrase", "english", "multi", "unanswerable"} <= kinds
    assert sum(not q.answerable for q in s.questions) >= 12
    assert {q.split for q in s.questions} == {"tune", "test"}
    texts = {p.name[:-4]: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")}
    for q in s.questions:
        for a in q.answers:
            assert any(a in texts[g.split(":")[0]] for g in q.gold), (q.qid, a)


@needs_shared_data
def test_public_loader_reads_shared_data_and_holds_out():
    full = load_public("cmrc2018-trial", limit=30)
    assert len(full.questions) == 30 and all(q.answerable for q in full.questions)
    assert {a.article_id for a in full.articles} == {q.gold[0] for q in full.questions}
    held = load_public("cmrc2018-trial", limit=30, holdout=0.5)
    n_unans = sum(not q.answerable for q in held.questions)
    assert 0 < n_unans < 30
    removed = {q.gold[0] for q in full.questions} - {a.article_id for a in held.articles}
    assert len(removed) == round(len({q.gold[0] for q in full.questions}) * 0.5)


@needs_shared_data
def test_trial_stand_ins_for_tuning():
    """The sibling split puts each question in the part that holds its answer,
    under the context's title, and loses no text; the script stand-in is the
    same questions in Taiwan script."""
    import json as _json

    from eval.datasets import DEFAULT_DATA_DIR

    raw = _json.loads((DEFAULT_DATA_DIR / "cmrc2018/cmrc2018_trial.json").read_text(encoding="utf-8"))
    contexts = {p["id"]: (a["title"], p["context"]) for a in raw["data"] for p in a["paragraphs"]}
    split = load_public("cmrc2018-trial-split")
    parts = {a.article_id: a for a in split.articles}
    for cid, (title, ctx) in contexts.items():
        mine = sorted((a for a in split.articles if a.article_id.rsplit("-s", 1)[0] == cid),
                      key=lambda a: int(a.article_id.rsplit("-s", 1)[1]))
        assert "".join(a.text for a in mine) == ctx
        assert {a.title for a in mine} == {title}
    assert len(split.articles) > 2 * len(contexts)  # about three siblings a context
    # Each kept question's marked answer sits in its part at the marked offset
    # (shifted by where the part starts; a few trial offsets are off by 1-2,
    # counted in UTF-16 units, see PROVENANCE.md).
    marked = {qa["id"]: (p["id"], qa["answers"][0]) for a in raw["data"] for p in a["paragraphs"] for qa in p["qas"]}
    for q in split.questions:
        cid, ans = marked[q.qid]
        part = parts[q.gold[0]]
        offset = contexts[cid][1].find(part.text)
        text = ans["text"].strip()
        at = part.text.find(text, max(0, ans["answer_start"] - offset - 2))
        assert text == q.answers[0] and abs(at - (ans["answer_start"] - offset)) <= 2
    # 2 trial questions have no usable answer; 30 answers cross a cut.
    assert len(split.questions) == 970
    assert split.notes == [("32 questions skipped: empty question, no answer text found in the context, "
                            "or an answer across a cut")]

    tw = load_public("cmrc2018-trial-s2t", limit=20)
    plain = load_public("cmrc2018-trial", limit=20)
    assert [q.qid for q in tw.questions] == [q.qid for q in plain.questions]
    by_id = {q.qid: q.question for q in tw.questions}
    assert {q.qid: q.question for q in plain.questions}["TRIAL_154_QUERY_1"] == "尤金袋鼠为什么会被认为是害虫？"
    assert by_id["TRIAL_154_QUERY_1"] == "尤金袋鼠為什麼會被認為是害蟲？"  # Taiwan forms: 為, not 爲


@needs_shared_data
def test_eval_without_baseline_packages_fails_before_running(tmp_path, monkeypatch):
    """With the LangChain extras missing, a public eval stops at once with
    the fix, instead of after the whole run; --no-baseline runs."""
    import sys

    monkeypatch.setitem(sys.modules, "rank_bm25", None)  # as if not installed
    monkeypatch.setenv("WENDA_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    args = ["eval", "--dataset", "cmrc2018-trial", "--limit", "3", "--modes", "bm25", "--out", str(out),
            "--no-progress"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1
    assert r.stderr.strip() == ("Error: the LangChain baseline needs extra packages: pip install -e '.[eval]' "
                                "(or pass --no-baseline)")
    assert not (tmp_path / "cache").exists() and not out.exists()  # nothing was indexed or written
    r = CliRunner().invoke(cli, [*args, "--no-baseline"])
    assert r.exit_code == 0, r.output
    assert (out / "cmrc2018-trial-limit3.json").exists()


@needs_shared_data
@pytest.mark.slow
def test_eval_cli_on_a_public_slice_with_gate(tmp_path, monkeypatch, warm_cache):
    monkeypatch.setenv("WENDA_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["eval", "--dataset", "cmrc2018-trial", "--limit", "12", "--modes", "hybrid,bm25",
                                 "--out", str(out), "--fail-under", "recall@5=0.5", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "cmrc2018-trial: 12 questions" in r.stdout
    assert "lc-bm25" in r.stdout
    data = json.loads((out / "cmrc2018-trial-limit12.json").read_text())
    assert data["baseline"]["bm25_all_zero_questions"] == 12  # str.split sees no words in Chinese
    assert data["modes"]["hybrid"]["quote_matches"] == 1.0
    r = CliRunner().invoke(cli, ["eval", "--dataset", "cmrc2018-trial", "--limit", "12", "--modes", "bm25",
                                 "--no-baseline", "--out", str(out), "--fail-under", "recall@1=1.01",
                                 "--no-progress"])
    assert r.exit_code == 1
    recall = json.loads((out / "cmrc2018-trial-limit12.json").read_text())["modes"]["bm25"]["recall@1"]
    assert r.stderr.strip() == f"Error: quality gate failed: bm25.recall@1 = {recall:.4f} is under 1.0100"


def test_eval_cli_seed_default(tmp_path, monkeypatch, warm_cache):
    idx = fresh_index_dir(tmp_path / "seedidx", warm_cache)
    monkeypatch.setenv("WENDA_INDEX_DIR", str(idx))
    monkeypatch.setenv("WENDA_CORPUS_DIR", str(SEEDS))
    monkeypatch.setenv("WENDA_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    evalset = tmp_path / "two.jsonl"
    evalset.write_text("\n".join(json.dumps(o, ensure_ascii=False) for o in [
        {"id": "x1", "question": "湖北为基层配备了多少名大学生乡村医生？", "gold_passages": ["000_0ff65538257d4705:4"],
         "answers": ["4777人"], "answerable": True},
        {"id": "x2", "question": "明天北京的天气怎么样？", "gold_passages": [], "answers": [], "answerable": False},
    ]), encoding="utf-8")
    r = CliRunner().invoke(cli, ["eval", str(evalset), "--modes", "hybrid,fused", "--out", str(tmp_path / "o"),
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "o" / "two.json").read_text())
    assert (data["modes"]["hybrid"]["exact_match"], data["modes"]["hybrid"]["contains_gold"]) == (0.0, 1.0)
    assert data["modes"]["hybrid"]["refusal_recall"] == 1.0
    # "fused" is hybrid with the rerank off: the same ranking as hybrid run
    # with WENDA_RERANK_WEIGHT=0, question by question (its answers are not
    # scored: only the hybrid mode's are).
    assert data["modes"]["fused"]["questions"] == 2
    assert "exact_match" not in data["modes"]["fused"]
    monkeypatch.setenv("WENDA_RERANK_WEIGHT", "0")
    r = CliRunner().invoke(cli, ["eval", str(evalset), "--modes", "hybrid", "--out", str(tmp_path / "off"),
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    off = json.loads((tmp_path / "off" / "two.json").read_text())
    keep = ("qid", "ranked")
    assert ([{k: x[k] for k in keep} for x in data["results"] if x["mode"] == "fused"]
            == [{k: x[k] for k in keep} for x in off["results"]])
    monkeypatch.delenv("WENDA_RERANK_WEIGHT")
    r = CliRunner().invoke(cli, ["eval", str(evalset), "--modes", "hybrid,fuzzy", "--no-progress"])
    assert r.exit_code == 2 and "unknown mode 'fuzzy'" in r.output
