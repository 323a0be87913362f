"""Figures as values, so that 1310万余, 13,100,000, 三千 and 两成 compare.

Our own small reader rather than cn2an: cn2an's strict mode rejects the forms
news text is full of (1310万余, 3.5亿, 两成, 百分之十五), and its smart mode
rewrites whole sentences; we only need the value of one figure.
"""

from __future__ import annotations

import re

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_SMALL = {"十": 10, "百": 100, "千": 1000}
_BIG = {"万": 10_000, "亿": 100_000_000}
# Arabic figure with an optional Chinese multiplier: 1310万, 3.5亿, 1,211, 537.2万.
_ARABIC = re.compile(r"(\d+(?:[,，]\d{3})*(?:\.\d+)?)\s*((?:[万亿]|千万|百万)*)")
_QUALIFIERS = re.compile(r"^(?:约|近|超过|逾|达|共|仅|多达|将近|大约)|(?:余|多|左右|以上|以下|上下)$")


def _chinese_integer(text: str) -> int | None:
    """Value of a Chinese numeral such as 三千, 一万二千三百, 十五, 二〇二一."""
    if not text or any(c not in _DIGITS and c not in _SMALL and c not in _BIG for c in text):
        return None
    if all(c in _DIGITS for c in text) and len(text) > 1:
        return int("".join(str(_DIGITS[c]) for c in text))  # 二〇二一 -> 2021
    total = section = digit = 0
    for c in text:
        if c in _DIGITS:
            digit = _DIGITS[c]
        elif c in _SMALL:
            section += (digit or 1) * _SMALL[c]
            digit = 0
        else:
            section += digit
            total = (total + section) * _BIG[c] if _BIG[c] > 10_000 else total + section * _BIG[c]
            section = digit = 0
    return total + section + digit


def parse_number(text: str) -> float | None:
    """The value of one figure, or None when ``text`` is not one.

    Handles Arabic figures with thousands separators and Chinese multipliers
    (1310万 -> 13100000, 3.5亿), Chinese numerals (三千, 一万二千), percentages
    (99.89%, 百分之十五 -> 15), 成 as tenths (两成 -> 20, read as a
    percentage), and drops qualifiers (约, 近, 余, 多: 1310万余 -> 13100000).
    """
    s = text.strip()
    s = _QUALIFIERS.sub("", s)
    s = _QUALIFIERS.sub("", s)
    if not s:
        return None
    if s.startswith("百分之"):
        inner = parse_number(s[3:])
        return inner
    if s.endswith("成") and len(s) > 1:
        inner = parse_number(s[:-1])
        return None if inner is None else inner * 10
    s = s.rstrip("%％‰")
    m = _ARABIC.fullmatch(s)
    if m:
        value = float(m.group(1).replace(",", "").replace("，", ""))
        for c in m.group(2):
            value *= {"万": 10_000, "亿": 100_000_000, "千": 1000, "百": 100}[c]
        return value
    # Mixed: 1万2千 is rare in news; Chinese numerals with a trailing multiplier are not.
    value = _chinese_integer(s)
    return None if value is None else float(value)


_FIGURE_IN_TEXT = re.compile(r"(?:百分之)?(?:\d+(?:[,，]\d{3})*(?:\.\d+)?(?:[万亿])?|[零〇一二两三四五六七八九十百千万亿]{2,}|[两三四五六七八九十])"
                             r"(?:余|多)?[%％成]?")


def numbers_in(text: str) -> list[tuple[int, int, float]]:
    """Every figure in ``text``: (start, end, value)."""
    out = []
    for m in _FIGURE_IN_TEXT.finditer(text):
        value = parse_number(m.group())
        if value is not None:
            out.append((m.start(), m.end(), value))
    return out
