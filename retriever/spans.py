"""Rule-made answer spans inside a sentence, for the answerer's candidate model
to weigh beside the span reader's own proposals.

Each rule proposes where a short answer of the asked-for kind could be:
figures with their unit (4777人, 99.89%, 1310万余人次, ranges kept whole),
dates (with an era year's Western year), names jieba tags as person, place or
organisation, quoted titles, what fills the question word's slot when the
question is aligned with the sentence (《X》是由哪两个公司开发的 against
《X》是由光荣和ω-force开发的 -> 光荣和ω-force), the clause that holds it,
and the sentence. No rule decides; the candidate model does, with the
reader's score for each span among its features.
"""

from __future__ import annotations

import math
import re

from .question import UNITS, Question, posseg
from .span import clause_at, clauses, head_noun, widen, with_era

_UNIT_RE = "|".join(map(re.escape, UNITS))
# Arabic figures with an optional unit, or Chinese numerals, which need a unit
# (三万余人, 两所) so that words such as 一些 are not taken for numbers.
NUMBER = re.compile(
    r"(?:约|近|超过|逾)?(?:\d+(?:[,.，]\d+)*(?:多|余)?(?:万|亿|千|百)?(?:多|余)?(?:" + _UNIT_RE + r"|%|‰)?"
    r"|(?:[两三四五六七八九十]|[一二三四五六七八九十][零一二两三四五六七八九十])[零一二两三四五六七八九十百千万亿]*"
    r"(?:多|余)?(?:" + _UNIT_RE + r"))"
)
DATE = re.compile(r"(?:\d{4}年)?\d{1,2}月(?:\d{1,2}日)?(?:[上中下]旬|底|初|末)?|\d{4}年(?:[上下]半年|底|初)?"
                  r"|今年\d{1,2}月(?:\d{1,2}日)?|[一二三四五六七八九〇零]{4}年|(?:\d{1,2}|[一二三四五六七八九十]{1,3})世纪(?:\d0年代)?")
QUOTED = re.compile(r"[“「『《]([^”」』》]{1,30})[”」』》]")
# The question word whose place in the question marks where the answer sits.
WH = re.compile(r"为什么|什么时候|什么|哪一?[两三四五六七八九十几]?[个位种年天家部条座所项国些样里儿类名支只首本届场]?"
                r"|谁|多少|几[个位种年天家部条座所项名岁次]?|何[时地种人处]")
_SLOT_STOP = "，。；！？,;!?"
_TAGS = {"person": ("nr",), "place": ("ns",), "org": ("nt",), "entity": ("nr", "ns", "nt", "nz")}
_EDGE = " \u3000，,、。；;：:！!？?…“”\"'（()）"


def _dates(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in DATE.finditer(text)]


def figures(text: str) -> list[tuple[int, int]]:
    """Figures (not dates), ranges joined (70-80公里)."""
    dates = _dates(text)
    spans = [m.span() for m in NUMBER.finditer(text)
             if m.end() > m.start() and not any(ds <= m.start() < de for ds, de in dates)]
    return sorted({widen(text, sp, spans) for sp in spans})


def tagged(text: str, flags: tuple[str, ...]) -> list[tuple[int, int]]:
    """Words jieba tags with one of ``flags``, two characters or longer; runs
    of tagged words joined (an organisation is often cut in two)."""
    out: list[tuple[int, int]] = []
    pos = 0
    for word, flag in posseg(text):
        if flag in flags and len(word) >= 2:
            if out and out[-1][1] == pos:
                out[-1] = (out[-1][0], pos + len(word))
            else:
                out.append((pos, pos + len(word)))
        pos += len(word)
    return out


