"""The results summary over real eval JSON files: tables and plot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from eval import summary

RESULTS = Path(__file__).resolve().parent.parent / "eval" / "results"


def test_summary_tables_and_plot_from_result_files(tmp_path):
    for name in ("cmrc2018-dev", "drcd-dev", "cmrc2018-trial-split"):
        shutil.copy(RESULTS / f"{name}.json", tmp_path)
    (tmp_path / "bench.json").write_text('{"not": "an eval"}')  # skipped: no "modes"
    assert summary.main([str(tmp_path)]) == 0
    md = (tmp_path / "summary.md").read_text(encoding="utf-8")
    cmrc = json.loads((tmp_path / "cmrc2018-dev.json").read_text())["modes"]
    row = next(line for line in md.splitlines() if line.startswith("| cmrc2018-dev ("))
    assert f"**{cmrc['hybrid']['recall@1']:.3f}** | {cmrc['fused']['recall@1']:.3f} |" in row
    # A figure that rounds up onto a target is shown with four decimals and its count.
    drcd = json.loads((tmp_path / "drcd-dev.json").read_text())["modes"]["hybrid"]
    cell = summary._hybrid_r1(drcd)
    if drcd["recall@1"] < 0.95 <= round(drcd["recall@1"], 3):
        assert cell == f"{drcd['recall@1']:.4f} ({round(drcd['recall@1'] * drcd['answerable'])} of 3524)"
    assert summary._hybrid_r1({"recall@1": 0.9496, "answerable": 1000}) == "0.9496 (950 of 1000)"
    assert summary._hybrid_r1({"recall@1": 0.9504, "answerable": 1000}) == "0.950"
    assert "| cmrc2018-trial-split (" in md and "| pool (" not in md
    split = json.loads((tmp_path / "cmrc2018-trial-split.json").read_text())["modes"]["hybrid"]
    row = next(line for line in md.splitlines() if line.startswith("| cmrc2018-trial-split ("))
    contains = f"{split['contains_gold']:.3f}" if "contains_gold" in split else "-"
    assert row.endswith(f"| {contains} | {split['exact_match']:.3f} | {split['f1']:.3f} | "
                        f"{split['wrongly_refused']} |")
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_without_results_says_so(tmp_path, capsys):
    assert summary.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == f"error: no evaluation results in {tmp_path}; run 'wenda eval' first"
