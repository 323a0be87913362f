"""Progress for a log or a pipe: where a progress bar would be a smear of
carriage returns, one plain line every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from ingest.build import IngestProgress

#: Seconds between lines.
EVERY = 5.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def progress_line(p: IngestProgress) -> str:
    """``ingest: 300/1000 articles, 1200 passages, 15.8 passages/s, ETA 7m24s``
    (the ETA from the articles' rate so far; none while the total is unknown)."""
    rate = p.passages / p.seconds if p.seconds > 0 else 0.0
    of = f"/{p.articles_total}" if p.articles_total is not None else ""
    line = f"ingest: {p.articles_done}{of} articles, {p.passages} passages, {rate:.1f} passages/s"
    if p.articles_total is not None and p.articles_done and p.seconds > 0:
        left = max(0, p.articles_total - p.articles_done) * p.seconds / p.articles_done
        line += f", ETA {_duration(left)}"
    return line


class ProgressLines:
    """An ``on_progress`` callback that writes ``progress_line`` to ``stream``
    at most once every ``every`` seconds (the first after ``every`` seconds).

    Args:
        stream: where the lines go (stderr).
        every: seconds between lines (default ``EVERY``).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, stream: TextIO, *, every: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.every = EVERY if every is None else every
        self.clock = clock
        self._last = clock()

    def __call__(self, p: IngestProgress) -> None:
        now = self.clock()
        if now - self._last >= self.every:
            self._last = now
            print(progress_line(p), file=self.stream, flush=True)