def slot(question: str, text: str) -> tuple[int, int] | None:
    """What fills the question word's slot when the question's words on
    either side of it are found in ``text``; None when neither side is."""
    m = WH.search(question)
    if not m:
        return None
    left = question[:m.start()]
    right = question[m.end():].rstrip("？?。！!呢吗 \u3000")
    lend = rstart = None
    lscore = rscore = 0.0
    for skip in range(min(4, len(left)) + 1):
        end = len(left) - skip
        for size in range(min(16, end), 1, -1):
            pos = text.rfind(left[end - size:end])
            if pos >= 0 and size - 0.5 * skip > lscore:
                lscore, lend = size - 0.5 * skip, pos + size
                break
    base = lend or 0
    for skip in range(min(4, len(right)) + 1):
        for size in range(min(16, len(right) - skip), 1, -1):
            pos = text.find(right[skip:skip + size], base)
            if pos >= 0 and size - 0.5 * skip > rscore:
                rscore, rstart = size - 0.5 * skip, pos
                break
    if lscore < 1.5 and rscore < 1.5:
        return None
    if lscore >= 1.5 and rscore >= 1.5 and rstart is not None and lend is not None and rstart > lend:
        s, e = lend, rstart
    elif lscore >= 1.5 and lend is not None:
        s = lend
        e = next((i for i in range(lend, len(text)) if text[i] in _SLOT_STOP), len(text))
    elif rstart is not None:
        e = rstart
        s = max((i + 1 for i in range(0, rstart) if text[i] in _SLOT_STOP), default=0)
    else:
        return None
    while s < e and (text[s] in _EDGE or (text[s] in "是为由在于" and e - s > 2)):
        s += 1
    while e > s and (text[e - 1] in _EDGE or text[e - 1] == "的"):
        e -= 1
    if e <= s or e - s > 40:
        return None
    if m.group().startswith(("什么", "哪")) and rstart is not None and e == rstart:
        # The noun the question word modifies belongs to the answer when it
        # follows without 的: 就读于哪所小学 against 就读于南昌路小学 -> 南昌路小学.
        head = head_noun(right, text[rstart:], posseg)
        if head:
            e = rstart + len(head)
    return s, e


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s] in _EDGE:
        s += 1
    while e > s and text[e - 1] in _EDGE:
        e -= 1
    return s, e


def rule_spans(question: Question, sentence: str) -> list[tuple[int, int, str]]:
    """(start, end, rule) spans of ``sentence`` (folded text) that could answer."""
    out: list[tuple[int, int, str]] = []
    kind = question.kind
    if kind in ("count", "money", "percent", "duration", "other", "entity", "list"):
        out += [(s, e, "figure") for s, e in figures(sentence)]
    if kind in ("date", "duration", "other", "entity"):
        out += [(*with_era(sentence, widen(sentence, sp, _dates(sentence), dates=True)), "date")
                for sp in _dates(sentence)]
    flags = _TAGS.get(kind, _TAGS["entity"] if kind in ("other", "title", "list") else ())
    if flags:
        out += [(s, e, "name") for s, e in tagged(sentence, flags)]
    out += [(m.start(1), m.end(1), "quoted") for m in QUOTED.finditer(sentence)]
    out += [(m.start(), m.end(), "quoted") for m in QUOTED.finditer(sentence) if m.group().startswith("《")]
    sl = slot(question.folded, sentence)
    if sl:
        out.append((*sl, "slot"))
        out.append((*_trim(sentence, clause_at(sentence, sl[0])[0], sl[1]), "slot_clause"))
    for s, e in clauses(sentence):
        s, e = _trim(sentence, s, e)
        if e > s:
            out.append((s, e, "clause"))
    s, e = _trim(sentence, 0, len(sentence))
    if e > s:
        out.append((s, e, "sentence"))
    seen: set[tuple[int, int]] = set()
    unique = []
    for s, e, rule in out:
        if e > s and (s, e) not in seen:
            seen.add((s, e))
            unique.append((s, e, rule))
    return unique


def term_distance(question: Question, text: str, start: int, end: int) -> tuple[float, float]:
    """How close the question's words stand to [start, end) in ``text``:
    (characters to the nearest one, IDF-free mass of those within 8
    characters, decaying with distance). Words after the span count less, as
    in Chinese the thing counted comes before the count."""
    nearest, mass = 60.0, 0.0
    for t in set(question.terms):
        if len(t) < 2 and not t.isdigit():
            continue
        pos = text.find(t)
        while pos >= 0:
            if pos + len(t) <= start:
                d = start - (pos + len(t))
                nearest = min(nearest, d)
                mass += math.exp(-d / 8)
            elif pos >= end:
                d = 1.5 * (pos - end) + 2
                nearest = min(nearest, d)
                mass += 0.5 * math.exp(-(pos - end) / 8)
            pos = text.find(t, pos + 1)
    return nearest, mass
