"""Per-client rate limits: a token bucket per client address and kind of
request (writes, asks), kept per app on ``app.state`` through ``Access``.

A bucket holds up to ``per_minute`` tokens and refills at ``per_minute / 60``
a second; a request takes one token or is answered 429 with ``Retry-After``
(the classic token bucket, as in RFC 2697's committed burst: a client may
spend a minute's allowance at once, then one request per refill interval).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import HTTPException, Request

#: Buckets kept at most; the least recently seen client is forgotten first
#: (it starts again with a full bucket), so memory stays bounded however many
#: addresses a caller uses.
MAX_CLIENTS = 10_000


class RateLimit:
    """A FastAPI dependency that allows each client ``per_minute`` requests a minute.

    Args:
        per_minute: the allowance (and the largest burst); 0 turns the limit off.
        what: the requests limited, for the message ("writes", "questions").
        setting: the variable that holds ``per_minute``, for the message.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, per_minute: int, *, what: str, setting: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.what = what
        self.setting = setting
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, time)

    def wait(self, client: str) -> float:
        """Take a token for ``client``; return 0, or the seconds until one is free."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - then) * rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / rate
            self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return wait

    def __call__(self, request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        wait = self.wait(client)
        if wait:
            seconds = max(1, math.ceil(wait))
            raise HTTPException(
                429, f"Too many {self.what} from this client: the limit is {self.per_minute} a minute "
                     f"({self.setting}); retry in {seconds} s.", headers={"Retry-After": str(seconds)})
