"""The results summary over real eval JSON files: tables and plot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from eval import summary

RESULTS = Path(__file__).resolve().parent.parent / "eval" / "results"


def test_summary_tables_and_plot_from_result_files(tmp_path):
    for name in ("cmrc2018-dev-sample500", "drcd-dev-sample500", "cmrc2018-dev-holdout0.1-sample1000"):
        shutil.copy(RESULTS / f"{name}.json", tmp_path)
    # An older full run of the same set: the later sample run stands for the set.
    old = json.loads((RESULTS / "cmrc2018-dev-sample500.json").read_text())
    old.update(date="2026-11-25T00:00:00+00:00", command="wenda eval --dataset cmrc2018-dev")
    (tmp_path / "cmrc2018-dev.json").write_text(json.dumps(old))
    (tmp_path / "bench.json").write_text('{"not": "an eval"}')  # skipped: no "modes"
    assert summary.main([str(tmp_path)]) == 0
    md = (tmp_path / "summary.md").read_text(encoding="utf-8")
    cmrc = json.loads((tmp_path / "cmrc2018-dev-sample500.json").read_text())["modes"]
    [row] = [line for line in md.splitlines() if line.startswith("| cmrc2018-dev (")]
    assert row.startswith("| cmrc2018-dev (`wenda eval --dataset cmrc2018-dev --sample 500 --no-baseline`) | 500 | ")
    assert f"**{cmrc['hybrid']['recall@1']:.3f}** | {cmrc['fused']['recall@1']:.3f} |" in row
    h = cmrc["hybrid"]
    assert f"| {h['contains_gold']:.3f} | {h['exact_match']:.3f} | {h['f1']:.3f} | {h['short_shown']:.3f} |" in row
    # A figure that rounds up onto a target is shown with four decimals and its count.
    assert summary._hybrid_r1({"recall@1": 0.9496, "answerable": 1000}) == "0.9496 (950 of 1000)"
    assert summary._hybrid_r1({"recall@1": 0.9504, "answerable": 1000}) == "0.950"
    assert "| pool (" not in md
    hold = json.loads((tmp_path / "cmrc2018-dev-holdout0.1-sample1000.json").read_text())["modes"]["hybrid"]
    [row] = [line for line in md.splitlines() if line.startswith("| cmrc2018-dev-holdout0.1 (")]
    assert row.endswith(f"| {hold['refusal_precision']:.3f} | {hold['refusal_recall']:.3f} | "
                        f"{hold['wrongly_refused']} of {hold['answerable']} | "
                        f"{hold['best_threshold']['min_confidence']} |")
    assert "Per question type, drcd-dev (hybrid;" in md
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_without_results_says_so(tmp_path, capsys):
    assert summary.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == f"error: no evaluation results in {tmp_path}; run 'wenda eval' first"
