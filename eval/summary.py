"""One page over every result in eval/results: the README's tables and a
plot of R@1 per set and mode against the issue's targets.

    python -m eval.summary [RESULTS_DIR]

writes ``summary.md`` and ``summary.png`` into RESULTS_DIR (default
eval/results) from the JSON files ``wenda eval`` left there.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .langchain_baseline import MODES as BASELINES
from .report import type_table
from .runner import EVAL_MODES as MODES

RESULTS = Path(__file__).resolve().parent / "results"

# Result stems, in the order the README shows them.
REPORT_SETS = ("seed", "cmrc2018-dev", "drcd-dev", "drcd-dev-t2s", "pool")
TUNING_SETS = ("cmrc2018-trial-holdout0.2", "cmrc2018-trial-s2t", "cmrc2018-trial-split", "cmrc2018-trial-cross")
ABSTENTION_SETS = ("seed", "cmrc2018-trial-holdout0.2", "cmrc2018-dev-holdout0.1")
# Sets whose per-question-type table the README shows.
TYPE_SETS = ("cmrc2018-dev", "drcd-dev", "seed")
# Hybrid R@1 the eval issue asks for.
TARGETS = {"cmrc2018-dev": 0.98, "pool": 0.98, "drcd-dev": 0.95}


def load(results_dir: Path) -> dict[str, dict]:
    """Every ``<stem>.json`` that holds an evaluation, by stem; a run on a
    random sample (``<set>-sample<N>``, ``wenda eval --sample N``) stands for
    its set when it is the later run (its command and question count say so
    in the tables)."""
    out = {}
    for path in sorted(results_dir.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "modes" in data:
            name = re.sub(r"-sample\d+$", "", path.stem)
            if name not in out or data.get("date", "") > out[name].get("date", ""):
                out[name] = data
    return out


def _cmd(data: dict) -> str:
    return "`" + data.get("command", "").replace(" --no-progress", "") + "`"


def _r1(fig: dict | None) -> str:
    return f"{fig['recall@1']:.3f}" if fig else "-"


def _hybrid_r1(fig: dict) -> str:
    """Three decimals, or four with the count when rounding would cross a target."""
    r1 = fig["recall@1"]
    text = f"{r1:.3f}"
    if any(r1 < t <= round(r1, 3) for t in TARGETS.values()):
        text = f"{r1:.4f} ({round(r1 * fig['answerable'])} of {fig['answerable']})"
    return text


def tables(results: dict[str, dict]) -> str:
    """The README's three tables as Markdown."""
    lines = ["| set (command) | questions | hybrid R@1 | fused (no rerank) R@1 | dense R@1 | BM25 R@1 | "
             "LangChain ensemble R@1 | LangChain dense R@1 | LangChain BM25 R@1 | hybrid MRR@10 | "
             "shown answer holds a gold answer | EM | F1 | short answer shown | "
             "cited paragraph correct | quote = source | p50 / p95 ms | run time |",
             "|" + "---|" * 18]
    for name in REPORT_SETS:
        d = results.get(name)
        if not d:
            continue
        m, b, h = d["modes"], d.get("baseline") or {}, d["modes"]["hybrid"]
        lines.append(
            f"| {name} ({_cmd(d)}) | {h['questions']} | **{_hybrid_r1(h)}** | {_r1(m.get('fused'))} | "
            f"{_r1(m.get('dense'))} | {_r1(m.get('bm25'))} | " + " | ".join(_r1(b.get(k)) for k in BASELINES)
            + f" | {h['mrr@10']:.3f} | {_opt(h, 'contains_gold')} | {h['exact_match']:.3f} | {h['f1']:.3f} | "
            f"{_opt(h, 'short_shown')} | {h['citation_correct']:.3f} | "
            f"{h['quote_matches']:.3f} | {h['latency_p50_ms']:.0f} / {h['latency_p95_ms']:.0f} | "
            f"{d['seconds'] / 60:.0f} min |")
    lines += ["", "| tuning set (command) | answerable questions | hybrid R@1 | fused (no rerank) R@1 | dense R@1 "
              "| BM25 R@1 | contains | EM | F1 | answerable wrongly refused |", "|" + "---|" * 10]
    for name in TUNING_SETS:
        d = results.get(name)
        if d:
            m, h = d["modes"], d["modes"]["hybrid"]
            lines.append(f"| {name} ({_cmd(d)}) | {h['answerable']} | **{_r1(h)}** | "
                         f"{_r1(m.get('fused'))} | {_r1(m.get('dense'))} | {_r1(m.get('bm25'))} | "
                         f"{_opt(h, 'contains_gold')} | {h['exact_match']:.3f} | {h['f1']:.3f} | "
                         f"{h['wrongly_refused']} |")
    lines += ["", "| abstention set (command) | questions (unanswerable) | refusal precision | refusal recall | "
              "answerable wrongly refused | best threshold on this set |", "|---|---|---|---|---|---|"]
    for name in ABSTENTION_SETS:
        d = results.get(name)
        if d:
            h = d["modes"]["hybrid"]
            best = h.get("best_threshold", {}).get("min_confidence")
            lines.append(f"| {name} ({_cmd(d)}) | {h['questions']} ({h['unanswerable']}) | "
                         f"{h['refusal_precision']:.3f} | {h['refusal_recall']:.3f} | "
                         f"{h['wrongly_refused']} of {h['answerable']} | {best} |")
    for name in TYPE_SETS:
        d = results.get(name)
        by_type = d and d["modes"]["hybrid"].get("by_type")
        if by_type:
            lines += ["", f"Per question type, {name} (hybrid; {_cmd(d)}):", "", *type_table(by_type, markdown=True)]
    return "\n".join(lines) + "\n"


def _opt(fig: dict, key: str) -> str:
    """A figure older result files may lack."""
    return f"{fig[key]:.3f}" if key in fig else "-"


def plot(results: dict[str, dict], path: Path) -> None:
    """Grouped bars: R@1 per set and mode, LangChain ensemble included, with
    each target as a tick line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [n for n in REPORT_SETS if n in results]
    series = [*MODES, "lc-ensemble"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(series)
    for i, mode in enumerate(series):
        values = []
        for n in sets:
            fig_ = results[n]["modes"].get(mode) or (results[n].get("baseline") or {}).get(mode)
            values.append(fig_["recall@1"] if fig_ else 0.0)
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(sets))]
        ax.bar(xs, values, width, label=mode)
        for x, v in zip(xs, values):
            if 0 < v < 0.7:  # off the scale: say the value
                ax.text(x, 0.702, f"{v:.3f}", rotation=90, ha="center", va="bottom", fontsize=7)
    for x, n in enumerate(sets):
        if n in TARGETS:
            ax.hlines(TARGETS[n], x - 0.45, x + 0.45, colors="black", linestyles="dashed")
    ax.set_xticks(range(len(sets)), sets)
    ax.set_ylim(0.7, 1.0)
    ax.set_ylabel("recall@1")
    ax.set_title("wenda eval: R@1 per set and mode (dashed: the target)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    results_dir = Path(argv[0]) if argv else RESULTS
    results = load(results_dir)
    if not results:
        print(f"error: no evaluation results in {results_dir}; run 'wenda eval' first", file=sys.stderr)
        return 1
    (results_dir / "summary.md").write_text("# wenda eval: summary\n\n" + tables(results), encoding="utf-8")
    plot(results, results_dir / "summary.png")
    print(f"wrote {results_dir / 'summary.md'}, {results_dir / 'summary.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
