"""Follow-up questions made standalone without an LLM, by carrying the
previous question's frame and names.

Two shapes of follow-up are recognised; anything else is taken as standalone:

- "the same, about X": 那江西呢？, 江西呢？, 那么江西的情况呢？, What about Jiangxi?
  X takes the place of the previous question's name of the same sort (a
  place for a place, a year for a year, another name for a name); with none
  to replace, X is put in front. 那江西呢？ after 福建12345热线的群众满意率是多少？
  asks 江西12345热线的群众满意率是多少？
- a pronoun for the previous subject: 它是哪一年成立的？ after
  福建12345热线的群众满意率是多少？ asks 福建12345热线是哪一年成立的？ The
  subject is what the previous question says before its first 的 (when that
  is a short phrase), else its first name.

With an LLM configured the conversation goes to the LLM instead
(retriever/generate.py ``rewrite_question``); this is its fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .gazetteer import PLACES, places_in_english
from .question import QUESTION_WORDS, analyse, posseg

_ABOUT_ZH = re.compile(r"^(?:那么|那|还有|而)?\s*(?P<x>[^，,。？?！!]{1,20}?)\s*(?:的情况|的)?\s*(?:呢|怎么样|如何)\s*[？?。!！]*$")
_ABOUT_EN = re.compile(r"^(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.{1,40}?)\s*\??$|^and\s+(?P<y>.{1,40}?)\s*\?$", re.I)
_PRONOUN = re.compile(r"^(?:那么|那)?\s*(?P<p>它们|他们|她们|它|他|她|其|这个|那个|此)")
_YEAR = re.compile(r"\d{4}年|[〇零一二三四五六七八九]{4}年")
_QWORDS = re.compile("|".join(map(re.escape, QUESTION_WORDS)) + r"|多少|几|哪|什么|谁|是否|吗")


def standalone(message: str, previous: Sequence[str]) -> str:
    """``message`` as a question that stands alone, given the user's earlier
    questions in the conversation (oldest first, as they were asked).

    Args:
        message: the latest user message.
        previous: the user's earlier messages.

    Returns:
        The rewritten question, or ``message`` when it is not a follow-up (or
        there is nothing before it).
    """
    frame = None
    for earlier in previous:
        frame = earlier.strip() if frame is None else rewrite(earlier.strip(), frame)
    return message.strip() if frame is None else rewrite(message.strip(), frame)


def rewrite(message: str, frame: str) -> str:
    """``message`` made standalone against the previous standalone question ``frame``."""
    m = _ABOUT_ZH.match(message)
    if m and not _QWORDS.search(m.group("x")):
        return _swap(frame, m.group("x").strip())
    m = _ABOUT_EN.match(message)
    if m:
        return _swap_en(frame, (m.group("x") or m.group("y")).strip())
    m = _PRONOUN.match(message)
    if m:
        subject = _subject(frame)
        if subject:
            return subject + message[m.end():]
    return message


def _swap(frame: str, x: str) -> str:
    """``frame`` about ``x``: x replaces the frame's name of the same sort."""
    if _YEAR.fullmatch(x) and _YEAR.search(frame):
        return _YEAR.sub(x, frame, count=1)
    q, about = analyse(frame), analyse(x + "？")
    if about.places or _is_place(x):
        old = q.places[0] if q.places else None
    else:
        old = q.entities[0] if q.entities else (q.places[0] if q.places else None)
    if old and old in frame:
        return frame.replace(old, x, 1)
    return x + frame


def _swap_en(frame: str, x: str) -> str:
    new = places_in_english(x)
    if re.search(r"[\u3400-\u9fff]", frame):
        return _swap(frame, new[0] if new else x)
    for name in sorted(PLACES, key=len, reverse=True):
        hit = re.search(rf"\b{re.escape(name)}\b", frame, re.I)
        if hit:
            return frame[:hit.start()] + x + frame[hit.end():]
    return f"{frame.rstrip('?？ ')} ({x})?"


def _is_place(x: str) -> bool:
    return any(flag == "ns" for _, flag in posseg(x))


def _subject(frame: str) -> str | None:
    """What the previous question is about: its words before the first 的
    when they make a short phrase without question words, else its first name."""
    head = frame.split("的", 1)[0]
    if head != frame and 2 <= len(head) <= 15 and not _QWORDS.search(head):
        return head
    q = analyse(frame)
    names = q.entities + q.places
    return names[0] if names else None
