"""Render an evaluation: terminal table, JSON, Markdown report, PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

ROWS = [
    ("recall@1", "R@1"), ("recall@5", "R@5"), ("recall@10", "R@10"), ("mrr@10", "MRR@10"), ("ndcg@10", "nDCG@10"),
    ("exact_match", "EM"), ("f1", "F1"), ("contains_gold", "contains"), ("short_shown", "short shown"),
    ("citation_correct", "cite ok"),
    ("quote_matches", "quote=src"), ("refusal_precision", "refuse P"), ("refusal_recall", "refuse R"),
    ("wrongly_refused", "wrong refusals"), ("latency_p50_ms", "p50 ms"), ("latency_p95_ms", "p95 ms"),
]


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if value > 1.5 else f"{value:.3f}"
    return str(value)


def _columns(result: dict) -> dict[str, dict]:
    cols = {}
    for mode, fig in result["modes"].items():
        if fig.get("unanswerable") == 0:
            # No unanswerable question: refusal precision/recall say nothing.
            fig = {k: v for k, v in fig.items() if k not in ("refusal_precision", "refusal_recall")}
        cols[mode] = fig
    for mode, fig in (result.get("baseline") or {}).items():
        if isinstance(fig, dict):
            cols[mode] = fig
    return cols


def render_table(result: dict) -> str:
    """A plain-text table: one column per retrieval mode (and baseline)."""
    cols = _columns(result)
    names = list(cols)
    width = max(10, *(len(n) + 2 for n in names))
    lines = [f"{result['dataset']}: {result['modes'][names[0]]['questions']} questions, "
             f"{result['index']['passages']} passages ({result['index']['faiss_index']}), "
             f"load {result['load_seconds']:.2f}s"]
    lines.append(f"{'':16}" + "".join(f"{n:>{width}}" for n in names))
    for key, label in ROWS:
        if all(key not in cols[n] for n in names):
            continue
        lines.append(f"{label:16}" + "".join(f"{_fmt(cols[n].get(key)):>{width}}" for n in names))
    lines += ["", *type_table(result["modes"][names[0]].get("by_type") or {}, markdown=False)]
    best = result["modes"][names[0]].get("best_threshold")
    if best:
        lines.append(f"best refusal threshold on this set: {best['min_confidence']:.3f} "
                     f"(accuracy {best['accuracy']:.3f})")
    base = result.get("baseline") or {}
    if "bm25_all_zero_questions" in base:
        lines.append(f"LangChain BM25 (default str.split preprocessing) scored every chunk 0 for "
                     f"{base['bm25_all_zero_questions']} of {result['modes'][names[0]]['answerable']} questions")
    return "\n".join(lines)


def render_markdown(result: dict) -> str:
    cols = _columns(result)
    names = list(cols)
    out = [f"# wenda eval: {result['dataset']}", "",
           f"- command: `{result.get('command', '')}`", f"- date: {result.get('date', '')}",
           f"- machine: {result.get('machine', '')}",
           f"- index: {result['index']['passages']} passages, {result['index']['faiss_index']} FAISS, "
           f"model {result['index']['embed_model']}", ""]
    out += [f"- {n}" for n in result.get("notes", [])]
    out += ["", "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label in ROWS:
        if all(key not in cols[n] for n in names):
            continue
        out.append(f"| {label} | " + " | ".join(_fmt(cols[n].get(key)) for n in names) + " |")
    first = names[0]
    out += ["", f"## By question type ({first})", "", *type_table(result["modes"][first].get("by_type") or {},
                                                                  markdown=True)]
    out += ["", f"The worst misses, question by question: `{result.get('misses_file', 'the -misses.md file')}`."]
    return "\n".join(out) + "\n"


TYPE_ORDER = ("count", "money", "percent", "date", "duration", "person", "place", "org", "title", "list",
              "description", "yesno", "entity", "other", "english", "junk")


def type_table(by_type: dict[str, dict], *, markdown: bool) -> list[str]:
    """Per question type: questions, shown answer holds the gold, EM, F1, short
    answer shown, refusal errors."""
    if not by_type:
        return []
    kinds = [k for k in TYPE_ORDER if k in by_type] + sorted(set(by_type) - set(TYPE_ORDER))
    head = ["type", "questions", "contains", "EM", "F1", "short shown", "answerable refused", "unanswerable answered"]
    rows = []
    for k in kinds:
        f = by_type[k]
        rows.append([k, f"{f['questions']}", f"{f['contains_gold']:.3f}", f"{f['exact_match']:.3f}",
                     f"{f['f1']:.3f}", f"{f['short_shown']:.3f}", f"{f['wrongly_refused']}",
                     f"{f['missed_refusals']} of {f['unanswerable']}"])
    if markdown:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(head)]
    return ["".join(f"{h:>{w}}" for h, w in zip(head, widths))] + \
        ["".join(f"{c:>{w}}" for c, w in zip(r, widths)) for r in rows]


def render_misses(result: dict, mode: str = "hybrid", limit: int = 50) -> str:
    """The worst misses of one mode: confident wrong answers (the right
    paragraph cited, or not), answerable questions refused, and unanswerable
    ones answered, each list most confident first."""
    rows = [r for r in result["results"] if r["mode"] == mode]
    wrong = sorted((r for r in rows if r["answerable"] and r["answered"] and not r["contains_gold"]),
                   key=lambda r: -r["confidence"])
    refused = sorted((r for r in rows if r["answerable"] and not r["answered"]), key=lambda r: -r["confidence"])
    missed = sorted((r for r in rows if not r["answerable"] and r["answered"]), key=lambda r: -r["confidence"])
    out = [f"# wenda eval: {result['dataset']}: the worst misses ({mode})", "",
           f"- wrong answers shown: {len(wrong)}; answerable refused: {len(refused)}; "
           f"unanswerable answered: {len(missed)} (at most {limit} of each below, most confident first)", ""]

    def table(title: str, items: list[dict]) -> list[str]:
        lines = ["", f"## {title}", "", "| id | type | question | gold | shown answer | cited | conf |",
                 "|---|---|---|---|---|---|---|"]
        for r in items[:limit]:
            gold = " / ".join(r.get("gold_answers") or r["gold"]) or "(unanswerable)"
            cited = r["cited"] or "-"
            if r["citation_correct"] is not None:
                cited += " ✓" if r["citation_correct"] else " ✗"
            answer = (r["answer"] or "(refused)").replace("|", "\\|")
            lines.append(f"| {r['qid']} | {r.get('qtype', '')} | {r['question'].replace('|', '/')} | "
                         f"{gold.replace('|', '/')} | {answer} | {cited} | {r['confidence']:.3f} |")
        return lines

    out += table("Wrong answers shown", wrong)
    out += table("Answerable, refused", refused)
    out += table("Unanswerable, answered", missed)
    return "\n".join(out) + "\n"


def plot(result: dict, path: Path) -> None:
    """Recall@k per mode, and the refusal trade-off across thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = _columns(result)
    sweep = result["modes"].get("hybrid", {}).get("threshold_sweep")
    fig, axes = plt.subplots(1, 2 if sweep else 1, figsize=(11 if sweep else 6, 4.2))
    ax = axes[0] if sweep else axes
    ks = [1, 3, 5, 10]
    for name, fig_ in cols.items():
        if all(f"recall@{k}" in fig_ for k in ks):
            ax.plot(ks, [fig_[f"recall@{k}"] for k in ks], marker="o", label=name,
                    linestyle="--" if name.startswith("lc-") else "-")
    ax.set(xlabel="k", ylabel="recall@k", title=f"{result['dataset']}: retrieval", xticks=ks)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if sweep:
        ax2 = axes[1]
        ts = [r["threshold"] for r in sweep]
        ax2.plot(ts, [r["refusal_precision"] for r in sweep], label="refusal precision")
        ax2.plot(ts, [r["refusal_recall"] for r in sweep], label="refusal recall")
        n_ans = max(result["modes"]["hybrid"]["answerable"], 1)
        ax2.plot(ts, [r["wrongly_refused"] / n_ans for r in sweep], label="answerable refused (share)")
        st = result["settings"]
        t = st.get("effective", st)["min_confidence"]
        ax2.axvline(t, color="grey", linestyle=":", label=f"setting {t:.3f}")
        ax2.set(xlabel="min_confidence", title="hybrid: abstention trade-off")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md", "plot": out_dir / f"{stem}.png",
             "misses": out_dir / f"{stem}-misses.md"}
    result["misses_file"] = paths["misses"].name
    paths["json"].write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    paths["markdown"].write_text(render_markdown(result), encoding="utf-8")
    first = next(iter(result["modes"]))
    paths["misses"].write_text(render_misses(result, first), encoding="utf-8")
    plot(result, paths["plot"])
    return paths


def check_fail_under(result: dict, rules: list[str]) -> list[str]:
    """``METRIC=VALUE`` or ``MODE.METRIC=VALUE`` (mode defaults to the first
    mode run, hybrid unless ``--modes`` says otherwise);
    returns the failures as messages.

    Raises:
        ValueError: a rule that is not of that form.
    """
    failures = []
    for rule in rules:
        name, sep, value = rule.partition("=")
        if not sep:
            raise ValueError(f"--fail-under wants METRIC=VALUE (got {rule!r})")
        mode, dot, metric = name.rpartition(".")
        mode = mode if dot else next(iter(result["modes"]))
        cols = _columns(result)
        if mode not in cols or metric not in cols[mode]:
            raise ValueError(f"--fail-under: no metric {metric!r} for mode {mode!r}")
        got = cols[mode][metric]
        if got < float(value):
            failures.append(f"{mode}.{metric} = {got:.4f} is under {float(value):.4f}")
    return failures
