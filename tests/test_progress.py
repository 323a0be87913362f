"""'wenda ingest' to a file or pipe: a progress line every few seconds
(passages, rate, ETA) instead of silence or a carriage-return bar."""

from __future__ import annotations

import io
import re

import pytest
from click.testing import CliRunner

from conftest import MINI, fresh_index_dir
from ingest.build import IngestProgress
from ingest.readers import count_articles
from service import progress
from service.cli import cli
from service.progress import ProgressLines, progress_line


def test_lines_say_how_far_how_fast_and_how_long_to_go():
    assert progress_line(IngestProgress(300, 1000, 1200, 76.0)) == (
        "ingest: 300/1000 articles, 1200 passages, 15.8 passages/s, ETA 2m57s")  # 700 x 76 / 300 = 177 s
    assert progress_line(IngestProgress(10, 40000, 50, 10.0)) == (
        "ingest: 10/40000 articles, 50 passages, 5.0 passages/s, ETA 11h06m")  # 39990 s
    assert progress_line(IngestProgress(7, None, 21, 2.0)) == "ingest: 7 articles, 21 passages, 10.5 passages/s"


def test_at_most_one_line_every_few_seconds():
    now = [100.0]
    out = io.StringIO()
    lines = ProgressLines(out, every=5, clock=lambda: now[0])
    for t, done in [(101, 1), (104.9, 2), (105, 3), (106, 4), (111, 5)]:
        now[0] = t
        lines(IngestProgress(done, 10, done * 2, t - 100))
    assert out.getvalue().splitlines() == [
        "ingest: 3/10 articles, 6 passages, 1.2 passages/s, ETA 12s",
        "ingest: 5/10 articles, 10 passages, 0.9 passages/s, ETA 11s",
    ]


def test_count_articles_counts_what_the_readers_will_yield(tmp_path):
    (tmp_path / "a.txt").write_text("标题\n\n正文。", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n\n{"text": "y"}\nnot json\n', encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("x", encoding="utf-8")
    assert count_articles([tmp_path, MINI, tmp_path / "missing"]) == 1 + 3 + 10


@pytest.mark.parametrize(("args", "expect_lines"), [([], True), (["--no-progress"], False)])
def test_ingest_to_a_pipe_prints_progress_lines(tmp_path, warm_cache, monkeypatch, args, expect_lines):
    monkeypatch.setattr(progress, "EVERY", 0)
    idx = fresh_index_dir(tmp_path / "idx", warm_cache)
    r = CliRunner().invoke(cli, ["--index-dir", str(idx), "ingest", str(MINI), *args])  # stderr is not a terminal
    assert r.exit_code == 0
    lines = [line for line in r.stderr.splitlines() if line.startswith("ingest: ")]
    if not expect_lines:
        assert lines == []
        return
    shape = re.compile(r"ingest: (\d+)/10 articles, (\d+) passages, \d+\.\d passages/s, ETA \d+s")
    assert all(shape.fullmatch(line) for line in lines), lines
    assert [int(shape.fullmatch(line)[1]) for line in lines] == list(range(1, 11))
    assert int(shape.fullmatch(lines[-1])[2]) == 32
