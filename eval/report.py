"""Render an evaluation: terminal table, JSON, Markdown report, PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

ROWS = [
    ("recall@1", "R@1"), ("recall@5", "R@5"), ("recall@10", "R@10"), ("mrr@10", "MRR@10"), ("ndcg@10", "nDCG@10"),
    ("exact_match", "EM"), ("f1", "F1"), ("contains_gold", "contains"), ("citation_correct", "cite ok"),
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
    misses = [r for r in result["results"] if r["mode"] == "hybrid" and
              ((r["answerable"] and (not r["answered"] or not r["f1"])) or (not r["answerable"] and r["answered"]))]
    if misses:
        out += ["", f"## Hybrid failures ({len(misses)})", "", "| id | question | gold | answer | conf |",
                "|---|---|---|---|---|"]
        for r in misses[:200]:
            gold = ", ".join(r["gold"]) or "(unanswerable)"
            out.append(f"| {r['qid']} | {r['question']} | {gold} | {r['answer'] or '(refused)'} | "
                       f"{r['confidence']:.3f} |")
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
        t = result["settings"]["min_confidence"]
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
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md", "plot": out_dir / f"{stem}.png"}
    paths["json"].write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    paths["markdown"].write_text(render_markdown(result), encoding="utf-8")
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
