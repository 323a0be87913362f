"""Helpers for cutting the short answer out of a sentence: clause
boundaries, the head noun a question word modifies (哪所|小学), and widening
a figure or date to the whole expression (a range, an era year)."""

from __future__ import annotations

import re
from collections.abc import Callable

# What ends a clause inside a sentence.
CLAUSE_MARK = re.compile(r"[，,；;：:]")


def clauses(text: str) -> list[tuple[int, int]]:
    """The clauses of ``text`` (cut at ，；： and their ASCII forms) as offsets."""
    out, pos = [], 0
    for m in CLAUSE_MARK.finditer(text):
        if text[pos:m.start()].strip():
            out.append((pos, m.start()))
        pos = m.end()
    if text[pos:].strip():
        out.append((pos, len(text)))
    return out


def clause_at(text: str, pos: int) -> tuple[int, int]:
    """The clause holding offset ``pos``."""
    cl = clauses(text)
    for s, e in cl:
        if s <= pos < e:
            return s, e
    return next(((s, e) for s, e in cl if s >= pos), cl[-1] if cl else (0, len(text)))


def head_noun(right: str, after: str, tag: Callable[[str], list[tuple[str, str]]]) -> str:
    """The noun the question word modifies (什么|模式, 哪所|小学), when the
    sentence repeats it right after the answer (以BOT|模式): it belongs to
    the answer. ``right`` is the question after its question word, ``after``
    the sentence after the slot, ``tag`` a part-of-speech tagger. Empty when
    there is none."""
    head = ""
    for word, flag in tag(right):
        if not flag.startswith("n") or not after.startswith(head + word):
            break
        head += word
    return head


# Between two figures or dates that make one answer: 15至20厘米, 70-80公里,
# 2009年9月27日-10月9日; dates also by 及/和/、 (8月15日及8月16日).
_RANGE = re.compile(r"\s*(?:至|到|-|－|–|—|~|～)\s*")
_AND = re.compile(r"\s*(?:至|到|-|－|–|—|~|～|及|和|、)\s*")


def widen(text: str, span: tuple[int, int], spans: list[tuple[int, int]], dates: bool = False) -> tuple[int, int]:
    """Join ``span`` with the figures or dates of ``spans`` next to it across
    a range mark (to, -, ~; for dates also 及/和/、), so that a range is
    answered whole."""
    joint = _AND if dates else _RANGE
    s, e = span
    changed = True
    while changed:
        changed = False
        for a, b in spans:
            if a >= e and joint.fullmatch(text[e:a]):
                e, changed = b, True
            elif b <= s and joint.fullmatch(text[b:s]):
                s, changed = a, True
    return s, e


# An era year before a bracketed Western year: 天正3年（1575年）, 正德五年（1510年）.
# The era name is two characters that are not a count's lead-in, so that
# 成立第二年（1998年）, 历时三年 or 在位十年 are not taken for one.
_ERA = re.compile(r"(?:(?![第于在至从到为历时位是有了共约近])[\u4e00-\u9fff]){2}"
                  r"(?:元|\d{1,2}|[一二三四五六七八九十]{1,3})年\s*[（(]$")


def with_era(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """Widen a bracketed year to the era year before it, closing bracket
    included: 天正3年（1575年）, not 1575年 alone."""
    s, e = span
    m = _ERA.search(text, max(0, s - 8), s)
    if m and e < len(text) and text[e] in "）)":
        return m.start(), e + 1
    return span
